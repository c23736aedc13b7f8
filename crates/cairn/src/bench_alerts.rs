//! `cairn bench --alerts`: how long after an event is acknowledged the webhook request of the
//! alert it raises arrives, and what rules cost durable ingest.
//!
//! The benchmark runs its own webhook receiver (a minimal HTTP/1.1 server on a free loopback
//! port, checking each request's signature) and points `cairn serve --alert-target` at it.
//! Writers ingest the benchmark's events at full speed; one event in [`MARKER_EVERY`] is
//! replaced by a DeleteBucket of a bucket of its own, which the default pack's
//! `cairn-bucket-deleted` rule alerts on, and its acknowledgement instant is kept. Background
//! events that any default rule matches are left out, so every alert is a marker's and the
//! measurement is of latency, not of a backlog of other alerts. Latency is the receiver's
//! arrival instant minus the acknowledgement instant, split at the alert's `detectedAt` (when
//! the rules worker logged it). Then the same with one marker every 100 ms and nothing else,
//! and ingest with rules on and `--no-rules`, alternately.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cairn_client::{Client, ClientArgs};
use cairn_rules::{Rule, RuleSet};

use crate::bench::{ACCOUNT, BenchArgs, KEY, Plan, SECRET, start_server_with};

/// One event in this many is a marker that raises an alert.
const MARKER_EVERY: usize = 1000;
/// Markers sent one at a time, with nothing else, for the quiet measurement.
const QUIET_MARKERS: usize = 50;
const QUIET_PERIOD: Duration = Duration::from_millis(100);
/// The key the server signs webhooks with.
const WEBHOOK_SECRET: &str = "bench-webhook-secret";

/// What the receiver saw of one alert.
struct Arrival {
    at: Instant,
    wall_ms: i64,
    detected_ms: Option<i64>,
}

/// The webhook receiver's record.
#[derive(Default)]
struct Inbox {
    /// First arrival per event ID.
    arrivals: HashMap<String, Arrival>,
    requests: u64,
    duplicates: u64,
    bad_signatures: u64,
    unreadable: u64,
}

