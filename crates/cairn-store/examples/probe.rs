//! Measures a data directory left by `cairn bench --data-dir DIR`: the index's resident
//! memory and the restart time, lookups by every attribute (Cairn's extension keys
//! included) and per-bucket counts as the console asks them, all inside the store.
//!
//! ```sh
//! cargo run --release -- bench --events 1000000 --data-dir /tmp/b1m
//! cargo run --release -p cairn-store --example probe -- /tmp/b1m
//! ```

use std::time::{Duration, Instant};

use cairn_store::{Attr, Query, Store, StoreOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's: returns freed memory it still holds to the system.
    fn mi_collect(force: bool);
}

const ACCOUNT: &str = "111122223333";

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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentiles(mut lat: Vec<Duration>) -> (f64, f64, f64) {
    lat.sort();
    let at = |p: f64| ms(lat[((lat.len() - 1) as f64 * p).round() as usize]);
    (at(0.5), at(0.99), at(1.0))
}

/// A small deterministic generator (no dependency for a probe).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: probe <data directory of cairn bench --data-dir>");
    let before = rss_mib();
    let t = Instant::now();
    let store = Store::open(
        std::path::Path::new(&dir),
        StoreOptions {
            retention_ms: None,
            ..StoreOptions::default()
        },
    )
    .expect("cannot open the store");
    let opened = t.elapsed();
    // What the replay freed (its buffers, the decoding thread's) is not the index's.
    std::thread::sleep(Duration::from_millis(500));
    unsafe { mi_collect(true) };
    let events = store.stats().events;
    println!(
        "{events} events; restart {:.1} s; resident memory of the store {:.0} MiB ({:.1} bytes/event)",
        opened.as_secs_f64(),
        rss_mib() - before,
        (rss_mib() - before) * 1_048_576.0 / events.max(1) as f64
    );

    // Values to look up, from records spread over the history.
    let newest = store
        .lookup(&Query {
            account: ACCOUNT.into(),
            limit: 1,
            ..Query::default()
        })
        .expect("lookup")
        .events
        .first()
        .map(|f| f.key.0)
        .expect("an empty store");
    let span_ms = 31 * 86_400_000i64;
    let mut rng = Lcg(7);
    let mut sample = Vec::new();
    for _ in 0..400 {
        let end = newest - (rng.below(span_ms as usize) as i64);
        let page = store
            .lookup(&Query {
                account: ACCOUNT.into(),
                end_ms: Some(end),
                limit: 5,
                ..Query::default()
            })
            .expect("lookup");
        for f in page.events {
            sample.push(cairn_event::lookup_view(&f.record).expect("record"));
        }
    }
    let value = |attr: Attr, rng: &mut Lcg| -> Option<String> {
        for _ in 0..100 {
            let m = &sample[rng.below(sample.len())];
            let v = match attr {
                Attr::EventName => Some(m.event_name.clone()),
                Attr::Username => m.username.clone(),
                Attr::AwsRegion => m.region.clone(),
                Attr::ErrorCode => m.error_code.clone(),
                Attr::SourceIpAddress => m.source_ip.clone(),
                Attr::ReadOnly => m.read_only.map(|r| r.to_string()),
                _ => None,
            };
            if v.as_ref().is_some_and(|v| !v.is_empty()) {
                return v;
            }
        }
        None
    };

    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "lookup, 50 newest", "p50 ms", "p99 ms", "max ms"
    );
    let keys = [
        ("AwsRegion", Attr::AwsRegion),
        ("ErrorCode", Attr::ErrorCode),
        ("SourceIpAddress", Attr::SourceIpAddress),
        ("Username", Attr::Username),
    ];
    for (name, attr) in keys {
        let mut lat = Vec::new();
        for _ in 0..1000 {
            let Some(v) = value(attr, &mut rng) else {
                break;
            };
            let q = Query {
                account: ACCOUNT.into(),
                filters: vec![(attr, vec![v])],
                limit: 50,
                ..Query::default()
            };
            let t = Instant::now();
            let page = store.lookup(&q).expect("lookup");
            lat.push(t.elapsed());
            assert!(
                !page.events.is_empty(),
                "{name} {:?} found nothing",
                q.filters
            );
        }
        if lat.is_empty() {
            println!("{name:<34} (no record has one)");
            continue;
        }
        let (p50, p99, max) = percentiles(lat);
        println!("{name:<34} {p50:>9.3} {p99:>9.3} {max:>9.3}");
    }

    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "count, 30 days in 60 buckets", "p50 ms", "p99 ms", "max ms", "partial"
    );
    let start = newest + 1 - 30 * 86_400_000;
    let end = newest + 1;
    let bucket = 12 * 3_600_000;
    type Filters = Vec<(Attr, Vec<String>)>;
    type Case<'a> = (&'static str, Box<dyn Fn(&mut Lcg) -> Filters + 'a>);
    let cases: Vec<Case> = vec![
        ("no filter", Box::new(|_| vec![])),
        (
            "Username",
            Box::new(|r| vec![(Attr::Username, vec![value(Attr::Username, r).unwrap()])]),
        ),
        (
            "AwsRegion, two values",
            Box::new(|r| {
                vec![(
                    Attr::AwsRegion,
                    vec![
                        value(Attr::AwsRegion, r).unwrap(),
                        value(Attr::AwsRegion, r).unwrap(),
                    ],
                )]
            }),
        ),
        (
            "AwsRegion + ReadOnly",
            Box::new(|r| {
                vec![
                    (Attr::AwsRegion, vec![value(Attr::AwsRegion, r).unwrap()]),
                    (Attr::ReadOnly, vec![value(Attr::ReadOnly, r).unwrap()]),
                ]
            }),
        ),
        (
            "ReadOnly + ResourceType (both common)",
            Box::new(|r| {
                vec![
                    (Attr::ReadOnly, vec![value(Attr::ReadOnly, r).unwrap()]),
                    (Attr::ResourceType, vec!["AWS::EC2::Instance".into()]),
                ]
            }),
        ),
        (
            "Username + EventName",
            Box::new(|r| {
                vec![
                    (Attr::Username, vec![value(Attr::Username, r).unwrap()]),
                    (Attr::EventName, vec![value(Attr::EventName, r).unwrap()]),
                ]
            }),
        ),
    ];
    for (name, make) in &cases {
        let mut lat = Vec::new();
        let mut partial = 0;
        let runs = if name.contains('+') { 20 } else { 200 };
        for _ in 0..runs {
            let q = Query {
                account: ACCOUNT.into(),
                filters: make(&mut rng),
                ..Query::default()
            };
            let t = Instant::now();
            let c = store.count(&q, bucket, start, end).expect("count");
            lat.push(t.elapsed());
            partial += usize::from(c.partial);
        }
        let (p50, p99, max) = percentiles(lat);
        println!("{name:<34} {p50:>9.3} {p99:>9.3} {max:>9.3} {partial:>5}/{runs}");
    }
}
