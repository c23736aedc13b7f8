//! Validating and normalising one CloudTrail record, and the lookup attributes it carries.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::json::{append_members, minify};
use crate::timefmt::{format_event_time, parse_event_time};

/// The largest record accepted, as CloudTrail's own event size limit (since eventVersion 1.05).
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// Why a record was rejected. The code is the per-event error code vocabulary of
/// `cloudtrail-data` PutAuditEvents (`FieldNotFound`, `InvalidData`, `FieldTooLong`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    FieldNotFound(String),
    #[error("{0}")]
    InvalidData(String),
    #[error("{0}")]
    FieldTooLong(String),
}

impl RecordError {
    pub fn code(&self) -> &'static str {
        match self {
            RecordError::FieldNotFound(_) => "FieldNotFound",
            RecordError::InvalidData(_) => "InvalidData",
            RecordError::FieldTooLong(_) => "FieldTooLong",
        }
    }
}

/// `eventCategory`, as far as event history cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    Management,
    Data,
    NetworkActivity,
    Insight,
    /// Anything else (`ActivityAuditLog` from PutAuditEvents, Lake-only categories).
    Other,
}

impl Category {
    fn parse(s: &str) -> Category {
        match s {
            "Management" => Category::Management,
            "Data" => Category::Data,
            "NetworkActivity" => Category::NetworkActivity,
            "Insight" => Category::Insight,
            _ => Category::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Management => "Management",
            Category::Data => "Data",
            Category::NetworkActivity => "NetworkActivity",
            Category::Insight => "Insight",
            Category::Other => "Other",
        }
    }
}

/// A resource as LookupEvents shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    pub resource_type: Option<String>,
    pub name: String,
}

/// What the event history indexes and shows of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub event_id: String,
    pub time_ms: i64,
    pub event_name: String,
    pub event_source: String,
    pub read_only: Option<bool>,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    pub resources: Vec<ResourceRef>,
    /// The ARNs of the record's `resources`.
    pub resource_arns: Vec<String>,
    pub category: Category,
    pub region: Option<String>,
    pub error_code: Option<String>,
    pub source_ip: Option<String>,
}

/// A record ready to store: its bytes (minified, with the filled-in members appended) and the
/// attributes extracted from it.
#[derive(Debug, Clone)]
pub struct Normalised {
    pub bytes: Vec<u8>,
    pub meta: EventMeta,
    /// Names of the members Cairn added.
    pub filled: Vec<&'static str>,
}

/// The LookupEvents view of a stored record.
pub type LookupView = EventMeta;

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Probe<'a> {
    #[serde(borrow)]
    eventID: Option<&'a RawValue>,
    #[serde(borrow)]
    eventTime: Option<&'a RawValue>,
    #[serde(borrow)]
    eventName: Option<&'a RawValue>,
    #[serde(borrow)]
    eventSource: Option<&'a RawValue>,
    #[serde(borrow)]
    eventType: Option<&'a RawValue>,
    #[serde(borrow)]
    eventCategory: Option<&'a RawValue>,
    #[serde(borrow)]
    managementEvent: Option<&'a RawValue>,
    #[serde(borrow)]
    readOnly: Option<&'a RawValue>,
    #[serde(borrow)]
    recipientAccountId: Option<&'a RawValue>,
    #[serde(borrow)]
    awsRegion: Option<&'a RawValue>,
    #[serde(borrow)]
    errorCode: Option<&'a RawValue>,
    #[serde(borrow)]
    sourceIPAddress: Option<&'a RawValue>,
    #[serde(borrow)]
    userIdentity: Option<&'a RawValue>,
    #[serde(borrow)]
    resources: Option<&'a RawValue>,
    #[serde(borrow)]
    requestParameters: Option<&'a RawValue>,
    #[serde(borrow)]
    eventData: Option<&'a RawValue>,
    #[serde(borrow)]
    insightDetails: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[allow(non_snake_case)]
struct Identity<'a> {
    #[serde(borrow)]
    r#type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    userName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    principalId: Option<Cow<'a, str>>,
    #[serde(borrow)]
    accessKeyId: Option<Cow<'a, str>>,
    #[serde(borrow)]
    invokedBy: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sessionContext: Option<SessionContext<'a>>,
}

#[derive(Deserialize, Default)]
#[allow(non_snake_case)]
struct SessionContext<'a> {
    #[serde(borrow)]
    sessionIssuer: Option<Issuer<'a>>,
}

