//! Byte-level JSON helpers that keep a record verbatim.

/// Removes insignificant white space from a JSON text without touching anything else: string
/// contents, escapes, number spellings and key order are kept byte for byte. Scans with
/// `memchr`, so compact input is copied at memory speed.
pub fn minify(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    // The next white space byte at or after `i` (absolute), found once and reused until
    // passed, so that input without white space is scanned once, not once a string.
    let mut next_ws: Option<usize> = None;
    let find_ws = |from: usize| -> Option<usize> {
        let rest = &src[from..];
        let a = memchr::memchr3(b' ', b'\n', b'\t', rest);
        let b = memchr::memchr(b'\r', rest);
        match (a, b) {
            (Some(a), Some(b)) => Some(from + a.min(b)),
            (a, b) => a.or(b).map(|x| from + x),
        }
    };
    let mut ws_known = false;
    while i < src.len() {
        let rest = &src[i..];
        if !ws_known || next_ws.is_some_and(|w| w < i) {
            next_ws = find_ws(i);
            ws_known = true;
        }
        let ws = next_ws.map(|w| w - i);
        let quote = memchr::memchr(b'"', rest);
        match (quote, ws) {
            (Some(q), w) if w.is_none_or(|w| q < w) => {
                out.extend_from_slice(&rest[..=q]);
                i += q + 1;
                // Inside a string: copy through the closing quote, honouring escapes.
                loop {
                    let Some(j) = memchr::memchr2(b'"', b'\\', &src[i..]) else {
                        out.extend_from_slice(&src[i..]);
                        return out;
                    };
                    if src[i + j] == b'"' {
                        out.extend_from_slice(&src[i..=i + j]);
                        i += j + 1;
                        break;
                    }
                    let end = (i + j + 2).min(src.len());
                    out.extend_from_slice(&src[i..end]);
                    i = end;
                }
            }
            (_, Some(w)) => {
                out.extend_from_slice(&rest[..w]);
                i += w + 1;
            }
            (_, None) => {
                out.extend_from_slice(rest);
                break;
            }
        }
    }
    out
}

/// Appends `"key":value` members to a minified JSON object, keeping every existing byte.
/// `members` holds pairs of key and already-encoded JSON value.
pub(crate) fn append_members(object: &mut Vec<u8>, members: &[(&str, String)]) {
    if members.is_empty() {
        return;
    }
    // The object is minified and was parsed as an object, so it ends in '}'.
    let Some(close) = object.pop() else { return };
    debug_assert_eq!(close, b'}');
    let mut empty = object.last() == Some(&b'{');
    for (key, value) in members {
        if !empty {
            object.push(b',');
        }
        empty = false;
        object.push(b'"');
        object.extend_from_slice(key.as_bytes());
        object.extend_from_slice(b"\":");
        object.extend_from_slice(value.as_bytes());
    }
    object.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings() {
        let src = br#"{ "a" : "x y\" z" ,
            "b": [1, 2.50, {"c" : null}] }"#;
        assert_eq!(
            minify(src),
            br#"{"a":"x y\" z","b":[1,2.50,{"c":null}]}"#.to_vec()
        );
    }

    #[test]
    fn minify_edge_cases() {
        assert_eq!(minify(b""), b"".to_vec());
        assert_eq!(minify(b" \r\n\t"), b"".to_vec());
        assert_eq!(
            minify(br#"["a\\" , "b\"\\" ]"#),
            br#"["a\\","b\"\\"]"#.to_vec()
        );
        assert_eq!(
            minify(br#"{"k":"unterminated \"#),
            br#"{"k":"unterminated \"#.to_vec()
        );
        assert_eq!(minify(b"\"\t\" 1"), b"\"\t\"1".to_vec());
    }

    proptest::proptest! {
        #[test]
        fn minify_agrees_with_a_parser(v in json_value()) {
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            let compact = serde_json::to_vec(&v).unwrap();
            proptest::prop_assert_eq!(minify(&pretty), compact.clone());
            proptest::prop_assert_eq!(minify(&compact), compact);
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[ -~\t\n\"\\\\é]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z \"]{0,6}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn append_to_empty_and_full() {
        let mut a = b"{}".to_vec();
        append_members(&mut a, &[("k", "\"v\"".into())]);
        assert_eq!(a, br#"{"k":"v"}"#.to_vec());
        let mut b = br#"{"x":1}"#.to_vec();
        append_members(&mut b, &[("k", "true".into()), ("j", "2".into())]);
        assert_eq!(b, br#"{"x":1,"k":true,"j":2}"#.to_vec());
    }
}
