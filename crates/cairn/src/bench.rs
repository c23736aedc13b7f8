//! `cairn bench`: runs `cairn serve` as a child process on a fresh data directory, ingests
//! generated events over HTTP (signed batches from concurrent writers, durable before each
//! answer), then measures LookupEvents for every attribute over HTTP, the server's resident
//! memory and the bytes stored per event; finally it stops the server, reopens the store in
//! process (timing the restart) and measures the same lookups inside the store.
//!
//! Events are drawn from templates taken from the shared datasets. Event `i` of `total`
//! happens at `i / total` of the time span (with a minute of jitter), as a live trail delivers
//! them; users are Zipf-distributed and each works from a few addresses with two access keys;
//! resources are Zipf-distributed too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use cairn_client::{Client, ClientArgs};
use cairn_store::{Attr, Query, Store, StoreOptions};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Events to store before lookups are measured.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: usize,
    /// Measure trail delivery and `cairn import` instead of ingest and lookups.
    #[arg(long)]
    trails: bool,
    /// Measure CloudTrail Lake SQL (Cairn and DuckDB over the same Parquet files) instead.
    #[arg(long)]
    sql: bool,
    /// Measure Insights instead: the detector on synthetic workloads, and ingest with and
    /// without Insights.
    #[arg(long)]
    insights: bool,
    /// Measure alerts instead: the time from an event's acknowledgement to the webhook
    /// request of the alert it raises, under ingest at full speed and under a quiet load, and
    /// ingest with rules on and off.
    #[arg(long)]
    alerts: bool,
    /// Runs of each SQL query, or of each ingest with and without Insights or rules (the
    /// median is reported).
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// The Python with `duckdb` for the SQL comparison (default: .venv/bin/python, else
    /// python3).
    #[arg(long)]
    pub(crate) python: Option<PathBuf>,
    /// Records per ingest request.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Concurrent HTTP writers.
    #[arg(long, default_value_t = 16)]
    pub(crate) writers: usize,
    /// Lookups per attribute.
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// Where the shared datasets are (the event shapes are drawn from them).
    #[arg(long, default_value = "../shared/datasets")]
    datasets: PathBuf,
    /// Data directory (a fresh temporary one by default; it must be empty).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Days the event times spread over.
    #[arg(long, default_value_t = 30)]
    days: i64,
}

pub(crate) const ACCOUNT: &str = "111122223333";
pub(crate) const KEY: &str = "AKIABENCHMARK0000001";
pub(crate) const SECRET: &str = "bench-secret-bench-secret-bench-secret00";
const REGIONS: [&str; 8] = [
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
];
const ID_PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";
const TIME_PLACEHOLDER: &str = "2000-01-01T00:00:00Z";
const POOL: usize = 50_000;

fn load_templates(dir: &Path) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (file, inner) in [
        ("seed-scenarios.jsonl", false),
        ("panther-labelled-events.jsonl", true),
        ("otrf-ec2-proxy-s3-exfiltration.jsonl", false),
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (set --datasets)", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            let rec = if inner { v["event"].clone() } else { v };
            // Only shapes Cairn accepts (some test records are deliberately broken).
            if cairn_event::normalise(&serde_json::to_vec(&rec)?, ACCOUNT, 0).is_ok() {
                out.push(rec);
            }
        }
    }
    if out.is_empty() {
        bail!("no usable records in {}", dir.display());
    }
    Ok(out)
}

/// A pre-built event with places for its eventID and eventTime.
struct Shape {
    value: Value,
    bytes: Vec<u8>,
    id_at: usize,
    time_at: usize,
}

