//! Insights on synthetic workloads in accelerated time: a burst of RunInstances after a
//! steady week, an AccessDenied storm, weeks of ordinary noise with daily peaks (the
//! false-positive rate), and a restart in the middle of an insight through the real store.

use std::sync::Arc;

use cairn_insights::engine::{Emitted, Enabled, Engine, MINUTE_MS, Options};
use cairn_insights::sim::{self, Stream};
use cairn_insights::{CONSUMER, Insights};
use cairn_store::{Query, Store, StoreOptions};
use serde_json::Value;

const ACCOUNT: &str = "111122223333";
const DAY: i64 = 86_400_000;
/// A Monday, 00:00 UTC, well in the past.
const T0: i64 = 1_767_571_200_000; // 2026-01-05

fn feed(
    engine: &mut Engine,
    streams: &[Stream],
    calls: &[(i64, usize)],
    opts: &Options,
    out: &mut Vec<Emitted>,
) {
    for (n, (t, i)) in calls.iter().enumerate() {
        let rec = sim::record(&streams[*i], ACCOUNT, *t, n as u64);
        engine.observe(ACCOUNT, &rec, opts, &Enabled::everywhere, out);
    }
}

fn parsed(out: &[Emitted]) -> Vec<Value> {
    out.iter()
        .map(|e| serde_json::from_slice(&e.record).expect("insight records are JSON"))
        .collect()
}

fn steady_week_then_burst() -> (Vec<Stream>, Vec<(i64, usize)>, i64) {
    let mut ops = Stream::new("ec2.amazonaws.com", "RunInstances", 0.1);
    ops.peak = 3.0;
    let mut miner = ops.clone();
    miner.user_arn = "arn:aws:iam::111122223333:user/miner".into();
    miner.agent = "xmrig-deployer/1.0".into();
    miner.rate = 0.0;
    let other = Stream::new("iam.amazonaws.com", "CreateUser", 0.05);
    let streams = vec![ops, miner, other];
    let burst_at = T0 + 8 * DAY + 14 * 3_600_000;
    let mut calls = sim::calls(&streams, T0, 9 * 1440, 7);
    calls.extend(sim::burst(burst_at, 6, 40, 1));
    calls.sort_unstable();
    (streams, calls, burst_at)
}

#[test]
fn a_burst_of_run_instances_starts_and_ends_an_insight_naming_the_user() {
    let (streams, calls, burst_at) = steady_week_then_burst();
    let opts = Options::default();
    let mut engine = Engine::new();
    let mut out = Vec::new();
    feed(&mut engine, &streams, &calls, &opts, &mut out);
    let recs = parsed(&out);
    assert_eq!(recs.len(), 2, "one Start and one End: {recs:#?}");
    let (start, end) = (&recs[0], &recs[1]);
    assert_eq!(start["insightDetails"]["state"], "Start");
    assert_eq!(end["insightDetails"]["state"], "End");
    assert_eq!(start["sharedEventID"], end["sharedEventID"]);
    assert_ne!(start["eventID"], end["eventID"]);
    assert_eq!(start["eventType"], "AwsCloudTrailInsight");
    assert_eq!(start["eventCategory"], "Insight");
    assert_eq!(start["insightDetails"]["eventName"], "RunInstances");
    assert_eq!(start["insightDetails"]["eventSource"], "ec2.amazonaws.com");
    assert_eq!(start["insightDetails"]["insightType"], "ApiCallRateInsight");
    assert_eq!(
        start["eventTime"],
        cairn_event::format_event_time(burst_at),
        "the Start is the first minute of the burst"
    );
    assert_eq!(
        end["eventTime"],
        cairn_event::format_event_time(burst_at + 6 * MINUTE_MS)
    );
    let stats = &end["insightDetails"]["insightContext"]["statistics"];
    assert_eq!(stats["insightDuration"], 6);
    assert!(stats["baselineDuration"].as_i64().unwrap() >= 10080);
    let base = stats["baseline"]["average"].as_f64().unwrap();
    assert!((0.05..0.3).contains(&base), "baseline {base}");
    let insight = stats["insight"]["average"].as_f64().unwrap();
    assert!((39.0..42.0).contains(&insight), "insight {insight}");
    let attrs = end["insightDetails"]["insightContext"]["attributions"]
        .as_array()
        .unwrap();
    let users = attrs
        .iter()
        .find(|a| a["attribute"] == "userIdentityArn")
        .unwrap();
    assert_eq!(
        users["insight"][0]["value"],
        "arn:aws:iam::111122223333:user/miner"
    );
    assert_eq!(
        users["baseline"][0]["value"],
        "arn:aws:iam::111122223333:user/ops"
    );
    let agents = attrs
        .iter()
        .find(|a| a["attribute"] == "userAgent")
        .unwrap();
    assert_eq!(agents["insight"][0]["value"], "xmrig-deployer/1.0");
    let errors = attrs
        .iter()
        .find(|a| a["attribute"] == "errorCode")
        .unwrap();
    assert_eq!(errors["insight"][0]["value"], "null");
    // The records are what the store takes as insight events.
    for e in &out {
        let n = cairn_event::normalise(&e.record, ACCOUNT, T0).unwrap();
        assert_eq!(n.meta.category, cairn_event::Category::Insight);
        assert_eq!(n.meta.event_name, "RunInstances");
    }
}

