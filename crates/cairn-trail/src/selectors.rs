//! Event selectors, basic and advanced: reading them from the CloudTrail wire form with the
//! validation CloudTrail applies to trails, writing them back, and deciding whether an event
//! matches.
//!
//! Matching rules:
//! - no selectors (the default): every management event, read and write; nothing else;
//! - basic selectors: an event is logged if any selector takes it. A selector takes a
//!   management event when it includes management events, its `ReadWriteType` admits the
//!   event, and the event source is not excluded; it takes a data event when its
//!   `ReadWriteType` admits the event and one of the event's resources has a listed type and an
//!   ARN the listed values cover (`arn:aws:s3` or `arn:aws:s3:::` for every object, an
//!   `arn:aws:s3:::bucket/prefix` for objects under it; `arn:aws:lambda` / `arn:aws:dynamodb`
//!   for every function / table, else the exact function or table ARN);
//! - advanced selectors: an event is logged if any selector takes it; a selector takes it when
//!   every field condition holds. Within one field, the including operators (`Equals`,
//!   `StartsWith`, `EndsWith`) are OR'd — some value of one of them must match — and the
//!   excluding ones (`NotEquals`, `NotStartsWith`, `NotEndsWith`) are AND'd — no value of any
//!   of them may match. `resources.type` and `resources.ARN` must hold for one same resource
//!   of the event;
//! - insight events (`eventCategory` `Insight`) are never matched; they come from Insights.
//!
//! An event without `readOnly` counts as a write; an absent field is the empty string.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// One resource of an event record (`resources[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub resource_type: String,
    pub arn: String,
}

/// The facts about an event that selectors and trail rules look at.
#[derive(Debug, Clone, Default)]
pub struct EventFacts {
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    /// `Management`, `Data`, `NetworkActivity`, `Insight`, ...; `Management` when the record
    /// has none (an empty value is read the same way).
    pub event_category: String,
    pub read_only: Option<bool>,
    pub event_type: String,
    pub resources: Vec<Resource>,
    pub user_identity_arn: String,
    pub session_credential_from_console: bool,
    pub error_code: String,
    pub vpc_endpoint_id: String,
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow, rename = "eventSource")]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventName")]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "awsRegion")]
    aws_region: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventCategory")]
    event_category: Option<Cow<'a, str>>,
    #[serde(rename = "readOnly")]
    read_only: Option<Value>,
    #[serde(borrow, rename = "eventType")]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resources: Option<Vec<RawResource<'a>>>,
    #[serde(borrow, rename = "userIdentity")]
    user_identity: Option<RawIdentity<'a>>,
    #[serde(rename = "sessionCredentialFromConsole")]
    session_credential_from_console: Option<Value>,
    #[serde(borrow, rename = "errorCode")]
    error_code: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "vpcEndpointId")]
    vpc_endpoint_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawResource<'a> {
    #[serde(borrow, rename = "type")]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ARN")]
    arn: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ARNPrefix")]
    arn_prefix: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawIdentity<'a> {
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
}

fn owned(s: Option<Cow<'_, str>>) -> String {
    s.map(Cow::into_owned).unwrap_or_default()
}

/// `true`/`"true"` (any case) is true; anything else, or nothing, is not.
fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

impl EventFacts {
    /// Reads the facts from a record's JSON; `None` if it is not a JSON object. A member of
    /// an unexpected type (or a repeated one) does not lose the record: what can be read is.
    pub fn from_record(record: &[u8]) -> Option<EventFacts> {
        if let Ok(raw) = serde_json::from_slice::<RawRecord<'_>>(record) {
            return Some(EventFacts::from_raw(raw));
        }
        let v: Value = serde_json::from_slice(record).ok()?;
        let o = v.as_object()?;
        let text = |m: &'_ Map<String, Value>, k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .map(|s| Cow::Owned(s.to_owned()))
        };
        let raw = RawRecord {
            event_source: text(o, "eventSource"),
            event_name: text(o, "eventName"),
            aws_region: text(o, "awsRegion"),
            event_category: text(o, "eventCategory"),
            read_only: o.get("readOnly").cloned(),
            event_type: text(o, "eventType"),
            resources: o.get("resources").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_object)
                    .map(|r| RawResource {
                        resource_type: text(r, "type"),
                        arn: text(r, "ARN"),
                        arn_prefix: text(r, "ARNPrefix"),
                    })
                    .collect()
            }),
            user_identity: o
                .get("userIdentity")
                .and_then(Value::as_object)
                .map(|u| RawIdentity {
                    arn: text(u, "arn"),
                }),
            session_credential_from_console: o.get("sessionCredentialFromConsole").cloned(),
            error_code: text(o, "errorCode"),
            vpc_endpoint_id: text(o, "vpcEndpointId"),
        };
        Some(EventFacts::from_raw(raw))
    }

    fn from_raw(raw: RawRecord<'_>) -> EventFacts {
        let category = owned(raw.event_category);
        EventFacts {
            event_source: owned(raw.event_source),
            event_name: owned(raw.event_name),
            aws_region: owned(raw.aws_region),
            event_category: if category.is_empty() {
                "Management".to_owned()
            } else {
                category
            },
            read_only: truthy(raw.read_only.as_ref()),
            event_type: owned(raw.event_type),
            resources: raw
                .resources
                .unwrap_or_default()
                .into_iter()
                .map(|r| Resource {
                    resource_type: owned(r.resource_type),
                    arn: owned(r.arn.or(r.arn_prefix)),
                })
                .collect(),
            user_identity_arn: raw.user_identity.map(|u| owned(u.arn)).unwrap_or_default(),
            session_credential_from_console: truthy(raw.session_credential_from_console.as_ref())
                .unwrap_or(false),
            error_code: owned(raw.error_code),
            vpc_endpoint_id: owned(raw.vpc_endpoint_id),
        }
    }

    /// The category, with "absent" read as `Management`.
    pub fn category(&self) -> &str {
        if self.event_category.is_empty() {
            "Management"
        } else {
            &self.event_category
        }
    }

    fn is_read(&self) -> bool {
        self.read_only == Some(true)
    }
}

// ------------------------------------------------------------------------------------------
// The model
// ------------------------------------------------------------------------------------------

/// A trail's event selectors. Both lists empty is the default (every management event);
/// at most one of them is non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub basic: Vec<EventSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advanced: Vec<AdvancedSelector>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadWriteType {
    ReadOnly,
    WriteOnly,
    #[default]
    All,
}

impl ReadWriteType {
    fn as_str(self) -> &'static str {
        match self {
            ReadWriteType::ReadOnly => "ReadOnly",
            ReadWriteType::WriteOnly => "WriteOnly",
            ReadWriteType::All => "All",
        }
    }

    fn admits(self, facts: &EventFacts) -> bool {
        match self {
            ReadWriteType::All => true,
            ReadWriteType::ReadOnly => facts.is_read(),
            ReadWriteType::WriteOnly => !facts.is_read(),
        }
    }
}

