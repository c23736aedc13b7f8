//! A rule as users write it ([`RuleSpec`]) and as it runs ([`Rule`]): an event pattern over
//! the EventBridge envelope or a Sigma rule over the record, and optionally a threshold (N
//! matching events within a window, counted per group).

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Pattern, SigmaRule};

/// Longest rule name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Most group-by paths of a threshold.
pub const MAX_GROUP_BY: usize = 4;
/// Largest threshold count.
pub const MAX_THRESHOLD_COUNT: u32 = 10_000;
/// Longest threshold window (one day).
pub const MAX_WINDOW_SECONDS: u32 = 86_400;

/// Why a rule was refused; `code` is the error code the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub code: &'static str,
    pub message: String,
}

impl RuleError {
    pub fn invalid(message: impl Into<String>) -> RuleError {
        RuleError {
            code: "InvalidParameterException",
            message: message.into(),
        }
    }
}

/// How a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// An EventBridge event pattern (JSON), matched against the envelope.
    Pattern,
    /// A Sigma rule (YAML) for the `aws`/`cloudtrail` log source, matched against the record.
    Sigma,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pattern => "pattern",
            Kind::Sigma => "sigma",
        }
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Cairn's default pack, in every account; can be disabled, not deleted.
    Default,
    /// A Sigma file from the server's rules folder, in every account; can be disabled.
    Folder,
    /// Added to one account through the API or `cairn rules add`.
    Custom,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Folder => "folder",
            Origin::Custom => "custom",
        }
    }
}

/// How urgent a rule's alerts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" | "informational" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// N matching events within a window, per group: the rule alerts when the Nth arrives, and
/// the group then counts again from zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub count: u32,
    pub window_seconds: u32,
    /// Paths into the envelope (`detail.sourceIPAddress`) whose values form the group;
    /// none counts the account as one group.
    pub group_by: Vec<String>,
}

impl Threshold {
    pub fn validate(&self) -> Result<(), RuleError> {
        if !(2..=MAX_THRESHOLD_COUNT).contains(&self.count) {
            return Err(RuleError::invalid(format!(
                "Threshold.Count must be between 2 and {MAX_THRESHOLD_COUNT}"
            )));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&self.window_seconds) {
            return Err(RuleError::invalid(format!(
                "Threshold.WindowSeconds must be between 1 and {MAX_WINDOW_SECONDS}"
            )));
        }
        if self.group_by.len() > MAX_GROUP_BY {
            return Err(RuleError::invalid(format!(
                "Threshold.GroupBy takes at most {MAX_GROUP_BY} paths"
            )));
        }
        for p in &self.group_by {
            let ok = !p.is_empty()
                && p.len() <= 256
                && p.split('.').all(|s| !s.is_empty())
                && !p.chars().any(char::is_whitespace);
            if !ok {
                return Err(RuleError::invalid(format!(
                    "Threshold.GroupBy path {p:?} must be dotted names into the event envelope, such as detail.sourceIPAddress"
                )));
            }
        }
        Ok(())
    }

    /// The group an envelope falls in: the values at the group-by paths, joined.
    pub fn group_of(&self, envelope: &Value) -> String {
        let mut out = String::new();
        for (i, path) in self.group_by.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            let mut v = Some(envelope);
            for part in path.split('.') {
                v = v.and_then(|x| x.get(part));
            }
            match v {
                Some(Value::String(s)) => out.push_str(s),
                None | Some(Value::Null) => out.push('-'),
                Some(other) => out.push_str(&other.to_string()),
            }
        }
        out
    }
}

/// A rule as written: stored, listed and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub kind: Kind,
    /// The event pattern (JSON text) or the Sigma rule (YAML text).
    pub source: String,
    pub threshold: Option<Threshold>,
    pub enabled: bool,
    pub origin: Origin,
    /// For folder rules, the file the rule came from.
    #[serde(default)]
    pub file: Option<String>,
    pub updated_ms: i64,
}

/// Checks a custom rule's name: letters, digits, `.`, `_` and `-`, not starting with the
/// prefixes of the default pack (`cairn-`) or the rules folder (`sigma-`).
pub fn validate_name(name: &str) -> Result<(), RuleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(RuleError::invalid(format!(
            "Name must be 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-'"
        )));
    }
    if name.starts_with("cairn-") || name.starts_with("sigma-") {
        return Err(RuleError::invalid(format!(
            "Name {name:?} is reserved: names starting with cairn- belong to the default pack and sigma- to the rules folder"
        )));
    }
    Ok(())
}

/// What a compiled rule matches with.
#[derive(Debug, Clone)]
pub enum Matcher {
    Pattern(Box<Pattern>),
    Sigma(Box<SigmaRule>),
}

/// What an event must plainly be for a rule to have a chance: its `eventName` and its
/// `userIdentity.type` among sets of values (lower-cased; `None`: any). Worked out from the
/// rule at compile time, so most events are passed over without being parsed; never
/// narrower than the rule.
#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    pub event_names: Option<HashSet<String>>,
    pub identity_types: Option<HashSet<String>>,
}

