//! Outside input of trails: event selectors as PutEventSelectors sends them, records matched
//! against them, gzip trail files and digests as a validator or an import reads them, public
//! key lists. None of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(serde_json::Value::Array(list)) = serde_json::from_slice::<serde_json::Value>(data) {
        let facts = cairn_trail::selectors::EventFacts::from_record(br#"{"eventSource":"s3.amazonaws.com","eventCategory":"Data","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"}]}"#);
        for parsed in [
            cairn_trail::selectors::Selectors::from_basic_wire(&list),
            cairn_trail::selectors::Selectors::from_advanced_wire(&list),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(f) = &facts {
                let _ = parsed.matches(f);
            }
            let _ = parsed.to_wire();
        }
    }
    let _ = cairn_trail::selectors::EventFacts::from_record(data);
    let _ = cairn_trail::validate::gz::hash_gzip(data);
    let _ = serde_json::from_slice::<cairn_trail::digest::DigestFile>(data);
    let _ = cairn_trail::validate::parse_public_keys(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = cairn_trail::validate::names::parse_stamp(s);
    }
});