/// A basic event selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSelector {
    pub read_write_type: ReadWriteType,
    pub include_management_events: bool,
    #[serde(default)]
    pub data_resources: Vec<DataResource>,
    #[serde(default)]
    pub exclude_management_event_sources: Vec<String>,
}

impl Default for EventSelector {
    fn default() -> Self {
        EventSelector {
            read_write_type: ReadWriteType::All,
            include_management_events: true,
            data_resources: Vec::new(),
            exclude_management_event_sources: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataResource {
    pub resource_type: String,
    pub values: Vec<String>,
}

/// An advanced event selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvancedSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub field_selectors: Vec<FieldSelector>,
}

/// The record fields advanced selectors can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Field {
    #[serde(rename = "eventCategory")]
    EventCategory,
    #[serde(rename = "eventSource")]
    EventSource,
    #[serde(rename = "eventName")]
    EventName,
    #[serde(rename = "eventType")]
    EventType,
    #[serde(rename = "readOnly")]
    ReadOnly,
    #[serde(rename = "resources.type")]
    ResourcesType,
    #[serde(rename = "resources.ARN")]
    ResourcesArn,
    #[serde(rename = "userIdentity.arn")]
    UserIdentityArn,
    #[serde(rename = "sessionCredentialFromConsole")]
    SessionCredentialFromConsole,
    #[serde(rename = "errorCode")]
    ErrorCode,
    #[serde(rename = "vpcEndpointId")]
    VpcEndpointId,
}

const ALL_FIELDS: [Field; 11] = [
    Field::EventCategory,
    Field::EventSource,
    Field::EventName,
    Field::EventType,
    Field::ReadOnly,
    Field::ResourcesType,
    Field::ResourcesArn,
    Field::UserIdentityArn,
    Field::SessionCredentialFromConsole,
    Field::ErrorCode,
    Field::VpcEndpointId,
];

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::EventCategory => "eventCategory",
            Field::EventSource => "eventSource",
            Field::EventName => "eventName",
            Field::EventType => "eventType",
            Field::ReadOnly => "readOnly",
            Field::ResourcesType => "resources.type",
            Field::ResourcesArn => "resources.ARN",
            Field::UserIdentityArn => "userIdentity.arn",
            Field::SessionCredentialFromConsole => "sessionCredentialFromConsole",
            Field::ErrorCode => "errorCode",
            Field::VpcEndpointId => "vpcEndpointId",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        ALL_FIELDS.into_iter().find(|f| f.as_str() == name)
    }

    /// The event's value of a scalar field (not the `resources.*` fields).
    fn value(self, facts: &EventFacts) -> &str {
        match self {
            Field::EventCategory => facts.category(),
            Field::EventSource => &facts.event_source,
            Field::EventName => &facts.event_name,
            Field::EventType => &facts.event_type,
            Field::ReadOnly => bool_str(facts.is_read()),
            Field::UserIdentityArn => &facts.user_identity_arn,
            Field::SessionCredentialFromConsole => bool_str(facts.session_credential_from_console),
            Field::ErrorCode => &facts.error_code,
            Field::VpcEndpointId => &facts.vpc_endpoint_id,
            Field::ResourcesType | Field::ResourcesArn => "",
        }
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// One condition of an advanced selector: a field and its operators (an empty list is an
/// operator not given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSelector {
    pub field: Field,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ends_with: Vec<String>,
}

/// The operator names on the wire, in the model's order.
pub const OPERATORS: [&str; 6] = [
    "Equals",
    "StartsWith",
    "EndsWith",
    "NotEquals",
    "NotStartsWith",
    "NotEndsWith",
];

impl FieldSelector {
    pub fn new(field: Field) -> FieldSelector {
        FieldSelector {
            field,
            equals: Vec::new(),
            starts_with: Vec::new(),
            ends_with: Vec::new(),
            not_equals: Vec::new(),
            not_starts_with: Vec::new(),
            not_ends_with: Vec::new(),
        }
    }

    fn operators(&self) -> [(&'static str, &Vec<String>); 6] {
        [
            ("Equals", &self.equals),
            ("StartsWith", &self.starts_with),
            ("EndsWith", &self.ends_with),
            ("NotEquals", &self.not_equals),
            ("NotStartsWith", &self.not_starts_with),
            ("NotEndsWith", &self.not_ends_with),
        ]
    }

    fn operator_mut(&mut self, name: &str) -> Option<&mut Vec<String>> {
        match name {
            "Equals" => Some(&mut self.equals),
            "StartsWith" => Some(&mut self.starts_with),
            "EndsWith" => Some(&mut self.ends_with),
            "NotEquals" => Some(&mut self.not_equals),
            "NotStartsWith" => Some(&mut self.not_starts_with),
            "NotEndsWith" => Some(&mut self.not_ends_with),
            _ => None,
        }
    }

    fn value_count(&self) -> usize {
        self.operators().iter().map(|(_, v)| v.len()).sum()
    }

    /// Whether a value satisfies the condition.
    pub fn holds(&self, v: &str) -> bool {
        let including =
            !self.equals.is_empty() || !self.starts_with.is_empty() || !self.ends_with.is_empty();
        let included = !including
            || self.equals.iter().any(|x| x == v)
            || self.starts_with.iter().any(|x| v.starts_with(x.as_str()))
            || self.ends_with.iter().any(|x| v.ends_with(x.as_str()));
        included
            && !self.not_equals.iter().any(|x| x == v)
            && !self
                .not_starts_with
                .iter()
                .any(|x| v.starts_with(x.as_str()))
            && !self.not_ends_with.iter().any(|x| v.ends_with(x.as_str()))
    }
}

// ------------------------------------------------------------------------------------------
// Matching
// ------------------------------------------------------------------------------------------

impl Selectors {
    /// Whether these selectors log the event.
    pub fn matches(&self, facts: &EventFacts) -> bool {
        if facts.category() == "Insight" {
            return false;
        }
        if !self.advanced.is_empty() {
            return self.advanced.iter().any(|s| s.matches(facts));
        }
        if !self.basic.is_empty() {
            return self.basic.iter().any(|s| s.matches(facts));
        }
        facts.category() == "Management"
    }

    /// Whether selectors were set (by PutEventSelectors) rather than left at the default.
    pub fn is_custom(&self) -> bool {
        !self.basic.is_empty() || !self.advanced.is_empty()
    }

    /// Which management events are logged: (reads, writes).
    pub fn management_coverage(&self) -> (bool, bool) {
        if !self.advanced.is_empty() {
            let mut cover = (false, false);
            for s in &self.advanced {
                if s.category() != Some("Management") {
                    continue;
                }
                let ro = s.field(Field::ReadOnly);
                cover.0 |= ro.is_none_or(|c| c.holds("true"));
                cover.1 |= ro.is_none_or(|c| c.holds("false"));
            }
            return cover;
        }
        if !self.basic.is_empty() {
            let mut cover = (false, false);
            for s in self.basic.iter().filter(|s| s.include_management_events) {
                cover.0 |= s.read_write_type != ReadWriteType::WriteOnly;
                cover.1 |= s.read_write_type != ReadWriteType::ReadOnly;
            }
            return cover;
        }
        (true, true)
    }

