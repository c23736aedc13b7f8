//! CloudTrail Lake input: a query statement (store ids rewritten, parsed, checked to be one
//! SELECT) and a stored record turned into a lake row never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (rewritten, ids) = cairn_lake::sql::rewrite_ids(text);
        // Every id named is quoted in the rewritten text.
        for id in &ids {
            assert!(rewritten.contains(&format!("\"{id}\"")));
        }
        let _ = cairn_lake::sql::parse(text);
    }
    let mut c = cairn_lake::convert::Converter::new();
    if c.push(data, 0, &["s"]).is_ok() {
        let batch = c.finish().expect("a pushed record assembles");
        assert_eq!(batch.num_rows(), 1);
    }
});
