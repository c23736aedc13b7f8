//! `cairn bench --insights`: the Insights detector on synthetic workloads in accelerated
//! time (false positives over weeks of ordinary activity with daily peaks, bursts found and
//! how fast, the detector's own speed), then the cost of Insights to durable ingest: the
//! ingest benchmark run against servers with and without Insights, alternately.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use cairn_client::ClientArgs;
use cairn_insights::engine::{Emitted, Enabled, Engine, MINUTE_MS, Options};
use cairn_insights::sim::{self, Stream};

use cairn_client::Client;
use serde_json::{Value, json};

use crate::bench::{BenchArgs, KEY, Plan, SECRET, ingest_over_http, start_server_with};

const ACCOUNT: &str = "111122223333";
const DAY: i64 = 86_400_000;
/// A Monday, 00:00 UTC.
const T0: i64 = 1_767_571_200_000;

/// Feeds calls to a fresh engine: (engine, insight records, time spent in the detector).
fn detect(
    streams: &[Stream],
    calls: &[(i64, usize)],
    opts: &Options,
) -> (Engine, Vec<Emitted>, Duration) {
    let mut engine = Engine::new();
    let mut out = Vec::new();
    let mut spent = Duration::ZERO;
    for (n, (t, i)) in calls.iter().enumerate() {
        let rec = sim::record(&streams[*i], ACCOUNT, *t, n as u64);
        let started = Instant::now();
        engine.observe(ACCOUNT, &rec, opts, &Enabled::everywhere, &mut out);
        spent += started.elapsed();
    }
    (engine, out, spent)
}

fn start_minutes(out: &[Emitted]) -> Vec<i64> {
    out.iter()
        .filter(|e| e.start)
        .filter_map(|e| serde_json::from_slice::<serde_json::Value>(&e.record).ok())
        .filter_map(|v| {
            v["eventTime"]
                .as_str()
                .and_then(cairn_event::parse_event_time)
        })
        .map(|t| t / MINUTE_MS)
        .collect()
}

/// One live call of RunInstances in eu-west-1.
fn live_call(t_ms: i64, user: &str, n: u64) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}")},
        "eventTime": cairn_event::format_event_time(t_ms),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": "eu-west-1",
        "eventID": uuid::Uuid::from_u128(0x11fe_0000_0000_4000_8000_0000_0000_0000 | u128::from(n)).to_string(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    })
}