    /// Whether any data events are logged.
    pub fn logs_data_events(&self) -> bool {
        self.advanced.iter().any(|s| s.category() == Some("Data"))
            || self.basic.iter().any(|s| !s.data_resources.is_empty())
    }
}

impl EventSelector {
    pub fn matches(&self, facts: &EventFacts) -> bool {
        if !self.read_write_type.admits(facts) {
            return false;
        }
        match facts.category() {
            "Management" => {
                self.include_management_events
                    && !self
                        .exclude_management_event_sources
                        .contains(&facts.event_source)
            }
            "Data" => self.data_resources.iter().any(|d| d.matches(facts)),
            _ => false,
        }
    }
}

/// The data resource types basic selectors accept, with the value that means "all of them"
/// and whether specific values are ARN prefixes (S3) or exact ARNs.
const BASIC_TYPES: [(&str, &str, bool); 3] = [
    ("AWS::S3::Object", "s3", true),
    ("AWS::Lambda::Function", "lambda", false),
    ("AWS::DynamoDB::Table", "dynamodb", false),
];

const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// Whether a basic data resource value stands for every resource of its type.
fn is_all_value(service: &str, v: &str) -> bool {
    PARTITIONS.iter().any(|p| {
        v.strip_prefix("arn:")
            .and_then(|r| r.strip_prefix(p))
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|r| r.strip_prefix(service))
            .is_some_and(|rest| rest.is_empty() || (service == "s3" && rest == ":::"))
    })
}

impl DataResource {
    fn matches(&self, facts: &EventFacts) -> bool {
        let Some(&(_, service, prefix)) = BASIC_TYPES.iter().find(|t| t.0 == self.resource_type)
        else {
            return false;
        };
        facts
            .resources
            .iter()
            .filter(|r| r.resource_type == self.resource_type)
            .any(|r| {
                self.values.iter().any(|v| {
                    is_all_value(service, v)
                        || if prefix {
                            r.arn.starts_with(v.as_str())
                        } else {
                            r.arn == *v
                                || (service == "lambda"
                                    && r.arn.strip_prefix(v.as_str()).is_some_and(|q| {
                                        q.starts_with(':') && !q[1..].contains(':')
                                    }))
                        }
                })
            })
    }
}

impl AdvancedSelector {
    fn field(&self, f: Field) -> Option<&FieldSelector> {
        self.field_selectors.iter().find(|s| s.field == f)
    }

    /// The one category the selector is for (validated selectors have exactly one).
    pub fn category(&self) -> Option<&str> {
        self.field(Field::EventCategory)
            .and_then(|c| c.equals.first())
            .map(String::as_str)
    }

    pub fn matches(&self, facts: &EventFacts) -> bool {
        let mut resource_conditions = false;
        for fs in &self.field_selectors {
            match fs.field {
                Field::ResourcesType | Field::ResourcesArn => resource_conditions = true,
                f => {
                    if !fs.holds(f.value(facts)) {
                        return false;
                    }
                }
            }
        }
        if !resource_conditions {
            return true;
        }
        let ty = self.field(Field::ResourcesType);
        let arn = self.field(Field::ResourcesArn);
        facts.resources.iter().any(|r| {
            ty.is_none_or(|c| c.holds(&r.resource_type)) && arn.is_none_or(|c| c.holds(&r.arn))
        })
    }
}

// ------------------------------------------------------------------------------------------
// The wire form and its validation
// ------------------------------------------------------------------------------------------

/// Selectors CloudTrail would refuse (InvalidEventSelectorsException); the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

fn invalid(msg: impl Into<String>) -> SelectorError {
    SelectorError(msg.into())
}

pub const MAX_BASIC_SELECTORS: usize = 5;
pub const MAX_DATA_RESOURCES: usize = 250;
pub const MAX_ADVANCED_VALUES: usize = 500;
const MAX_VALUE_LEN: usize = 2048;
const MAX_NAME_LEN: usize = 1000;
const MANAGEMENT_EXCLUDABLE: [&str; 2] = ["kms.amazonaws.com", "rdsdata.amazonaws.com"];

fn as_object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, SelectorError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("each of {what} must be a JSON object")))
}

fn string_list(v: Option<&Value>, what: &str) -> Result<Option<Vec<String>>, SelectorError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("{what} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(format!("{what} must be a list of strings"))),
    }
}

