//! A trail's configuration as kept by Cairn.

use serde::{Deserialize, Serialize};

use crate::selectors::{EventFacts, Selectors};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trail {
    pub account_id: String,
    pub name: String,
    pub home_region: String,
    pub s3_bucket: String,
    pub s3_key_prefix: Option<String>,
    pub sns_topic_name: Option<String>,
    pub include_global_service_events: bool,
    pub multi_region: bool,
    pub log_file_validation: bool,
    pub cloudwatch_logs_log_group_arn: Option<String>,
    pub cloudwatch_logs_role_arn: Option<String>,
    pub kms_key_id: Option<String>,
    pub selectors: Selectors,
    pub insight_selectors: Vec<serde_json::Value>,
    pub tags: Vec<Tag>,
    pub logging: bool,
    pub start_logging_ms: Option<i64>,
    pub stop_logging_ms: Option<i64>,
    pub created_ms: i64,
}

/// Event sources whose events CloudTrail records as global service events (in us-east-1).
pub const GLOBAL_SOURCES: [&str; 6] = [
    "iam.amazonaws.com",
    "sts.amazonaws.com",
    "cloudfront.amazonaws.com",
    "route53.amazonaws.com",
    "organizations.amazonaws.com",
    "globalaccelerator.amazonaws.com",
];

impl Trail {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:cloudtrail:{}:{}:trail/{}",
            self.home_region, self.account_id, self.name
        )
    }

    /// Whether the trail records this event (of its own account): the region rule, the
    /// global-service rule, then the selectors.
    pub fn wants(&self, facts: &EventFacts) -> bool {
        let global = GLOBAL_SOURCES.contains(&facts.event_source.as_str())
            && (facts.event_source != "sts.amazonaws.com" || facts.aws_region == "us-east-1");
        if global && !self.include_global_service_events {
            return false;
        }
        let in_region = self.multi_region || facts.aws_region == self.home_region || global;
        in_region && self.selectors.matches(facts)
    }
}
