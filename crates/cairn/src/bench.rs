//! `cairn bench`: durable ingest over HTTP, LookupEvents latency per attribute inside the store
//! and over HTTP, bytes stored per event and resident memory, on generated events shaped like
//! the shared datasets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use cairn_api::AppState;
use cairn_api::channels::Channels;
use cairn_api::identity::Identity;
use cairn_store::{Attr, Query, Store, StoreOptions};

use cairn_client::{Client, ClientArgs};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Events stored before lookups are measured.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Of those, how many are sent over HTTP (the measured ingest); the rest go straight
    /// into the store to reach the size quickly.
    #[arg(long, default_value_t = 500_000)]
    http_events: usize,
    /// Records per ingest request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent HTTP writers.
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Lookups per attribute.
    #[arg(long, default_value_t = 2000)]
    lookups: usize,
    /// Where the shared datasets are (the event shapes are drawn from them).
    #[arg(long, default_value = "../shared/datasets")]
    datasets: PathBuf,
    /// Data directory (a fresh temporary one by default).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Days the event times spread over.
    #[arg(long, default_value_t = 30)]
    days: i64,
}

const ACCOUNT: &str = "111122223333";
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

/// Generates events from templates drawn from the datasets, varying who, when, where and
/// on which resource. Event `i` of `total` happens at `i / total` of the time span (with a
/// minute of jitter), as a live trail delivers them; users are Zipf-distributed and each
/// works from a few addresses with two access keys; resources are Zipf-distributed too.
struct Generator {
    templates: Vec<Value>,
    users: usize,
    now_ms: i64,
    span_ms: i64,
    total: usize,
}

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
            let bytes = serde_json::to_vec(&rec)?;
            if cairn_event::normalise(&bytes, ACCOUNT, 0).is_ok() {
                out.push(rec);
            }
        }
    }
    if out.is_empty() {
        bail!("no usable records in {}", dir.display());
    }
    Ok(out)
}

