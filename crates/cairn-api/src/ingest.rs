//! Writing events: the native route for whole CloudTrail records, and `cloudtrail-data`
//! PutAuditEvents.

use std::io::Read;
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use cairn_event::{
    Normalised, RecordError, format_event_time, normalise, now_ms, parse_event_time,
};
use cairn_store::{Outcome, Store, StoreError};

use crate::channels::Channel;
use crate::error::ApiError;

/// The largest native ingest body, compressed or not.
pub const MAX_NATIVE_BODY: usize = 32 << 20;
/// The largest decompressed native ingest body.
const MAX_INFLATED: u64 = 256 << 20;
/// PutAuditEvents' request size limit.
pub const MAX_PUT_AUDIT_BODY: usize = 1 << 20;

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        "RequestEntityTooLargeException",
        413,
        format!("the request body is larger than {limit} bytes; split it into smaller batches"),
    )
}

/// Undoes `Content-Encoding: gzip` (or a body that is plainly gzip).
pub fn inflate(body: &[u8], gzip_header: bool) -> Result<std::borrow::Cow<'_, [u8]>, ApiError> {
    if !(gzip_header || body.starts_with(&[0x1f, 0x8b])) {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad(
                "SerializationException",
                format!("the body is not valid gzip: {e}"),
            )
        })?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(too_large(MAX_INFLATED));
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Hands records to the store. Submitting compresses them (CPU work), so call it from the
/// blocking pool; `None` when there is nothing to store.
fn submit(store: &Store, account: &str, records: Vec<Normalised>) -> Result<Pending, ApiError> {
    if records.is_empty() {
        return Ok(None);
    }
    Ok(Some(store.submit(account, records)?))
}

type Pending = Option<tokio::sync::oneshot::Receiver<Result<Vec<Outcome>, StoreError>>>;

/// Waits until submitted records are durable.
async fn durable(pending: Pending) -> Result<Vec<Outcome>, ApiError> {
    let Some(rx) = pending else {
        return Ok(Vec::new());
    };
    match rx.await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ApiError::internal("the store stopped before answering")),
    }
}

async fn store_batch(
    store: &Arc<Store>,
    account: &str,
    records: Vec<Normalised>,
) -> Result<Vec<Outcome>, ApiError> {
    let (store, account) = (store.clone(), account.to_owned());
    let pending = tokio::task::spawn_blocking(move || submit(&store, &account, records))
        .await
        .map_err(|e| ApiError::internal(format!("ingest task failed: {e}")))??;
    durable(pending).await
}

/// The native route: a JSON array of records, NDJSON, one record, or a log file.
pub async fn native(
    store: Arc<Store>,
    account: String,
    body: Vec<u8>,
    gzip: bool,
) -> Result<Value, ApiError> {
    // Inflating, splitting, validating, normalising and compressing all run in one blocking
    // task, off the threads that serve requests.
    let (pending, ids, results) = tokio::task::spawn_blocking(move || {
        let body = inflate(&body, gzip)?;
        let parts = cairn_event::split_records(&body).map_err(|e| match e {
            cairn_event::BodyError::Empty => ApiError::bad("ValidationException", e.to_string()),
            cairn_event::BodyError::Malformed(_) => {
                ApiError::bad("SerializationException", e.to_string())
            }
        })?;
        let now = now_ms();
        let mut normalised = Vec::new();
        // For each record: Ok(index into normalised) or Err(reason).
        let mut results: Vec<Result<usize, (String, String)>> = Vec::with_capacity(parts.len());
        for raw in parts {
            match normalise(raw, &account, now) {
                Ok(n) => {
                    results.push(Ok(normalised.len()));
                    normalised.push(n);
                }
                Err(e) => results.push(Err((e.code().to_owned(), e.to_string()))),
            }
        }
        let ids: Vec<String> = normalised.iter().map(|n| n.meta.event_id.clone()).collect();
        let pending = submit(&store, &account, normalised)?;
        Ok::<_, ApiError>((pending, ids, results))
    })
    .await
    .map_err(|e| ApiError::internal(format!("ingest task failed: {e}")))??;
    let outcomes = durable(pending).await?;
    let mut stored = 0;
    let mut duplicates = 0;
    for o in &outcomes {
        match o {
            Outcome::Stored => stored += 1,
            Outcome::Duplicate => duplicates += 1,
        }
    }
    let mut rejected = Vec::new();
    let mut event_ids = Vec::with_capacity(results.len());
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(n) => event_ids.push(json!(ids[*n])),
            Err((code, msg)) => {
                rejected.push(json!({"index": i, "errorCode": code, "errorMessage": msg}));
                event_ids.push(Value::Null);
            }
        }
    }
    Ok(json!({
        "received": results.len(),
        "stored": stored,
        "duplicates": duplicates,
        "rejected": rejected,
        "eventIds": event_ids,
    }))
}