#[derive(Deserialize, Default)]
#[allow(non_snake_case)]
struct Issuer<'a> {
    #[serde(borrow)]
    userName: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Resource<'a> {
    #[serde(borrow, alias = "arn")]
    ARN: Option<Cow<'a, str>>,
    #[serde(borrow)]
    r#type: Option<Cow<'a, str>>,
}

fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

fn string_field<'a>(
    raw: Option<&'a RawValue>,
    name: &str,
) -> Result<Option<Cow<'a, str>>, RecordError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.get() == "null" {
        return Ok(None);
    }
    serde_json::from_str::<Cow<'a, str>>(raw.get())
        .map(Some)
        .map_err(|_| {
            RecordError::InvalidData(format!("{name} must be a string, not {}", kind(raw)))
        })
}

fn bool_field(raw: Option<&RawValue>, name: &str) -> Result<Option<bool>, RecordError> {
    let Some(raw) = raw else { return Ok(None) };
    // Exports from other tools sometimes write booleans as strings ("true", "True").
    match raw.get().trim_matches('"') {
        "null" => Ok(None),
        t if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        f if f.eq_ignore_ascii_case("false") => Ok(Some(false)),
        _ => Err(RecordError::InvalidData(format!(
            "{name} must be true or false, not {}",
            kind(raw)
        ))),
    }
}

fn required<'a>(value: Option<Cow<'a, str>>, name: &str) -> Result<Cow<'a, str>, RecordError> {
    match value {
        Some(v) if !v.is_empty() => {
            if v.len() > 1024 {
                Err(RecordError::FieldTooLong(format!(
                    "{name} is {} characters long; the limit is 1024",
                    v.len()
                )))
            } else {
                Ok(v)
            }
        }
        _ => Err(RecordError::FieldNotFound(format!(
            "the record has no {name}: every CloudTrail record needs eventName and eventSource"
        ))),
    }
}

/// Validates and normalises one record for the Cairn account `account_id`, at `now_ms`.
pub fn normalise(raw: &[u8], account_id: &str, now_ms: i64) -> Result<Normalised, RecordError> {
    if raw.len() > MAX_RECORD_BYTES {
        return Err(RecordError::FieldTooLong(format!(
            "the record is {} bytes; the limit is {MAX_RECORD_BYTES} bytes (256 KB)",
            raw.len()
        )));
    }
    let bytes = minify(raw);
    let (mut meta, absent) = extract(&bytes, now_ms)?;
    let mut members: Vec<(&str, String)> = Vec::new();
    let mut filled = Vec::new();
    let mut fill = |name: &'static str, value: String| {
        members.push((name, value));
        filled.push(name);
    };
    if absent.event_id {
        meta.event_id = uuid::Uuid::new_v4().to_string();
        fill("eventID", json_string(&meta.event_id));
    }
    if absent.event_time {
        // CloudTrail's eventTime has second precision.
        meta.time_ms = now_ms - now_ms.rem_euclid(1000);
        fill("eventTime", json_string(&format_event_time(meta.time_ms)));
    }
    if absent.recipient {
        fill("recipientAccountId", json_string(account_id));
    }
    if absent.category {
        fill("eventCategory", json_string(meta.category.as_str()));
    }
    let api_like = matches!(meta.category, Category::Management | Category::Data);
    if absent.management && api_like {
        let management = meta.category == Category::Management;
        fill("managementEvent", management.to_string());
    }
    if meta.read_only.is_none() && api_like {
        let ro = derive_read_only(&meta.event_name);
        meta.read_only = Some(ro);
        fill("readOnly", ro.to_string());
    }
    let mut bytes = bytes;
    append_members(&mut bytes, &members);
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::FieldTooLong(format!(
            "the record is {} bytes; the limit is {MAX_RECORD_BYTES} bytes (256 KB)",
            bytes.len()
        )));
    }
    Ok(Normalised {
        bytes,
        meta,
        filled,
    })
}