fn check_arn_value(ty: &str, service: &str, v: &str) -> Result<(), SelectorError> {
    let bad = |why: &str| {
        invalid(format!(
            "Value {v} for DataResources.Values is invalid: {why}"
        ))
    };
    if v.contains('*') {
        return Err(bad(
            "wildcards are not supported; use the ARN prefix instead, for example arn:aws:s3 for every S3 object",
        ));
    }
    if is_all_value(service, v) {
        return Ok(());
    }
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    let form_ok = parts.len() == 6
        && parts[0] == "arn"
        && PARTITIONS.contains(&parts[1])
        && parts[2] == service;
    match service {
        "s3" => {
            // arn:aws:s3:::bucket/prefix
            let ok = form_ok
                && parts[3].is_empty()
                && parts[4].is_empty()
                && parts[5]
                    .split_once('/')
                    .is_some_and(|(bucket, _)| !bucket.is_empty());
            if ok {
                Ok(())
            } else {
                Err(bad(&format!(
                    "for {ty} give arn:aws:s3 (every object), arn:aws:s3:::BUCKET/ (every object of a bucket) or arn:aws:s3:::BUCKET/PREFIX"
                )))
            }
        }
        "lambda" => {
            let ok = form_ok
                && !parts[3].is_empty()
                && is_account(parts[4])
                && parts[5]
                    .strip_prefix("function:")
                    .is_some_and(|f| !f.is_empty());
            if ok {
                Ok(())
            } else {
                Err(bad(&format!(
                    "for {ty} give arn:aws:lambda (every function) or a function ARN arn:aws:lambda:REGION:ACCOUNT:function:NAME"
                )))
            }
        }
        _ => {
            let ok = form_ok
                && !parts[3].is_empty()
                && is_account(parts[4])
                && parts[5]
                    .strip_prefix("table/")
                    .is_some_and(|t| !t.is_empty());
            if ok {
                Ok(())
            } else {
                Err(bad(&format!(
                    "for {ty} give arn:aws:dynamodb (every table) or a table ARN arn:aws:dynamodb:REGION:ACCOUNT:table/NAME"
                )))
            }
        }
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Selectors {
    /// Reads and validates the `EventSelectors` member of PutEventSelectors.
    pub fn from_basic_wire(list: &[Value]) -> Result<Selectors, SelectorError> {
        if list.is_empty() {
            return Err(invalid(format!(
                "EventSelectors is empty: give 1 to {MAX_BASIC_SELECTORS} event selectors"
            )));
        }
        if list.len() > MAX_BASIC_SELECTORS {
            return Err(invalid(format!(
                "a trail can have at most {MAX_BASIC_SELECTORS} event selectors; {} were given",
                list.len()
            )));
        }
        let mut basic = Vec::with_capacity(list.len());
        let mut resources = 0usize;
        for v in list {
            let o = as_object(v, "EventSelectors")?;
            let read_write_type = match o.get("ReadWriteType") {
                None | Some(Value::Null) => ReadWriteType::All,
                Some(Value::String(s)) => match s.as_str() {
                    "ReadOnly" => ReadWriteType::ReadOnly,
                    "WriteOnly" => ReadWriteType::WriteOnly,
                    "All" => ReadWriteType::All,
                    other => {
                        return Err(invalid(format!(
                            "Value {other} for ReadWriteType is invalid: use ReadOnly, WriteOnly or All"
                        )));
                    }
                },
                Some(_) => {
                    return Err(invalid(
                        "ReadWriteType must be a string: ReadOnly, WriteOnly or All",
                    ));
                }
            };
            let include_management_events = match o.get("IncludeManagementEvents") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(invalid("IncludeManagementEvents must be true or false")),
            };
            let exclude = string_list(
                o.get("ExcludeManagementEventSources"),
                "ExcludeManagementEventSources",
            )?
            .unwrap_or_default();
            for s in &exclude {
                if !MANAGEMENT_EXCLUDABLE.contains(&s.as_str()) {
                    return Err(invalid(format!(
                        "Value {s} for ExcludeManagementEventSources is invalid: only kms.amazonaws.com and rdsdata.amazonaws.com can be excluded"
                    )));
                }
            }
            let mut data_resources = Vec::new();
            let drs = match o.get("DataResources") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => return Err(invalid("DataResources must be a list")),
            };
            for d in &drs {
                let d = as_object(d, "DataResources")?;
                let ty = match d.get("Type") {
                    Some(Value::String(t)) => t.clone(),
                    _ => {
                        return Err(invalid(
                            "each data resource needs a Type: AWS::S3::Object, AWS::Lambda::Function or AWS::DynamoDB::Table",
                        ));
                    }
                };
                let Some(&(_, service, _)) = BASIC_TYPES.iter().find(|t| t.0 == ty) else {
                    return Err(invalid(format!(
                        "Value {ty} for DataResources.Type is invalid: basic event selectors take AWS::S3::Object, AWS::Lambda::Function or AWS::DynamoDB::Table; use advanced event selectors for other resource types"
                    )));
                };
                let values =
                    string_list(d.get("Values"), "DataResources.Values")?.unwrap_or_default();
                if values.is_empty() {
                    return Err(invalid(format!(
                        "the {ty} data resource has no Values: give ARNs or ARN prefixes such as arn:aws:{service}"
                    )));
                }
                for v in &values {
                    check_arn_value(&ty, service, v)?;
                    if !is_all_value(service, v) {
                        resources += 1;
                    }
                }
                data_resources.push(DataResource {
                    resource_type: ty,
                    values,
                });
            }
            basic.push(EventSelector {
                read_write_type,
                include_management_events,
                data_resources,
                exclude_management_event_sources: exclude,
            });
        }
        if resources > MAX_DATA_RESOURCES {
            return Err(invalid(format!(
                "a trail can have at most {MAX_DATA_RESOURCES} data resources across its event selectors; {resources} were given"
            )));
        }
        Ok(Selectors {
            basic,
            advanced: Vec::new(),
        })
    }

    /// Reads and validates the `AdvancedEventSelectors` member of PutEventSelectors.
    pub fn from_advanced_wire(list: &[Value]) -> Result<Selectors, SelectorError> {
        if list.is_empty() {
            return Err(invalid(
                "AdvancedEventSelectors is empty: give at least one advanced event selector",
            ));
        }
        let mut advanced = Vec::with_capacity(list.len());
        let mut total = 0usize;
        for (i, v) in list.iter().enumerate() {
            let s = parse_advanced(v, i + 1)?;
            total += s
                .field_selectors
                .iter()
                .map(FieldSelector::value_count)
                .sum::<usize>();
            advanced.push(s);
        }
        if total > MAX_ADVANCED_VALUES {
            return Err(invalid(format!(
                "a trail's advanced event selectors can have at most {MAX_ADVANCED_VALUES} values across all conditions; {total} were given"
            )));
        }
        Ok(Selectors {
            basic: Vec::new(),
            advanced,
        })
    }

    /// The selectors in the wire form: (`EventSelectors`, `AdvancedEventSelectors`), one of
    /// them present. The default is the basic selector for every management event.
    pub fn to_wire(&self) -> (Option<Value>, Option<Value>) {
        if !self.advanced.is_empty() {
            let list: Vec<Value> = self.advanced.iter().map(advanced_to_wire).collect();
            return (None, Some(Value::Array(list)));
        }
        if self.basic.is_empty() {
            return (
                Some(json!([{
                    "ReadWriteType": "All",
                    "IncludeManagementEvents": true,
                    "DataResources": [],
                }])),
                None,
            );
        }
        let list: Vec<Value> = self
            .basic
            .iter()
            .map(|s| {
                json!({
                    "ReadWriteType": s.read_write_type.as_str(),
                    "IncludeManagementEvents": s.include_management_events,
                    "DataResources": s.data_resources.iter().map(|d| json!({
                        "Type": d.resource_type,
                        "Values": d.values,
                    })).collect::<Vec<_>>(),
                    "ExcludeManagementEventSources": s.exclude_management_event_sources,
                })
            })
            .collect();
        (Some(Value::Array(list)), None)
    }
}

fn advanced_to_wire(s: &AdvancedSelector) -> Value {
    let mut o = Map::new();
    if let Some(n) = &s.name {
        o.insert("Name".into(), Value::String(n.clone()));
    }
    let fields: Vec<Value> = s
        .field_selectors
        .iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("Field".into(), Value::String(f.field.as_str().into()));
            for (name, values) in f.operators() {
                if !values.is_empty() {
                    m.insert(name.into(), json!(values));
                }
            }
            Value::Object(m)
        })
        .collect();
    o.insert("FieldSelectors".into(), Value::Array(fields));
    Value::Object(o)
}

/// The fields a trail's advanced selector may use for each event category.
fn fields_for(category: &str) -> &'static [Field] {
    match category {
        "Management" => &[Field::EventCategory, Field::EventSource, Field::ReadOnly],
        "Data" => &[
            Field::EventCategory,
            Field::ResourcesType,
            Field::ReadOnly,
            Field::EventName,
            Field::ResourcesArn,
            Field::EventSource,
            Field::EventType,
            Field::SessionCredentialFromConsole,
            Field::UserIdentityArn,
        ],
        _ => &[
            Field::EventCategory,
            Field::EventSource,
            Field::EventName,
            Field::ErrorCode,
            Field::VpcEndpointId,
            Field::UserIdentityArn,
        ],
    }
}

