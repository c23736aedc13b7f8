//! The EventBridge envelope around a CloudTrail record: what an event pattern is matched
//! against, exactly as EventBridge delivers CloudTrail events (`detail` is the record).

use serde_json::{Map, Value, json};

/// `detail-type` of API calls.
pub const API_CALL: &str = "AWS API Call via CloudTrail";
/// `detail-type` of console sign-in events.
pub const CONSOLE_SIGN_IN: &str = "AWS Console Sign In via CloudTrail";
/// `detail-type` of service events.
pub const SERVICE_EVENT: &str = "AWS Service Event via CloudTrail";
/// `detail-type` of Insights events.
pub const INSIGHT: &str = "AWS Insight via CloudTrail";

/// The `detail-type` EventBridge gives a record.
pub fn detail_type(record: &Value) -> &'static str {
    match record.get("eventType").and_then(Value::as_str) {
        Some("AwsConsoleSignIn") => CONSOLE_SIGN_IN,
        Some("AwsServiceEvent") => SERVICE_EVENT,
        Some("AwsCloudTrailInsight") => INSIGHT,
        _ => API_CALL,
    }
}

/// The `source` EventBridge gives a record: `aws.` and the service of its `eventSource`
/// (`s3.amazonaws.com` becomes `aws.s3`, `signin.amazonaws.com` becomes `aws.signin`).
pub fn source(record: &Value) -> String {
    let service = record
        .get("eventSource")
        .and_then(Value::as_str)
        .map(|s| s.split('.').next().unwrap_or(s))
        .unwrap_or_default();
    format!("aws.{service}")
}

/// The envelope of one record stored in `account`. `id` is derived from the record's
/// `eventID`, so the same record always gets the same envelope.
pub fn envelope(account: &str, record: &Value) -> Value {
    envelope_of(account, record.clone())
}

/// [`envelope`], taking the record (it becomes `detail`).
pub fn envelope_of(account: &str, record: Value) -> Value {
    let str_of = |k: &str| {
        record
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let event_id = str_of("eventID");
    let id = uuid::Uuid::new_v5(&crate::NAMESPACE, format!("envelope|{event_id}").as_bytes());
    let mut env = Map::with_capacity(9);
    env.insert("version".into(), json!("0"));
    env.insert("id".into(), json!(id.to_string()));
    env.insert("detail-type".into(), json!(detail_type(&record)));
    env.insert("source".into(), json!(source(&record)));
    let owner = record
        .get("recipientAccountId")
        .and_then(Value::as_str)
        .unwrap_or(account)
        .to_owned();
    env.insert("account".into(), json!(owner));
    env.insert("time".into(), json!(str_of("eventTime")));
    env.insert("region".into(), json!(str_of("awsRegion")));
    env.insert("resources".into(), json!([]));
    env.insert("detail".into(), record);
    Value::Object(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_the_envelope_as_eventbridge_does() {
        let record = json!({
            "eventVersion": "1.09", "eventID": "e-1", "eventTime": "2026-01-02T03:04:05Z",
            "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
            "eventType": "AwsConsoleSignIn", "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333"
        });
        let env = envelope("999988887777", &record);
        assert_eq!(env["detail-type"], CONSOLE_SIGN_IN);
        assert_eq!(env["source"], "aws.signin");
        assert_eq!(env["account"], "111122223333");
        assert_eq!(env["region"], "us-east-1");
        assert_eq!(env["time"], "2026-01-02T03:04:05Z");
        assert_eq!(env["detail"], record);
        assert_eq!(env["id"], envelope("x", &record)["id"]);
        assert_eq!(detail_type(&json!({"eventType": "AwsApiCall"})), API_CALL);
        assert_eq!(source(&json!({})), "aws.");
    }
}