/// The LookupEvents view of a stored (already normalised) record.
pub fn lookup_view(stored: &[u8]) -> Result<LookupView, RecordError> {
    extract(stored, 0).map(|(meta, _)| meta)
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[derive(Default)]
struct Absent {
    event_id: bool,
    event_time: bool,
    recipient: bool,
    category: bool,
    management: bool,
}

fn extract(bytes: &[u8], now_ms: i64) -> Result<(EventMeta, Absent), RecordError> {
    if bytes.first() != Some(&b'{') {
        return Err(RecordError::InvalidData(
            "a record must be a JSON object".to_owned(),
        ));
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| RecordError::InvalidData(format!("malformed record: {e}")))?;
    let mut absent = Absent::default();

    let event_id = string_field(probe.eventID, "eventID")?;
    let event_id = match event_id {
        Some(id) if id.is_empty() => {
            return Err(RecordError::InvalidData("eventID is empty".to_owned()));
        }
        Some(id) if id.len() > 1024 => {
            return Err(RecordError::FieldTooLong(
                "eventID is longer than 1024 characters".to_owned(),
            ));
        }
        Some(id) => id.into_owned(),
        None => {
            absent.event_id = true;
            String::new()
        }
    };
    let time_ms = match string_field(probe.eventTime, "eventTime")? {
        Some(t) => parse_event_time(&t).ok_or_else(|| {
            RecordError::InvalidData(format!(
                "eventTime {t:?} is not a timestamp: CloudTrail writes YYYY-MM-DDTHH:MM:SSZ"
            ))
        })?,
        None => {
            absent.event_time = true;
            now_ms
        }
    };
    absent.recipient = is_null(probe.recipientAccountId);
    let event_type = string_field(probe.eventType, "eventType")?;
    let management = bool_field(probe.managementEvent, "managementEvent")?;
    absent.management = management.is_none();
    let read_only = bool_field(probe.readOnly, "readOnly")?;

    // Records written through PutAuditEvents keep the caller's event inside `eventData`.
    let inner: Option<Probe> = match probe.eventData {
        Some(raw) if raw.get().starts_with('{') => serde_json::from_str(raw.get()).ok(),
        _ => None,
    };
    // Insights records keep them inside `insightDetails`.
    let insight: Option<Probe> = match (inner.is_none(), probe.insightDetails) {
        (true, Some(raw)) if raw.get().starts_with('{') => serde_json::from_str(raw.get()).ok(),
        _ => None,
    };
    let nested = inner.as_ref().or(insight.as_ref());
    let name_raw = probe.eventName.or(nested.and_then(|p| p.eventName));
    let source_raw = probe.eventSource.or(nested.and_then(|p| p.eventSource));
    let event_name = required(string_field(name_raw, "eventName")?, "eventName")?;
    let event_source = required(string_field(source_raw, "eventSource")?, "eventSource")?;

    let identity_raw = probe
        .userIdentity
        .or(inner.as_ref().and_then(|p| p.userIdentity));
    let identity: Identity = match identity_raw {
        Some(raw) if raw.get() == "null" => Identity::default(),
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| {
            RecordError::InvalidData(format!("userIdentity is not a valid identity: {e}"))
        })?,
        None => Identity::default(),
    };

    let mut resource_arns = Vec::new();
    let resources = resources_of(
        probe.resources,
        probe.requestParameters,
        &event_source,
        &event_name,
        &mut resource_arns,
    )?;

    let category = match string_field(probe.eventCategory, "eventCategory")? {
        Some(c) => Category::parse(&c),
        None => {
            absent.category = true;
            derive_category(
                event_type.as_deref(),
                management,
                &event_source,
                &event_name,
                &resources,
            )
        }
    };

    let meta = EventMeta {
        event_id,
        time_ms,
        event_name: event_name.into_owned(),
        event_source: event_source.into_owned(),
        read_only,
        username: derive_username(&identity),
        access_key_id: identity
            .accessKeyId
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
        resources,
        resource_arns,
        category,
        region: string_field(probe.awsRegion, "awsRegion")?.map(Cow::into_owned),
        error_code: string_field(probe.errorCode, "errorCode")?.map(Cow::into_owned),
        source_ip: string_field(probe.sourceIPAddress, "sourceIPAddress")?.map(Cow::into_owned),
    };
    Ok((meta, absent))
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !value.is_empty() && !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

/// Username as the event history shows it: an IAM user's name, `root` for the root user, the
/// role session name for an assumed role, and otherwise the best name the identity carries.
fn derive_username(id: &Identity) -> Option<String> {
    let last_path = |arn: &str| arn.rsplit('/').next().map(str::to_owned);
    let non_empty =
        |s: &Option<Cow<str>>| s.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
    match id.r#type.as_deref() {
        Some("Root") => Some("root".to_owned()),
        Some("AssumedRole") => id
            .arn
            .as_deref()
            .filter(|a| a.contains('/'))
            .and_then(last_path)
            .or_else(|| {
                id.principalId
                    .as_deref()
                    .and_then(|p| p.split_once(':'))
                    .map(|(_, s)| s.to_owned())
            })
            .or_else(|| non_empty(&id.userName)),
        _ => non_empty(&id.userName)
            .or_else(|| {
                id.sessionContext
                    .as_ref()
                    .and_then(|c| c.sessionIssuer.as_ref())
                    .and_then(|i| non_empty(&i.userName))
            })
            .or_else(|| {
                id.arn
                    .as_deref()
                    .filter(|a| a.contains('/'))
                    .and_then(last_path)
            })
            .or_else(|| non_empty(&id.invokedBy))
            .or_else(|| non_empty(&id.principalId)),
    }
}

