//! CountEvents, a Cairn extension on the JSON 1.1 endpoint (`X-Amz-Target:
//! Cairn_20261121.CountEvents`): how many events match LookupEvents' filters, per time bucket,
//! for the console's histogram. Signed for `cloudtrail`, allowed by `cloudtrail:LookupEvents`.
//!
//! Input: `LookupAttributes` and `EventCategory` as LookupEvents takes them (Cairn's extra
//! keys included), `StartTime` and `EndTime` (both required, `EndTime` after `StartTime`; the
//! range is `[StartTime, EndTime)`), `Buckets` (1 to 500, default 60). The range is cut into
//! buckets of a whole number of seconds, aligned to `StartTime`: `BucketSeconds` is the range
//! divided by `Buckets`, rounded up to a whole second, so there are at most `Buckets` of them
//! (fewer for a range shorter than `Buckets` seconds), the last one ending at `EndTime`.
//!
//! Output: `{"BucketSeconds": n, "Buckets": [{"Start": t, "Count": n}, ...], "Total": n,
//! "Partial": bool, "CompleteFrom": t}` with times in epoch seconds. With several filters the
//! store walks a posting list; past its budget it stops, and then `Partial` is true and
//! `CompleteFrom` tells from when on the counts are exact (buckets before it hold some of
//! their events only). `CompleteFrom` is `StartTime` when `Partial` is false.

use serde_json::{Value, json};

use cairn_store::{Counts, MAX_BUCKETS, Query, Store};

use crate::AppState;
use crate::auth::{Caller, authorize};
use crate::error::ApiError;
use crate::input::Input;
use crate::lookup::Filters;

/// The `X-Amz-Target` prefix of Cairn's own operations.
pub const TARGET_PREFIX: &str = "Cairn_20261121.";

/// Buckets when the request does not say.
pub const DEFAULT_BUCKETS: i64 = 60;

/// A validated CountEvents request.
#[derive(Debug, Clone)]
pub struct Count {
    pub query: Query,
    pub start_ms: i64,
    pub end_ms: i64,
    pub bucket_ms: i64,
}

fn invalid_range(msg: &str) -> ApiError {
    ApiError::bad("InvalidTimeRangeException", msg)
}

impl Count {
    pub fn parse(account: &str, input: &Input) -> Result<Count, ApiError> {
        let filters = Filters::parse(input)?;
        let start_ms = input.timestamp_ms("StartTime")?;
        let end_ms = input.timestamp_ms("EndTime")?;
        let (Some(start_ms), Some(end_ms)) = (start_ms, end_ms) else {
            return Err(invalid_range("StartTime and EndTime are both required"));
        };
        if end_ms <= start_ms {
            return Err(invalid_range("EndTime must be after StartTime"));
        }
        let buckets = input
            .int_in(
                "Buckets",
                1,
                MAX_BUCKETS as i64,
                "InvalidParameterException",
            )?
            .unwrap_or(DEFAULT_BUCKETS);
        // Whole seconds, so that at most `buckets` cover the range.
        let span = end_ms - start_ms;
        let per = span / buckets + i64::from(span % buckets != 0);
        let bucket_ms = (per / 1000 + i64::from(per % 1000 != 0)).max(1) * 1000;
        Ok(Count {
            query: filters.query(account),
            start_ms,
            end_ms,
            bucket_ms,
        })
    }

    pub fn run(&self, store: &Store) -> Result<Value, ApiError> {
        let counts = store.count(&self.query, self.bucket_ms, self.start_ms, self.end_ms)?;
        Ok(response(&counts))
    }
}

/// Epoch seconds as a JSON number: an integer when the time is a whole second.
fn seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// The CountEvents response of a store count.
pub fn response(counts: &Counts) -> Value {
    let buckets: Vec<Value> = counts
        .counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let start = counts.start_ms + i as i64 * counts.bucket_ms;
            json!({ "Start": seconds(start), "Count": n })
        })
        .collect();
    json!({
        "BucketSeconds": counts.bucket_ms / 1000,
        "Buckets": buckets,
        "Total": counts.total(),
        "Partial": counts.partial,
        "CompleteFrom": seconds(counts.complete_from_ms),
    })
}

