//! The detector: per-minute series of API calls and errors, their baselines, and the
//! incidents that become Start and End insight events. Pure: no I/O, no clock of its own.
//!
//! A *series* counts, per minute of event time, the calls of one API (account, region, event
//! source, event name) that Insights looks at: write management calls (or every data call)
//! for `ApiCallRateInsight`, calls that ended in one error code for `ApiErrorRateInsight`.
//! A minute is *settled* once nothing more is expected for it: when an event of the same API
//! at least [`EVENT_GRACE_MS`] past the minute's end has been seen (history, replays and
//! imports move time forward by their own event times), or, for live traffic, when the wall
//! clock is [`WALL_GRACE_MS`] past it. A settled minute is judged against the baseline of the
//! seven days before it, then folded into that baseline. Events of settled minutes still
//! count toward the baseline; they cannot start an insight.
//!
//! The test, per settled minute with `x` calls (see the README for the reasoning):
//! - expected rate `λ` = the larger of the 7-day mean per minute and the mean per minute of
//!   the same hour of day (and the hours beside it) over those days, so daily peaks are
//!   expected at their hour;
//! - spread `s` = the largest of the 7-day standard deviation, that of the same hours of day,
//!   and `√λ` (the Poisson noise of a count with that mean);
//! - an insight starts when `x ≥ λ + k·s`, `x ≥` [`Options::min_calls`], and a Poisson
//!   count of mean `λ` reaches `x` no more often than a normal variable passes `k` (for
//!   `k` = 5, about 3 in 10 million minutes), with `k` the sensitivity; it ends after [`Options::calm_minutes`] minutes in a row below
//!   `λ + k/2·s` (with the baseline frozen at the start), and its End carries the time the
//!   unusual activity stopped.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const MINUTE_MS: i64 = 60_000;
/// The baseline window: the 7 days before a minute.
pub const WINDOW_MINUTES: i64 = 7 * 24 * 60;
/// An event at least this far past a minute's end settles the minute.
pub const EVENT_GRACE_MS: i64 = 120_000;
/// The wall clock this far past a minute's end settles it, for live traffic.
pub const WALL_GRACE_MS: i64 = 10_000;
/// An API whose newest event is at most this old (by the wall clock) is live.
pub const LIVE_WINDOW_MS: i64 = 15 * MINUTE_MS;
/// Hour sums kept per series: the window and a little more.
const KEEP_HOURS: i64 = 7 * 24 + 2;
/// Days of attribution tallies kept per series.
const KEEP_DAYS: i64 = 9;
/// Distinct values tallied per attribute and bucket; more are counted as "other".
const ATTR_CAP: usize = 24;
/// Values listed per attribution.
const TOP: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InsightType {
    ApiCallRateInsight,
    ApiErrorRateInsight,
}

impl InsightType {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightType::ApiCallRateInsight => "ApiCallRateInsight",
            InsightType::ApiErrorRateInsight => "ApiErrorRateInsight",
        }
    }

    pub fn parse(s: &str) -> Option<InsightType> {
        match s {
            "ApiCallRateInsight" => Some(InsightType::ApiCallRateInsight),
            "ApiErrorRateInsight" => Some(InsightType::ApiErrorRateInsight),
            _ => None,
        }
    }
}

/// The event category a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Class {
    Management,
    Data,
}

/// Which insights an account has turned on in a region (on any trail or event data store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    pub call_management: bool,
    pub error_management: bool,
    pub call_data: bool,
    pub error_data: bool,
}

impl Enabled {
    /// Every insight on, in every account and region (an [`crate::EnabledFn`] for tools,
    /// tests and benchmarks).
    pub fn everywhere(_account: &str, _region: &str) -> Enabled {
        Enabled {
            call_management: true,
            error_management: true,
            call_data: true,
            error_data: true,
        }
    }