/// The name of a resource as event history shows it, from its ARN.
pub fn arn_display_name(arn: &str) -> String {
    let mut parts = arn.splitn(6, ':');
    let (Some(_), Some(_), Some(service), Some(_), Some(_), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return arn.to_owned();
    };
    if service == "s3" {
        return resource.to_owned();
    }
    if service == "iam" || service == "sts" {
        return resource.rsplit('/').next().unwrap_or(resource).to_owned();
    }
    // `db:name`, `instance/i-123`, `function:name:alias`
    match resource.find(['/', ':']) {
        Some(i) if i + 1 < resource.len() => resource[i + 1..].to_owned(),
        _ => resource.to_owned(),
    }
}

impl EventMeta {
    /// Every name a `ResourceName` lookup finds this record by: the display names, and for
    /// each ARN the whole ARN, the part after the resource type and the last path element.
    pub fn resource_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.resources {
            push_unique(&mut out, &r.name);
        }
        for arn in &self.resource_arns {
            arn_aliases(arn, &mut out);
        }
        out
    }
}

/// The names a `ResourceName` lookup finds a resource by, from its ARN (see
/// [`EventMeta::resource_names`]).
pub fn arn_aliases(arn: &str, out: &mut Vec<String>) {
    push_unique(out, arn);
    push_unique(out, &arn_display_name(arn));
    if let Some(resource) = arn.splitn(6, ':').nth(5) {
        if let Some((_, rest)) = resource.split_once(['/', ':']) {
            push_unique(out, rest);
        }
        if let Some(last) = resource.rsplit('/').next() {
            push_unique(out, last);
        }
    }
}

#[derive(Deserialize, Default)]
#[allow(non_snake_case)]
struct Params<'a> {
    #[serde(borrow)]
    bucketName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    userName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    roleName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    groupName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policyArn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dBInstanceIdentifier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    functionName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tableName: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    groupId: Option<Cow<'a, str>>,
}

