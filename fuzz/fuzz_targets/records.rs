//! Ingest bodies: splitting into records, then validating and normalising each. A record
//! that is accepted must read back to the same attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parts) = cairn_event::split_records(data) else {
        return;
    };
    for raw in parts {
        if let Ok(n) = cairn_event::normalise(raw, "123456789012", 1_700_000_000_000) {
            let view = cairn_event::lookup_view(&n.bytes).expect("a normalised record reads back");
            assert_eq!(view.event_id, n.meta.event_id);
            assert_eq!(view.time_ms, n.meta.time_ms);
            assert_eq!(view.event_name, n.meta.event_name);
        }
    }
});