    pub fn allows(&self, ty: InsightType, class: Class) -> bool {
        match (ty, class) {
            (InsightType::ApiCallRateInsight, Class::Management) => self.call_management,
            (InsightType::ApiErrorRateInsight, Class::Management) => self.error_management,
            (InsightType::ApiCallRateInsight, Class::Data) => self.call_data,
            (InsightType::ApiErrorRateInsight, Class::Data) => self.error_data,
        }
    }

    pub fn any(&self) -> bool {
        self.call_management || self.error_management || self.call_data || self.error_data
    }

    /// Adds what an `InsightSelectors` list turns on.
    pub fn add_selectors(&mut self, selectors: &[Value]) {
        for s in selectors {
            let Some(ty) = s
                .get("InsightType")
                .and_then(Value::as_str)
                .and_then(InsightType::parse)
            else {
                continue;
            };
            let cats: Vec<&str> = match s.get("EventCategories").and_then(Value::as_array) {
                Some(a) => a.iter().filter_map(Value::as_str).collect(),
                None => vec!["Management"],
            };
            for c in cats {
                let slot = match (ty, c) {
                    (InsightType::ApiCallRateInsight, "Management") => &mut self.call_management,
                    (InsightType::ApiErrorRateInsight, "Management") => &mut self.error_management,
                    (InsightType::ApiCallRateInsight, "Data") => &mut self.call_data,
                    (InsightType::ApiErrorRateInsight, "Data") => &mut self.error_data,
                    _ => continue,
                };
                *slot = true;
            }
        }
    }
}

/// The detector's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// `k`: how many spreads above the expected rate a minute must be to start an insight.
    pub sensitivity: f64,
    /// The fewest calls in a minute that can start an insight.
    pub min_calls: u64,
    /// Minutes of history an account needs in a region before insights start there.
    pub min_history_minutes: i64,
    /// Calm minutes in a row that end an insight.
    pub calm_minutes: u32,
    /// How often the worker saves its state (and lets the journal go up to it), in ms.
    pub save_every_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sensitivity: 5.0,
            min_calls: 5,
            min_history_minutes: 24 * 60,
            calm_minutes: 2,
            save_every_ms: 30_000,
        }
    }
}

/// Parses the sensitivity setting: `low`, `medium`, `high`, or a number of spreads.
pub fn parse_sensitivity(s: &str) -> Option<f64> {
    match s {
        "low" => Some(7.0),
        "medium" => Some(5.0),
        "high" => Some(4.0),
        n => n.parse::<f64>().ok().filter(|k| k.is_finite() && *k > 0.0),
    }
}

/// An insight record to store, with the account it belongs to.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub account: String,
    pub record: Vec<u8>,
    pub start: bool,
}

/// Counters for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Events counted into some series.
    pub events: u64,
    /// Events that came for an already settled minute.
    pub late: u64,
    /// Settled minutes judged with a full baseline (the chances of a false alarm).
    pub judged: u64,
    pub starts: u64,
    pub ends: u64,
}

// ------------------------------------------------------------------------------------------
// Tallies of who and what drove the calls
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tally {
    users: BTreeMap<String, u64>,
    agents: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    if let Some(c) = map.get_mut(key) {
        *c += n;
    } else if map.len() < ATTR_CAP {
        map.insert(key.to_owned(), n);
    }
}

impl Tally {
    fn add(&mut self, user: &str, agent: &str, error: &str) {
        bump(&mut self.users, user, 1);
        bump(&mut self.agents, agent, 1);
        bump(&mut self.errors, error, 1);
    }

    fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.users {
            bump(&mut self.users, k, *n);
        }
        for (k, n) in &other.agents {
            bump(&mut self.agents, k, *n);
        }
        for (k, n) in &other.errors {
            bump(&mut self.errors, k, *n);
        }
    }
}

/// The top values of a tally as `[{"value", "average"}]`, per minute over `minutes`.
fn top(map: &BTreeMap<String, u64>, minutes: f64) -> Vec<(String, f64)> {
    let mut v: Vec<(&String, &u64)> = map.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter()
        .take(TOP)
        .map(|(k, n)| (k.clone(), *n as f64 / minutes.max(1.0)))
        .collect()
}

