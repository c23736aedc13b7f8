//! What the test binaries share: the shared datasets beside the repository.

use std::path::PathBuf;

use serde_json::Value;

/// `../shared/datasets`.
pub fn datasets() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets"
    ))
}

/// The records (or lines) of a JSON-lines dataset.
pub fn jsonl(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(datasets().join(name)).expect("dataset readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("dataset line is JSON"))
        .collect()
}
