//! What GetTrailStatus reports about delivery, shared between the delivery worker (which
//! writes it) and the API (which reads it).

use std::collections::HashMap;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Delivery facts for one trail (by ARN). Times are epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailStatus {
    pub latest_delivery_ms: Option<i64>,
    pub latest_delivery_error: Option<String>,
    pub latest_delivery_attempt_ms: Option<i64>,
    pub latest_digest_delivery_ms: Option<i64>,
    pub latest_digest_delivery_error: Option<String>,
    /// When the newest notification that ended (sent or given up) was first tried.
    #[serde(default)]
    pub latest_notification_attempt_ms: Option<i64>,
    pub latest_notification_ms: Option<i64>,
    pub latest_notification_error: Option<String>,
    /// The end time of the newest digest delivered (for tail-truncation checks).
    pub latest_digest_end_ms: Option<i64>,
}

#[derive(Debug, Default)]
pub struct StatusBoard {
    by_arn: RwLock<HashMap<String, TrailStatus>>,
}

impl StatusBoard {
    pub fn get(&self, arn: &str) -> TrailStatus {
        self.by_arn.read().get(arn).cloned().unwrap_or_default()
    }

    pub fn update(&self, arn: &str, f: impl FnOnce(&mut TrailStatus)) {
        f(self.by_arn.write().entry(arn.to_owned()).or_default());
    }

    pub fn replace_all(&self, all: HashMap<String, TrailStatus>) {
        *self.by_arn.write() = all;
    }

    pub fn snapshot(&self) -> HashMap<String, TrailStatus> {
        self.by_arn.read().clone()
    }
}