fn insight_states(client: &Client) -> Result<Vec<String>> {
    let out = client.call("LookupEvents", &json!({"EventCategory": "insight"}))?;
    Ok(out["Events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["CloudTrailEvent"].as_str())
                .filter_map(|r| serde_json::from_str::<Value>(r).ok())
                .filter_map(|r| r["insightDetails"]["state"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// A server with Insights on (through an event data store), 3 hours of history, then a live
/// burst of 10 calls a second: the seconds until its Start shows in LookupEvents, and after
/// the burst stops, until its End does.
fn live_latency() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_server, endpoint) = start_server_with(dir.path(), &["--insights-min-history", "1h"])?;
    let client = Client::with_credentials(
        &ClientArgs {
            endpoint_url: Some(endpoint),
            profile: None,
            region: Some("us-east-1".into()),
            ca_bundle: None,
        },
        KEY,
        SECRET,
    )?;
    let store = client.call(
        "CreateEventDataStore",
        &json!({"Name": "insights", "AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Insight"]}]}]}),
    )?;
    let stores = client.call("ListEventDataStores", &json!({}))?;
    let default = stores["EventDataStores"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["Name"] == "cairn-default"))
        .and_then(|s| s["EventDataStoreArn"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no default event data store"))?;
    client.call(
        "PutInsightSelectors",
        &json!({"EventDataStore": default, "InsightsDestination": store["EventDataStoreArn"], "InsightSelectors": [{"InsightType": "ApiCallRateInsight"}]}),
    )?;
    let now = cairn_event::now_ms();
    let history: Vec<Value> = (0..18)
        .map(|i| live_call(now - 3 * 3_600_000 + i * 600_000, "ops", i as u64))
        .collect();
    ingest(&client, &history)?;
    let started = Instant::now();
    let mut n = 1000;
    let start_after = loop {
        let batch: Vec<Value> = (0..10)
            .map(|_| {
                n += 1;
                live_call(cairn_event::now_ms(), "miner", n)
            })
            .collect();
        ingest(&client, &batch)?;
        if insight_states(&client)?.iter().any(|s| s == "Start") {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(240) {
            anyhow::bail!("no insight 4 minutes into a live burst");
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let stopped = Instant::now();
    let end_after = loop {
        if insight_states(&client)?.iter().any(|s| s == "End") {
            break stopped.elapsed();
        }
        if stopped.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("no End 5 minutes after a live burst stopped");
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    println!(
        "live burst (10 calls a second after 0.1 a minute): Start recorded {:.0} s after it began, End {:.0} s after it stopped",
        start_after.as_secs_f64(),
        end_after.as_secs_f64()
    );
    Ok(())
}

fn ingest(client: &Client, records: &[Value]) -> Result<()> {
    let mut body = Vec::new();
    for r in records {
        serde_json::to_writer(&mut body, r)?;
        body.push(b'\n');
    }
    let (status, resp) = client.post(
        "/v1/events",
        "cloudtrail",
        &[("content-type", "application/x-ndjson")],
        body,
    )?;
    if status != 200 {
        anyhow::bail!("ingest failed: {}", String::from_utf8_lossy(&resp));
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub fn run(args: &BenchArgs, plan: Arc<Plan>) -> Result<()> {
    // 1. False positives over weeks of ordinary activity.
    for (label, k) in [("medium", 5.0), ("high", 4.0)] {
        let opts = Options {
            sensitivity: k,
            ..Options::default()
        };
        let streams = sim::ordinary_noise(60, 17);
        let days = 35;
        let calls = sim::calls(&streams, T0, days * 1440, 23);
        let (engine, _, spent) = detect(&streams, &calls, &opts);
        let c = engine.counters;
        let series_days = streams.len() as f64 * (days - 1) as f64;
        println!(
            "ordinary activity, sensitivity {label}: {} calls of {} series over {days} days, {} minutes judged, {} insights = {:.4} per series-day, {:.2e} per judged minute; detector {:.0} events/s on one core",
            calls.len(),
            streams.len(),
            c.judged,
            c.starts,
            c.starts as f64 / series_days,
            c.starts as f64 / c.judged.max(1) as f64,
            calls.len() as f64 / spent.as_secs_f64()
        );
        println!(
            "  detector state: {} series, {} KiB saved ({:.1} KiB per series)",
            engine.series(),
            engine.state_bytes() / 1024,
            engine.state_bytes() as f64 / 1024.0 / engine.series().max(1) as f64
        );
    }

    // 2. Bursts: how big a jump is found, and in which minute.
    println!();
    println!("bursts of 5 minutes after 8 days at a steady rate (sensitivity medium):");
    println!(
        "{:>14} {:>14} {:>10} {:>22}",
        "calls/min", "burst adds", "found", "start vs burst (min)"
    );
    for (base, add) in [
        (0.1, 5),
        (1.0, 5),
        (1.0, 8),
        (1.0, 10),
        (10.0, 10),
        (10.0, 20),
        (10.0, 30),
    ] {
        {
            let steady = Stream::new("ec2.amazonaws.com", "RunInstances", base);
            let mut burst = steady.clone();
            burst.rate = 0.0;
            burst.user_arn = "arn:aws:iam::111122223333:user/burst".into();
            let streams = vec![steady, burst];
            let at = T0 + 8 * DAY + 13 * 3_600_000;
            let mut calls = sim::calls(&streams, T0, 9 * 1440, 5);
            calls.extend(sim::burst(at, 5, add, 1));
            calls.sort_unstable();
            let (_, out, _) = detect(&streams, &calls, &Options::default());
            let found: Vec<i64> = start_minutes(&out)
                .into_iter()
                .filter(|m| (at / MINUTE_MS - 1..at / MINUTE_MS + 5).contains(m))
                .collect();
            println!(
                "{base:>14} {:>14} {:>10} {:>22}",
                format!("+{add}/min"),
                if found.is_empty() { "no" } else { "yes" },
                found
                    .first()
                    .map_or("-".to_owned(), |m| (m - at / MINUTE_MS).to_string())
            );
        }
    }

    // 3. Live: how long after a burst begins its Start is recorded, and after it stops, its
    // End.
    println!();
    live_latency()?;

    // 4. Ingest with and without Insights (`--runs 0` skips it).
    if args.runs == 0 {
        return Ok(());
    }
    println!();
    println!(
        "ingest over HTTP ({} events, batches of {}, {} writers), with and without Insights, {} runs each, alternating:",
        args.events, args.batch, args.writers, args.runs
    );
    let mut with = Vec::new();
    let mut without = Vec::new();
    for run in 0..args.runs * 2 {
        let on = run % 2 == 0;
        let dir = tempfile::tempdir()?;
        let extra: &[&str] = if on { &[] } else { &["--no-insights"] };
        let (server, endpoint) = start_server_with(dir.path(), extra)?;
        let client_args = ClientArgs {
            endpoint_url: Some(endpoint),
            profile: None,
            region: Some("us-east-1".into()),
            ca_bundle: None,
        };
        let (stored, secs, _) = ingest_over_http(args, &plan, &client_args)?;
        let rate = stored as f64 / secs;
        println!(
            "  {}: {rate:.0} events/s",
            if on {
                "with Insights   "
            } else {
                "without Insights"
            }
        );
        if on { &mut with } else { &mut without }.push(rate);
        drop(server);
    }
    let (w, wo) = (median(&mut with), median(&mut without));
    println!(
        "median: {w:.0} events/s with Insights, {wo:.0} without: {:+.1}%",
        (w / wo - 1.0) * 100.0
    );
    Ok(())
}
