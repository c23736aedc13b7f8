//! LookupEvents: validation exactly as CloudTrail's model has it, plus filters that combine
//! (different keys AND, the same key repeated OR), three attribute keys of Cairn's own
//! (`AwsRegion`, `ErrorCode`, `SourceIpAddress`), and NextTokens bound to their request. The
//! attribute parsing is shared with CountEvents (`crate::count`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use cairn_store::{Attr, Key, Query, Store};

use crate::error::ApiError;
use crate::input::Input;

/// LookupEvents' attribute keys (CloudTrail's).
pub const KEYS: [&str; 8] = [
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

/// Attribute keys Cairn accepts beyond CloudTrail's: a record's `awsRegion`, `errorCode` and
/// `sourceIPAddress`. The AWS SDKs check keys against CloudTrail's list before sending, so
/// only raw JSON callers (the console) use these.
pub const CAIRN_KEYS: [&str; 3] = ["AwsRegion", "ErrorCode", "SourceIpAddress"];

/// The keys an Insights lookup accepts.
const INSIGHT_KEYS: [&str; 3] = ["EventId", "EventName", "EventSource"];

fn invalid_attrs(msg: impl Into<String>) -> ApiError {
    ApiError::bad("InvalidLookupAttributesException", msg)
}

/// CloudTrail counts `_`, space, `,` and newline twice toward the 2000-character limit.
fn weighted_len(v: &str) -> usize {
    v.chars()
        .map(|c| {
            if matches!(c, '_' | ' ' | ',' | '\n') {
                2
            } else {
                1
            }
        })
        .sum()
}

/// The `LookupAttributes` and `EventCategory` of a request (LookupEvents, CountEvents),
/// validated as CloudTrail validates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// `EventCategory=insight`.
    pub insights: bool,
    /// The values given per key, keys in order: different keys AND, values of a key OR.
    pub by_key: Vec<(&'static str, Vec<String>)>,
}

impl Filters {
    pub fn parse(input: &Input) -> Result<Filters, ApiError> {
        let insights = match input.opt_str("EventCategory")? {
            None => false,
            Some("insight") => true,
            Some(other) => {
                return Err(ApiError::bad(
                    "InvalidEventCategoryException",
                    format!("EventCategory {other:?} is not valid; the only value is insight"),
                ));
            }
        };
        let mut by_key: Vec<(&'static str, Vec<String>)> = Vec::new();
        for item in input.list("LookupAttributes")?.unwrap_or_default() {
            let Value::Object(m) = item else {
                return Err(invalid_attrs(
                    "each lookup attribute must be {AttributeKey, AttributeValue}",
                ));
            };
            let key = m
                .get("AttributeKey")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_attrs("a lookup attribute has no AttributeKey"))?;
            let value = m
                .get("AttributeValue")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid_attrs(format!("lookup attribute {key} has no AttributeValue"))
                })?;
            let Some(key) = KEYS.iter().chain(&CAIRN_KEYS).find(|k| **k == key) else {
                return Err(invalid_attrs(format!(
                    "AttributeKey {key:?} is not valid; use one of {}, {}",
                    KEYS.join(", "),
                    CAIRN_KEYS.join(", ")
                )));
            };
            if insights && !INSIGHT_KEYS.contains(key) {
                return Err(invalid_attrs(format!(
                    "{key} cannot be used with EventCategory insight; use EventId, EventName or EventSource"
                )));
            }
            if value.is_empty() || weighted_len(value) > 2000 {
                return Err(invalid_attrs(format!(
                    "AttributeValue for {key} must be 1 to 2000 characters"
                )));
            }
            match by_key.iter_mut().find(|(k, _)| k == key) {
                Some((_, values)) => values.push(value.to_owned()),
                None => by_key.push((key, vec![value.to_owned()])),
            }
        }
        by_key.sort();
        Ok(Filters { insights, by_key })
    }

    /// A store query of `account` with these filters (times, limit and cursor unset).
    pub fn query(&self, account: &str) -> Query {
        let mut query = Query {
            account: account.to_owned(),
            insights: self.insights,
            ..Query::default()
        };
        for (key, values) in &self.by_key {
            if *key == "EventId" {
                query.event_ids = values.clone();
            } else if let Some(attr) = Attr::from_lookup_key(key) {
                query.filters.push((attr, values.clone()));
            }
        }
        query
    }
}

