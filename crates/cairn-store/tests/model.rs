//! The store against a simple in-memory model: random batches (with duplicate eventIDs,
//! out-of-order times and insight events), random lookups paged to the end, per-bucket counts
//! against a brute-force count, random restarts.

use std::collections::HashSet;

use cairn_store::{Attr, Outcome, Query, Store, StoreOptions};
use proptest::prelude::*;

const USERS: [&str; 3] = ["alana", "bob", "carol"];
const NAMES: [&str; 3] = ["RunInstances", "DeleteTrail", "GetObject"];
const ACCOUNTS: [&str; 2] = ["111111111111", "222222222222"];
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-south-1"];
const ERRORS: [&str; 2] = ["AccessDenied", "ThrottlingException"];
const IPS: [&str; 3] = ["192.0.2.1", "198.51.100.7", "2001:db8::1"];
const BUCKETS: [&str; 2] = ["bucket-a", "bucket-b"];

#[derive(Debug, Clone)]
struct Ev {
    id: u8,
    hour: u8,
    minute: u8,
    user: usize,
    name: usize,
    insight: bool,
    region: usize,
    error: Option<usize>,
    ip: usize,
    /// Which of `BUCKETS` the event names as resources (a bit each): one event may match
    /// both values of a ResourceName filter.
    buckets: u8,
}

/// The filters of a lookup or count.
#[derive(Debug, Clone, Default)]
struct Filters {
    user: Option<usize>,
    name: Option<Vec<usize>>,
    region: Option<Vec<usize>>,
    error: Option<Vec<usize>>,
    ip: Option<usize>,
    bucket: Option<Vec<usize>>,
    event_id: Option<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    Ingest(usize, Vec<Ev>),
    Lookup {
        account: usize,
        filters: Filters,
        start: Option<u8>,
        end: Option<u8>,
        insights: bool,
        limit: usize,
    },
    Count {
        account: usize,
        filters: Filters,
        /// Start and length of the range, in minutes.
        start: u16,
        len: u16,
        bucket_minutes: i64,
        insights: bool,
    },
    Restart,
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        (0u8..40, 0u8..6, 0u8..60),
        (0usize..3, 0usize..3, prop::bool::weighted(0.1)),
        (
            0usize..3,
            prop::option::weighted(0.3, 0usize..2),
            0usize..3,
            0u8..4,
        ),
    )
        .prop_map(
            |((id, hour, minute), (user, name, insight), (region, error, ip, buckets))| Ev {
                id,
                hour,
                minute,
                user,
                name,
                insight,
                region,
                error,
                ip,
                buckets,
            },
        )
}

fn values(n: usize) -> impl Strategy<Value = Option<Vec<usize>>> {
    prop::option::weighted(0.3, prop::collection::vec(0..n, 1..3))
}

fn filters() -> impl Strategy<Value = Filters> {
    (
        prop::option::weighted(0.3, 0usize..3),
        values(NAMES.len()),
        values(REGIONS.len()),
        values(ERRORS.len()),
        prop::option::weighted(0.3, 0usize..3),
        values(BUCKETS.len()),
        prop::option::weighted(0.1, 0u8..40),
    )
        .prop_map(
            |(user, name, region, error, ip, bucket, event_id)| Filters {
                user,
                name,
                region,
                error,
                ip,
                bucket,
                event_id,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, prop::collection::vec(ev(), 1..12)).prop_map(|(a, e)| Op::Ingest(a, e)),
        3 => (
            0usize..2,
            filters(),
            prop::option::of(0u8..6),
            prop::option::of(0u8..6),
            prop::bool::weighted(0.2),
            1usize..6,
        )
            .prop_map(|(account, filters, start, end, insights, limit)| Op::Lookup {
                account,
                filters,
                start,
                end,
                insights,
                limit,
            }),
        2 => (
            0usize..2,
            filters(),
            0u16..400,
            1u16..400,
            prop::sample::select(vec![1i64, 7, 30, 60, 90]),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(account, filters, start, len, bucket_minutes, insights)| Op::Count {
                account,
                filters,
                start,
                len,
                bucket_minutes,
                insights,
            }),
        1 => Just(Op::Restart),
    ]
}

