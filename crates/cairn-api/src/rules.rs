//! Rules and alerts, Cairn extensions on the JSON 1.1 endpoint (`X-Amz-Target:
//! Cairn_20261121.<Op>`), signed for `cloudtrail`:
//!
//! | Operation | Allowed by | Input | Output |
//! |---|---|---|---|
//! | `PutRule` | `cloudtrail:PutRule` | `Name`, `EventPattern` (JSON text) or `SigmaRule` (YAML text), `Description`, `Severity`, `Threshold` {`Count`, `WindowSeconds`, `GroupBy`}, `Enabled` | `Rule`, `Created` |
//! | `GetRule` | `cloudtrail:GetRule` | `Name` | `Rule` |
//! | `ListRules` | `cloudtrail:ListRules` | | `Rules`, `Refused` [{`File`, `Reason`}] |
//! | `EnableRule`, `DisableRule` | `cloudtrail:EnableRule`, `cloudtrail:DisableRule` | `Name` | `Rule` |
//! | `DeleteRule` | `cloudtrail:DeleteRule` | `Name` | |
//! | `TestRule` | `cloudtrail:LookupEvents` | `Name` or a rule as `PutRule` takes it; `Events` (records) or `StartTime` and `EndTime`; `MaxAlerts` | `Scanned`, `Matched`, `Alerts`, `Truncated` |
//! | `ListAlerts` | `cloudtrail:ListAlerts` | `RuleName`, `MaxResults`, `NextToken` | `Alerts`, `NextToken` |
//! | `GetAlertTargets` | `cloudtrail:GetAlertTargets` | | `Targets`, `DeadLetterFile` |
//!
//! A `Rule` is {`Name`, `Description`, `Severity`, `Kind` (pattern, sigma), `Origin`
//! (default, folder, custom), `EventPattern` or `SigmaRule`, `Threshold`, `Enabled`, `File`,
//! `UpdatedAt`, `Hits` {`Matched`, `Alerts`, `LastMatch`}}. Alerts are the JSON webhooks
//! receive, with `seq` (their place in the alert log). `GetAlertTargets` gives, per target,
//! `Target`, `Delivered`, `FailedAttempts`, `DeadLettered`, `Pending`, `LastError` and
//! `LastDeliveryMs` (epoch milliseconds).

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Map, Value, json};

use cairn_rules::{
    Dispatcher, Hits, Kind, Origin, Outbox, Registry, Rule, RuleError, RuleSpec, Rules, Severity,
    Threshold,
};
use cairn_store::{Query, Store};

use crate::AppState;
use crate::auth::{Caller, authorize};
use crate::error::ApiError;
use crate::input::Input;

/// Most events `TestRule` reads from history.
pub const MAX_TEST_SCAN: usize = 1_000_000;
/// Most events of history `TestRule` keeps to run the rule on (those it may match).
pub const MAX_TEST_CANDIDATES: usize = 100_000;
/// Most events `TestRule` takes in its request.
pub const MAX_TEST_EVENTS: usize = 10_000;

/// The rules machinery of a running server.
pub struct Alerting {
    pub rules: Arc<Rules>,
    pub registry: Arc<Registry>,
    pub outbox: Arc<Outbox>,
    pub dispatcher: Arc<Dispatcher>,
    /// The server's public address, for links in alerts.
    pub console_base: Arc<RwLock<String>>,
}

fn rule_error(e: RuleError) -> ApiError {
    let status = if e.code == "RuleNotFoundException" {
        404
    } else {
        400
    };
    ApiError::new(e.code, status, e.message)
}

fn seconds(ms: i64) -> Value {
    json!(ms / 1000)
}