/// A validated LookupEvents request.
pub struct Lookup {
    pub query: Query,
    fingerprint: u64,
}

impl Lookup {
    pub fn parse(account: &str, input: &Input) -> Result<Lookup, ApiError> {
        let filters = Filters::parse(input)?;
        let limit = input
            .int_in("MaxResults", 1, 50, "InvalidMaxResultsException")?
            .unwrap_or(50) as usize;
        let start_ms = input.timestamp_ms("StartTime")?;
        let end_ms = input.timestamp_ms("EndTime")?;
        if let (Some(s), Some(e)) = (start_ms, end_ms)
            && s > e
        {
            return Err(ApiError::bad(
                "InvalidTimeRangeException",
                "StartTime must be at or before EndTime",
            ));
        }
        let fingerprint = {
            let canon =
                json!([account, filters.insights, filters.by_key, start_ms, end_ms]).to_string();
            xxhash_rust::xxh3::xxh3_64(canon.as_bytes())
        };
        let mut query = Query {
            limit,
            start_ms,
            end_ms,
            ..filters.query(account)
        };
        if let Some(token) = input.opt_str("NextToken")? {
            query.after = Some(decode_token(token, fingerprint)?);
        }
        Ok(Lookup { query, fingerprint })
    }

    pub fn run(&self, store: &Store) -> Result<Value, ApiError> {
        let page = store.lookup(&self.query)?;
        let mut events = Vec::with_capacity(page.events.len());
        for found in &page.events {
            events.push(event_json(&found.record)?);
        }
        let mut out = Map::new();
        out.insert("Events".into(), Value::Array(events));
        if let Some(next) = page.next {
            out.insert(
                "NextToken".into(),
                Value::String(encode_token(next, self.fingerprint)),
            );
        }
        Ok(Value::Object(out))
    }
}

fn encode_token(key: Key, fingerprint: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("1:{}:{}:{fingerprint:x}", key.0, key.1))
}

fn decode_token(token: &str, fingerprint: u64) -> Result<Key, ApiError> {
    let bad = |why: &str| {
        ApiError::bad(
            "InvalidNextTokenException",
            format!("NextToken is not valid: {why}"),
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("it was not issued by this service"))?;
    let parts: Vec<&str> = text.split(':').collect();
    let [version, time, seq, fp] = parts[..] else {
        return Err(bad("it was not issued by this service"));
    };
    let (Ok(time), Ok(seq), Ok(fp)) = (
        time.parse::<i64>(),
        seq.parse::<u64>(),
        u64::from_str_radix(fp, 16),
    ) else {
        return Err(bad("it was not issued by this service"));
    };
    if version != "1" {
        return Err(bad("it was not issued by this service"));
    }
    if fp != fingerprint {
        return Err(bad(
            "it belongs to a request with other parameters; repeat the same LookupAttributes, StartTime, EndTime and EventCategory",
        ));
    }
    Ok((time, seq))
}

/// One `Event` of the response, built from the stored record.
pub fn event_json(record: &[u8]) -> Result<Value, ApiError> {
    let view = cairn_event::lookup_view(record)
        .map_err(|e| ApiError::internal(format!("stored record unreadable: {e}")))?;
    let record = String::from_utf8_lossy(record).into_owned();
    let mut e = Map::new();
    e.insert("EventId".into(), json!(view.event_id));
    e.insert("EventName".into(), json!(view.event_name));
    if let Some(ro) = view.read_only {
        e.insert("ReadOnly".into(), json!(if ro { "true" } else { "false" }));
    }
    if let Some(k) = view.access_key_id {
        e.insert("AccessKeyId".into(), json!(k));
    }
    let secs = view.time_ms as f64 / 1000.0;
    e.insert("EventTime".into(), json!(secs));
    e.insert("EventSource".into(), json!(view.event_source));
    if let Some(u) = view.username {
        e.insert("Username".into(), json!(u));
    }
    let resources: Vec<Value> = view
        .resources
        .iter()
        .map(|r| {
            let mut m = Map::new();
            if let Some(t) = &r.resource_type {
                m.insert("ResourceType".into(), json!(t));
            }
            m.insert("ResourceName".into(), json!(r.name));
            Value::Object(m)
        })
        .collect();
    e.insert("Resources".into(), Value::Array(resources));
    e.insert("CloudTrailEvent".into(), Value::String(record));
    Ok(Value::Object(e))
}
