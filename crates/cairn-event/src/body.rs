//! Splitting an ingest body into raw records: a JSON array of records, a CloudTrail log file
//! (`{"Records":[...]}`), one record, or NDJSON (one record a line).

use serde::Deserialize;
use serde_json::value::RawValue;

/// A body that cannot be split into records at all.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(
        "the body is empty: send a JSON array of CloudTrail records, NDJSON, or a CloudTrail log file"
    )]
    Empty,
    #[error("malformed JSON: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct LogFile<'a> {
    #[serde(rename = "Records", borrow)]
    records: Option<Vec<&'a RawValue>>,
}

/// One entry per record found, in order: the raw bytes of the record, or why that part of
/// the body could not be read (NDJSON lines are read one by one, so one bad line does not
/// spoil the others).
pub fn split_records(body: &[u8]) -> Result<Vec<Result<&[u8], String>>, BodyError> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or(BodyError::Empty)?;
    let trimmed = &body[start..];
    if trimmed.first() == Some(&b'[') {
        let items: Vec<&RawValue> =
            serde_json::from_slice(trimmed).map_err(|e| BodyError::Malformed(e.to_string()))?;
        return Ok(items.into_iter().map(|r| Ok(r.get().as_bytes())).collect());
    }
    if let Ok(one) = serde_json::from_slice::<&RawValue>(trimmed) {
        if let Ok(LogFile {
            records: Some(records),
        }) = serde_json::from_str::<LogFile>(one.get())
        {
            return Ok(records
                .into_iter()
                .map(|r| Ok(r.get().as_bytes()))
                .collect());
        }
        return Ok(vec![Ok(one.get().as_bytes())]);
    }
    let mut out = Vec::new();
    for (n, line) in trimmed.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<&RawValue>(line) {
            Ok(raw) => out.push(Ok(raw.get().as_bytes())),
            Err(e) => out.push(Err(format!("line {}: malformed JSON: {e}", n + 1))),
        }
    }
    if out.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: Vec<Result<&[u8], String>>) -> Vec<String> {
        v.into_iter()
            .map(|r| match r {
                Ok(b) => String::from_utf8_lossy(b).into_owned(),
                Err(e) => format!("ERR {e}"),
            })
            .collect()
    }

    #[test]
    fn shapes() {
        assert_eq!(
            ok(split_records(b" [{\"a\":1}, {\"b\":2}]").unwrap()),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(
            ok(split_records(b"{\"Records\":[{\"a\":1},{\"b\":2}]}").unwrap()),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(
            ok(split_records(b"{\n \"a\": 1\n}\n").unwrap()),
            ["{\n \"a\": 1\n}"]
        );
        assert_eq!(
            ok(split_records(b"{\"a\":1}\n\n{\"b\":\n{\"c\":2}\n").unwrap()),
            [
                "{\"a\":1}",
                "ERR line 3: malformed JSON: EOF while parsing a value at line 1 column 5",
                "{\"c\":2}"
            ]
        );
        assert!(matches!(split_records(b"  \n"), Err(BodyError::Empty)));
        assert!(matches!(
            split_records(b"[{]"),
            Err(BodyError::Malformed(_))
        ));
    }
}