/// A rule as the API returns it.
pub fn rule_json(spec: &RuleSpec, hits: Option<&Hits>) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), json!(spec.name));
    m.insert("Description".into(), json!(spec.description));
    m.insert("Severity".into(), json!(spec.severity.as_str()));
    m.insert("Kind".into(), json!(spec.kind.as_str()));
    m.insert("Origin".into(), json!(spec.origin.as_str()));
    let source_key = match spec.kind {
        Kind::Pattern => "EventPattern",
        Kind::Sigma => "SigmaRule",
    };
    m.insert(source_key.into(), json!(spec.source));
    if let Some(t) = &spec.threshold {
        m.insert(
            "Threshold".into(),
            json!({"Count": t.count, "WindowSeconds": t.window_seconds, "GroupBy": t.group_by}),
        );
    }
    m.insert("Enabled".into(), json!(spec.enabled));
    if let Some(f) = &spec.file {
        m.insert("File".into(), json!(f));
    }
    if spec.updated_ms > 0 {
        m.insert("UpdatedAt".into(), seconds(spec.updated_ms));
    }
    let h = hits.cloned().unwrap_or_default();
    m.insert(
        "Hits".into(),
        json!({
            "Matched": h.matched,
            "Alerts": h.alerts,
            "LastMatch": if h.last_match_ms > 0 { seconds(h.last_match_ms) } else { Value::Null },
        }),
    );
    Value::Object(m)
}

/// Reads a rule from `PutRule`'s (or `TestRule`'s) members.
pub fn parse_rule(input: &Input, name: &str) -> Result<RuleSpec, ApiError> {
    let pattern = input.opt_str("EventPattern")?;
    let sigma = input.opt_str("SigmaRule")?;
    let (kind, source) = match (pattern, sigma) {
        (Some(p), None) => (Kind::Pattern, p),
        (None, Some(s)) => (Kind::Sigma, s),
        _ => {
            return Err(ApiError::bad(
                "InvalidParameterCombinationException",
                "give exactly one of EventPattern (an EventBridge event pattern as JSON text) and SigmaRule (a Sigma rule as YAML text)",
            ));
        }
    };
    let severity = match input.opt_str("Severity")? {
        None => Severity::Medium,
        Some(s) => Severity::parse(s).ok_or_else(|| {
            ApiError::bad(
                "InvalidParameterException",
                format!("Severity {s:?} must be info, low, medium, high or critical"),
            )
        })?,
    };
    let threshold = match input.0.get("Threshold").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Object(t)) => {
            let int = |k: &str| -> Result<u32, ApiError> {
                t.get(k)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::bad(
                            "InvalidParameterException",
                            format!("Threshold.{k} must be a positive integer"),
                        )
                    })
            };
            let group_by = match t.get("GroupBy") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            ApiError::bad(
                                "InvalidParameterException",
                                "Threshold.GroupBy must be a list of strings",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(ApiError::bad(
                        "InvalidParameterException",
                        "Threshold.GroupBy must be a list of strings",
                    ));
                }
            };
            Some(Threshold {
                count: int("Count")?,
                window_seconds: int("WindowSeconds")?,
                group_by,
            })
        }
        Some(_) => {
            return Err(ApiError::bad(
                "SerializationException",
                "Threshold must be an object {Count, WindowSeconds, GroupBy}",
            ));
        }
    };
    Ok(RuleSpec {
        name: name.to_owned(),
        description: input.opt_str("Description")?.unwrap_or_default().to_owned(),
        severity,
        kind,
        source: source.to_owned(),
        threshold,
        enabled: input.opt_bool("Enabled")?.unwrap_or(true),
        origin: Origin::Custom,
        file: None,
        updated_ms: 0,
    })
}

fn alerting(state: &AppState) -> Result<&Alerting, ApiError> {
    state.alerting.as_deref().ok_or_else(|| {
        ApiError::bad(
            "RulesNotEnabledException",
            "rules are off on this server (it was started with --no-rules)",
        )
    })
}

fn hits_of(a: &Alerting, account: &str, name: &str) -> Option<Hits> {
    a.rules
        .hits(account)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, h)| h)
}