fn field_list(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_advanced(v: &Value, n: usize) -> Result<AdvancedSelector, SelectorError> {
    let o = as_object(v, "AdvancedEventSelectors")?;
    let label = |name: &Option<String>| match name {
        Some(x) if !x.is_empty() => format!("advanced event selector {n} ({x:?})"),
        _ => format!("advanced event selector {n}"),
    };
    let name = match o.get("Name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if s.chars().count() > MAX_NAME_LEN {
                return Err(invalid(format!(
                    "the Name of advanced event selector {n} is longer than {MAX_NAME_LEN} characters"
                )));
            }
            Some(s.clone())
        }
        Some(_) => return Err(invalid("Name must be a string")),
    };
    let what = label(&name);
    let fs = match o.get("FieldSelectors") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            return Err(invalid(format!(
                "{what} needs FieldSelectors: at least one condition, including eventCategory"
            )));
        }
    };
    let mut field_selectors: Vec<FieldSelector> = Vec::with_capacity(fs.len());
    for f in fs {
        let f = as_object(f, "FieldSelectors")?;
        let field_name = match f.get("Field") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                return Err(invalid(format!(
                    "each field selector of {what} needs a Field"
                )));
            }
        };
        let field = Field::parse(field_name).ok_or_else(|| {
            invalid(format!(
                "Field {field_name:?} of {what} is not supported; trails can select on {}",
                field_list(&ALL_FIELDS)
            ))
        })?;
        if field_selectors.iter().any(|x| x.field == field) {
            return Err(invalid(format!(
                "{what} has more than one condition on {field_name}; put every operator for a field in one field selector"
            )));
        }
        let mut sel = FieldSelector::new(field);
        for op in OPERATORS {
            let Some(values) = string_list(f.get(op), &format!("{op} of {field_name}"))? else {
                continue;
            };
            if values.is_empty() {
                return Err(invalid(format!(
                    "{op} of {field_name} in {what} is empty: give at least one value or leave the operator out"
                )));
            }
            for x in &values {
                if x.is_empty() || x.chars().count() > MAX_VALUE_LEN {
                    return Err(invalid(format!(
                        "values of {op} of {field_name} in {what} must be 1 to {MAX_VALUE_LEN} characters"
                    )));
                }
            }
            if let Some(slot) = sel.operator_mut(op) {
                *slot = values;
            }
        }
        if sel.value_count() == 0 {
            return Err(invalid(format!(
                "the {field_name} condition of {what} has no operator: use Equals, StartsWith, EndsWith, NotEquals, NotStartsWith or NotEndsWith"
            )));
        }
        if matches!(
            field,
            Field::ReadOnly | Field::EventCategory | Field::ResourcesType
        ) && sel.value_count() != sel.equals.len()
        {
            return Err(invalid(format!(
                "{field_name} in {what} takes only the Equals operator"
            )));
        }
        field_selectors.push(sel);
    }
    let sel = AdvancedSelector {
        name,
        field_selectors,
    };
    check_advanced(&sel, &what)?;
    Ok(sel)
}

