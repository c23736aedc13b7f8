//! Insights over arbitrary stored records: counting, settling and the wall-clock tick never
//! panic, and every insight event made is a record the store takes as an insight.
#![no_main]

use cairn_insights::engine::{Enabled, Engine, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parts) = cairn_event::split_records(data) else {
        return;
    };
    let opts = Options {
        min_history_minutes: 0,
        min_calls: 1,
        ..Options::default()
    };
    let mut engine = Engine::new();
    let mut out = Vec::new();
    for raw in parts {
        if let Ok(n) = cairn_event::normalise(raw, "123456789012", 1_700_000_000_000) {
            engine.observe("123456789012", &n.bytes, &opts, &Enabled::everywhere, &mut out);
        }
    }
    engine.tick(1_700_000_000_000, &opts, &Enabled::everywhere, &mut out);
    engine.prune();
    for e in out {
        let n = cairn_event::normalise(&e.record, &e.account, 1_700_000_000_000)
            .expect("an insight event is a valid record");
        assert_eq!(n.meta.category, cairn_event::Category::Insight);
    }
});
