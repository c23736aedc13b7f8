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
    /// `RecursiveLogging` as the caller set it (`None`: never set; CloudTrail's default is
    /// true). Kept and reported; nothing acts on it yet.
    #[serde(default)]
    pub recursive_logging: Option<bool>,
    /// Earlier logging periods `[start, stop)` (the newest few), so that events stored in
    /// one and not yet delivered when logging stopped and started again are still delivered.
    #[serde(default)]
    pub past_logging: Vec<(i64, i64)>,
}

/// Logging periods a trail remembers besides the current one.
const PAST_PERIODS: usize = 32;

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
    /// A trail as CreateTrail makes it with only its name and bucket given: global service
    /// events included, single-region, no validation, default selectors, not logging.
    pub fn new(account_id: &str, home_region: &str, name: &str, bucket: &str) -> Trail {
        Trail {
            account_id: account_id.to_owned(),
            name: name.to_owned(),
            home_region: home_region.to_owned(),
            s3_bucket: bucket.to_owned(),
            s3_key_prefix: None,
            sns_topic_name: None,
            include_global_service_events: true,
            multi_region: false,
            log_file_validation: false,
            cloudwatch_logs_log_group_arn: None,
            cloudwatch_logs_role_arn: None,
            kms_key_id: None,
            selectors: Selectors::default(),
            insight_selectors: Vec::new(),
            tags: Vec::new(),
            logging: false,
            start_logging_ms: None,
            stop_logging_ms: None,
            created_ms: 0,
            recursive_logging: None,
            past_logging: Vec::new(),
        }
    }

    /// Remembers a logging period that just ended.
    pub fn record_logging_period(&mut self, start_ms: i64, stop_ms: i64) {
        self.past_logging.push((start_ms, stop_ms));
        if self.past_logging.len() > PAST_PERIODS {
            self.past_logging.remove(0);
        }
    }

    /// Whether the trail was logging when Cairn stored an event at `stored_ms`.
    pub fn logging_at(&self, stored_ms: i64) -> bool {
        let current = self.start_logging_ms.is_some_and(|start| {
            stored_ms >= start
                && (self.logging || self.stop_logging_ms.is_some_and(|stop| stored_ms < stop))
        });
        current
            || self
                .past_logging
                .iter()
                .any(|(start, stop)| (*start..*stop).contains(&stored_ms))
    }

    pub fn arn(&self) -> String {
        trail_arn(&self.home_region, &self.account_id, &self.name)
    }

    /// Whether the trail shows in `region`: its home region, or every region when it is a
    /// multi-region trail (a shadow trail outside the home region).
    pub fn visible_in(&self, region: &str) -> bool {
        self.multi_region || self.home_region == region
    }

    /// The ARN of the SNS topic the trail notifies, if any: the topic as given when it is an
    /// ARN, else `arn:aws:sns:<home region>:<account>:<topic>`.
    pub fn sns_topic_arn(&self) -> Option<String> {
        let topic = self.sns_topic_name.as_deref()?;
        if topic.starts_with("arn:") {
            Some(topic.to_owned())
        } else {
            Some(format!(
                "arn:aws:sns:{}:{}:{topic}",
                self.home_region, self.account_id
            ))
        }
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

/// `arn:aws:cloudtrail:<region>:<account>:trail/<name>`
pub fn trail_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:cloudtrail:{region}:{account}:trail/{name}")
}

/// Whether a name looks like an IPv4 address (four dot-separated groups of 1 to 3 digits).
pub fn ip_shaped(name: &str) -> bool {
    let groups: Vec<&str> = name.split('.').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|c| c.is_ascii_digit()))
}

/// Checks a trail name against CloudTrail's rules; the error says what is wrong.
pub fn check_trail_name(name: &str) -> Result<(), String> {
    let n = name.len();
    if n < 3 {
        return Err(format!(
            "Trail name too short. Minimum allowed length: 3 characters. Specified name length: {n} characters."
        ));
    }
    if n > 128 {
        return Err(format!(
            "Trail name too long. Maximum allowed length: 128 characters. Specified name length: {n} characters."
        ));
    }
    let b = name.as_bytes();
    let punct = |c: u8| matches!(c, b'.' | b'_' | b'-');
    if !b.iter().all(|c| c.is_ascii_alphanumeric() || punct(*c)) {
        return Err(format!(
            "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_); {name:?} does not"
        ));
    }
    if !b[0].is_ascii_alphanumeric() {
        return Err("Trail name must starts with a letter or number.".into());
    }
    if !b[n - 1].is_ascii_alphanumeric() {
        return Err("Trail name must ends with a letter or number.".into());
    }
    if b.windows(2).any(|w| punct(w[0]) && punct(w[1])) {
        return Err(format!(
            "Trail name {name:?} has adjacent periods, underscores or dashes; names like my-_namespace or my--namespace are not valid."
        ));
    }
    if ip_shaped(name) {
        return Err(format!(
            "Trail name {name:?} is in IP address format, which is not allowed."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_names() {
        for ok in [
            "abc",
            "My.Trail_1-x",
            "a-b.c_d",
            "192.168.5",
            "1.2.3.4.5",
            &"a".repeat(128),
        ] {
            assert!(check_trail_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "",
            &"a".repeat(129),
            "-abc",
            "abc_",
            "my--namespace",
            "my-_namespace",
            "a..b",
            "has space",
            "arn:aws:x",
            "192.168.5.4",
            "1.2.3.4",
            "tr\u{e9}il",
        ] {
            assert!(check_trail_name(bad).is_err(), "{bad}");
        }
        assert!(check_trail_name("ab").unwrap_err().contains("too short"));
        assert!(check_trail_name("-ab").unwrap_err().contains("starts with"));
    }
}

#[cfg(test)]
mod logging_tests {
    use super::*;

    #[test]
    fn events_of_an_earlier_logging_period_are_still_wanted() {
        let mut t = Trail::new("111122223333", "us-east-1", "t", "b");
        t.logging = true;
        t.start_logging_ms = Some(100);
        assert!(!t.logging_at(99) && t.logging_at(100));
        // Stop at 200, start again at 300.
        t.logging = false;
        t.stop_logging_ms = Some(200);
        t.record_logging_period(100, 200);
        assert!(t.logging_at(150) && !t.logging_at(250));
        t.logging = true;
        t.start_logging_ms = Some(300);
        assert!(t.logging_at(150), "the first period is remembered");
        assert!(!t.logging_at(250) && t.logging_at(300));
    }
}