fn make_pool(templates: &[Value]) -> Result<Vec<Shape>> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut pool = Vec::with_capacity(POOL);
    for _ in 0..POOL {
        let mut e = templates[rng.random_range(0..templates.len())].clone();
        let u = ((rng.random::<f64>().powi(3)) * 2000.0) as usize;
        let user = format!("user-{u:04}");
        e["eventID"] = json!(ID_PLACEHOLDER);
        e["eventTime"] = json!(TIME_PLACEHOLDER);
        e["awsRegion"] = json!(REGIONS[rng.random_range(0..REGIONS.len())]);
        let ip = (u as u64 * 4 + rng.random_range(0..4)).wrapping_mul(2_654_435_761);
        e["sourceIPAddress"] = json!(format!(
            "{}.{}.{}.{}",
            (ip >> 24) % 223 + 1,
            (ip >> 16) & 255,
            (ip >> 8) & 255,
            ip % 254 + 1
        ));
        e["recipientAccountId"] = json!(ACCOUNT);
        e["userIdentity"] = json!({
            "type": "IAMUser",
            "principalId": format!("AIDA{u:016}"),
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            "accountId": ACCOUNT,
            "accessKeyId": format!("AKIA{:016}", u * 7 + rng.random_range(0..2)),
            "userName": user,
        });
        let r = (rng.random::<f64>().powi(2) * 100_000.0) as u64;
        e["resources"] = json!([{
            "ARN": format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-{r:017x}"),
            "accountId": ACCOUNT,
            "type": "AWS::EC2::Instance",
        }]);
        if let Some(m) = e.as_object_mut() {
            m.remove("@timestamp");
        }
        let bytes = serde_json::to_vec(&e)?;
        let find = |needle: &str| {
            bytes
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .context("placeholder missing")
        };
        let (id_at, time_at) = (find(ID_PLACEHOLDER)?, find(TIME_PLACEHOLDER)?);
        pool.push(Shape {
            value: e,
            bytes,
            id_at,
            time_at,
        });
    }
    Ok(pool)
}

fn event_id(i: usize) -> String {
    uuid::Uuid::from_u128(0x5ca1_ab1e_u128 << 96 | i as u128).to_string()
}

pub(crate) struct Plan {
    pool: Vec<Shape>,
    total: usize,
    start_ms: i64,
    span_ms: i64,
}

impl Plan {
    fn shape(&self, i: usize) -> &Shape {
        &self.pool[i.wrapping_mul(7919) % self.pool.len()]
    }

    /// The record event `i` is made from (its eventID and eventTime are placeholders).
    pub(crate) fn record(&self, i: usize) -> &Value {
        &self.shape(i).value
    }

    pub(crate) fn write_event(&self, i: usize, out: &mut Vec<u8>) {
        let s = self.shape(i);
        let jitter = (i.wrapping_mul(2_654_435_761) % 120_000) as i64 - 60_000;
        let t =
            self.start_ms + (i as f64 / self.total as f64 * self.span_ms as f64) as i64 + jitter;
        let at = out.len();
        out.extend_from_slice(&s.bytes);
        out[at + s.id_at..at + s.id_at + 36].copy_from_slice(event_id(i).as_bytes());
        out[at + s.time_at..at + s.time_at + 20]
            .copy_from_slice(cairn_event::format_event_time(t).as_bytes());
        out.push(b'\n');
    }
}

/// Stores the plan's events in `store`, in batches of 1,000, as received `now`.
pub(crate) fn store_backlog(store: &Store, plan: &Plan, events: usize, now: i64) -> Result<()> {
    let mut buf = Vec::new();
    let mut i = 0;
    while i < events {
        let n = 1000.min(events - i);
        let mut batch = Vec::with_capacity(n);
        for k in i..i + n {
            buf.clear();
            plan.write_event(k, &mut buf);
            let raw = buf.strip_suffix(b"\n").unwrap_or(&buf);
            batch.push(cairn_event::normalise(raw, ACCOUNT, now)?);
        }
        store.append_blocking(ACCOUNT, batch)?;
        i += n;
    }
    Ok(())
}

pub(crate) struct Child9(Child);

impl Drop for Child9 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn start_server(dir: &Path) -> Result<(Child9, String)> {
    start_server_with(dir, &[])
}

