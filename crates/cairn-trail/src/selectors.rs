//! Event selectors (basic and advanced): parsing, validation and matching.
//! (Placeholder: the real implementation replaces this file.)

use serde::{Deserialize, Serialize};

/// The facts about an event that selectors and trail rules look at.
#[derive(Debug, Clone, Default)]
pub struct EventFacts {
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    pub event_category: String,
    pub read_only: Option<bool>,
}

impl EventFacts {
    pub fn from_record(record: &[u8]) -> Option<EventFacts> {
        let v: serde_json::Value = serde_json::from_slice(record).ok()?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
        Some(EventFacts {
            event_source: s("eventSource"),
            event_name: s("eventName"),
            aws_region: s("awsRegion"),
            event_category: s("eventCategory"),
            read_only: v.get("readOnly").and_then(|x| x.as_bool()),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Selectors {}

impl Selectors {
    pub fn matches(&self, facts: &EventFacts) -> bool {
        facts.event_category.is_empty() || facts.event_category == "Management"
    }
}