#[derive(Deserialize)]
struct PutAuditEventsBody<'a> {
    #[serde(rename = "auditEvents", borrow)]
    audit_events: Option<Vec<AuditEvent<'a>>>,
}

#[derive(Deserialize)]
struct AuditEvent<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(rename = "eventData", borrow)]
    event_data: Option<&'a RawValue>,
    #[serde(rename = "eventDataChecksum", borrow)]
    checksum: Option<&'a RawValue>,
}

fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::bad("ValidationException", msg)
}

fn as_string(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(r) if r.get() == "null" => Ok(None),
        Some(r) => serde_json::from_str::<String>(r.get())
            .map(Some)
            .map_err(|_| validation(format!("{name} must be a string"))),
    }
}

struct Failure {
    code: &'static str,
    message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// Checks one event's `eventData` against the schema PutAuditEvents documents and builds
/// the record Cairn stores (the shape CloudTrail Lake keeps for integration events).
fn audit_record(
    channel: &Channel,
    region: &str,
    event_id: &str,
    event_data: &str,
    now: i64,
) -> Result<Vec<u8>, Failure> {
    let data: Value = serde_json::from_str(event_data)
        .map_err(|e| fail("InvalidData", format!("eventData is not valid JSON: {e}")))?;
    let Value::Object(obj) = &data else {
        return Err(fail("InvalidData", "eventData must be a JSON object"));
    };
    let text = |path: &[&str]| -> Result<Option<&str>, Failure> {
        let mut v = &data;
        for p in path {
            match v.get(p) {
                Some(x) => v = x,
                None => return Ok(None),
            }
        }
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.as_str())),
            _ => Err(fail(
                "InvalidData",
                format!("eventData.{} must be a string", path.join(".")),
            )),
        }
    };
    let required = [
        (&["version"][..], 256usize),
        (&["userIdentity", "type"][..], 128),
        (&["userIdentity", "principalId"][..], 1024),
        (&["eventSource"][..], 1024),
        (&["eventName"][..], 1024),
        (&["eventTime"][..], 64),
        (&["UID"][..], 1024),
        (&["recipientAccountId"][..], 12),
    ];
    for (path, max) in required {
        match text(path)? {
            None | Some("") => {
                return Err(fail(
                    "FieldNotFound",
                    format!("eventData.{} is required", path.join(".")),
                ));
            }
            Some(s) if s.chars().count() > max => {
                return Err(fail(
                    "FieldTooLong",
                    format!(
                        "eventData.{} is longer than {max} characters",
                        path.join(".")
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    for (path, max) in [
        (&["userAgent"][..], 1024usize),
        (&["errorCode"][..], 256),
        (&["errorMessage"][..], 256),
    ] {
        if text(path)?.is_some_and(|s| s.chars().count() > max) {
            return Err(fail(
                "FieldTooLong",
                format!(
                    "eventData.{} is longer than {max} characters",
                    path.join(".")
                ),
            ));
        }
    }
    for (name, max) in [
        ("requestParameters", 100_000usize),
        ("responseElements", 100_000),
        ("additionalEventData", 28_000),
    ] {
        if let Some(v) = obj.get(name)
            && v.to_string().len() > max
        {
            return Err(fail(
                "FieldTooLong",
                format!("eventData.{name} is larger than {max} bytes"),
            ));
        }
    }
    if let Some(ip) = text(&["sourceIPAddress"])?
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(fail(
            "InvalidData",
            format!("eventData.sourceIPAddress {ip:?} is not an IPv4 or IPv6 address"),
        ));
    }
    let recipient = text(&["recipientAccountId"])?.unwrap_or_default();
    if recipient != channel.account_id {
        return Err(fail(
            "InvalidRecipient",
            format!(
                "eventData.recipientAccountId {recipient} must be the channel owner's account {}",
                channel.account_id
            ),
        ));
    }
    let event_time = text(&["eventTime"])?.unwrap_or_default();
    let time_ms = parse_event_time(event_time).ok_or_else(|| {
        fail(
            "InvalidData",
            format!("eventData.eventTime {event_time:?} is not a timestamp (YYYY-MM-DDTHH:MM:SSZ)"),
        )
    })?;
    let minified = cairn_event::minify(event_data.as_bytes());
    let head = json!({
        "eventVersion": "1.11",
        "eventCategory": "ActivityAuditLog",
        "eventType": "ActivityLog",
        "eventID": event_id,
        "eventTime": format_event_time(time_ms),
        "awsRegion": region,
        "recipientAccountId": channel.account_id,
        "metadata": {"ingestionTime": format_event_time(now), "channelARN": channel.arn},
    })
    .to_string();
    let mut record = head.into_bytes();
    record.pop();
    record.extend_from_slice(b",\"eventData\":");
    record.extend_from_slice(&minified);
    record.push(b'}');
    Ok(record)
}

/// PutAuditEvents. Request-level problems are errors; per-event problems go in `failed`.
pub async fn put_audit_events(
    store: Arc<Store>,
    channel: Channel,
    region: String,
    body: &[u8],
) -> Result<Value, ApiError> {
    if body.len() > MAX_PUT_AUDIT_BODY {
        return Err(validation(format!(
            "the request is {} bytes; PutAuditEvents accepts at most 1 MB",
            body.len()
        )));
    }
    let parsed: PutAuditEventsBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad(
            "SerializationException",
            format!("the body is not a valid PutAuditEvents request: {e}"),
        )
    })?;
    let events = parsed
        .audit_events
        .ok_or_else(|| validation("auditEvents is required"))?;
    if events.is_empty() || events.len() > 100 {
        return Err(validation(format!(
            "auditEvents must hold 1 to 100 events; got {}",
            events.len()
        )));
    }
    let mut ids: Vec<String> = Vec::with_capacity(events.len());
    for e in &events {
        let id =
            as_string(e.id, "id")?.ok_or_else(|| validation("every audit event needs an id"))?;
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(validation(format!(
                "id {id:?} must be 1 to 128 letters, digits, hyphens or underscores"
            )));
        }
        if ids.contains(&id) {
            return Err(ApiError::bad(
                "DuplicatedAuditEventId",
                format!("id {id} appears more than once in the request"),
            ));
        }
        ids.push(id);
    }
    let now = now_ms();
    let mut failed = Vec::new();
    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut records = Vec::new();
    for (e, id) in events.iter().zip(&ids) {
        let data = as_string(e.event_data, "eventData")?;
        let Some(data) = data else {
            failed.push(json!({"id": id, "errorCode": "FieldNotFound", "errorMessage": "eventData is required"}));
            continue;
        };
        if let Some(sum) = as_string(e.checksum, "eventDataChecksum")? {
            let actual =
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data.as_bytes()));
            if sum != actual {
                failed.push(json!({"id": id, "errorCode": "InvalidChecksum", "errorMessage": "eventDataChecksum is not the base64 SHA-256 of eventData"}));
                continue;
            }
        }
        // The same channel and id always give the same eventID, so a retried request is
        // stored once and answered with the same eventID.
        let event_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("{}#{id}", channel.arn).as_bytes(),
        )
        .to_string();
        let record = match audit_record(&channel, &region, &event_id, &data, now) {
            Ok(r) => r,
            Err(f) => {
                failed.push(json!({"id": id, "errorCode": f.code, "errorMessage": f.message}));
                continue;
            }
        };
        match normalise(&record, &channel.account_id, now) {
            Ok(n) => {
                records.push(n);
                accepted.push((id.clone(), event_id));
            }
            Err(e) => {
                let code = match e {
                    RecordError::FieldTooLong(_) => "FieldTooLong",
                    RecordError::FieldNotFound(_) => "FieldNotFound",
                    RecordError::InvalidData(_) => "InvalidData",
                };
                failed.push(json!({"id": id, "errorCode": code, "errorMessage": e.to_string()}));
            }
        }
    }
    store_batch(&store, &channel.account_id, records).await?;
    let successful: Vec<Value> = accepted
        .into_iter()
        .map(|(id, event_id)| json!({"id": id, "eventID": event_id}))
        .collect();
    Ok(json!({"successful": successful, "failed": failed}))
}
