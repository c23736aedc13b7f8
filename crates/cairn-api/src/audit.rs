//! Cairn auditing itself: every API call it serves, allowed or refused, becomes a CloudTrail
//! management event in the caller's account, shaped as CloudTrail records its own calls
//! (`eventSource` `cloudtrail.amazonaws.com`, `cloudtrail-data.amazonaws.com`,
//! `iam.amazonaws.com`, `s3.amazonaws.com`, or `signin.amazonaws.com` for console sign-ins),
//! with secrets removed from the request parameters and response elements.
//!
//! Records go to the store through one writer thread that gathers them into batches. A call
//! that changes something waits until its record is durable before it is answered, so that,
//! for example, `StopLogging` is always on record; reads and ingest do not wait.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use cairn_store::{Store, StoreError};

use crate::auth::Caller;
use crate::error::ApiError;

/// The largest `requestParameters` or `responseElements` kept (CloudTrail: 100 KB).
const MAX_ELEMENT_BYTES: usize = 100 * 1024;

/// Member names whose values are never recorded.
const SECRET_MEMBERS: [&str; 5] = [
    "secretaccesskey",
    "password",
    "newpassword",
    "oldpassword",
    "sessiontoken",
];

struct Entry {
    account: String,
    record: Vec<u8>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Hands audit records to the store.
pub struct Auditor {
    tx: mpsc::Sender<Entry>,
}

/// The writer thread, to wait for at shutdown: it ends once every [`Auditor`] is gone and
/// the records still queued are stored.
pub struct AuditWriter(std::thread::JoinHandle<()>);

impl AuditWriter {
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the audit writer failed");
        }
    }
}

impl Auditor {
    /// Starts the writer thread.
    pub fn start(store: Arc<Store>) -> std::io::Result<(Auditor, AuditWriter)> {
        let (tx, mut rx) = mpsc::channel::<Entry>(65_536);
        let handle = std::thread::Builder::new()
            .name("cairn-audit".into())
            .spawn(move || write_loop(&store, &mut rx))?;
        Ok((Auditor { tx }, AuditWriter(handle)))
    }

    /// Queues a record (waiting while the queue is full); the receiver resolves once it is
    /// durable.
    pub async fn record(
        &self,
        account: &str,
        record: Vec<u8>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let entry = Entry {
            account: account.to_owned(),
            record,
            done: Some(done),
        };
        if self.tx.send(entry).await.is_err() {
            tracing::error!("the audit writer has stopped; an audit record was not stored");
        }
        rx
    }
}

fn write_loop(store: &Store, rx: &mut mpsc::Receiver<Entry>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 1_000 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        // Group by account, keeping arrival order within each.
        let mut accounts: Vec<String> = Vec::new();
        for e in &batch {
            if !accounts.contains(&e.account) {
                accounts.push(e.account.clone());
            }
        }
        for account in accounts {
            let mut dones = Vec::new();
            let mut records = Vec::new();
            let now = cairn_event::now_ms();
            for e in batch.iter_mut().filter(|e| e.account == account) {
                match cairn_event::normalise(&e.record, &account, now) {
                    Ok(n) => records.push(n),
                    Err(err) => {
                        tracing::error!(error = %err, "an audit record does not parse; dropped");
                    }
                }
                dones.extend(e.done.take());
            }
            store_with_retry(store, &account, records);
            for d in dones {
                let _ = d.send(());
            }
        }
    }
}

fn store_with_retry(store: &Store, account: &str, records: Vec<cairn_event::Normalised>) {
    let mut wait = Duration::from_millis(1);
    let mut records = Some(records);
    loop {
        let Some(batch) = records.take() else { return };
        let retry = batch.clone();
        match store.append_blocking(account, batch) {
            Ok(_) => return,
            Err(StoreError::Throttled) => {
                records = Some(retry);
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store audit records");
                return;
            }
        }
    }
}