pub(crate) fn start_server_with(dir: &Path, extra: &[&str]) -> Result<(Child9, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--retention-days",
            "forever",
        ])
        .args(extra)
        .args(["--account-id", ACCOUNT])
        .arg("--data-dir")
        .arg(dir)
        .env("CAIRN_ACCESS_KEY_ID", KEY)
        .env("CAIRN_SECRET_ACCESS_KEY", SECRET)
        // A master key of the benchmark's own, not the user's.
        .env("CAIRN_MASTER_KEY", "be".repeat(32))
        .env("CAIRN_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start cairn serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let child = Child9(child);
    let mut lines = BufReader::new(stdout).lines();
    let endpoint = loop {
        let line = lines.next().context("cairn serve exited early")??;
        if let Some(rest) = line.trim().strip_prefix("API endpoint:") {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, endpoint))
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Every LookupEvents attribute key, and no filter at all.
fn attrs() -> impl Iterator<Item = &'static str> {
    cairn_api::lookup::KEYS.into_iter().chain(["(none)"])
}

/// Lookup values that exist in the data, so each lookup finds something.
fn probe(attr: &str, plan: &Plan, rng: &mut StdRng) -> String {
    let i = rng.random_range(0..plan.total);
    let e = &plan.shape(i).value;
    let v = match attr {
        "EventId" => return event_id(i),
        "Username" => e["userIdentity"]["userName"].clone(),
        "EventName" => e["eventName"].clone(),
        "EventSource" => e["eventSource"].clone(),
        "AccessKeyId" => e["userIdentity"]["accessKeyId"].clone(),
        "ResourceType" => json!("AWS::EC2::Instance"),
        "ResourceName" => json!(
            e["resources"][0]["ARN"]
                .as_str()
                .unwrap_or_default()
                .rsplit('/')
                .next()
        ),
        "ReadOnly" => json!(if rng.random_bool(0.5) {
            "true"
        } else {
            "false"
        }),
        _ => Value::Null,
    };
    v.as_str().unwrap_or_default().to_owned()
}