/// Serves an operation of `Cairn_20261121`: CountEvents here, the rules operations in
/// [`crate::rules`].
pub async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    if let Some(done) = crate::rules::dispatch(state, caller, op, input).await {
        return done;
    }
    if op != "CountEvents" {
        return Err(ApiError::bad(
            "UnknownOperationException",
            format!(
                "{op} is not an operation of Cairn_20261121: CountEvents, PutRule, GetRule, ListRules, EnableRule, DisableRule, DeleteRule, TestRule, ListAlerts and GetAlertTargets are"
            ),
        ));
    }
    // Counting reveals no more than looking the events up.
    authorize(caller, "cloudtrail:LookupEvents", "*")?;
    let count = Count::parse(&caller.account_id, input)?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || count.run(&store))
        .await
        .map_err(|e| ApiError::internal(format!("count failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Count, ApiError> {
        Count::parse("111122223333", &Input::parse(body.as_bytes()).unwrap())
    }

    #[test]
    fn buckets_are_whole_seconds_and_at_most_those_asked() {
        let c = parse(r#"{"StartTime": 1000, "EndTime": 4600}"#).unwrap();
        assert_eq!(
            (c.start_ms, c.end_ms, c.bucket_ms),
            (1_000_000, 4_600_000, 60_000)
        );
        let c = parse(r#"{"StartTime": 1000, "EndTime": 1100, "Buckets": 60}"#).unwrap();
        assert_eq!(c.bucket_ms, 2000);
        let c = parse(r#"{"StartTime": 1000, "EndTime": 1000.5, "Buckets": 500}"#).unwrap();
        assert_eq!(c.bucket_ms, 1000);
        let c = parse(r#"{"StartTime": 0, "EndTime": 86401, "Buckets": 24}"#).unwrap();
        assert_eq!(c.bucket_ms, 3601 * 1000);
    }

    #[test]
    fn filters_parse_as_lookup_events_does() {
        let c = parse(
            r#"{"StartTime": 1, "EndTime": 2, "LookupAttributes": [
                {"AttributeKey": "AwsRegion", "AttributeValue": "eu-west-1"},
                {"AttributeKey": "ErrorCode", "AttributeValue": "AccessDenied"},
                {"AttributeKey": "AwsRegion", "AttributeValue": "us-east-1"},
                {"AttributeKey": "EventId", "AttributeValue": "e-1"}]}"#,
        )
        .unwrap();
        assert_eq!(c.query.event_ids, ["e-1"]);
        assert_eq!(c.query.filters.len(), 2);
        assert!(!c.query.insights);
    }

    #[test]
    fn errors() {
        let code = |body: &str| parse(body).err().map(|e| e.code);
        assert_eq!(code(r#"{}"#), Some("InvalidTimeRangeException"));
        assert_eq!(
            code(r#"{"StartTime": 5}"#),
            Some("InvalidTimeRangeException")
        );
        assert_eq!(
            code(r#"{"StartTime": 5, "EndTime": 5}"#),
            Some("InvalidTimeRangeException")
        );
        assert_eq!(
            code(r#"{"StartTime": 6, "EndTime": 5}"#),
            Some("InvalidTimeRangeException")
        );
        for bad in ["0", "501", "-3"] {
            assert_eq!(
                code(&format!(
                    r#"{{"StartTime": 1, "EndTime": 5, "Buckets": {bad}}}"#
                )),
                Some("InvalidParameterException"),
                "Buckets {bad}"
            );
        }
        assert_eq!(
            code(
                r#"{"StartTime": 1, "EndTime": 5, "LookupAttributes": [{"AttributeKey": "Region", "AttributeValue": "x"}]}"#
            ),
            Some("InvalidLookupAttributesException")
        );
        assert_eq!(
            code(
                r#"{"StartTime": 1, "EndTime": 5, "EventCategory": "insight", "LookupAttributes": [{"AttributeKey": "SourceIpAddress", "AttributeValue": "1.2.3.4"}]}"#
            ),
            Some("InvalidLookupAttributesException")
        );
        assert_eq!(
            code(r#"{"StartTime": 1, "EndTime": 5, "EventCategory": "data"}"#),
            Some("InvalidEventCategoryException")
        );
    }

    #[test]
    fn response_shape() {
        let counts = Counts {
            start_ms: 10_000,
            end_ms: 12_500,
            bucket_ms: 1000,
            counts: vec![1, 0, 4],
            partial: false,
            complete_from_ms: 10_000,
        };
        assert_eq!(
            response(&counts),
            json!({
                "BucketSeconds": 1,
                "Buckets": [
                    {"Start": 10, "Count": 1},
                    {"Start": 11, "Count": 0},
                    {"Start": 12, "Count": 4},
                ],
                "Total": 5,
                "Partial": false,
                "CompleteFrom": 10,
            })
        );
    }
}