/// Attribution lists: (attribute, values with averages).
type Attributions = Vec<(String, Vec<(String, f64)>)>;

fn attributions(t: &Tally, minutes: f64, with_errors: bool) -> Attributions {
    let mut out = vec![
        ("userIdentityArn".to_owned(), top(&t.users, minutes)),
        ("userAgent".to_owned(), top(&t.agents, minutes)),
    ];
    if with_errors {
        out.push(("errorCode".to_owned(), top(&t.errors, minutes)));
    }
    out
}

/// `P(X ≥ x)` for a Poisson count of mean `mean` (exact for the small means where the
/// normal approximation is too thin-tailed; large means are left to the spread test).
pub fn poisson_tail(x: u64, mean: f64) -> f64 {
    if mean <= 0.0 {
        return if x == 0 { 1.0 } else { 0.0 };
    }
    if mean > 200.0 || x > 2000 {
        return 0.0;
    }
    // log P(X = x) = -mean + x ln(mean) - ln(x!)
    let ln_fact: f64 = (2..=x).map(|i| (i as f64).ln()).sum();
    let mut term = (-mean + x as f64 * mean.ln() - ln_fact).exp();
    let mut sum = 0.0;
    let mut i = x;
    while term > sum * 1e-12 && i < x + 1000 {
        sum += term;
        i += 1;
        term *= mean / i as f64;
    }
    sum.min(1.0)
}

/// `P(Z ≥ k)` for a standard normal `Z` (an asymptotic series, close enough from k = 2 on).
pub fn normal_tail(k: f64) -> f64 {
    let k = k.max(1.0);
    let density = (-k * k / 2.0).exp() / (std::f64::consts::TAU).sqrt();
    density / k * (1.0 - 1.0 / (k * k) + 3.0 / k.powi(4))
}

fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return 0.0;
    }
    // Ten significant digits, like CloudTrail's figures.
    let digits = 10 - (x.abs().log10().floor() as i32) - 1;
    let f = 10f64.powi(digits.clamp(0, 15));
    (x * f).round() / f
}