/// Serves a rules operation; `None` when `op` is not one.
pub async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Option<Result<Value, ApiError>> {
    let known = matches!(
        op,
        "PutRule"
            | "GetRule"
            | "ListRules"
            | "EnableRule"
            | "DisableRule"
            | "DeleteRule"
            | "TestRule"
            | "ListAlerts"
            | "GetAlertTargets"
    );
    if !known {
        return None;
    }
    Some(serve(state, caller, op, input).await)
}

async fn serve(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    let action = match op {
        "TestRule" => "cloudtrail:LookupEvents".to_owned(),
        _ => format!("cloudtrail:{op}"),
    };
    authorize(caller, &action, "*")?;
    let a = alerting(state)?;
    let account = caller.account_id.as_str();
    let now = cairn_event::now_ms();
    match op {
        "PutRule" => {
            let name = input.req_str("Name")?;
            let spec = parse_rule(input, name)?;
            let replaced = a.registry.put(account, spec, now).map_err(rule_error)?;
            let spec = a.registry.get(account, name).map_err(rule_error)?;
            Ok(
                json!({"Rule": rule_json(&spec, hits_of(a, account, name).as_ref()), "Created": !replaced}),
            )
        }
        "GetRule" => {
            let name = input.req_str("Name")?;
            let spec = a.registry.get(account, name).map_err(rule_error)?;
            Ok(json!({"Rule": rule_json(&spec, hits_of(a, account, name).as_ref())}))
        }
        "ListRules" => {
            let hits = a.rules.hits(account);
            let rules: Vec<Value> = a
                .registry
                .list(account)
                .iter()
                .map(|s| {
                    let h = hits.iter().find(|(n, _)| *n == s.name).map(|(_, h)| h);
                    rule_json(s, h)
                })
                .collect();
            let refused: Vec<Value> = a
                .registry
                .refused()
                .iter()
                .map(|r| json!({"File": r.file.display().to_string(), "Reason": r.reason}))
                .collect();
            Ok(json!({"Rules": rules, "Refused": refused}))
        }
        "EnableRule" | "DisableRule" => {
            let name = input.req_str("Name")?;
            a.registry
                .set_enabled(account, name, op == "EnableRule", now)
                .map_err(rule_error)?;
            let spec = a.registry.get(account, name).map_err(rule_error)?;
            Ok(json!({"Rule": rule_json(&spec, hits_of(a, account, name).as_ref())}))
        }
        "DeleteRule" => {
            let name = input.req_str("Name")?;
            a.registry.delete(account, name).map_err(rule_error)?;
            a.rules.forget(account, name);
            Ok(json!({}))
        }
        "TestRule" => test_rule(state, a, account, input).await,
        "ListAlerts" => list_alerts(a, account, input),
        _ => {
            let targets: Vec<Value> = a
                .dispatcher
                .status()
                .into_iter()
                .filter_map(|s| serde_json::to_value(s).ok())
                .collect();
            Ok(json!({
                "Targets": targets,
                "DeadLetterFile": a.dispatcher.dead_letter_path().map(|p| p.display().to_string()),
            }))
        }
    }
}

