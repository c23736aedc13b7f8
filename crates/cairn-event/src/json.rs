//! Byte-level JSON helpers that keep a record verbatim.

/// Removes insignificant white space from a JSON text without touching anything else: string
/// contents, escapes, number spellings and key order are kept byte for byte.
pub fn minify(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in src {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                b'"' => {
                    in_string = true;
                    out.push(b);
                }
                _ => out.push(b),
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
    fn append_to_empty_and_full() {
        let mut a = b"{}".to_vec();
        append_members(&mut a, &[("k", "\"v\"".into())]);
        assert_eq!(a, br#"{"k":"v"}"#.to_vec());
        let mut b = br#"{"x":1}"#.to_vec();
        append_members(&mut b, &[("k", "true".into()), ("j", "2".into())]);
        assert_eq!(b, br#"{"x":1,"k":true,"j":2}"#.to_vec());
    }
}