// ------------------------------------------------------------------------------------------
// Series
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct HourSum {
    sum: u64,
    sumsq: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Minute {
    count: u64,
    tally: Tally,
}

/// What an insight compares against, frozen when it starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Baseline {
    /// Mean calls per minute over the window.
    average: f64,
    /// Minutes in the window.
    minutes: i64,
    /// Expected rate and spread (see the module's comment).
    expected: f64,
    spread: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Incident {
    shared_id: String,
    start_minute: i64,
    baseline: Baseline,
    baseline_attributions: Attributions,
    last_hot: i64,
    calm: u32,
    /// Calls from the start through the last hot minute.
    total: u64,
    /// Calls of the calm minutes since the last hot one.
    calm_total: u64,
    tally: Tally,
    /// Who made the calls of those calm minutes (part of the insight only if it goes on).
    #[serde(default)]
    calm_tally: Tally,
    /// Whether the Start was recorded (Insights were on when it began).
    emitted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Series {
    /// Minutes before this one are settled (`None`: nothing settled yet).
    settled_to: Option<i64>,
    pending: BTreeMap<i64, Minute>,
    hours: BTreeMap<i64, HourSum>,
    days: BTreeMap<i64, Tally>,
    incident: Option<Incident>,
}

impl Series {
    fn add(&mut self, minute: i64, user: &str, agent: &str, error: &str, counters: &mut Counters) {
        counters.events += 1;
        if self.settled_to.is_some_and(|s| minute < s) {
            // Late: into the baseline only. Its minute's count is no longer known; adding one
            // call to a minute of the hour's mean count raises the sum of squares by about
            // 2·mean + 1.
            counters.late += 1;
            let h = self.hours.entry(minute.div_euclid(60)).or_default();
            h.sumsq += 2 * (h.sum / 60) + 1;
            h.sum += 1;
            self.days
                .entry(minute.div_euclid(1440))
                .or_default()
                .add(user, agent, error);
            return;
        }
        let m = self.pending.entry(minute).or_default();
        m.count += 1;
        m.tally.add(user, agent, error);
    }

    /// The baseline of minute `m`, given the account's history in the region from
    /// `history_from` (a minute).
    fn baseline(&self, m: i64, history_from: i64) -> Option<Baseline> {
        let start = (m - WINDOW_MINUTES).max(history_from);
        let minutes = m - start;
        if minutes <= 0 {
            return None;
        }
        let (mut sum, mut sumsq) = (0u64, 0u64);
        for (_, h) in self.hours.range(start.div_euclid(60)..=m.div_euclid(60)) {
            sum += h.sum;
            sumsq += h.sumsq;
        }
        let n = minutes as f64;
        let average = sum as f64 / n;
        let var = (sumsq as f64 / n - average * average).max(0.0);
        let (mut expected, mut spread) = (average, var.sqrt());
        // The same hour of day (and its neighbours) on each of the previous days.
        let hour = m.div_euclid(60);
        for offset in -1..=1 {
            let (mut hours, mut s, mut sq) = (0u64, 0u64, 0u64);
            for day in 1..=7 {
                let hh = hour + offset - 24 * day;
                if hh * 60 < history_from {
                    continue;
                }
                hours += 1;
                if let Some(h) = self.hours.get(&hh) {
                    s += h.sum;
                    sq += h.sumsq;
                }
            }
            if hours == 0 {
                continue;
            }
            let n = (hours * 60) as f64;
            let mean = s as f64 / n;
            let var = (sq as f64 / n - mean * mean).max(0.0);
            expected = expected.max(mean);
            spread = spread.max(var.sqrt());
        }
        spread = spread.max(expected.sqrt());
        Some(Baseline {
            average,
            minutes,
            expected,
            spread,
        })
    }

    fn baseline_tally(&self, m: i64, minutes: i64) -> Tally {
        let mut t = Tally::default();
        for (_, d) in self
            .days
            .range((m - minutes).div_euclid(1440)..=m.div_euclid(1440))
        {
            t.merge(d);
        }
        t
    }

    fn fold(&mut self, m: i64, minute: &Minute) {
        let h = self.hours.entry(m.div_euclid(60)).or_default();
        h.sum += minute.count;
        h.sumsq += minute.count * minute.count;
        if minute.count > 0 {
            self.days
                .entry(m.div_euclid(1440))
                .or_default()
                .merge(&minute.tally);
        }
        let keep_hour = m.div_euclid(60) - KEEP_HOURS;
        while self
            .hours
            .first_key_value()
            .is_some_and(|(h, _)| *h < keep_hour)
        {
            self.hours.pop_first();
        }
        let keep_day = m.div_euclid(1440) - KEEP_DAYS;
        while self
            .days
            .first_key_value()
            .is_some_and(|(d, _)| *d < keep_day)
        {
            self.days.pop_first();
        }
    }

    fn idle(&self) -> bool {
        self.pending.is_empty() && self.incident.is_none()
    }
}

/// What identifies a series, for the records and their IDs.
struct Subject<'a> {
    account: &'a str,
    region: &'a str,
    source: &'a str,
    name: &'a str,
    ty: InsightType,
    error: Option<&'a str>,
    class: Class,
}

impl Subject<'_> {
    fn shared_id(&self, start_minute: i64) -> String {
        let name = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.account,
            self.region,
            self.source,
            self.name,
            self.ty.as_str(),
            self.error.unwrap_or(""),
            start_minute
        );
        uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
    }
}

/// The namespace of insight event IDs (a v5 UUID of its own).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1b_27a4_5d0e_4b8f_9a31_c0de_1a5e_0001);

fn attributions_json(insight: &Attributions, baseline: &Attributions) -> Value {
    let list = |v: &Vec<(String, f64)>| -> Value {
        Value::Array(
            v.iter()
                .map(|(value, avg)| json!({"value": value, "average": round(*avg)}))
                .collect(),
        )
    };
    Value::Array(
        insight
            .iter()
            .map(|(attr, values)| {
                let base = baseline
                    .iter()
                    .find(|(a, _)| a == attr)
                    .map(|(_, v)| list(v))
                    .unwrap_or_else(|| json!([]));
                json!({"attribute": attr, "insight": list(values), "baseline": base})
            })
            .collect(),
    )
}