async fn test_rule(
    state: &AppState,
    a: &Alerting,
    account: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    let spec = match input.opt_str("Name")? {
        Some(name)
            if input.0.get("EventPattern").is_none() && input.0.get("SigmaRule").is_none() =>
        {
            a.registry.get(account, name).map_err(rule_error)?
        }
        name => parse_rule(input, name.unwrap_or("test"))?,
    };
    let rule = Rule::compile(spec).map_err(rule_error)?;
    let max_alerts = input
        .int_in("MaxAlerts", 1, 1000, "InvalidParameterException")?
        .unwrap_or(100) as usize;
    let events = input.list("Events")?;
    let start = input.timestamp_ms("StartTime")?;
    let end = input.timestamp_ms("EndTime")?;
    let (records, scanned, cut) = match (events, start, end) {
        (Some(events), None, None) => {
            if events.len() > MAX_TEST_EVENTS {
                return Err(ApiError::bad(
                    "InvalidParameterException",
                    format!(
                        "Events takes at most {MAX_TEST_EVENTS} records; test bigger files with `cairn rules test --file`"
                    ),
                ));
            }
            let n = events.len() as u64;
            (events, n, false)
        }
        (None, Some(s), Some(e)) if e > s => {
            let store = state.store.clone();
            let account = account.to_owned();
            let rule = rule.clone();
            tokio::task::spawn_blocking(move || history(&store, &account, &rule, s, e))
                .await
                .map_err(|e| ApiError::internal(format!("test failed: {e}")))??
        }
        (None, Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "InvalidTimeRangeException",
                "EndTime must be after StartTime",
            ));
        }
        _ => {
            return Err(ApiError::bad(
                "InvalidParameterCombinationException",
                "give either Events (a list of CloudTrail records) or StartTime and EndTime (stored history)",
            ));
        }
    };
    let base = a.console_base.read().clone();
    let outcome = cairn_rules::test_rule(rule, account, records, max_alerts);
    let now = cairn_rules::iso(cairn_event::now_ms());
    let alerts: Vec<Value> = outcome
        .alerts
        .iter()
        .map(|al| cairn_rules::engine::alert_json(al, &base, &now))
        .collect();
    Ok(json!({
        "Scanned": scanned,
        "Matched": outcome.matched,
        "Alerts": alerts,
        "Truncated": outcome.truncated || cut,
    }))
}

/// The account's stored events in `[start, end]` the rule may match, oldest first, with how
/// many events were read and whether a limit cut the scan short. At most [`MAX_TEST_SCAN`]
/// events are read and [`MAX_TEST_CANDIDATES`] kept (the newest of them); events the rule
/// plainly cannot match (see [`cairn_rules::rule::Prefilter`]) are not parsed.
fn history(
    store: &Store,
    account: &str,
    rule: &Rule,
    start: i64,
    end: i64,
) -> Result<(Vec<Value>, u64, bool), ApiError> {
    let rules = [Arc::new(rule.clone())];
    let mut out = Vec::new();
    let mut scanned = 0u64;
    let mut q = Query {
        account: account.to_owned(),
        start_ms: Some(start),
        end_ms: Some(end),
        limit: 10_000,
        ..Query::default()
    };
    let cut = loop {
        let page = store.lookup(&q)?;
        for f in page.events {
            scanned += 1;
            if cairn_rules::may_match(&rules, &f.record)
                && let Ok(v) = serde_json::from_slice::<Value>(&f.record)
            {
                out.push(v);
            }
        }
        match page.next {
            Some(_) if scanned as usize >= MAX_TEST_SCAN || out.len() >= MAX_TEST_CANDIDATES => {
                break true;
            }
            Some(next) => q.after = Some(next),
            None => break false,
        }
    };
    out.reverse();
    Ok((out, scanned, cut))
}

fn list_alerts(a: &Alerting, account: &str, input: &Input) -> Result<Value, ApiError> {
    let max = input
        .int_in("MaxResults", 1, 200, "InvalidParameterException")?
        .unwrap_or(50) as usize;
    let before = match input.opt_str("NextToken")? {
        None => None,
        Some(t) => Some(crate::input::parse_paging_token(t, "alerts")? as u64),
    };
    let rule = input.opt_str("RuleName")?;
    let found = a
        .outbox
        .recent(account, rule, before, max + 1)
        .map_err(|e| ApiError::internal(format!("cannot read the alert log: {e}")))?;
    let base = a.console_base.read().clone();
    let more = found.len() > max;
    let alerts: Vec<Value> = found
        .iter()
        .take(max)
        .map(|s| {
            let mut v =
                cairn_rules::engine::alert_json(&s.alert, &base, &cairn_rules::iso(s.detected_ms));
            v["seq"] = json!(s.seq);
            v
        })
        .collect();
    let mut out = json!({"Alerts": alerts});
    if more && let Some(last) = found.get(max - 1) {
        out["NextToken"] = json!(crate::input::paging_token(last.seq as usize, "alerts"));
    }
    Ok(out)
}
