//! Evaluating rules on a stream of records: matching, threshold windows (by event time, per
//! rule and group) and hit counts. Pure: no I/O and no clock, so replaying the same records
//! from the same state makes the same alerts with the same IDs.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rule::{Rule, RuleSet};

/// One alert: a rule fired on an event (or, for a threshold, on the event that completed the
/// count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable: the same rule firing on the same event always has the same ID.
    pub alert_id: String,
    pub account: String,
    pub rule: String,
    pub severity: String,
    pub kind: String,
    pub origin: String,
    pub description: String,
    /// The event's time (epoch ms).
    pub event_time_ms: i64,
    pub event_id: String,
    /// For a threshold: the group, how many events and which ones.
    pub group: Option<Group>,
    /// The record.
    pub event: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// `path=value` for each group-by path.
    pub key: BTreeMap<String, String>,
    pub count: u32,
    pub window_seconds: u32,
    pub event_ids: Vec<String>,
}

/// Hits of one rule in one account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hits {
    /// Matching events.
    pub matched: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// The time of the last matching event (epoch ms).
    pub last_match_ms: i64,
}

/// The evaluator's state, saved with the consumer's cursor.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Engine {
    /// Open threshold windows: `account \x1f rule \x1f group` to the (time, eventID) of the
    /// matching events counted so far.
    windows: BTreeMap<String, VecDeque<(i64, String)>>,
    /// `account \x1f rule` to its hits.
    hits: BTreeMap<String, Hits>,
    /// The latest event time seen (epoch ms), to let go of old windows.
    latest_ms: i64,
    /// Records that were not JSON objects.
    pub unreadable: u64,
}

fn key2(account: &str, rule: &str) -> String {
    format!("{account}\u{1f}{rule}")
}

/// The stable ID of an alert.
pub fn alert_id(account: &str, rule: &str, group: Option<&str>, event_id: &str) -> String {
    let name = match group {
        Some(g) => format!("alert|{account}|{rule}|{g}|{event_id}"),
        None => format!("alert|{account}|{rule}|{event_id}"),
    };
    uuid::Uuid::new_v5(&crate::NAMESPACE, name.as_bytes()).to_string()
}

/// The epoch-ms time of a record's `eventTime` (0 when it has none).
pub fn event_time_ms(record: &Value) -> i64 {
    record
        .get("eventTime")
        .and_then(Value::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Evaluates `rules` on one record stored in `account`, pushing the alerts it raises.
    pub fn observe(
        &mut self,
        account: &str,
        record: &Value,
        rules: &RuleSet,
        out: &mut Vec<Alert>,
    ) {
        if rules.is_empty() {
            return;
        }
        self.observe_owned(account, record.clone(), rules, out);
    }

    /// [`Engine::observe`] for a record the caller no longer needs: it becomes the
    /// envelope's `detail` without a copy.
    pub fn observe_owned(
        &mut self,
        account: &str,
        record: Value,
        rules: &RuleSet,
        out: &mut Vec<Alert>,
    ) {
        if rules.is_empty() {
            return;
        }
        if !record.is_object() {
            self.unreadable += 1;
            return;
        }
        let t = event_time_ms(&record);
        self.latest_ms = self.latest_ms.max(t);
        let env = crate::envelope::envelope_of(account, record);
        let record = &env["detail"];
        for rule in rules.iter() {
            if rule.matches(record, &env) {
                self.fire(account, rule, record, &env, t, out);
            }
        }
    }

    fn fire(
        &mut self,
        account: &str,
        rule: &Rule,
        record: &Value,
        env: &Value,
        t: i64,
        out: &mut Vec<Alert>,
    ) {
        let spec = &rule.spec;
        let event_id = record
            .get("eventID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let hits = self.hits.entry(key2(account, &spec.name)).or_default();
        hits.matched += 1;
        hits.last_match_ms = hits.last_match_ms.max(t);
        let group = match &spec.threshold {
            None => None,
            Some(th) => {
                let g = th.group_of(env);
                let wkey = format!("{account}\u{1f}{}\u{1f}{g}", spec.name);
                let window = self.windows.entry(wkey.clone()).or_default();
                let span = i64::from(th.window_seconds) * 1000;
                let count = th.count as usize;
                // An event counted already (a replay) is not counted twice.
                if event_id.is_empty() || !window.iter().any(|(_, id)| *id == event_id) {
                    window.push_back((t, event_id.clone()));
                    window.make_contiguous().sort_by_key(|(at, _)| *at);
                }
                // Events arrive a little out of order: a late one may complete a count with
                // the events before it, and must not push newer ones out. An event is let go
                // once it is a window older than both the newest event and this one.
                let newest = window.back().map_or(t, |(at, _)| *at);
                window.retain(|(at, _)| newest - *at < span || (t - *at).abs() < span);
                // The first `count` events, in time order, that fit in one window.
                let run = (0..(window.len() + 1).saturating_sub(count))
                    .find(|&i| window[i + count - 1].0 - window[i].0 < span);
                let Some(first) = run else {
                    return;
                };
                let ids: Vec<String> = window
                    .range(first..first + count)
                    .map(|(_, id)| id.clone())
                    .collect();
                self.windows.remove(&wkey);
                let key = th
                    .group_by
                    .iter()
                    .zip(g.split('|'))
                    .map(|(p, v)| (p.clone(), v.to_owned()))
                    .collect();
                Some((
                    g,
                    Group {
                        key,
                        count: th.count,
                        window_seconds: th.window_seconds,
                        event_ids: ids,
                    },
                ))
            }
        };
        if let Some(h) = self.hits.get_mut(&key2(account, &spec.name)) {
            h.alerts += 1;
        }
        out.push(Alert {
            alert_id: alert_id(
                account,
                &spec.name,
                group.as_ref().map(|(g, _)| g.as_str()),
                &event_id,
            ),
            account: account.to_owned(),
            rule: spec.name.clone(),
            severity: spec.severity.as_str().to_owned(),
            kind: spec.kind.as_str().to_owned(),
            origin: spec.origin.as_str().to_owned(),
            description: spec.description.clone(),
            event_time_ms: t,
            event_id,
            group: group.map(|(_, g)| g),
            event: record.clone(),
        });
    }

    /// Hits per rule of one account.
    pub fn hits(&self, account: &str) -> Vec<(String, Hits)> {
        let prefix = format!("{account}\u{1f}");
        self.hits
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, h)| (k[prefix.len()..].to_owned(), h.clone()))
            .collect()
    }

    /// Forgets a rule's hits and windows in an account (it was deleted).
    pub fn forget(&mut self, account: &str, rule: &str) {
        let k = key2(account, rule);
        self.hits.remove(&k);
        let prefix = format!("{k}\u{1f}");
        self.windows.retain(|w, _| !w.starts_with(&prefix));
    }

    /// Events counted in open windows (for status and tests).
    pub fn open_windows(&self) -> usize {
        self.windows.values().map(VecDeque::len).sum()
    }

    /// Drops windows whose newest event is more than a day older than the latest event seen
    /// (no window is longer than a day).
    pub fn prune(&mut self) {
        let horizon = self.latest_ms - i64::from(crate::rule::MAX_WINDOW_SECONDS) * 1000;
        self.windows
            .retain(|_, w| w.back().is_some_and(|(t, _)| *t >= horizon));
    }
}