#[test]
fn nothing_is_recorded_when_insights_are_off_and_no_warm_up_is_needed_with_history() {
    let (streams, calls, _) = steady_week_then_burst();
    let opts = Options::default();
    let mut engine = Engine::new();
    let mut out = Vec::new();
    for (n, (t, i)) in calls.iter().enumerate() {
        let rec = sim::record(&streams[*i], ACCOUNT, *t, n as u64);
        engine.observe(ACCOUNT, &rec, &opts, &|_, _| Enabled::default(), &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(engine.counters.starts, 1, "the insight was still tracked");
}

#[test]
fn an_access_denied_storm_is_an_error_rate_insight() {
    let mut list = Stream::new("s3.amazonaws.com", "GetBucketPolicy", 2.0);
    list.read_only = true;
    list.peak = 2.0;
    let mut denied = list.clone();
    denied.error = Some("AccessDenied".into());
    denied.rate = 0.05;
    let mut attacker = denied.clone();
    attacker.user_arn = "arn:aws:sts::111122223333:assumed-role/intruder/session".into();
    attacker.agent = "python-requests/2.31".into();
    attacker.rate = 0.0;
    let streams = vec![list, denied, attacker];
    let storm_at = T0 + 8 * DAY + 3 * 3_600_000 + 17 * MINUTE_MS;
    let mut calls = sim::calls(&streams, T0, 9 * 1440, 11);
    calls.extend(sim::burst(storm_at, 4, 120, 2));
    calls.sort_unstable();
    let opts = Options::default();
    let mut engine = Engine::new();
    let mut out = Vec::new();
    feed(&mut engine, &streams, &calls, &opts, &mut out);
    let recs = parsed(&out);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    for r in &recs {
        assert_eq!(r["insightDetails"]["insightType"], "ApiErrorRateInsight");
        assert_eq!(r["insightDetails"]["errorCode"], "AccessDenied");
        assert_eq!(r["insightDetails"]["eventName"], "GetBucketPolicy");
        let attrs = r["insightDetails"]["insightContext"]["attributions"]
            .as_array()
            .unwrap();
        assert!(
            attrs.iter().all(|a| a["attribute"] != "errorCode"),
            "error-rate insights carry no errorCode attribution"
        );
        assert_eq!(
            attrs[0]["insight"][0]["value"],
            "arn:aws:sts::111122223333:assumed-role/intruder/session"
        );
    }
    assert_eq!(
        recs[0]["eventTime"],
        cairn_event::format_event_time(storm_at)
    );
    assert_eq!(
        recs[1]["insightDetails"]["insightContext"]["statistics"]["insightDuration"],
        4
    );
}

/// Weeks of ordinary activity with daily peaks: no insight. Prints the false-positive rate
/// per API-day.
#[test]
fn weeks_of_ordinary_noise_raise_no_insight() {
    let streams = sim::ordinary_noise(30, 3);
    let days = 21;
    let calls = sim::calls(&streams, T0, days * 1440, 5);
    let opts = Options::default();
    let mut engine = Engine::new();
    let mut out = Vec::new();
    feed(&mut engine, &streams, &calls, &opts, &mut out);
    let c = engine.counters;
    let series_days = streams.len() as f64 * (days - 1) as f64;
    println!(
        "ordinary noise: {} calls, {} series over {days} days, {} minutes judged, {} insights started: {:.4} per series-day",
        calls.len(),
        streams.len(),
        c.judged,
        c.starts,
        c.starts as f64 / series_days
    );
    for r in parsed(&out)
        .iter()
        .filter(|r| r["insightDetails"]["state"] == "Start")
    {
        let d = &r["insightDetails"];
        println!(
            "  {} {} {} {}",
            r["eventTime"], d["eventName"], d["errorCode"], d["insightContext"]["statistics"]
        );
    }
    assert!(
        c.starts as f64 / series_days <= 0.01,
        "too many false positives"
    );
}

#[test]
fn a_higher_sensitivity_finds_a_smaller_burst() {
    let ops = Stream::new("ec2.amazonaws.com", "RunInstances", 0.2);
    let mut batch = ops.clone();
    batch.rate = 0.0;
    let streams = vec![ops, batch];
    let at = T0 + 8 * DAY + 20 * 3_600_000;
    let mut calls = sim::calls(&streams, T0, 9 * 1440, 9);
    // Exactly 5 calls in each minute of the burst.
    calls.retain(|(t, _)| !(at..at + 3 * MINUTE_MS).contains(t));
    calls.extend(sim::burst(at, 3, 5, 1));
    calls.sort_unstable();
    // Starts during the burst, per sensitivity.
    let run = |k: &str| {
        let opts = Options {
            sensitivity: cairn_insights::engine::parse_sensitivity(k).unwrap(),
            ..Options::default()
        };
        let mut engine = Engine::new();
        let mut out = Vec::new();
        feed(&mut engine, &streams, &calls, &opts, &mut out);
        parsed(&out)
            .iter()
            .filter(|r| r["insightDetails"]["state"] == "Start")
            .filter(|r| {
                let t = cairn_event::parse_event_time(r["eventTime"].as_str().unwrap()).unwrap();
                (at..at + 3 * MINUTE_MS).contains(&t)
            })
            .count()
    };
    assert_eq!(
        run("low"),
        0,
        "5 calls a minute instead of 0.2 is not enough for low"
    );
    assert_eq!(run("medium"), 0, "nor for medium");
    assert_eq!(run("high"), 1, "high sensitivity reports it");
}

// ------------------------------------------------------------------------------------------
// Through the store: durable cursor, restart in the middle of an insight
// ------------------------------------------------------------------------------------------

fn open_store(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(
        Store::open(
            dir,
            StoreOptions {
                retention_ms: None,
                held_by: vec![CONSUMER],
                ..StoreOptions::default()
            },
        )
        .expect("store opens"),
    )
}

/// The store and an Insights worker on it (every insight on), as a server opens them.
fn open_insights(dir: &std::path::Path) -> (Arc<Store>, Insights) {
    let store = open_store(dir);
    let insights = Insights::open(
        dir,
        store.clone(),
        Arc::new(Enabled::everywhere),
        Options::default(),
    )
    .unwrap();
    (store, insights)
}

fn ingest(store: &Store, streams: &[Stream], calls: &[(i64, usize)], first_id: u64) {
    for (k, chunk) in calls.chunks(500).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(j, (t, i))| {
                let rec = sim::record(&streams[*i], ACCOUNT, *t, first_id + (k * 500 + j) as u64);
                cairn_event::normalise(&rec, ACCOUNT, *t).unwrap()
            })
            .collect();
        store.append_blocking(ACCOUNT, batch).unwrap();
    }
}

