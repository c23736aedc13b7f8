//! ListInsightsMetricData: the per-period counts Insights judges, for one API in the caller's
//! region: write management calls (`ApiCallRateInsight`) or calls that ended in one error
//! code (`ApiErrorRateInsight`). Counted from the event history, so they cover imported
//! history too, whether or not Insights are on.

use serde_json::{Value, json};

use cairn_store::{Attr, MAX_BUCKETS, Query, Store};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::{Input, paging_token, parse_paging_token};

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad("InvalidParameterException", msg)
}

/// The most data points a response holds (15 days of minutes).
const MAX_POINTS: i64 = 21_600;

pub fn list_insights_metric_data(
    store: &Store,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let source = input.req_str("EventSource")?;
    let name = input.req_str("EventName")?;
    let ty = input.req_str("InsightType")?;
    let error = input.opt_str("ErrorCode")?;
    for (member, v, max) in [("EventSource", source, 256), ("EventName", name, 128)] {
        if v.is_empty() || v.len() > max {
            return Err(invalid(format!("{member} must be 1 to {max} characters")));
        }
    }
    let mut filters = vec![
        (Attr::EventSource, vec![source.to_owned()]),
        (Attr::EventName, vec![name.to_owned()]),
        (Attr::AwsRegion, vec![caller.region.clone()]),
    ];
    match (ty, error) {
        ("ApiCallRateInsight", None) => filters.push((Attr::ReadOnly, vec!["false".into()])),
        ("ApiCallRateInsight", Some(_)) => {
            return Err(invalid(
                "ErrorCode is only for InsightType ApiErrorRateInsight",
            ));
        }
        ("ApiErrorRateInsight", Some(code)) if !code.is_empty() && code.len() <= 128 => {
            filters.push((Attr::ErrorCode, vec![code.to_owned()]))
        }
        ("ApiErrorRateInsight", _) => {
            return Err(invalid(
                "ErrorCode (1 to 128 characters) is required with InsightType ApiErrorRateInsight",
            ));
        }
        (other, _) => {
            return Err(invalid(format!(
                "InsightType {other} is not valid: use ApiCallRateInsight or ApiErrorRateInsight"
            )));
        }
    }
    let period = input
        .int_in("Period", 60, 3600, "InvalidParameterException")?
        .unwrap_or(3600);
    let horizon_days = match period {
        60 => 15,
        300 => 63,
        3600 => 90,
        p => {
            return Err(invalid(format!(
                "Period must be 60, 300 or 3600 seconds; got {p}"
            )));
        }
    };
    let fill = match input.opt_str("DataType")? {
        None | Some("NonZeroData") => false,
        Some("FillWithZeros") => true,
        Some(other) => {
            return Err(invalid(format!(
                "DataType {other} is not valid: use FillWithZeros or NonZeroData"
            )));
        }
    };
    let max_results = input
        .int_in("MaxResults", 1, MAX_POINTS, "InvalidParameterException")?
        .unwrap_or(MAX_POINTS) as usize;
    let offset = match input.opt_str("NextToken")? {
        Some(t) => parse_paging_token(t, "metrics")?,
        None => 0,
    };
    let period_ms = period * 1000;
    let now = cairn_event::now_ms();
    let end_ms = input.timestamp_ms("EndTime")?.unwrap_or(now);
    let start_ms = input
        .timestamp_ms("StartTime")?
        .unwrap_or(end_ms - horizon_days * 86_400_000);
    if start_ms >= end_ms {
        return Err(ApiError::bad(
            "InvalidParameterException",
            "StartTime must be before EndTime",
        ));
    }
    // Whole periods, the last one ending at or after EndTime.
    let start = start_ms.div_euclid(period_ms) * period_ms;
    let end = end_ms.div_euclid(period_ms) * period_ms
        + if end_ms % period_ms == 0 {
            0
        } else {
            period_ms
        };
    let periods = (end - start) / period_ms;
    if periods > MAX_POINTS * 12 {
        return Err(invalid(format!(
            "the time range covers {periods} periods of {period} s; narrow it or use a longer Period"
        )));
    }
    let query = Query {
        account: caller.account_id.clone(),
        filters,
        ..Query::default()
    };
    let mut points: Vec<(i64, u64)> = Vec::new();
    let chunk = MAX_BUCKETS as i64 * period_ms;
    let mut from = start;
    while from < end {
        let to = (from + chunk).min(end);
        let counts = store.count(&query, period_ms, from, to)?;
        for (i, n) in counts.counts.iter().enumerate() {
            if fill || *n > 0 {
                points.push((from + i as i64 * period_ms, *n));
            }
        }
        from = to;
    }
    let page: Vec<&(i64, u64)> = points.iter().skip(offset).take(max_results).collect();
    let mut out = json!({
        "EventSource": source,
        "EventName": name,
        "InsightType": ty,
        "Timestamps": page.iter().map(|(t, _)| json!(t / 1000)).collect::<Vec<_>>(),
        "Values": page.iter().map(|(_, n)| json!(*n as f64)).collect::<Vec<_>>(),
    });
    if let Some(code) = error {
        out["ErrorCode"] = json!(code);
    }
    if offset + page.len() < points.len() {
        out["NextToken"] = json!(paging_token(offset + page.len(), "metrics"));
    }
    Ok(out)
}