/// The JSON an alert is delivered as: the rule, a summary of the event, the event itself and
/// a link to it in the console (`console_base` is the server's public address).
pub fn alert_json(alert: &Alert, console_base: &str, detected_at: &str) -> Value {
    let ev = &alert.event;
    let s = |k: &str| ev.get(k).cloned().unwrap_or(Value::Null);
    let time = ev
        .get("eventTime")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut v = json!({
        "alertId": alert.alert_id,
        "account": alert.account,
        "rule": {
            "name": alert.rule,
            "severity": alert.severity,
            "kind": alert.kind,
            "origin": alert.origin,
            "description": alert.description,
        },
        "summary": summary(alert),
        "eventId": alert.event_id,
        "eventTime": time,
        "eventName": s("eventName"),
        "eventSource": s("eventSource"),
        "awsRegion": s("awsRegion"),
        "sourceIPAddress": s("sourceIPAddress"),
        "principal": principal(ev),
        "errorCode": s("errorCode"),
        "detectedAt": detected_at,
        "consoleUrl": console_link(console_base, &alert.event_id, alert.event_time_ms),
        "event": ev,
    });
    if let Some(g) = &alert.group {
        v["group"] = json!({
            "key": g.key,
            "count": g.count,
            "windowSeconds": g.window_seconds,
            "eventIds": g.event_ids,
        });
    }
    v
}

/// Who made the call, as briefly as the record allows.
pub fn principal(ev: &Value) -> String {
    let u = ev.get("userIdentity");
    let get = |k: &str| u.and_then(|u| u.get(k)).and_then(Value::as_str);
    get("arn")
        .or_else(|| get("userName"))
        .or_else(|| get("invokedBy"))
        .or_else(|| get("principalId"))
        .or_else(|| get("type"))
        .unwrap_or("unknown")
        .to_owned()
}

/// One line saying what happened.
pub fn summary(alert: &Alert) -> String {
    let ev = &alert.event;
    let s = |k: &str| ev.get(k).and_then(Value::as_str).unwrap_or("?");
    let mut line = format!(
        "{} by {} from {} in {}",
        s("eventName"),
        principal(ev),
        s("sourceIPAddress"),
        s("awsRegion"),
    );
    if let Some(code) = ev
        .get("errorCode")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        line.push_str(&format!(" (failed: {code})"));
    }
    if let Some(g) = &alert.group {
        line = format!(
            "{} matching events within {} s; the last: {line}",
            g.count, g.window_seconds
        );
    }
    line
}

/// The console page showing one event: the event history filtered on its ID, over the
/// minutes around it.
pub fn console_link(base: &str, event_id: &str, time_ms: i64) -> String {
    let iso = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "{}/console/events?start={}&end={}&f={}",
        base.trim_end_matches('/'),
        enc(&iso(time_ms - 3_600_000)),
        enc(&iso(time_ms + 3_600_000)),
        enc(&format!("EventId:{event_id}")),
    )
}