/// A webhook receiver on a free loopback port, serving on its own runtime.
struct Receiver {
    inbox: Arc<Mutex<Inbox>>,
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Result<Receiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-webhook")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let shared = inbox.clone();
        runtime.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_connection(sock, shared.clone()));
            }
        });
        Ok(Receiver {
            inbox,
            port,
            _runtime: runtime,
        })
    }

    fn url(&self) -> String {
        format!("webhook=http://127.0.0.1:{}/", self.port)
    }

    /// Empties the record (between servers).
    fn take(&self) -> Inbox {
        std::mem::take(&mut *self.inbox.lock())
    }

    /// Waits until every ID in `ids` has arrived or `timeout` passes; returns the missing.
    fn wait_for(&self, ids: &[String], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing: Vec<String> = {
                let inbox = self.inbox.lock();
                ids.iter()
                    .filter(|id| !inbox.arrivals.contains_key(*id))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() || Instant::now() >= deadline {
                return missing;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads HTTP/1.1 requests off one kept-alive connection and answers each with 200.
async fn serve_connection(mut sock: tokio::net::TcpStream, inbox: Arc<Mutex<Inbox>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let at = Instant::now();
        let wall_ms = cairn_event::now_ms();
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        let signed = match (header("x-cairn-timestamp"), header("x-cairn-signature")) {
            (Some(ts), Some(sig)) => ts.parse::<i64>().is_ok_and(|ts| {
                cairn_rules::targets::signature(WEBHOOK_SECRET.as_bytes(), ts, &body) == sig
            }),
            _ => false,
        };
        {
            let mut inbox = inbox.lock();
            inbox.requests += 1;
            if !signed {
                inbox.bad_signatures += 1;
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(alert) => match alert["eventId"].as_str() {
                    Some(id) if inbox.arrivals.contains_key(id) => inbox.duplicates += 1,
                    Some(id) => {
                        let detected_ms = alert["detectedAt"]
                            .as_str()
                            .and_then(cairn_event::parse_event_time);
                        inbox.arrivals.insert(
                            id.to_owned(),
                            Arrival {
                                at,
                                wall_ms,
                                detected_ms,
                            },
                        );
                    }
                    None => inbox.unreadable += 1,
                },
                Err(_) => inbox.unreadable += 1,
            }
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if sock.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A DeleteBucket of a bucket of its own: the default pack's `cairn-bucket-deleted` alerts
/// on it.
fn marker(id: &str, n: usize) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventID": id,
        "eventTime": cairn_event::format_event_time(cairn_event::now_ms()),
        "eventSource": "s3.amazonaws.com",
        "eventName": "DeleteBucket",
        "eventType": "AwsApiCall",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "cairn-bench",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDABENCHMARKER00001",
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/bench-cleaner"),
            "accountId": ACCOUNT,
            "accessKeyId": "AKIABENCHMARKER00001",
            "userName": "bench-cleaner",
        },
        "requestParameters": {"bucketName": format!("bench-doomed-{n}-{id}"), "Host": "s3.amazonaws.com"},
        "responseElements": null,
        "readOnly": false,
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
    })
}

/// Whether any default rule matches a record (thresholds aside).
fn quiet_filter() -> Result<impl Fn(&Value) -> bool> {
    let rules: RuleSet = Arc::new(
        cairn_rules::pack::default_pack()
            .into_iter()
            .map(|s| Rule::compile(s).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("the default pack does not compile: {e}"))?,
    );
    Ok(move |record: &Value| {
        let env = cairn_rules::envelope::envelope(ACCOUNT, record);
        rules.iter().any(|r| r.matches(record, &env))
    })
}

/// Which of the plan's events fire a default rule (decided once per distinct shape).
fn firing_shapes(plan: &Plan, events: usize) -> Result<(Vec<bool>, usize)> {
    let fires = quiet_filter()?;
    let mut by_shape: HashMap<*const Value, bool> = HashMap::new();
    let mut out = Vec::with_capacity(events);
    let mut firing = 0;
    for i in 0..events {
        let r = plan.record(i);
        let f = *by_shape
            .entry(std::ptr::from_ref(r))
            .or_insert_with(|| fires(r));
        firing += usize::from(f);
        out.push(f);
    }
    Ok((out, firing))
}

fn is_marker(i: usize) -> bool {
    i % MARKER_EVERY == MARKER_EVERY / 2
}

/// What one ingest at full speed did.
struct Ingested {
    stored: usize,
    secs: f64,
    /// Each marker's eventID with the instant (and wall-clock ms) its batch was acknowledged.
    acks: Vec<(String, Instant, i64)>,
}

/// Ingests the plan's events (less those that fire rules) with markers in place of one in
/// [`MARKER_EVERY`], from `args.writers` writers in batches of `args.batch`.
fn ingest(
    args: &BenchArgs,
    plan: &Arc<Plan>,
    skip: &Arc<Vec<bool>>,
    client_args: &ClientArgs,
) -> Result<Ingested> {
    let batches = args.events.div_ceil(args.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..args.writers {
        let (plan, next, skip, acks) = (plan.clone(), next.clone(), skip.clone(), acks.clone());
        let client = Client::with_credentials(client_args, KEY, SECRET)?;
        let (batch, total) = (args.batch, args.events);
        handles.push(std::thread::spawn(move || -> Result<usize> {
            let mut stored = 0;
            let mut body = Vec::new();
            let mut markers = Vec::new();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                body.clear();
                markers.clear();
                for i in b * batch..((b + 1) * batch).min(total) {
                    if is_marker(i) {
                        let id = uuid::Uuid::new_v4().to_string();
                        serde_json::to_writer(&mut body, &marker(&id, i))?;
                        body.push(b'\n');
                        markers.push(id);
                    } else if !skip[i] {
                        plan.write_event(i, &mut body);
                    }
                }
                if body.is_empty() {
                    continue;
                }
                let (n, at) = crate::bench::post_batch(&client, &body)?;
                let wall = cairn_event::now_ms();
                stored += n;
                acks.lock()
                    .extend(markers.drain(..).map(|id| (id, at, wall)));
            }
            Ok(stored)
        }));
    }
    let mut stored = 0;
    for h in handles {
        stored += h
            .join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    let acks = std::mem::take(&mut *acks.lock());
    Ok(Ingested { stored, secs, acks })
}

/// Latencies of one measurement, in ms.
#[derive(Default)]
struct Latencies {
    total: Vec<f64>,
    /// Acknowledgement to the alert being logged (`detectedAt`; wall clock, ms resolution).
    detect: Vec<f64>,
    /// Logged to the webhook request.
    deliver: Vec<f64>,
}

impl Latencies {
    fn add(&mut self, acks: &[(String, Instant, i64)], inbox: &Inbox) {
        for (id, at, wall) in acks {
            let Some(a) = inbox.arrivals.get(id) else {
                continue;
            };
            let ms = if a.at >= *at {
                a.at.duration_since(*at).as_secs_f64() * 1000.0
            } else {
                -(at.duration_since(a.at).as_secs_f64() * 1000.0)
            };
            self.total.push(ms);
            if let Some(d) = a.detected_ms {
                self.detect.push((d - wall) as f64);
                self.deliver.push((a.wall_ms - d) as f64);
            }
        }
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(v: &[f64]) -> f64 {
    pct(&sorted(v), 0.5)
}

fn client_args(endpoint: String) -> ClientArgs {
    ClientArgs {
        endpoint_url: Some(endpoint),
        profile: None,
        region: Some("us-east-1".into()),
        ca_bundle: None,
    }
}

/// Checks what the receiver saw besides the markers' alerts.
fn check_inbox(inbox: &Inbox, expected: usize, what: &str) -> Result<()> {
    if inbox.bad_signatures > 0 {
        bail!(
            "{what}: {} of {} webhook requests had a wrong x-cairn-signature",
            inbox.bad_signatures,
            inbox.requests
        );
    }
    if inbox.unreadable > 0 {
        bail!(
            "{what}: {} webhook requests were not alerts with an eventId",
            inbox.unreadable
        );
    }
    let others = inbox.arrivals.len().saturating_sub(expected);
    if others > 0 || inbox.duplicates > 0 {
        println!(
            "  note: {others} alerts on events other than the markers, {} sent twice",
            inbox.duplicates
        );
    }
    Ok(())
}

fn server_flags(receiver: &Receiver) -> Vec<String> {
    vec![
        "--alert-target".into(),
        receiver.url(),
        "--alert-webhook-secret".into(),
        WEBHOOK_SECRET.into(),
    ]
}

/// One marker every [`QUIET_PERIOD`] and nothing else.
fn quiet(receiver: &Receiver) -> Result<Latencies> {
    let dir = tempfile::tempdir()?;
    let flags = server_flags(receiver);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (server, endpoint) = start_server_with(dir.path(), &flags)?;
    let client = Client::with_credentials(&client_args(endpoint), KEY, SECRET)?;
    receiver.take();
    let mut acks = Vec::new();
    let mut tick = Instant::now();
    for n in 0..QUIET_MARKERS {
        let id = uuid::Uuid::new_v4().to_string();
        let mut body = serde_json::to_vec(&marker(&id, n))?;
        body.push(b'\n');
        let (_, at) = crate::bench::post_batch(&client, &body)?;
        acks.push((id, at, cairn_event::now_ms()));
        tick += QUIET_PERIOD;
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let ids: Vec<String> = acks.iter().map(|(id, _, _)| id.clone()).collect();
    let missing = receiver.wait_for(&ids, Duration::from_secs(30));
    drop(server);
    let inbox = receiver.take();
    if !missing.is_empty() {
        bail!(
            "quiet load: {} of {} alerts never reached the webhook (e.g. event {})",
            missing.len(),
            ids.len(),
            missing[0]
        );
    }
    check_inbox(&inbox, ids.len(), "quiet load")?;
    let mut lat = Latencies::default();
    lat.add(&acks, &inbox);
    Ok(lat)
}

pub fn run(args: &BenchArgs, plan: Arc<Plan>) -> Result<()> {
    let receiver = Receiver::start().context("cannot start the webhook receiver")?;
    let (skip, firing) = firing_shapes(&plan, args.events)?;
    let skip = Arc::new(skip);
    let markers = (0..args.events).filter(|i| is_marker(*i)).count();
    println!(
        "cairn bench --alerts: {} events planned over HTTP in signed batches of {} from {} writers; {firing} of them match a default rule and are left out; {markers} markers (DeleteBucket, one in {MARKER_EVERY}) raise an alert each, sent to a webhook receiver on 127.0.0.1:{}",
        args.events, args.batch, args.writers, receiver.port
    );

    // 1. Under load, and ingest with rules on and off, alternately.
    let pairs = args.runs.max(1);
    let mut loaded = Latencies::default();
    let mut rate_on = Vec::new();
    let mut rate_off = Vec::new();
    for run in 0..pairs * 2 {
        let on = run % 2 == 0;
        let dir = tempfile::tempdir()?;
        let flags = if on {
            server_flags(&receiver)
        } else {
            vec!["--no-rules".to_owned()]
        };
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (server, endpoint) = start_server_with(dir.path(), &flags)?;
        receiver.take();
        let done = ingest(args, &plan, &skip, &client_args(endpoint))?;
        let rate = done.stored as f64 / done.secs;
        if !on {
            println!("  run {}, --no-rules: {rate:.0} events/s", run / 2 + 1);
            rate_off.push(rate);
            drop(server);
            continue;
        }
        rate_on.push(rate);
        let ids: Vec<String> = done.acks.iter().map(|(id, _, _)| id.clone()).collect();
        if ids.len() != markers {
            bail!("{} markers were acknowledged of {markers} sent", ids.len());
        }
        let drain_started = Instant::now();
        let missing = receiver.wait_for(&ids, Duration::from_secs(120));
        let drained = drain_started.elapsed().as_secs_f64();
        drop(server);
        let inbox = receiver.take();
        if !missing.is_empty() {
            bail!(
                "run {}: {} of {} alerts never reached the webhook within 120 s of the end of ingest (e.g. event {})",
                run / 2 + 1,
                missing.len(),
                ids.len(),
                missing[0]
            );
        }
        check_inbox(&inbox, ids.len(), "under load")?;
        let mut lat = Latencies::default();
        lat.add(&done.acks, &inbox);
        let s = sorted(&lat.total);
        println!(
            "  run {}, rules on: {rate:.0} events/s; {} alerts, median {:.1} ms, p99 {:.1} ms, max {:.1} ms; the last arrived {drained:.2} s after ingest ended",
            run / 2 + 1,
            s.len(),
            pct(&s, 0.5),
            pct(&s, 0.99),
            pct(&s, 1.0)
        );
        loaded.total.extend(lat.total);
        loaded.detect.extend(lat.detect);
        loaded.deliver.extend(lat.deliver);
    }

    // 2. Quiet: one marker every 100 ms.
    let quiet = quiet(&receiver)?;

    let (on, off) = (median(&rate_on), median(&rate_off));
    println!();
    println!(
        "alert latency, from the ingest acknowledgement to the webhook request, in ms (detect: to the alert being logged, deliver: from then to the request; both by the wall clock, to the ms):"
    );
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>9} {:>14} {:>15}",
        "load", "alerts", "median", "p90", "p99", "max", "median detect", "median deliver"
    );
    for (label, lat) in [
        (format!("ingest at full speed ({on:.0} ev/s)"), &loaded),
        (
            format!("quiet (one every {} ms)", QUIET_PERIOD.as_millis()),
            &quiet,
        ),
    ] {
        let s = sorted(&lat.total);
        println!(
            "{label:<34} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>14.0} {:>15.0}",
            s.len(),
            pct(&s, 0.5),
            pct(&s, 0.9),
            pct(&s, 0.99),
            pct(&s, 1.0),
            median(&lat.detect),
            median(&lat.deliver)
        );
    }
    println!();
    println!(
        "ingest over HTTP ({} events, batches of {}, {} writers), median of {pairs} run{} each, alternating: {on:.0} events/s with rules (and the webhook), {off:.0} with --no-rules: {:+.1}%",
        args.events,
        args.batch,
        args.writers,
        if pairs == 1 { "" } else { "s" },
        (on / off - 1.0) * 100.0
    );
    Ok(())
}