fn time_ms(hour: u8, minute: u8) -> i64 {
    1_700_000_000_000 + i64::from(hour) * 3_600_000 + i64::from(minute) * 60_000
}

fn record(e: &Ev) -> Vec<u8> {
    let t = cairn_event::format_event_time(time_ms(e.hour, e.minute));
    let cat = if e.insight {
        r#","eventType":"AwsCloudTrailInsight","eventCategory":"Insight""#
    } else {
        ""
    };
    let error = match e.error {
        Some(i) => format!(r#","errorCode":"{}""#, ERRORS[i]),
        None => String::new(),
    };
    let resources: Vec<String> = (0..BUCKETS.len())
        .filter(|i| e.buckets & (1 << i) != 0)
        .map(|i| {
            format!(
                r#"{{"ARN":"arn:aws:s3:::{}","type":"AWS::S3::Bucket"}}"#,
                BUCKETS[i]
            )
        })
        .collect();
    format!(
        r#"{{"eventID":"id-{}","eventTime":"{t}","eventName":"{}","eventSource":"ec2.amazonaws.com","awsRegion":"{}","sourceIPAddress":"{}","userIdentity":{{"type":"IAMUser","userName":"{}"}},"resources":[{}]{error}{cat}}}"#,
        e.id,
        NAMES[e.name],
        REGIONS[e.region],
        IPS[e.ip],
        USERS[e.user],
        resources.join(",")
    )
    .into_bytes()
}

impl Filters {
    fn matches(&self, e: &Ev) -> bool {
        let any = |wanted: &Option<Vec<usize>>, f: &dyn Fn(usize) -> bool| {
            wanted.as_ref().is_none_or(|w| w.iter().any(|v| f(*v)))
        };
        self.user.is_none_or(|u| e.user == u)
            && any(&self.name, &|n| e.name == n)
            && any(&self.region, &|r| e.region == r)
            && any(&self.error, &|c| e.error == Some(c))
            && self.ip.is_none_or(|i| e.ip == i)
            && any(&self.bucket, &|b| e.buckets & (1 << b) != 0)
            && self.event_id.is_none_or(|id| e.id == id)
    }

    /// The store query of these filters.
    fn query(&self, account: usize, insights: bool) -> Query {
        let mut filters = Vec::new();
        let mut add = |attr: Attr, names: &[&str], which: &Option<Vec<usize>>| {
            if let Some(w) = which {
                filters.push((attr, w.iter().map(|i| names[*i].to_owned()).collect()));
            }
        };
        add(Attr::Username, &USERS, &self.user.map(|u| vec![u]));
        add(Attr::EventName, &NAMES, &self.name);
        add(Attr::AwsRegion, &REGIONS, &self.region);
        add(Attr::ErrorCode, &ERRORS, &self.error);
        add(Attr::SourceIpAddress, &IPS, &self.ip.map(|i| vec![i]));
        add(Attr::ResourceName, &BUCKETS, &self.bucket);
        Query {
            account: ACCOUNTS[account].to_owned(),
            filters,
            event_ids: self
                .event_id
                .map(|i| vec![format!("id-{i}")])
                .unwrap_or_default(),
            insights,
            ..Query::default()
        }
    }
}

struct Stored {
    account: usize,
    ev: Ev,
    seq: u64,
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        StoreOptions {
            retention_ms: None,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// Every event a query finds, paging to the end: (eventID, record), in the order returned.
fn page_all(store: &Store, mut q: Query) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let page = store.lookup(&q).unwrap();
        assert!(page.events.len() <= q.limit);
        for f in page.events {
            let v: serde_json::Value = serde_json::from_slice(&f.record).unwrap();
            out.push((v["eventID"].as_str().unwrap().to_owned(), f.record));
        }
        match page.next {
            Some(k) => q.after = Some(k),
            None => return out,
        }
    }
}

/// All of the first account's API activity, 50 a page.
fn everything() -> Query {
    Query {
        account: ACCOUNTS[0].into(),
        limit: 50,
        ..Query::default()
    }
}

fn run(ops: Vec<Op>) {
    run_with_budget(ops, cairn_store::COUNT_WALK_BUDGET);
}

fn run_with_budget(ops: Vec<Op>, count_walk_budget: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let open = |dir: &std::path::Path| {
        Store::open(
            dir,
            StoreOptions {
                retention_ms: None,
                count_walk_budget,
                ..StoreOptions::default()
            },
        )
        .unwrap()
    };
    let mut store = open(tmp.path());
    let mut model: Vec<Stored> = Vec::new();
    let mut seen: HashSet<(usize, u8)> = HashSet::new();
    for op in ops {
        match op {
            Op::Ingest(account, evs) => {
                let recs = evs
                    .iter()
                    .map(|e| cairn_event::normalise(&record(e), ACCOUNTS[account], 0).unwrap())
                    .collect();
                let out = store.append_blocking(ACCOUNTS[account], recs).unwrap();
                for (e, o) in evs.iter().zip(out) {
                    let fresh = seen.insert((account, e.id));
                    assert_eq!(o == Outcome::Stored, fresh, "dedup of id-{}", e.id);
                    if fresh {
                        let seq = model.len() as u64;
                        model.push(Stored {
                            account,
                            ev: e.clone(),
                            seq,
                        });
                    }
                }
            }
            Op::Restart => {
                drop(store);
                store = open(tmp.path());
            }
            Op::Lookup {
                account,
                filters,
                start,
                end,
                insights,
                limit,
            } => {
                let start_ms = start.map(|h| time_ms(h, 0));
                let end_ms = end.map(|h| time_ms(h, 30));
                let mut expected: Vec<&Stored> = model
                    .iter()
                    .filter(|s| s.account == account && s.ev.insight == insights)
                    .filter(|s| filters.matches(&s.ev))
                    .filter(|s| {
                        let t = time_ms(s.ev.hour, s.ev.minute);
                        start_ms.is_none_or(|st| t >= st) && end_ms.is_none_or(|en| t <= en)
                    })
                    .collect();
                expected
                    .sort_by_key(|s| std::cmp::Reverse((time_ms(s.ev.hour, s.ev.minute), s.seq)));
                let expected: Vec<String> =
                    expected.iter().map(|s| format!("id-{}", s.ev.id)).collect();

                let q = Query {
                    start_ms,
                    end_ms,
                    limit,
                    ..filters.query(account, insights)
                };
                let got: Vec<String> = page_all(&store, q).into_iter().map(|(id, _)| id).collect();
                assert_eq!(got, expected);
            }
            Op::Count {
                account,
                filters,
                start,
                len,
                bucket_minutes,
                insights,
            } => {
                let start_ms = time_ms(0, 0) + i64::from(start) * 60_000;
                let end_ms = start_ms + i64::from(len) * 60_000;
                let bucket_ms = bucket_minutes * 60_000;
                let q = filters.query(account, insights);
                let got = store.count(&q, bucket_ms, start_ms, end_ms).unwrap();
                let n = (end_ms - start_ms + bucket_ms - 1) / bucket_ms;
                let mut expected = vec![0u64; n as usize];
                let mut before = vec![0u64; n as usize];
                for s in &model {
                    let t = time_ms(s.ev.hour, s.ev.minute);
                    if s.account == account
                        && s.ev.insight == insights
                        && filters.matches(&s.ev)
                        && t >= start_ms
                        && t < end_ms
                    {
                        let i = ((t - start_ms) / bucket_ms) as usize;
                        expected[i] += 1;
                        if t < got.complete_from_ms {
                            before[i] += 1;
                        }
                    }
                }
                assert_eq!(
                    (got.start_ms, got.end_ms, got.bucket_ms),
                    (start_ms, end_ms, bucket_ms)
                );
                assert_eq!(got.partial, got.complete_from_ms > start_ms);
                if got.partial {
                    // Exact from `complete_from_ms` on; before it, some of the events only.
                    for i in 0..expected.len() {
                        let lost = expected[i] - got.counts[i];
                        assert!(got.counts[i] <= expected[i], "bucket {i}: {got:?}");
                        assert!(lost <= before[i], "bucket {i}: {got:?} {expected:?}");
                    }
                } else {
                    assert_eq!(got.counts, expected, "{q:?}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }

    #[test]
    fn counts_stop_at_their_budget_and_say_so(
        ops in prop::collection::vec(op(), 1..40),
        budget in 1usize..20,
    ) {
        run_with_budget(ops, budget);
    }
}

#[test]
fn many_out_of_order_events_in_one_bucket() {
    // Enough to force several tail merges inside one hour.
    let mut ops = Vec::new();
    for round in 0..30u8 {
        let evs: Vec<Ev> = (0..10u8)
            .map(|i| Ev {
                id: round.wrapping_mul(10).wrapping_add(i),
                hour: 1,
                minute: (59 - (round + i * 7) % 60) % 60,
                user: usize::from(i % 3),
                name: usize::from(round % 3),
                insight: false,
                region: usize::from((round + i) % 3),
                error: (i % 4 == 0).then_some(usize::from(round % 2)),
                ip: usize::from(i % 3),
                buckets: (round + i) % 4,
            })
            .collect();
        ops.push(Op::Ingest(0, evs));
    }
    ops.push(Op::Lookup {
        account: 0,
        filters: Filters {
            user: Some(1),
            ..Filters::default()
        },
        start: None,
        end: None,
        insights: false,
        limit: 7,
    });
    ops.push(Op::Lookup {
        account: 0,
        filters: Filters::default(),
        start: None,
        end: None,
        insights: false,
        limit: 50,
    });
    let count = |filters: Filters| Op::Count {
        account: 0,
        filters,
        start: 50,
        len: 80,
        bucket_minutes: 7,
        insights: false,
    };
    ops.push(count(Filters::default()));
    ops.push(count(Filters {
        region: Some(vec![0, 2]),
        ..Filters::default()
    }));
    ops.push(Op::Restart);
    ops.push(Op::Lookup {
        account: 0,
        filters: Filters {
            name: Some(vec![0, 2]),
            ..Filters::default()
        },
        start: Some(1),
        end: Some(1),
        insights: false,
        limit: 13,
    });
    ops.push(count(Filters {
        bucket: Some(vec![0, 1]),
        ..Filters::default()
    }));
    ops.push(count(Filters {
        user: Some(2),
        ip: Some(1),
        ..Filters::default()
    }));
    run(ops);
}

#[test]
fn records_read_back_verbatim_across_dictionaries_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let make = |i: usize| {
        format!(
            r#"{{"eventID":"r-{i}","eventTime":"2024-01-01T00:{:02}:{:02}Z","eventName":"PutObject","eventSource":"s3.amazonaws.com","requestParameters":{{"bucketName":"b{}","key":"k/{i}"}},"userIdentity":{{"type":"IAMUser","userName":"u{}"}},"n":{i}}}"#,
            (i / 60) % 60,
            i % 60,
            i % 7,
            i % 13
        )
        .into_bytes()
    };
    let mut all = Vec::new();
    // Enough records for the first dictionary to be trained mid-way.
    for chunk in 0..240 {
        let batch: Vec<Vec<u8>> = (chunk * 50..chunk * 50 + 50).map(make).collect();
        let recs = batch
            .iter()
            .map(|r| cairn_event::normalise(r, ACCOUNTS[0], 0).unwrap())
            .collect();
        store.append_blocking(ACCOUNTS[0], recs).unwrap();
        all.extend(batch);
        if chunk == 180 {
            // Give the background training a moment, then restart.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            drop(store);
            store = open(tmp.path());
        }
    }
    assert!(
        std::fs::read_dir(tmp.path().join("dicts")).unwrap().count() >= 1,
        "no dictionary was trained"
    );
    drop(store);
    let store = open(tmp.path());
    let got: std::collections::HashMap<String, Vec<u8>> =
        page_all(&store, everything()).into_iter().collect();
    assert_eq!(got.len(), all.len());
    for (i, raw) in all.iter().enumerate() {
        let stored = &got[&format!("r-{i}")];
        // Complete records are kept byte for byte, save the members Cairn adds at the end.
        assert!(
            stored.starts_with(&raw[..raw.len() - 1]),
            "record {i} changed"
        );
    }
}

#[test]
fn over_capacity_batches_are_refused_never_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        Store::open(
            tmp.path(),
            StoreOptions {
                retention_ms: None,
                queue_batches: 1,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                let mut throttled = 0;
                let mut waiting = Vec::new();
                for b in 0..40 {
                    let recs = (0..5)
                        .map(|i| {
                            let raw = format!(
                                r#"{{"eventID":"t{t}-b{b}-{i}","eventName":"X","eventSource":"s","eventTime":"2024-01-01T00:00:00Z"}}"#
                            );
                            cairn_event::normalise(raw.as_bytes(), ACCOUNTS[0], 0).unwrap()
                        })
                        .collect::<Vec<_>>();
                    let ids: Vec<String> = recs.iter().map(|r| r.meta.event_id.clone()).collect();
                    match store.submit(ACCOUNTS[0], recs) {
                        Ok(rx) => waiting.push((ids, rx)),
                        Err(cairn_store::StoreError::Throttled) => throttled += 1,
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
                for (ids, rx) in waiting {
                    let out = rx.blocking_recv().unwrap().unwrap();
                    assert!(out.iter().all(|o| *o == Outcome::Stored));
                    accepted.extend(ids);
                }
                (accepted, throttled)
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    let mut throttled_batches = 0;
    for t in threads {
        let (a, th) = t.join().unwrap();
        accepted.extend(a);
        throttled_batches += th;
    }
    assert!(
        throttled_batches > 0,
        "the queue of one batch never filled up"
    );
    assert_eq!(
        accepted.len() + throttled_batches * 5,
        8 * 40 * 5,
        "accepted + refused = sent"
    );
    let stored: HashSet<String> = page_all(&store, everything())
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, accepted, "stored = accepted");
}

#[test]
fn event_ids_whose_hashes_collide_are_both_kept_and_found() {
    // The index keys eventIDs by 32 bits of their hash; find two IDs that share them.
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0u64..)
        .find_map(|i| {
            let id = format!("collide-{i}");
            let short = cairn_store::id_hash(&id) >> 32;
            seen.insert(short, id.clone()).map(|other| (other, id))
        })
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    for id in [&a, &b] {
        let raw = format!(
            r#"{{"eventID":"{id}","eventName":"X","eventSource":"s","eventTime":"2024-01-01T00:00:00Z"}}"#
        );
        let rec = cairn_event::normalise(raw.as_bytes(), ACCOUNTS[0], 0).unwrap();
        assert_eq!(
            store.append_blocking(ACCOUNTS[0], vec![rec]).unwrap(),
            [Outcome::Stored]
        );
    }
    for round in 0..2 {
        for id in [&a, &b] {
            let page = store
                .lookup(&Query {
                    account: ACCOUNTS[0].into(),
                    event_ids: vec![id.clone()],
                    limit: 50,
                    ..Query::default()
                })
                .unwrap();
            assert_eq!(page.events.len(), 1, "{id} (round {round})");
            let v: serde_json::Value = serde_json::from_slice(&page.events[0].record).unwrap();
            assert_eq!(v["eventID"], id.as_str());
        }
        drop(store);
        store = open(tmp.path());
    }
}
