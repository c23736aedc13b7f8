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

/// The raw bytes of each record found, in order. NDJSON lines are handed over unparsed (a
/// malformed line is rejected when its record is validated, alone).
pub fn split_records(body: &[u8]) -> Result<Vec<&[u8]>, BodyError> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or(BodyError::Empty)?;
    let trimmed = &body[start..];
    if trimmed.first() == Some(&b'[') {
        let items: Vec<&RawValue> =
            serde_json::from_slice(trimmed).map_err(|e| BodyError::Malformed(e.to_string()))?;
        return Ok(items.into_iter().map(|r| r.get().as_bytes()).collect());
    }
    if let Ok(one) = serde_json::from_slice::<&RawValue>(trimmed) {
        if let Ok(LogFile {
            records: Some(records),
        }) = serde_json::from_str::<LogFile>(one.get())
        {
            return Ok(records.into_iter().map(|r| r.get().as_bytes()).collect());
        }
        return Ok(vec![one.get().as_bytes()]);
    }
    // NDJSON: each line is a record. Lines are not parsed here: validating a record parses
    // it anyway, and one bad line then spoils only itself.
    let out: Vec<&[u8]> = trimmed
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    if out.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: Vec<&[u8]>) -> Vec<String> {
        v.into_iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
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
            ["{\"a\":1}", "{\"b\":", "{\"c\":2}"]
        );
        assert!(matches!(split_records(b"  \n"), Err(BodyError::Empty)));
        assert!(matches!(
            split_records(b"[{]"),
            Err(BodyError::Malformed(_))
        ));
    }
}