fn resources_of(
    resources: Option<&RawValue>,
    params: Option<&RawValue>,
    source: &str,
    name: &str,
    arns: &mut Vec<String>,
) -> Result<Vec<ResourceRef>, RecordError> {
    let mut out = Vec::new();
    if let Some(raw) = resources.filter(|r| r.get() != "null") {
        let list: Vec<Resource> = serde_json::from_str(raw.get()).map_err(|e| {
            RecordError::InvalidData(format!(
                "resources must be a list of {{\"ARN\",\"accountId\",\"type\"}} objects: {e}"
            ))
        })?;
        for r in list {
            if let Some(arn) = r.ARN.as_deref() {
                push_unique(arns, arn);
                out.push(ResourceRef {
                    resource_type: r.r#type.map(Cow::into_owned),
                    name: arn_display_name(arn),
                });
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
    }
    // No resources member: name the resource from the request, as event history does for the
    // common services.
    let Some(raw) = params.filter(|p| p.get().starts_with('{')) else {
        return Ok(out);
    };
    let Ok(p) = serde_json::from_str::<Params>(raw.get()) else {
        return Ok(out);
    };
    let mut add = |t: &str, n: Option<&str>| {
        if let Some(n) = n.filter(|n| !n.is_empty()) {
            out.push(ResourceRef {
                resource_type: Some(t.to_owned()),
                name: n.to_owned(),
            });
        }
    };
    let service = source.split('.').next().unwrap_or(source);
    match service {
        "s3" => {
            if let (Some(b), Some(k)) = (p.bucketName.as_deref(), p.key.as_deref()) {
                add("AWS::S3::Object", Some(&format!("{b}/{k}")));
            }
            add("AWS::S3::Bucket", p.bucketName.as_deref());
        }
        "iam" => {
            add("AWS::IAM::User", p.userName.as_deref());
            add("AWS::IAM::Role", p.roleName.as_deref());
            add("AWS::IAM::Group", p.groupName.as_deref());
            add("AWS::IAM::Policy", p.policyArn.as_deref());
        }
        "rds" => add("AWS::RDS::DBInstance", p.dBInstanceIdentifier.as_deref()),
        "lambda" => add("AWS::Lambda::Function", p.functionName.as_deref()),
        "dynamodb" => add("AWS::DynamoDB::Table", p.tableName.as_deref()),
        "cloudtrail" if name.contains("Trail") || name.contains("Logging") => {
            add("AWS::CloudTrail::Trail", p.name.as_deref())
        }
        "ec2" => add("AWS::EC2::SecurityGroup", p.groupId.as_deref()),
        _ => {}
    }
    Ok(out)
}

fn derive_category(
    event_type: Option<&str>,
    management: Option<bool>,
    source: &str,
    name: &str,
    resources: &[ResourceRef],
) -> Category {
    match event_type {
        Some("AwsCloudTrailInsight") => return Category::Insight,
        Some("AwsVpceEvent") => return Category::NetworkActivity,
        _ => {}
    }
    match management {
        Some(true) => Category::Management,
        Some(false) => Category::Data,
        None if is_data_event(source, name, resources) => Category::Data,
        None => Category::Management,
    }
}

/// Well-known data-plane operations, for records old enough to carry neither
/// `eventCategory` nor `managementEvent`.
fn is_data_event(source: &str, name: &str, resources: &[ResourceRef]) -> bool {
    if resources
        .iter()
        .any(|r| r.resource_type.as_deref() == Some("AWS::S3::Object"))
    {
        return true;
    }
    match source {
        "s3.amazonaws.com" => {
            name.contains("Object")
                || name.contains("MultipartUpload")
                || matches!(name, "UploadPart" | "UploadPartCopy" | "ListParts")
        }
        "lambda.amazonaws.com" => name.starts_with("Invoke"),
        "dynamodb.amazonaws.com" => matches!(
            name,
            "GetItem"
                | "PutItem"
                | "DeleteItem"
                | "UpdateItem"
                | "Query"
                | "Scan"
                | "BatchGetItem"
                | "BatchWriteItem"
                | "TransactGetItems"
                | "TransactWriteItems"
        ),
        _ => false,
    }
}

fn derive_read_only(name: &str) -> bool {
    const READ: [&str; 10] = [
        "Get", "Describe", "List", "Lookup", "Head", "Search", "BatchGet", "Query", "Scan",
        "Select",
    ];
    READ.iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_uppercase()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_123;

    #[test]
    fn fills_what_is_absent() {
        let n = normalise(
            br#"{"eventName": "ListBuckets", "eventSource": "s3.amazonaws.com"}"#,
            "123456789012",
            NOW,
        )
        .unwrap();
        assert_eq!(
            n.filled,
            [
                "eventID",
                "eventTime",
                "recipientAccountId",
                "eventCategory",
                "managementEvent",
                "readOnly"
            ]
        );
        let v: serde_json::Value = serde_json::from_slice(&n.bytes).unwrap();
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(v["recipientAccountId"], "123456789012");
        assert_eq!(v["eventCategory"], "Management");
        assert_eq!(v["managementEvent"], true);
        assert_eq!(v["readOnly"], true);
        assert_eq!(v["eventID"].as_str().unwrap(), n.meta.event_id);
        assert_eq!(n.meta.time_ms, 1_700_000_000_000);
    }

    #[test]
    fn keeps_complete_records_verbatim() {
        let raw = br#"{"eventVersion":"1.08","eventID":"e1","eventTime":"2020-06-09T13:37:34Z","eventName":"DeleteDBInstance","eventSource":"rds.amazonaws.com","recipientAccountId":"1","eventCategory":"Management","managementEvent":true,"readOnly":false,"n":1.50e3}"#;
        let n = normalise(raw, "2", NOW).unwrap();
        assert!(n.filled.is_empty());
        assert_eq!(n.bytes, raw.to_vec());
    }

    #[test]
    fn rejections() {
        let e = |raw: &[u8]| normalise(raw, "1", NOW).unwrap_err();
        assert_eq!(e(b"[1]").code(), "InvalidData");
        assert_eq!(e(b"{\"eventSource\":\"x\"}").code(), "FieldNotFound");
        assert_eq!(e(b"{\"eventName\":\"x\"}").code(), "FieldNotFound");
        assert_eq!(
            e(br#"{"eventName":5,"eventSource":"x"}"#),
            RecordError::InvalidData("eventName must be a string, not a number".into())
        );
        assert_eq!(
            e(br#"{"eventName":"a","eventSource":"x","eventTime":"2020-13-01"}"#).code(),
            "InvalidData"
        );
        assert_eq!(
            e(br#"{"eventName":"a","eventSource":"x","readOnly":"maybe"}"#).code(),
            "InvalidData"
        );
        assert_eq!(
            e(br#"{"eventName":"a","eventSource":"x","readOnly":1}"#).code(),
            "InvalidData"
        );
        let ok = normalise(
            br#"{"eventName":"a","eventSource":"x","readOnly":"True"}"#,
            "1",
            NOW,
        );
        assert_eq!(ok.unwrap().meta.read_only, Some(true));
        let big = format!(
            r#"{{"eventName":"a","eventSource":"x","p":"{}"}}"#,
            "x".repeat(MAX_RECORD_BYTES)
        );
        assert_eq!(e(big.as_bytes()).code(), "FieldTooLong");
        assert_eq!(e(b"{\"eventName\":\"a\"").code(), "InvalidData");
        let insight = br#"{"eventVersion":"1.08","eventTime":"2023-01-01T00:00:00Z","eventType":"AwsCloudTrailInsight","insightDetails":{"state":"Start","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","insightType":"ApiCallRateInsight"}}"#;
        let m = normalise(insight, "1", NOW).unwrap().meta;
        assert_eq!(m.category, Category::Insight);
        assert_eq!(m.event_name, "RunInstances");
        assert_eq!(m.read_only, None);
    }

    #[test]
    fn usernames() {
        let user = |id: &str| {
            let raw = format!(r#"{{"eventName":"a","eventSource":"b","userIdentity":{id}}}"#);
            normalise(raw.as_bytes(), "1", NOW).unwrap().meta.username
        };
        assert_eq!(
            user(r#"{"type":"IAMUser","userName":"alana"}"#).as_deref(),
            Some("alana")
        );
        assert_eq!(
            user(r#"{"type":"Root","arn":"arn:aws:iam::1:root"}"#).as_deref(),
            Some("root")
        );
        assert_eq!(
            user(r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/my-role/my-session-name"}"#)
                .as_deref(),
            Some("my-session-name")
        );
        assert_eq!(
            user(r#"{"type":"AWSService","invokedBy":"lambda.amazonaws.com"}"#).as_deref(),
            Some("lambda.amazonaws.com")
        );
        assert_eq!(user("null"), None);
    }

    #[test]
    fn resource_names() {
        let raw = br#"{"eventName":"DeleteObject","eventSource":"s3.amazonaws.com","resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::cat-photos/2024/whiskers.jpg"},{"type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::cat-photos"}]}"#;
        let m = normalise(raw, "1", NOW).unwrap().meta;
        assert_eq!(m.category, Category::Data);
        assert_eq!(m.resources[0].name, "cat-photos/2024/whiskers.jpg");
        assert_eq!(m.resources[1].name, "cat-photos");
        assert!(m.resource_names().iter().any(|n| n == "2024/whiskers.jpg"));
        assert!(
            m.resource_names()
                .iter()
                .any(|n| n == "arn:aws:s3:::cat-photos")
        );

        let raw = br#"{"eventName":"DeleteDBInstance","eventSource":"rds.amazonaws.com","resources":[{"ARN":"arn:aws:rds:us-west-2:111122223333:db:cat-photos-db","type":"AWS::RDS::DBInstance"}]}"#;
        let m = normalise(raw, "1", NOW).unwrap().meta;
        assert_eq!(m.resources[0].name, "cat-photos-db");

        let raw = br#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","requestParameters":{"userName":"Mary"}}"#;
        let m = normalise(raw, "1", NOW).unwrap().meta;
        assert_eq!(
            m.resources,
            [ResourceRef {
                resource_type: Some("AWS::IAM::User".into()),
                name: "Mary".into()
            }]
        );
        assert_eq!(m.read_only, Some(false));
    }

    #[test]
    fn read_only_rule() {
        assert!(derive_read_only("GetObject"));
        assert!(derive_read_only("DescribeInstances"));
        assert!(!derive_read_only("Getaway"));
        assert!(!derive_read_only("ConsoleLogin"));
        assert!(!derive_read_only("DeleteTrail"));
    }
}