impl Generator {
    fn event(&self, i: usize, rng: &mut StdRng) -> Value {
        let mut e = self.templates[rng.random_range(0..self.templates.len())].clone();
        // Zipf-like users: a few are very busy.
        let u = ((rng.random::<f64>().powi(3)) * self.users as f64) as usize;
        let user = format!("user-{u:04}");
        let at = (i as f64 / self.total.max(1) as f64 * self.span_ms as f64) as i64;
        let t = self.now_ms - self.span_ms + at + rng.random_range(-60_000..60_000);
        e["eventID"] = json!(uuid::Uuid::from_u128(rng.random()).to_string());
        e["eventTime"] = json!(cairn_event::format_event_time(t));
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
        e.as_object_mut().map(|m| m.remove("@timestamp"));
        e
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub fn run(args: BenchArgs) -> Result<()> {
    let templates = load_templates(&args.datasets)?;
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let key_id = "AKIABENCHMARK0000001".to_owned();
    let secret = "bench-secret-bench-secret-bench-secret00".to_owned();
    let (identity, _) =
        Identity::open(&dir, Some(ACCOUNT), Some((key_id.clone(), secret.clone())))?;
    let channels =
        Channels::open(&dir, "us-east-1", &identity.accounts()).map_err(anyhow::Error::msg)?;
    let store = Arc::new(Store::open(
        &dir,
        StoreOptions {
            retention_ms: None,
            ..StoreOptions::default()
        },
    )?);
    let state = Arc::new(AppState {
        store: store.clone(),
        identity,
        channels,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    runtime.spawn(cairn_api::serve(listener, state, std::future::pending()));

    let gen_ = Arc::new(Generator {
        templates,
        users: 2000,
        now_ms: cairn_event::now_ms(),
        span_ms: args.days * 86_400_000,
        total: args.events,
    });
    println!(
        "Cairn bench: {} events ({} over HTTP in batches of {}, {} writers), data in {}",
        args.events,
        args.http_events.min(args.events),
        args.batch,
        args.writers,
        dir.display()
    );

    // 1. Durable ingest over HTTP.
    let http_events = args.http_events.min(args.events);
    let batches: Vec<Vec<u8>> = {
        let mut rng = StdRng::seed_from_u64(1);
        (0..http_events.div_ceil(args.batch))
            .map(|b| {
                let n = args.batch.min(http_events - b * args.batch);
                let mut body = Vec::new();
                for j in 0..n {
                    let i = b * args.batch + j;
                    body.extend_from_slice(
                        &serde_json::to_vec(&gen_.event(i, &mut rng)).unwrap_or_default(),
                    );
                    body.push(b'\n');
                }
                body
            })
            .collect()
    };
    let raw_bytes: usize = batches.iter().map(Vec::len).sum();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..args.writers {
        let batches = batches.clone();
        let next = next.clone();
        let endpoint = endpoint.clone();
        let (key_id, secret) = (key_id.clone(), secret.clone());
        handles.push(std::thread::spawn(move || -> Result<usize> {
            let client = client_for(&endpoint, &key_id, &secret)?;
            let mut stored = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else { break };
                loop {
                    let (status, resp) = client.post(
                        "/v1/events",
                        "cloudtrail",
                        &[("content-type", "application/x-ndjson")],
                        body.clone(),
                    )?;
                    if status == 429 {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let v: Value = serde_json::from_slice(&resp)?;
                    if status != 200 {
                        bail!("ingest failed: {v}");
                    }
                    stored += v["stored"].as_u64().unwrap_or(0) as usize;
                    break;
                }
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
    println!(
        "ingest over HTTP (durable, fsync before ack): {stored} events in {secs:.2} s = {:.0} events/s ({:.1} MB/s of JSON)",
        stored as f64 / secs,
        raw_bytes as f64 / secs / 1e6
    );
    drop(batches);

    // 2. Fill the rest straight into the store.
    let rest = args.events - http_events;
    if rest > 0 {
        let started = Instant::now();
        let per_thread = rest.div_ceil(2);
        let mut handles = Vec::new();
        for t in 0..2u64 {
            let store = store.clone();
            let gen_ = gen_.clone();
            let n = per_thread.min(rest - (t as usize) * per_thread);
            handles.push(std::thread::spawn(move || -> Result<()> {
                let mut rng = StdRng::seed_from_u64(100 + t);
                let now = cairn_event::now_ms();
                let mut left = n;
                // This thread's share is every second event after the HTTP part.
                let mut i = http_events + t as usize;
                while left > 0 {
                    let k = left.min(1000);
                    let recs = (0..k)
                        .map(|_| {
                            let bytes =
                                serde_json::to_vec(&gen_.event(i, &mut rng)).unwrap_or_default();
                            i += 2;
                            cairn_event::normalise(&bytes, ACCOUNT, now)
                                .map_err(anyhow::Error::from)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    loop {
                        match store.append_blocking(ACCOUNT, recs.clone()) {
                            Err(cairn_store::StoreError::Throttled) => {
                                std::thread::sleep(Duration::from_millis(2))
                            }
                            other => {
                                other?;
                                break;
                            }
                        }
                    }
                    left -= k;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("fill thread panicked"))??;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "fill in process (generate + normalise + store, 2 threads): {rest} events in {secs:.1} s = {:.0} events/s",
            rest as f64 / secs
        );
    }
    store.barrier_blocking()?;
    // Let the writer's maintenance refresh the size figures.
    std::thread::sleep(Duration::from_millis(1500));
    let stats = store.stats();
    let per = |b: u64| b as f64 / stats.events.max(1) as f64;
    let total = stats.journal_bytes + stats.dictionary_bytes;
    println!(
        "stored: {} events in {} bytes = {:.0} bytes/event on disk (records {:.0}, frame headers with the lookup attributes {:.0}, dictionaries {:.1}); the JSON sent was {:.0} bytes/event",
        stats.events,
        total,
        per(total),
        per(stats.record_bytes),
        per(stats.header_bytes),
        per(stats.dictionary_bytes),
        raw_bytes as f64 / http_events.max(1) as f64
    );

    // 3. Lookups per attribute: values drawn from stored events, so each finds something.
    let mut rng = StdRng::seed_from_u64(7);
    let sample: Vec<Value> = (0..200)
        .map(|_| {
            let i = rng.random_range(0..args.events);
            gen_.event(i, &mut rng)
        })
        .collect();
    let probe = |attr: &str, rng: &mut StdRng| -> (String, String) {
        let e = &sample[rng.random_range(0..sample.len())];
        let v = match attr {
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
        (attr.to_owned(), v.as_str().unwrap_or_default().to_owned())
    };
    // Real eventIDs for EventId lookups.
    let ids: Vec<String> = store
        .lookup(&Query {
            account: ACCOUNT.into(),
            limit: 50,
            ..Query::default()
        })?
        .events
        .iter()
        .filter_map(|f| serde_json::from_slice::<Value>(&f.record).ok())
        .filter_map(|v| v["eventID"].as_str().map(str::to_owned))
        .collect();
    let client = client_for(&endpoint, &key_id, &secret)?;
    println!();
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>12}",
        "LookupEvents", "store p50 ms", "store p99 ms", "HTTP p50 ms", "HTTP p99 ms"
    );
    for attr in [
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
        "(none)",
    ] {
        let mut inner = Vec::with_capacity(args.lookups);
        let mut http = Vec::with_capacity(args.lookups);
        for i in 0..args.lookups {
            let (key, value) = if attr == "EventId" {
                (
                    "EventId".to_owned(),
                    ids.get(i % ids.len().max(1)).cloned().unwrap_or_default(),
                )
            } else {
                probe(attr, &mut rng)
            };
            let mut q = Query {
                account: ACCOUNT.into(),
                limit: 50,
                ..Query::default()
            };
            match attr {
                "(none)" => {}
                "EventId" => q.event_ids = vec![value.clone()],
                _ => {
                    if let Some(a) = Attr::from_lookup_key(&key) {
                        q.filters.push((a, vec![value.clone()]));
                    }
                }
            }
            let t = Instant::now();
            let page = store.lookup(&q)?;
            inner.push(t.elapsed());
            std::hint::black_box(page);
            let input = if attr == "(none)" {
                json!({"MaxResults": 50})
            } else {
                json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}], "MaxResults": 50})
            };
            let t = Instant::now();
            let resp = client.call("LookupEvents", &input)?;
            http.push(t.elapsed());
            std::hint::black_box(resp);
        }
        inner.sort();
        http.sort();
        println!(
            "{attr:<14} {:>12.3} {:>12.3} {:>12.3} {:>12.3}",
            percentile(&inner, 0.5),
            percentile(&inner, 0.99),
            percentile(&http, 0.5),
            percentile(&http, 0.99)
        );
    }
    println!();
    println!(
        "resident memory: {:.0} MiB (server, store and bench client in one process)",
        rss_mib()
    );
    Ok(())
}

fn client_for(endpoint: &str, key_id: &str, secret: &str) -> Result<Client> {
    let args = ClientArgs {
        endpoint_url: Some(endpoint.to_owned()),
        profile: None,
        region: Some("us-east-1".into()),
    };
    Client::with_credentials(&args, key_id, secret)
}