/// Posts one NDJSON batch to `/v1/events`, waiting out throttling: the events stored and
/// when the answer came.
pub(crate) fn post_batch(client: &Client, body: &[u8]) -> Result<(usize, Instant)> {
    loop {
        let (status, resp) = client.post(
            "/v1/events",
            "cloudtrail",
            &[("content-type", "application/x-ndjson")],
            body.to_vec(),
        )?;
        let at = Instant::now();
        if status == 429 {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let v: Value = serde_json::from_slice(&resp)?;
        if status != 200 {
            bail!("ingest failed: {v}");
        }
        return Ok((v["stored"].as_u64().unwrap_or(0) as usize, at));
    }
}

/// Ingests `args.events` events of `plan` over HTTP from `args.writers` writers in batches
/// of `args.batch`: (events stored, seconds, bytes sent).
pub(crate) fn ingest_over_http(
    args: &BenchArgs,
    plan: &Arc<Plan>,
    client_args: &ClientArgs,
) -> Result<(usize, f64, usize)> {
    let batches = args.events.div_ceil(args.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let sent_bytes = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..args.writers {
        let (plan, next, sent_bytes) = (plan.clone(), next.clone(), sent_bytes.clone());
        let client = Client::with_credentials(client_args, KEY, SECRET)?;
        let (batch, total) = (args.batch, args.events);
        handles.push(std::thread::spawn(move || -> Result<usize> {
            let mut stored = 0;
            let mut body = Vec::new();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                body.clear();
                for i in b * batch..((b + 1) * batch).min(total) {
                    plan.write_event(i, &mut body);
                }
                sent_bytes.fetch_add(body.len(), Ordering::Relaxed);
                stored += post_batch(&client, &body)?.0;
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
    Ok((stored, secs, sent_bytes.load(Ordering::Relaxed)))
}

pub fn run(args: BenchArgs) -> Result<()> {
    let templates = load_templates(&args.datasets)?;
    let plan = Arc::new(Plan {
        pool: make_pool(&templates)?,
        total: args.events,
        start_ms: cairn_event::now_ms() - args.days * 86_400_000,
        span_ms: args.days * 86_400_000,
    });
    if args.trails {
        return crate::bench_trails::run(&args, plan);
    }
    if args.sql {
        return crate::bench_sql::run(&args, plan);
    }
    if args.insights {
        return crate::bench_insights::run(&args, plan);
    }
    if args.alerts {
        return crate::bench_alerts::run(&args, plan);
    }
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let (mut server, endpoint) = start_server(&dir)?;
    let pid = server.0.id();
    println!(
        "cairn bench: {} events over HTTP in signed batches of {} from {} writers; server pid {pid}, data in {}",
        args.events,
        args.batch,
        args.writers,
        dir.display()
    );
    let client_args = ClientArgs {
        endpoint_url: Some(endpoint.clone()),
        profile: None,
        region: Some("us-east-1".into()),
        ca_bundle: None,
    };

    // 1. Durable ingest over HTTP.
    let (stored, secs, sent) = ingest_over_http(&args, &plan, &client_args)?;
    println!(
        "ingest over HTTP, fsync before every answer: {stored} events in {secs:.1} s = {:.0} events/s ({:.1} MB/s of JSON, {:.0} bytes/event sent)",
        stored as f64 / secs,
        sent as f64 / secs / 1e6,
        sent as f64 / stored.max(1) as f64
    );

    // 2. Lookups over HTTP, and the server's memory.
    let client = Client::with_credentials(&client_args, KEY, SECRET)?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut http_lat: Vec<Vec<Duration>> = Vec::new();
    for attr in attrs() {
        let mut lat = Vec::with_capacity(args.lookups);
        for _ in 0..args.lookups {
            let input = if attr == "(none)" {
                json!({"MaxResults": 50})
            } else {
                let v = probe(attr, &plan, &mut rng);
                json!({"LookupAttributes": [{"AttributeKey": attr, "AttributeValue": v}], "MaxResults": 50})
            };
            let t = Instant::now();
            let resp = client.call("LookupEvents", &input)?;
            lat.push(t.elapsed());
            if resp["Events"].as_array().is_none_or(|e| e.is_empty()) {
                bail!("a {attr} lookup found nothing: {input}");
            }
        }
        lat.sort();
        http_lat.push(lat);
    }
    let rss = rss_mib(pid);

    // 3. Stop the server; measure the restart and lookups inside the store.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.0.wait();
    let disk = dir_bytes(&dir.join("journal")) + dir_bytes(&dir.join("dicts"));
    let t = Instant::now();
    let store = Store::open(
        &dir,
        StoreOptions {
            retention_ms: None,
            ..StoreOptions::default()
        },
    )?;
    let reopen = t.elapsed().as_secs_f64();
    let stats = store.stats();
    let per = |b: u64| b as f64 / stats.events.max(1) as f64;
    println!(
        "stored: {} events, {} bytes on disk = {:.0} bytes/event (records {:.0}, frame headers {:.0}, dictionaries {:.1})",
        stats.events,
        disk,
        per(disk),
        per(stats.record_bytes),
        per(stats.header_bytes),
        per(stats.dictionary_bytes)
    );
    println!("server resident memory after ingest and lookups: {rss:.0} MiB");
    println!("restart (journal replayed into the index): {reopen:.1} s");
    println!();
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>12}",
        "LookupEvents", "store p50 ms", "store p99 ms", "HTTP p50 ms", "HTTP p99 ms"
    );
    let mut rng = StdRng::seed_from_u64(7);
    for (n, attr) in attrs().enumerate() {
        let mut lat = Vec::with_capacity(args.lookups);
        for _ in 0..args.lookups {
            let mut q = Query {
                account: ACCOUNT.into(),
                limit: 50,
                ..Query::default()
            };
            if attr != "(none)" {
                let v = probe(attr, &plan, &mut rng);
                match Attr::from_lookup_key(attr) {
                    Some(a) => q.filters.push((a, vec![v])),
                    None => q.event_ids = vec![v],
                }
            }
            let t = Instant::now();
            let page = store.lookup(&q)?;
            lat.push(t.elapsed());
            if page.events.is_empty() {
                bail!("a {attr} lookup inside the store found nothing");
            }
        }
        lat.sort();
        println!(
            "{attr:<14} {:>12.3} {:>12.3} {:>12.3} {:>12.3}",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&http_lat[n], 0.5),
            percentile(&http_lat[n], 0.99)
        );
    }
    Ok(())
}