impl Prefilter {
    fn of(matcher: &Matcher, source: &str) -> Prefilter {
        match matcher {
            Matcher::Sigma(s) => Prefilter {
                event_names: s.required_values("eventName"),
                identity_types: s.required_values("userIdentity.type"),
            },
            Matcher::Pattern(_) => {
                let Ok(v) = serde_json::from_str::<Value>(source) else {
                    return Prefilter::default();
                };
                Prefilter {
                    event_names: pattern_values(&v, &["detail", "eventName"]),
                    identity_types: pattern_values(&v, &["detail", "userIdentity", "type"]),
                }
            }
        }
    }

    /// Whether an event with this `eventName` and `userIdentity.type` may match.
    pub fn admits(&self, event_name: Option<&str>, identity_type: Option<&str>) -> bool {
        let ok = |set: &Option<HashSet<String>>, v: Option<&str>| match set {
            None => true,
            Some(set) => v.is_some_and(|v| set.contains(&v.to_lowercase())),
        };
        ok(&self.event_names, event_name) && ok(&self.identity_types, identity_type)
    }

    /// Whether every event may match.
    pub fn is_open(&self) -> bool {
        self.event_names.is_none() && self.identity_types.is_none()
    }
}

/// The exact values (lower-cased) a pattern requires at `path`, through `$or` branches; `None`
/// when it does not plainly require any.
fn pattern_values(node: &Value, path: &[&str]) -> Option<HashSet<String>> {
    let Some((first, rest)) = path.split_first() else {
        let mut out = HashSet::new();
        for v in node.as_array()? {
            match v {
                Value::String(s) => out.insert(s.to_lowercase()),
                Value::Object(o) if o.len() == 1 => match o.get("equals-ignore-case") {
                    Some(Value::String(s)) => out.insert(s.to_lowercase()),
                    _ => return None,
                },
                _ => return None,
            };
        }
        return Some(out);
    };
    let obj = node.as_object()?;
    if let Some(child) = obj.get(*first) {
        return pattern_values(child, rest);
    }
    // `$or` at this level: every branch must require values here.
    let branches = obj.get("$or")?.as_array()?;
    let mut out = HashSet::new();
    for b in branches {
        out.extend(pattern_values(b, path)?);
    }
    Some(out)
}

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    pub spec: RuleSpec,
    pub matcher: Matcher,
    pub prefilter: Prefilter,
}

impl Rule {
    /// Validates and compiles a rule.
    pub fn compile(spec: RuleSpec) -> Result<Rule, RuleError> {
        if spec.description.len() > MAX_DESCRIPTION_LEN {
            return Err(RuleError::invalid(format!(
                "Description is longer than {MAX_DESCRIPTION_LEN} bytes"
            )));
        }
        if let Some(t) = &spec.threshold {
            t.validate()?;
        }
        let matcher = match spec.kind {
            Kind::Pattern => {
                Matcher::Pattern(Box::new(spec.source.parse::<Pattern>().map_err(|e| {
                    RuleError {
                        code: "InvalidEventPatternException",
                        message: e.to_string(),
                    }
                })?))
            }
            Kind::Sigma => {
                Matcher::Sigma(Box::new(SigmaRule::parse(&spec.source).map_err(|e| {
                    RuleError {
                        code: "InvalidSigmaRuleException",
                        message: e.to_string(),
                    }
                })?))
            }
        };
        let prefilter = Prefilter::of(&matcher, &spec.source);
        Ok(Rule {
            spec,
            matcher,
            prefilter,
        })
    }

    /// Whether the rule matches one event (`record` is the CloudTrail record, `envelope`
    /// its EventBridge envelope).
    pub fn matches(&self, record: &Value, envelope: &Value) -> bool {
        match &self.matcher {
            Matcher::Pattern(p) => p.matches(envelope),
            Matcher::Sigma(s) => s.matches(record),
        }
    }
}

/// The rules that apply to one account, in evaluation order.
pub type RuleSet = Arc<Vec<Arc<Rule>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(kind: Kind, source: &str) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            description: String::new(),
            severity: Severity::High,
            kind,
            source: source.into(),
            threshold: None,
            enabled: true,
            origin: Origin::Custom,
            file: None,
            updated_ms: 0,
        }
    }

    #[test]
    fn compile_reports_the_code_of_each_kind() {
        let e = Rule::compile(spec(Kind::Pattern, "{\"detail\": 5}")).unwrap_err();
        assert_eq!(e.code, "InvalidEventPatternException");
        let e = Rule::compile(spec(Kind::Sigma, "title: x\n")).unwrap_err();
        assert_eq!(e.code, "InvalidSigmaRuleException");
        let mut s = spec(Kind::Pattern, "{\"source\": [\"aws.s3\"]}");
        s.threshold = Some(Threshold {
            count: 1,
            window_seconds: 60,
            group_by: vec![],
        });
        assert_eq!(
            Rule::compile(s).unwrap_err().code,
            "InvalidParameterException"
        );
    }

    #[test]
    fn groups_join_the_values_at_their_paths() {
        let t = Threshold {
            count: 2,
            window_seconds: 60,
            group_by: vec!["detail.sourceIPAddress".into(), "detail.nope".into()],
        };
        assert_eq!(
            t.group_of(&json!({"detail": {"sourceIPAddress": "1.2.3.4"}})),
            "1.2.3.4|-"
        );
    }

    #[test]
    fn names() {
        assert!(validate_name("bucket-public_2.x").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(65), "cairn-x", "sigma-y"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