/// The per-category rules of advanced selectors on trails.
fn check_advanced(sel: &AdvancedSelector, what: &str) -> Result<(), SelectorError> {
    let Some(cat) = sel.field(Field::EventCategory) else {
        return Err(invalid(format!(
            "{what} has no eventCategory condition; add eventCategory Equals Management, Data or NetworkActivity"
        )));
    };
    let category = match cat.equals.as_slice() {
        [one] => one.as_str(),
        _ => {
            return Err(invalid(format!(
                "eventCategory in {what} must have exactly one value: Management, Data or NetworkActivity"
            )));
        }
    };
    if !matches!(category, "Management" | "Data" | "NetworkActivity") {
        return Err(invalid(format!(
            "Value {category} for eventCategory in {what} is invalid: trails select Management, Data or NetworkActivity events (Insights events are set with PutInsightSelectors)"
        )));
    }
    let allowed = fields_for(category);
    for f in &sel.field_selectors {
        if !allowed.contains(&f.field) {
            return Err(invalid(format!(
                "{} cannot be used in {what}: for {category} events a trail selects on {}",
                f.field.as_str(),
                field_list(allowed)
            )));
        }
        match f.field {
            Field::ReadOnly => {
                if let Some(x) = f.equals.iter().find(|x| *x != "true" && *x != "false") {
                    return Err(invalid(format!(
                        "Value {x} for readOnly in {what} is invalid: use true or false"
                    )));
                }
            }
            Field::EventSource if category == "Management" => {
                let ok = f.value_count() == f.not_equals.len()
                    && f.not_equals
                        .iter()
                        .all(|x| MANAGEMENT_EXCLUDABLE.contains(&x.as_str()));
                if !ok {
                    return Err(invalid(format!(
                        "eventSource in {what}: for management events a trail takes only NotEquals kms.amazonaws.com or rdsdata.amazonaws.com"
                    )));
                }
            }
            Field::ErrorCode => {
                let only_vpce = f
                    .operators()
                    .iter()
                    .all(|(_, v)| v.iter().all(|x| x == "VpceAccessDenied"));
                if !only_vpce {
                    return Err(invalid(format!(
                        "errorCode in {what} takes only the value VpceAccessDenied"
                    )));
                }
            }
            Field::ResourcesType => {
                let [t] = f.equals.as_slice() else {
                    return Err(invalid(format!(
                        "resources.type in {what} must have exactly one value; use one selector per resource type"
                    )));
                };
                let parts: Vec<&str> = t.split("::").collect();
                if parts.len() != 3 || parts[0] != "AWS" || parts.iter().any(|p| p.is_empty()) {
                    return Err(invalid(format!(
                        "Value {t} for resources.type in {what} is invalid: resource types look like AWS::S3::Object"
                    )));
                }
            }
            _ => {}
        }
    }
    if category == "Data" && sel.field(Field::ResourcesType).is_none() {
        return Err(invalid(format!(
            "{what} selects data events but has no resources.type condition; add resources.type Equals, for example AWS::S3::Object"
        )));
    }
    if category == "NetworkActivity" && sel.field(Field::EventSource).is_none() {
        return Err(invalid(format!(
            "{what} selects network activity events but has no eventSource condition; add eventSource Equals, for example ec2.amazonaws.com"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mgmt(source: &str, read: bool) -> EventFacts {
        EventFacts {
            event_source: source.into(),
            event_name: "X".into(),
            aws_region: "us-east-1".into(),
            event_category: "Management".into(),
            read_only: Some(read),
            ..EventFacts::default()
        }
    }

    fn data(ty: &str, arn: &str, name: &str, read: bool) -> EventFacts {
        EventFacts {
            event_source: "s3.amazonaws.com".into(),
            event_name: name.into(),
            aws_region: "us-east-1".into(),
            event_category: "Data".into(),
            read_only: Some(read),
            resources: vec![Resource {
                resource_type: ty.into(),
                arn: arn.into(),
            }],
            ..EventFacts::default()
        }
    }

    fn basic(v: Value) -> Result<Selectors, SelectorError> {
        Selectors::from_basic_wire(v.as_array().expect("test input is a list"))
    }

    fn advanced(v: Value) -> Result<Selectors, SelectorError> {
        Selectors::from_advanced_wire(v.as_array().expect("test input is a list"))
    }

    #[test]
    fn facts_from_a_record() {
        let rec = br#"{"eventVersion":"1.08","eventSource":"s3.amazonaws.com","eventName":"GetObject",
            "awsRegion":"eu-west-1","eventCategory":"Data","readOnly":true,"eventType":"AwsApiCall",
            "userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/Al\u0069ce"},
            "resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"},{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::b"}],
            "sessionCredentialFromConsole":"true","errorCode":"AccessDenied","vpcEndpointId":"vpce-1"}"#;
        let f = EventFacts::from_record(rec).expect("a record");
        assert_eq!(f.event_source, "s3.amazonaws.com");
        assert_eq!(f.event_name, "GetObject");
        assert_eq!(f.aws_region, "eu-west-1");
        assert_eq!(f.event_category, "Data");
        assert_eq!(f.read_only, Some(true));
        assert_eq!(f.event_type, "AwsApiCall");
        assert_eq!(f.user_identity_arn, "arn:aws:iam::111122223333:user/Alice");
        assert_eq!(f.resources.len(), 2);
        assert_eq!(f.resources[0].arn, "arn:aws:s3:::b/k");
        assert!(f.session_credential_from_console);
        assert_eq!(f.error_code, "AccessDenied");
        assert_eq!(f.vpc_endpoint_id, "vpce-1");

        let f = EventFacts::from_record(br#"{"eventName":"X"}"#).expect("a record");
        assert_eq!(f.event_category, "Management");
        assert_eq!(f.read_only, None);
        assert!(!f.session_credential_from_console);
        let odd = br#"{"eventName":"A","eventName":"B","eventSource":7,"readOnly":"true",
            "resources":[{"type":"AWS::S3::Object","ARN":null},"x"],"userIdentity":"who"}"#;
        let f = EventFacts::from_record(odd).expect("read leniently");
        assert_eq!(f.event_name, "B");
        assert_eq!(f.event_source, "");
        assert_eq!(f.read_only, Some(true));
        assert_eq!(f.resources.len(), 1);
        assert_eq!(f.user_identity_arn, "");
        assert!(EventFacts::from_record(b"[1]").is_none());
        assert!(EventFacts::from_record(b"not json").is_none());
    }

    #[test]
    fn default_logs_management_only() {
        let s = Selectors::default();
        assert!(s.matches(&mgmt("ec2.amazonaws.com", true)));
        assert!(s.matches(&mgmt("ec2.amazonaws.com", false)));
        assert!(s.matches(&EventFacts::default()));
        assert!(!s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::b/k",
            "GetObject",
            true
        )));
        let mut insight = mgmt("ec2.amazonaws.com", false);
        insight.event_category = "Insight".into();
        assert!(!s.matches(&insight));
        let mut net = mgmt("ec2.amazonaws.com", false);
        net.event_category = "NetworkActivity".into();
        assert!(!s.matches(&net));
        assert!(!s.is_custom());
        assert_eq!(s.management_coverage(), (true, true));
        let (b, a) = s.to_wire();
        assert_eq!(
            b,
            Some(
                json!([{"ReadWriteType":"All","IncludeManagementEvents":true,"DataResources":[]}])
            )
        );
        assert!(a.is_none());
    }

    #[test]
    fn basic_read_write_and_exclusions() {
        let s = basic(json!([{"ReadWriteType":"WriteOnly","ExcludeManagementEventSources":["kms.amazonaws.com"]}]))
            .expect("valid");
        assert!(s.matches(&mgmt("ec2.amazonaws.com", false)));
        assert!(!s.matches(&mgmt("ec2.amazonaws.com", true)));
        assert!(!s.matches(&mgmt("kms.amazonaws.com", false)));
        let mut unknown = mgmt("ec2.amazonaws.com", false);
        unknown.read_only = None;
        assert!(s.matches(&unknown), "no readOnly counts as a write");
        assert_eq!(s.management_coverage(), (false, true));

        let s = basic(json!([{"ReadWriteType":"ReadOnly"}])).expect("valid");
        assert!(s.matches(&mgmt("ec2.amazonaws.com", true)));
        assert!(!s.matches(&mgmt("ec2.amazonaws.com", false)));

        let s = basic(json!([{"IncludeManagementEvents":false}])).expect("valid");
        assert!(!s.matches(&mgmt("ec2.amazonaws.com", true)));
        assert_eq!(s.management_coverage(), (false, false));
    }

    #[test]
    fn basic_data_resources() {
        let s = basic(json!([{"IncludeManagementEvents":false,"DataResources":[
            {"Type":"AWS::S3::Object","Values":["arn:aws:s3:::logs/app/"]},
            {"Type":"AWS::Lambda::Function","Values":["arn:aws:lambda:us-east-1:111122223333:function:hello"]}
        ]}]))
        .expect("valid");
        assert!(s.logs_data_events());
        assert!(s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::logs/app/x.txt",
            "PutObject",
            false
        )));
        assert!(!s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::logs/other",
            "PutObject",
            false
        )));
        assert!(!s.matches(&data(
            "AWS::S3::Bucket",
            "arn:aws:s3:::logs/app/x",
            "PutObject",
            false
        )));
        let f = "arn:aws:lambda:us-east-1:111122223333:function:hello";
        assert!(s.matches(&data("AWS::Lambda::Function", f, "Invoke", false)));
        assert!(s.matches(&data(
            "AWS::Lambda::Function",
            &format!("{f}:3"),
            "Invoke",
            false
        )));
        assert!(!s.matches(&data(
            "AWS::Lambda::Function",
            &format!("{f}2"),
            "Invoke",
            false
        )));
        assert!(!s.matches(&mgmt("ec2.amazonaws.com", false)));

        let all = basic(json!([{"DataResources":[
            {"Type":"AWS::S3::Object","Values":["arn:aws:s3"]},
            {"Type":"AWS::DynamoDB::Table","Values":["arn:aws:dynamodb"]}]}]))
        .expect("valid");
        assert!(all.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::any/thing",
            "GetObject",
            true
        )));
        assert!(all.matches(&data(
            "AWS::DynamoDB::Table",
            "arn:aws:dynamodb:us-east-1:111122223333:table/t",
            "GetItem",
            true
        )));
        assert!(all.matches(&mgmt("ec2.amazonaws.com", true)));
    }

    #[test]
    fn basic_validation() {
        let cases = [
            json!([]),
            json!([{}, {}, {}, {}, {}, {}]),
            json!([{"ReadWriteType":"read-only"}]),
            json!([{"IncludeManagementEvents":"yes"}]),
            json!([{"ExcludeManagementEventSources":["ec2.amazonaws.com"]}]),
            json!([{"DataResources":[{"Type":"AWS::EC2::Instance","Values":["arn:aws:ec2"]}]}]),
            json!([{"DataResources":[{"Values":["arn:aws:s3"]}]}]),
            json!([{"DataResources":[{"Type":"AWS::S3::Object","Values":[]}]}]),
            json!([{"DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::*"]}]}]),
            json!([{"DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::bucket"]}]}]),
            json!([{"DataResources":[{"Type":"AWS::Lambda::Function","Values":["arn:aws:lambda:*"]}]}]),
            json!([{"DataResources":[{"Type":"AWS::Lambda::Function","Values":["arn:aws:s3"]}]}]),
            json!([{"DataResources":[{"Type":"AWS::DynamoDB::Table","Values":["arn:aws:dynamodb:us-east-1:1:table/x"]}]}]),
            json!(["not an object"]),
        ];
        for c in cases {
            assert!(basic(c.clone()).is_err(), "{c} should be refused");
        }
        let many: Vec<String> = (0..251).map(|i| format!("arn:aws:s3:::b{i}/")).collect();
        let e = basic(json!([{"DataResources":[{"Type":"AWS::S3::Object","Values":many}]}]))
            .expect_err("too many");
        assert!(e.0.contains("250"), "{e}");
        let ok: Vec<String> = (0..250).map(|i| format!("arn:aws:s3:::b{i}/")).collect();
        assert!(basic(json!([{"DataResources":[{"Type":"AWS::S3::Object","Values":ok}]}])).is_ok());
        let e = basic(json!([{"ReadWriteType":"read-only"}])).expect_err("bad enum");
        assert!(e.0.contains("read-only"), "{e}");
    }

    #[test]
    fn basic_round_trip() {
        let wire = json!([{"ReadWriteType":"ReadOnly","IncludeManagementEvents":false,
            "DataResources":[{"Type":"AWS::S3::Object","Values":["arn:aws:s3:::b/"]}],
            "ExcludeManagementEventSources":["rdsdata.amazonaws.com"]}]);
        let s = basic(wire.clone()).expect("valid");
        assert!(s.is_custom());
        assert_eq!(s.to_wire(), (Some(wire), None));
        let stored = serde_json::to_string(&s).expect("serializes");
        let back: Selectors = serde_json::from_str(&stored).expect("deserializes");
        assert_eq!(back, s);
    }

    #[test]
    fn advanced_management_and_data() {
        let s = advanced(json!([
            {"Name":"writes","FieldSelectors":[
                {"Field":"eventCategory","Equals":["Management"]},
                {"Field":"readOnly","Equals":["false"]},
                {"Field":"eventSource","NotEquals":["kms.amazonaws.com"]}]},
            {"FieldSelectors":[
                {"Field":"eventCategory","Equals":["Data"]},
                {"Field":"resources.type","Equals":["AWS::S3::Object"]},
                {"Field":"resources.ARN","StartsWith":["arn:aws:s3:::logs/"],"NotEndsWith":[".tmp"]},
                {"Field":"eventName","Equals":["PutObject"],"StartsWith":["Delete"]}]}
        ]))
        .expect("valid");
        assert!(s.matches(&mgmt("ec2.amazonaws.com", false)));
        assert!(!s.matches(&mgmt("ec2.amazonaws.com", true)));
        assert!(!s.matches(&mgmt("kms.amazonaws.com", false)));
        assert!(s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::logs/a",
            "PutObject",
            false
        )));
        assert!(s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::logs/a",
            "DeleteObjects",
            false
        )));
        assert!(!s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::logs/a",
            "GetObject",
            true
        )));
        assert!(!s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::logs/a.tmp",
            "PutObject",
            false
        )));
        assert!(!s.matches(&data(
            "AWS::S3::Object",
            "arn:aws:s3:::other/a",
            "PutObject",
            false
        )));
        assert!(!s.matches(&data(
            "AWS::Lambda::Function",
            "arn:aws:s3:::logs/a",
            "PutObject",
            false
        )));
        assert_eq!(s.management_coverage(), (false, true));
        assert!(s.logs_data_events());
        let (b, a) = s.to_wire();
        assert!(b.is_none());
        let a = a.expect("advanced");
        assert_eq!(a[0]["Name"], "writes");
        assert_eq!(a[1]["FieldSelectors"][2]["NotEndsWith"], json!([".tmp"]));
        assert!(a[1].get("Name").is_none());
        let again = Selectors::from_advanced_wire(a.as_array().expect("list")).expect("valid");
        assert_eq!(again, s);
    }

    #[test]
    fn advanced_resources_must_hold_for_one_resource() {
        let s = advanced(json!([{"FieldSelectors":[
            {"Field":"eventCategory","Equals":["Data"]},
            {"Field":"resources.type","Equals":["AWS::S3::Object"]},
            {"Field":"resources.ARN","Equals":["arn:aws:s3:::b"]}]}]))
        .expect("valid");
        let mut f = data("AWS::S3::Object", "arn:aws:s3:::b/k", "GetObject", true);
        f.resources.push(Resource {
            resource_type: "AWS::S3::Bucket".into(),
            arn: "arn:aws:s3:::b".into(),
        });
        assert!(!s.matches(&f), "type and ARN hold for different resources");
        f.resources[0].arn = "arn:aws:s3:::b".into();
        assert!(s.matches(&f));
    }

    #[test]
    fn advanced_network_activity_and_identity() {
        let s = advanced(json!([{"FieldSelectors":[
            {"Field":"eventCategory","Equals":["NetworkActivity"]},
            {"Field":"eventSource","Equals":["ec2.amazonaws.com"]},
            {"Field":"errorCode","Equals":["VpceAccessDenied"]},
            {"Field":"vpcEndpointId","NotStartsWith":["vpce-0"]},
            {"Field":"userIdentity.arn","EndsWith":[":root"]}]}]))
        .expect("valid");
        let mut f = mgmt("ec2.amazonaws.com", true);
        f.event_category = "NetworkActivity".into();
        f.error_code = "VpceAccessDenied".into();
        f.vpc_endpoint_id = "vpce-1".into();
        f.user_identity_arn = "arn:aws:iam::111122223333:root".into();
        assert!(s.matches(&f));
        f.vpc_endpoint_id = "vpce-0abc".into();
        assert!(!s.matches(&f));
        assert_eq!(s.management_coverage(), (false, false));

        let s = advanced(json!([{"FieldSelectors":[
            {"Field":"eventCategory","Equals":["Data"]},
            {"Field":"resources.type","Equals":["AWS::DynamoDB::Table"]},
            {"Field":"sessionCredentialFromConsole","Equals":["true"]},
            {"Field":"eventType","Equals":["AwsApiCall"]}]}]))
        .expect("valid");
        let mut f = data("AWS::DynamoDB::Table", "arn:t", "GetItem", true);
        f.event_type = "AwsApiCall".into();
        assert!(!s.matches(&f));
        f.session_credential_from_console = true;
        assert!(s.matches(&f));
        let mut insight = f.clone();
        insight.event_category = "Insight".into();
        assert!(!s.matches(&insight));
    }

    #[test]
    fn advanced_validation() {
        let cat = |c: &str| json!({"Field":"eventCategory","Equals":[c]});
        let s3 = json!({"Field":"resources.type","Equals":["AWS::S3::Object"]});
        let cases = [
            json!([]),
            json!([{"FieldSelectors":[]}]),
            json!([{"Name":"x"}]),
            json!([{"FieldSelectors":[{"Field":"readOnly","Equals":["true"]}]}]),
            json!([{"FieldSelectors":[cat("Insight")]}]),
            json!([{"FieldSelectors":[cat("Bogus")]}]),
            json!([{"FieldSelectors":[{"Field":"eventCategory","Equals":["Management","Data"]}]}]),
            json!([{"FieldSelectors":[{"Field":"eventCategory","StartsWith":["Man"]}]}]),
            json!([{"FieldSelectors":[cat("Management"),{"Field":"readOnly","NotEquals":["true"]}]}]),
            json!([{"FieldSelectors":[cat("Management"),{"Field":"readOnly","Equals":["yes"]}]}]),
            json!([{"FieldSelectors":[cat("Management"),{"Field":"eventName","Equals":["X"]}]}]),
            json!([{"FieldSelectors":[cat("Management"),{"Field":"eventSource","Equals":["kms.amazonaws.com"]}]}]),
            json!([{"FieldSelectors":[cat("Management"),{"Field":"eventSource","NotEquals":["ec2.amazonaws.com"]}]}]),
            json!([{"FieldSelectors":[cat("Data")]}]),
            json!([{"FieldSelectors":[cat("Data"),{"Field":"resources.type","Equals":["AWS::S3::Object","AWS::Lambda::Function"]}]}]),
            json!([{"FieldSelectors":[cat("Data"),{"Field":"resources.type","StartsWith":["AWS::S3"]}]}]),
            json!([{"FieldSelectors":[cat("Data"),{"Field":"resources.type","Equals":["S3Object"]}]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"vpcEndpointId","Equals":["v"]}]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"eventName"}]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"eventName","Equals":[]}]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"eventName","Equals":[""]}]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"eventName","Equals":["a"]},{"Field":"eventName","Equals":["b"]}]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"nope","Equals":["a"]}]}]),
            json!([{"FieldSelectors":[cat("NetworkActivity"),{"Field":"eventName","Equals":["a"]}]}]),
            json!([{"FieldSelectors":[cat("NetworkActivity"),{"Field":"eventSource","Equals":["ec2.amazonaws.com"]},{"Field":"errorCode","Equals":["AccessDenied"]}]}]),
            json!([{"Name":"n".repeat(1001),"FieldSelectors":[cat("Management")]}]),
            json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"eventName","Equals":["x".repeat(2049)]}]}]),
        ];
        for c in cases {
            assert!(advanced(c.clone()).is_err(), "{c} should be refused");
        }
        let values: Vec<String> = (0..498).map(|i| format!("E{i}")).collect();
        let ok = json!([{"FieldSelectors":[cat("Data"),s3.clone(),{"Field":"eventName","Equals":values}]}]);
        assert!(advanced(ok).is_ok(), "500 values are allowed");
        let values: Vec<String> = (0..499).map(|i| format!("E{i}")).collect();
        let e = advanced(
            json!([{"FieldSelectors":[cat("Data"),s3,{"Field":"eventName","Equals":values}]}]),
        )
        .expect_err("501 values");
        assert!(e.0.contains("500"), "{e}");
    }

    #[test]
    fn stored_form_of_the_old_placeholder_reads_as_default() {
        let s: Selectors = serde_json::from_str("{}").expect("old form");
        assert_eq!(s, Selectors::default());
    }

    fn arb_value() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "ab", "abc", "b", "ba", "bc", "c", "ca"])
            .prop_map(String::from)
    }

    fn arb_list() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(arb_value(), 0..3)
    }

    proptest! {
        /// The field condition agrees with its definition: some including operator matches
        /// (when there is one) and no excluding operator does.
        #[test]
        fn field_condition_matches_definition(
            v in arb_value(),
            eq in arb_list(), sw in arb_list(), ew in arb_list(),
            ne in arb_list(), nsw in arb_list(), new in arb_list(),
        ) {
            let mut f = FieldSelector::new(Field::EventName);
            f.equals = eq.clone(); f.starts_with = sw.clone(); f.ends_with = ew.clone();
            f.not_equals = ne.clone(); f.not_starts_with = nsw.clone(); f.not_ends_with = new.clone();
            let positives: Vec<bool> = eq.iter().map(|x| *x == v)
                .chain(sw.iter().map(|x| v.starts_with(x.as_str())))
                .chain(ew.iter().map(|x| v.ends_with(x.as_str())))
                .collect();
            let negatives = ne.contains(&v)
                || nsw.iter().any(|x| v.starts_with(x.as_str()))
                || new.iter().any(|x| v.ends_with(x.as_str()));
            let expected = (positives.is_empty() || positives.iter().any(|b| *b)) && !negatives;
            prop_assert_eq!(f.holds(&v), expected);
        }

        /// A list of selectors matches exactly when one of them matches alone, and every
        /// parsed selector survives the wire round trip.
        #[test]
        fn any_selector_matches(
            names in prop::collection::vec(arb_list(), 1..4),
            event_name in arb_value(),
            read in any::<bool>(),
        ) {
            let wire: Vec<Value> = names.iter().map(|n| {
                let mut fields = vec![
                    json!({"Field":"eventCategory","Equals":["Data"]}),
                    json!({"Field":"resources.type","Equals":["AWS::S3::Object"]}),
                ];
                if !n.is_empty() {
                    fields.push(json!({"Field":"eventName","StartsWith":n}));
                }
                json!({"FieldSelectors": fields})
            }).collect();
            let s = Selectors::from_advanced_wire(&wire).expect("valid");
            let f = data("AWS::S3::Object", "arn:aws:s3:::b/k", &event_name, read);
            let any_alone = s.advanced.iter().any(|one| Selectors {
                basic: Vec::new(),
                advanced: vec![one.clone()],
            }.matches(&f));
            prop_assert_eq!(s.matches(&f), any_alone);
            let expected = names.iter().any(|n| n.is_empty() || n.iter().any(|p| event_name.starts_with(p.as_str())));
            prop_assert_eq!(s.matches(&f), expected);
            let (_, a) = s.to_wire();
            let a = a.expect("advanced");
            let back = Selectors::from_advanced_wire(a.as_array().expect("list")).expect("valid");
            prop_assert_eq!(back, s);
        }

        /// Basic selectors: ReadWriteType and IncludeManagementEvents decide management events.
        #[test]
        fn basic_management_rule(rw in 0..3usize, include in any::<bool>(), read in any::<bool>()) {
            let rwt = ["ReadOnly", "WriteOnly", "All"][rw];
            let s = Selectors::from_basic_wire(&[json!({"ReadWriteType": rwt, "IncludeManagementEvents": include})])
                .expect("valid");
            let expected = include && match rwt { "ReadOnly" => read, "WriteOnly" => !read, _ => true };
            prop_assert_eq!(s.matches(&mgmt("ec2.amazonaws.com", read)), expected);
        }
    }
}