fn insight_events(store: &Store) -> Vec<Value> {
    let page = store
        .lookup(&Query {
            account: ACCOUNT.into(),
            insights: true,
            limit: 100,
            ..Query::default()
        })
        .unwrap();
    page.events
        .iter()
        .map(|f| serde_json::from_slice(&f.record).unwrap())
        .collect()
}

#[test]
fn a_restart_in_the_middle_of_an_insight_keeps_it_with_one_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (streams, calls, burst_at) = steady_week_then_burst();
    let split = calls
        .iter()
        .position(|(t, _)| *t >= burst_at + 4 * MINUTE_MS)
        .unwrap();
    let now = T0 + 30 * DAY;
    {
        let (store, insights) = open_insights(tmp.path());
        ingest(&store, &streams, &calls[..split], 0);
        insights.catch_up(now).unwrap();
        let found = insight_events(&store);
        assert_eq!(found.len(), 1, "the Start is stored: {found:#?}");
        assert_eq!(insights.open_incidents().len(), 1);
    }
    // Again, as after a crash that lost the last save: the same events are read again.
    {
        let (store, insights) = open_insights(tmp.path());
        assert_eq!(
            insights.open_incidents().len(),
            1,
            "the open insight survives"
        );
        ingest(&store, &streams, &calls[split..], split as u64);
        insights.catch_up(now).unwrap();
        let found = insight_events(&store);
        let states: Vec<&str> = found
            .iter()
            .map(|r| r["insightDetails"]["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["End", "Start"], "newest first, one of each");
        assert_eq!(found[0]["sharedEventID"], found[1]["sharedEventID"]);
        assert_eq!(
            found[0]["insightDetails"]["insightContext"]["statistics"]["insightDuration"],
            6
        );
    }
    // A consumer whose state file is gone replays the journal from its start: the same
    // insight again, stored once.
    std::fs::remove_file(tmp.path().join("insights/state.bin")).unwrap();
    let (store, insights) = open_insights(tmp.path());
    insights.catch_up(now).unwrap();
    assert_eq!(insight_events(&store).len(), 2);
}

// ------------------------------------------------------------------------------------------
// Any records, in any order
// ------------------------------------------------------------------------------------------

mod any_order {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = (i64, u8, u8, bool, Option<u8>, Option<String>)> {
        (
            0i64..(3 * DAY / MINUTE_MS),
            0u8..3,
            0u8..2,
            any::<bool>(),
            proptest::option::of(0u8..2),
            proptest::option::of("[a-zA-Z0-9:/ ._-]{0,12}"),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Records of a few APIs at any times, in any order, with odd fields: never a panic,
        /// every End follows its Start, and at most one insight per series is open.
        #[test]
        fn records_in_any_order(events in proptest::collection::vec(event(), 0..400), tick in 0i64..(4 * DAY)) {
            let opts = Options { min_history_minutes: 60, min_calls: 2, ..Options::default() };
            let mut engine = Engine::new();
            let mut out = Vec::new();
            for (n, (minute, api, region, read_only, error, extra)) in events.iter().enumerate() {
                let mut s = Stream::new("ec2.amazonaws.com", ["RunInstances", "StopInstances", "DescribeInstances"][*api as usize], 1.0);
                s.region = ["eu-west-1", "us-east-1"][*region as usize].into();
                s.read_only = *read_only;
                s.error = error.map(|e| ["AccessDenied", "Throttling"][e as usize].into());
                if let Some(x) = extra {
                    s.user_arn = x.clone();
                    s.agent = x.clone();
                }
                let rec = sim::record(&s, ACCOUNT, T0 + minute * MINUTE_MS + (n as i64 % 60) * 1000, n as u64);
                engine.observe(ACCOUNT, &rec, &opts, &Enabled::everywhere, &mut out);
                // Records that are not API calls are ignored.
                engine.observe(ACCOUNT, b"{\"eventTime\":[]}", &opts, &Enabled::everywhere, &mut out);
            }
            engine.tick(T0 + tick, &opts, &Enabled::everywhere, &mut out);
            let mut open: std::collections::HashSet<String> = Default::default();
            for r in parsed(&out) {
                let id = r["sharedEventID"].as_str().unwrap().to_owned();
                match r["insightDetails"]["state"].as_str().unwrap() {
                    "Start" => prop_assert!(open.insert(id)),
                    _ => prop_assert!(open.remove(&id), "an End without its Start"),
                }
            }
            prop_assert_eq!(open.len(), engine.open_incidents().len());
        }
    }
}