#[allow(clippy::too_many_arguments)]
fn record(
    s: &Subject,
    inc: &Incident,
    state: &str,
    time_ms: i64,
    insight_average: f64,
    duration: i64,
    insight_attrs: &Attributions,
) -> Vec<u8> {
    let event_id = uuid::Uuid::new_v5(&NAMESPACE, format!("{}|{state}", inc.shared_id).as_bytes());
    let mut details = serde_json::Map::new();
    details.insert("state".into(), json!(state));
    details.insert("eventSource".into(), json!(s.source));
    details.insert("eventName".into(), json!(s.name));
    details.insert("insightType".into(), json!(s.ty.as_str()));
    if let Some(code) = s.error {
        details.insert("errorCode".into(), json!(code));
    }
    // Insights on data events say so (CloudTrail's management-event records have no such
    // member; trail delivery uses it to honour each trail's EventCategories).
    if s.class == Class::Data {
        details.insert("eventCategory".into(), json!("Data"));
    }
    details.insert(
        "insightContext".into(),
        json!({
            "statistics": {
                "baseline": {"average": round(inc.baseline.average)},
                "insight": {"average": round(insight_average)},
                "insightDuration": duration,
                "baselineDuration": inc.baseline.minutes,
            },
            "attributions": attributions_json(insight_attrs, &inc.baseline_attributions),
        }),
    );
    let v = json!({
        "eventVersion": "1.08",
        "eventTime": cairn_event::format_event_time(time_ms),
        "awsRegion": s.region,
        "eventID": event_id.to_string(),
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": s.account,
        "sharedEventID": inc.shared_id,
        "insightDetails": Value::Object(details),
        "eventCategory": "Insight",
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// APIs and the engine
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Api {
    account: String,
    region: String,
    source: String,
    name: String,
    class: Class,
    /// The newest event time seen (ms).
    clock_ms: i64,
    calls: Series,
    errors: BTreeMap<String, Series>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct History {
    /// The first minute with an event of the account in the region.
    from_minute: i64,
    /// The newest event time seen there (ms).
    newest_ms: i64,
}

/// The detector's whole state (saved with the consumer's cursor).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Engine {
    apis: HashMap<String, Api>,
    history: HashMap<String, History>,
    pub counters: Counters,
    /// Scratch space for map keys (no allocation per event).
    #[serde(skip)]
    scratch: String,
}

#[derive(serde::Deserialize)]
#[allow(non_snake_case)]
struct Probe<'a> {
    #[serde(borrow)]
    eventTime: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    eventSource: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    eventName: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    awsRegion: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    eventCategory: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    eventType: Option<std::borrow::Cow<'a, str>>,
    readOnly: Option<Value>,
    #[serde(borrow)]
    errorCode: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    userAgent: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    userIdentity: Option<Identity<'a>>,
}

#[derive(serde::Deserialize)]
#[allow(non_snake_case)]
struct Identity<'a> {
    #[serde(borrow)]
    arn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    invokedBy: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
}

fn nonempty<'a>(v: &'a Option<std::borrow::Cow<'a, str>>) -> Option<&'a str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Who made a call, as attributions name them: the ARN, else the service or the identity type.
fn who<'a>(id: &'a Option<Identity<'a>>) -> &'a str {
    match id {
        Some(i) => nonempty(&i.arn)
            .or(nonempty(&i.invokedBy))
            .or(nonempty(&i.kind))
            .unwrap_or("null"),
        None => "null",
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Series held (for tests and statistics).
    pub fn series(&self) -> usize {
        self.apis.values().map(|a| 1 + a.errors.len()).sum()
    }

    /// The size of the saved state, in bytes.
    pub fn state_bytes(&self) -> usize {
        postcard::to_allocvec(self).map_or(0, |v| v.len())
    }

    /// Insights open now: (account, region, event source, event name, type, start ms).
    pub fn open_incidents(&self) -> Vec<(String, String, String, String, InsightType, i64)> {
        let mut out = Vec::new();
        for a in self.apis.values() {
            let mut push = |s: &Series, ty| {
                if let Some(i) = &s.incident {
                    out.push((
                        a.account.clone(),
                        a.region.clone(),
                        a.source.clone(),
                        a.name.clone(),
                        ty,
                        i.start_minute * MINUTE_MS,
                    ));
                }
            };
            push(&a.calls, InsightType::ApiCallRateInsight);
            for s in a.errors.values() {
                push(s, InsightType::ApiErrorRateInsight);
            }
        }
        out
    }

    /// Counts one stored record of `account` and settles what its time settles.
    pub fn observe(
        &mut self,
        account: &str,
        record: &[u8],
        opts: &Options,
        enabled: &dyn Fn(&str, &str) -> Enabled,
        out: &mut Vec<Emitted>,
    ) {
        let Ok(p) = serde_json::from_slice::<Probe>(record) else {
            return;
        };
        if p.eventType.as_deref() == Some("AwsCloudTrailInsight") {
            return;
        }
        let class = match p.eventCategory.as_deref() {
            None | Some("" | "Management") => Class::Management,
            Some("Data") => Class::Data,
            Some(_) => return,
        };
        let (Some(time), Some(source), Some(name), Some(region)) = (
            nonempty(&p.eventTime).and_then(cairn_event::parse_event_time),
            nonempty(&p.eventSource),
            nonempty(&p.eventName),
            nonempty(&p.awsRegion),
        ) else {
            return;
        };
        let read_only = match &p.readOnly {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        let minute = time.div_euclid(MINUTE_MS);
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        key.push_str(account);
        key.push('\u{1}');
        key.push_str(region);
        match self.history.get_mut(key.as_str()) {
            Some(h) => {
                h.from_minute = h.from_minute.min(minute);
                h.newest_ms = h.newest_ms.max(time);
            }
            None => {
                self.history.insert(
                    key.clone(),
                    History {
                        from_minute: minute,
                        newest_ms: time,
                    },
                );
            }
        }
        for part in [source, name] {
            key.push('\u{1}');
            key.push_str(part);
        }
        key.push(if class == Class::Management { 'm' } else { 'd' });
        if !self.apis.contains_key(key.as_str()) {
            self.apis.insert(
                key.clone(),
                Api {
                    account: account.to_owned(),
                    region: region.to_owned(),
                    source: source.to_owned(),
                    name: name.to_owned(),
                    class,
                    clock_ms: time,
                    calls: Series::default(),
                    errors: BTreeMap::new(),
                },
            );
        }
        let Some(api) = self.apis.get_mut(key.as_str()) else {
            self.scratch = key;
            return;
        };
        let user = who(&p.userIdentity);
        let agent = nonempty(&p.userAgent).unwrap_or("null");
        let error = nonempty(&p.errorCode);
        if class == Class::Data || !read_only {
            api.calls.add(
                minute,
                user,
                agent,
                error.unwrap_or("null"),
                &mut self.counters,
            );
        }
        if let Some(code) = error {
            if !api.errors.contains_key(code) {
                api.errors.insert(code.to_owned(), Series::default());
            }
            if let Some(series) = api.errors.get_mut(code) {
                series.add(minute, user, agent, code, &mut self.counters);
            }
        }
        let horizon_of = |clock: i64| (clock - EVENT_GRACE_MS).div_euclid(MINUTE_MS);
        let before = horizon_of(api.clock_ms);
        api.clock_ms = api.clock_ms.max(time);
        let horizon = horizon_of(api.clock_ms);
        // Something to settle: the horizon moved, or this minute is already behind it.
        if horizon > before || minute < horizon {
            self.settle(&key, horizon, opts, enabled, out);
        }
        self.scratch = key;
    }

    /// Settles, by the wall clock `now_ms`, the minutes of live APIs (those with an event in
    /// the last [`LIVE_WINDOW_MS`]). Call it only when every stored event has been observed.
    pub fn tick(
        &mut self,
        now_ms: i64,
        opts: &Options,
        enabled: &dyn Fn(&str, &str) -> Enabled,
        out: &mut Vec<Emitted>,
    ) {
        let horizon = (now_ms - WALL_GRACE_MS).div_euclid(MINUTE_MS);
        let live: Vec<String> = self
            .apis
            .iter()
            .filter(|(_, a)| now_ms - a.clock_ms <= LIVE_WINDOW_MS)
            .filter(|(_, a)| {
                // Something to settle: a pending minute or an open insight before the horizon.
                std::iter::once(&a.calls).chain(a.errors.values()).any(|s| {
                    s.pending
                        .first_key_value()
                        .is_some_and(|(m, _)| *m < horizon)
                        || (s.incident.is_some() && s.settled_to.is_some_and(|t| t < horizon))
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in live {
            self.settle(&key, horizon, opts, enabled, out);
        }
    }

    /// Forgets APIs with nothing pending or open whose newest event is more than the window
    /// older than the newest event of their account and region.
    pub fn prune(&mut self) {
        let history = &self.history;
        self.apis.retain(|_, a| {
            let newest = history
                .get(&format!("{}\u{1}{}", a.account, a.region))
                .map_or(a.clock_ms, |h| h.newest_ms);
            let stale = newest - a.clock_ms > (WINDOW_MINUTES + 24 * 60) * MINUTE_MS;
            !(stale && a.calls.idle() && a.errors.values().all(Series::idle))
        });
    }

    fn settle(
        &mut self,
        key: &str,
        horizon: i64,
        opts: &Options,
        enabled: &dyn Fn(&str, &str) -> Enabled,
        out: &mut Vec<Emitted>,
    ) {
        let Some(api) = self.apis.get_mut(key) else {
            return;
        };
        let history_from = self
            .history
            .get(&format!("{}\u{1}{}", api.account, api.region))
            .map_or(i64::MIN / 2, |h| h.from_minute);
        let Api {
            account,
            region,
            source,
            name,
            class,
            calls,
            errors,
            ..
        } = api;
        let (account, region): (&str, &str) = (account, region);
        let mut subject = Subject {
            account,
            region,
            source,
            name,
            ty: InsightType::ApiCallRateInsight,
            error: None,
            class: *class,
        };
        let ctx = Ctx {
            opts,
            history_from,
            horizon,
        };
        // Asked at most once, and only when an insight starts.
        let mut allowed: Option<Enabled> = None;
        let mut enabled_for = |ty: InsightType, class: Class| {
            allowed
                .get_or_insert_with(|| enabled(account, region))
                .allows(ty, class)
        };
        settle_series(
            calls,
            &subject,
            &ctx,
            &mut enabled_for,
            &mut self.counters,
            out,
        );
        subject.ty = InsightType::ApiErrorRateInsight;
        for (code, s) in errors.iter_mut() {
            subject.error = Some(code);
            settle_series(s, &subject, &ctx, &mut enabled_for, &mut self.counters, out);
        }
    }
}

struct Ctx<'a> {
    opts: &'a Options,
    history_from: i64,
    horizon: i64,
}

fn settle_series(
    s: &mut Series,
    subject: &Subject,
    ctx: &Ctx,
    enabled: &mut dyn FnMut(InsightType, Class) -> bool,
    counters: &mut Counters,
    out: &mut Vec<Emitted>,
) {
    loop {
        let first_pending = s.pending.first_key_value().map(|(m, _)| *m);
        let next = match (&s.incident, s.settled_to, first_pending) {
            (Some(_), Some(t), _) => t,
            (_, _, Some(p)) => p,
            _ => break,
        };
        if next >= ctx.horizon {
            break;
        }
        let minute = s.pending.remove(&next).unwrap_or_default();
        judge(s, next, &minute, subject, ctx, enabled, counters, out);
        s.fold(next, &minute);
        s.settled_to = Some(next + 1);
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    s: &mut Series,
    m: i64,
    minute: &Minute,
    subject: &Subject,
    ctx: &Ctx,
    enabled: &mut dyn FnMut(InsightType, Class) -> bool,
    counters: &mut Counters,
    out: &mut Vec<Emitted>,
) {
    let opts = ctx.opts;
    let x = minute.count;
    let with_errors = subject.ty == InsightType::ApiCallRateInsight;
    match &mut s.incident {
        None => {
            let Some(b) = s.baseline(m, ctx.history_from) else {
                return;
            };
            if b.minutes < opts.min_history_minutes {
                return;
            }
            counters.judged += 1;
            let threshold = b.expected + opts.sensitivity * b.spread;
            if x < opts.min_calls
                || (x as f64) < threshold
                || poisson_tail(x, b.expected) > normal_tail(opts.sensitivity)
            {
                return;
            }
            let emitted = enabled(subject.ty, subject.class);
            let base_tally = s.baseline_tally(m, b.minutes);
            let inc = Incident {
                shared_id: subject.shared_id(m),
                start_minute: m,
                baseline: b,
                baseline_attributions: attributions(&base_tally, b.minutes as f64, with_errors),
                last_hot: m,
                calm: 0,
                total: x,
                calm_total: 0,
                tally: minute.tally.clone(),
                calm_tally: Tally::default(),
                emitted,
            };
            counters.starts += 1;
            if emitted {
                let attrs = attributions(&minute.tally, 1.0, with_errors);
                out.push(Emitted {
                    account: subject.account.to_owned(),
                    record: record(subject, &inc, "Start", m * MINUTE_MS, x as f64, 1, &attrs),
                    start: true,
                });
            }
            s.incident = Some(inc);
        }
        Some(inc) => {
            let calm_line = (inc.baseline.expected + opts.sensitivity / 2.0 * inc.baseline.spread)
                .max(opts.min_calls as f64 / 2.0);
            if (x as f64) > calm_line {
                inc.last_hot = m;
                inc.calm = 0;
                inc.total += inc.calm_total + x;
                inc.calm_total = 0;
                let calm = std::mem::take(&mut inc.calm_tally);
                inc.tally.merge(&calm);
                inc.tally.merge(&minute.tally);
                return;
            }
            inc.calm += 1;
            inc.calm_total += x;
            inc.calm_tally.merge(&minute.tally);
            if inc.calm < opts.calm_minutes {
                return;
            }
            let duration = inc.last_hot + 1 - inc.start_minute;
            counters.ends += 1;
            if inc.emitted {
                let attrs = attributions(&inc.tally, duration as f64, with_errors);
                out.push(Emitted {
                    account: subject.account.to_owned(),
                    record: record(
                        subject,
                        inc,
                        "End",
                        (inc.last_hot + 1) * MINUTE_MS,
                        inc.total as f64 / duration as f64,
                        duration,
                        &attrs,
                    ),
                    start: false,
                });
            }
            s.incident = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert!((poisson_tail(0, 3.0) - 1.0).abs() < 1e-12);
        // P(X >= 5 | 0.1) = 7.67e-8; P(X >= 12 | 3) = 7.14e-5
        assert!((poisson_tail(5, 0.1) / 7.66e-8 - 1.0).abs() < 0.01);
        assert!((poisson_tail(12, 3.0) / 7.14e-5 - 1.0).abs() < 0.01);
        assert!((normal_tail(5.0) / 2.87e-7 - 1.0).abs() < 0.03);
        assert!((normal_tail(4.0) / 3.17e-5 - 1.0).abs() < 0.05);
    }

    #[test]
    fn sensitivity_words() {
        assert_eq!(parse_sensitivity("medium"), Some(5.0));
        assert_eq!(parse_sensitivity("4.5"), Some(4.5));
        assert_eq!(parse_sensitivity("0"), None);
        assert_eq!(parse_sensitivity("loud"), None);
    }
}