/// Whether an operation only reads (CloudTrail's rule: Get, Describe, List, Lookup; and
/// Cairn's CountEvents and TestRule).
pub fn read_only(op: &str) -> bool {
    ["Get", "Describe", "List", "Lookup", "Head", "Count", "Test"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// The members of a request or response as CloudTrail logs them: names in camelCase,
/// secrets removed, at most 100 KB (else null).
pub fn elements(v: &Value) -> Value {
    let out = camel(v);
    if out.to_string().len() > MAX_ELEMENT_BYTES {
        Value::Null
    } else {
        out
    }
}

fn camel(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if SECRET_MEMBERS.contains(&k.to_ascii_lowercase().as_str()) {
                    continue;
                }
                let mut name = String::with_capacity(k.len());
                let mut chars = k.chars();
                if let Some(c) = chars.next() {
                    name.extend(c.to_lowercase());
                }
                name.extend(chars);
                out.insert(name, camel(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(camel).collect()),
        other => other.clone(),
    }
}

/// `userIdentity`, in CloudTrail's member order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<&'a str>,
    pub account_id: &'a str,
    pub access_key_id: &'a str,
    pub user_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_context: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsDetails<'a> {
    pub tls_version: &'a str,
    pub cipher_suite: &'a str,
    pub client_provided_host_header: Option<&'a str>,
}

impl<'a> TlsDetails<'a> {
    pub fn of(origin: &'a crate::auth::Origin) -> Option<TlsDetails<'a>> {
        origin.tls.as_ref().map(|t| TlsDetails {
            tls_version: &t.tls_version,
            cipher_suite: &t.cipher_suite,
            client_provided_host_header: t.client_provided_host_header.as_deref(),
        })
    }
}

/// A record of Cairn's own, with the members in the order CloudTrail writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<'a> {
    pub event_version: &'a str,
    pub user_identity: UserIdentity<'a>,
    pub event_time: String,
    pub event_source: &'a str,
    pub event_name: &'a str,
    pub aws_region: &'a str,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: &'a str,
    pub user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub request_parameters: &'a Value,
    pub response_elements: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<&'a Value>,
    #[serde(rename = "requestID", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    pub event_type: &'a str,
    pub management_event: bool,
    pub recipient_account_id: &'a str,
    pub event_category: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_credential_from_console: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_details: Option<TlsDetails<'a>>,
}

impl Record<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The `userIdentity` of a caller.
pub fn user_identity(caller: &Caller) -> UserIdentity<'_> {
    let p = &caller.principal;
    UserIdentity {
        kind: "IAMUser",
        principal_id: Some(&p.user_id),
        arn: Some(&p.arn),
        account_id: &p.account_id,
        access_key_id: &caller.access_key_id,
        user_name: &p.user_name,
        session_context: caller.console.as_ref().map(|console| {
            json!({
                "sessionIssuer": {},
                "webIdFederationData": {},
                "attributes": {
                    "creationDate": console.creation_date,
                    "mfaAuthenticated": "false",
                },
            })
        }),
    }
}

/// What one API call was, for its record.
pub struct Call<'a> {
    pub caller: &'a Caller,
    pub event_source: &'a str,
    pub event_name: &'a str,
    pub request_id: &'a str,
    pub request_parameters: Value,
    pub response_elements: Value,
    pub error: Option<&'a ApiError>,
    pub additional: Option<Value>,
    /// A data event (object reads of the S3 façade) rather than a management event.
    pub data_event: bool,
}

/// The CloudTrail record of a call.
pub fn api_call_record(call: &Call<'_>) -> Vec<u8> {
    let caller = call.caller;
    let null = Value::Null;
    Record {
        event_version: "1.11",
        user_identity: user_identity(caller),
        event_time: cairn_event::format_event_time(cairn_event::now_ms()),
        event_source: call.event_source,
        event_name: call.event_name,
        aws_region: &caller.region,
        source_ip_address: &caller.origin.source_ip,
        user_agent: &caller.origin.user_agent,
        error_code: call.error.map(|e| e.code),
        error_message: call.error.map(|e| e.message.chars().take(1000).collect()),
        request_parameters: &call.request_parameters,
        response_elements: if call.error.is_some() {
            &null
        } else {
            &call.response_elements
        },
        additional_event_data: call.additional.as_ref(),
        request_id: Some(call.request_id),
        event_id: uuid::Uuid::new_v4().to_string(),
        read_only: read_only(call.event_name),
        event_type: "AwsApiCall",
        management_event: !call.data_event,
        recipient_account_id: &caller.account_id,
        event_category: if call.data_event {
            "Data"
        } else {
            "Management"
        },
        session_credential_from_console: caller.console.as_ref().map(|_| "true"),
        tls_details: TlsDetails::of(&caller.origin),
    }
    .to_bytes()
}

/// Records a call; with `wait`, returns once the record is durable (at most 10 s).
pub async fn audit(auditor: &Auditor, call: Call<'_>, wait: bool) {
    let record = api_call_record(&call);
    let done = auditor.record(&call.caller.account_id, record).await;
    if wait {
        let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_camel_case_without_secrets() {
        let v = json!({
            "Name": "t", "S3BucketName": "b", "IsMultiRegionTrail": true,
            "AccessKey": {"AccessKeyId": "AKIA", "SecretAccessKey": "s3cr3t", "Status": "Active"},
            "Password": "hunter22", "TagsList": [{"Key": "k", "Value": "v"}],
        });
        let out = elements(&v);
        assert_eq!(out["name"], "t");
        assert_eq!(out["s3BucketName"], "b");
        assert_eq!(out["isMultiRegionTrail"], true);
        assert_eq!(out["accessKey"]["accessKeyId"], "AKIA");
        assert!(out["accessKey"].get("secretAccessKey").is_none());
        assert!(out.get("password").is_none());
        assert_eq!(out["tagsList"][0]["key"], "k");
        assert!(!out.to_string().contains("s3cr3t"));
        assert!(!out.to_string().contains("hunter22"));
    }

    #[test]
    fn oversized_elements_become_null() {
        let v = json!({"Data": "x".repeat(MAX_ELEMENT_BYTES + 1)});
        assert_eq!(elements(&v), Value::Null);
    }

    #[test]
    fn read_only_follows_the_operation_name() {
        assert!(read_only("LookupEvents"));
        assert!(read_only("GetTrailStatus"));
        assert!(read_only("ListPublicKeys"));
        assert!(read_only("CountEvents"));
        assert!(read_only("TestRule"));
        assert!(!read_only("PutRule"));
        assert!(!read_only("StopLogging"));
        assert!(!read_only("PutAuditEvents"));
        assert!(!read_only("CreateAccessKey"));
    }
}
