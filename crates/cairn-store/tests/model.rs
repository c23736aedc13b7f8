//! The store against a simple in-memory model: random batches (with duplicate eventIDs,
//! out-of-order times and insight events), random lookups paged to the end, random restarts.

use std::collections::HashSet;

use cairn_store::{Attr, Outcome, Query, Store, StoreOptions};
use proptest::prelude::*;

const USERS: [&str; 3] = ["alana", "bob", "carol"];
const NAMES: [&str; 3] = ["RunInstances", "DeleteTrail", "GetObject"];
const ACCOUNTS: [&str; 2] = ["111111111111", "222222222222"];

#[derive(Debug, Clone)]
struct Ev {
    id: u8,
    hour: u8,
    minute: u8,
    user: usize,
    name: usize,
    insight: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Ingest(usize, Vec<Ev>),
    Lookup {
        account: usize,
        user: Option<usize>,
        name: Option<Vec<usize>>,
        event_id: Option<u8>,
        start: Option<u8>,
        end: Option<u8>,
        insights: bool,
        limit: usize,
    },
    Restart,
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        0u8..40,
        0u8..6,
        0u8..60,
        0usize..3,
        0usize..3,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(id, hour, minute, user, name, insight)| Ev {
            id,
            hour,
            minute,
            user,
            name,
            insight,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, prop::collection::vec(ev(), 1..12)).prop_map(|(a, e)| Op::Ingest(a, e)),
        4 => (
            0usize..2,
            prop::option::of(0usize..3),
            prop::option::of(prop::collection::vec(0usize..3, 1..3)),
            prop::option::weighted(0.15, 0u8..40),
            prop::option::of(0u8..6),
            prop::option::of(0u8..6),
            prop::bool::weighted(0.2),
            1usize..6,
        )
            .prop_map(|(account, user, name, event_id, start, end, insights, limit)| Op::Lookup {
                account,
                user,
                name,
                event_id,
                start,
                end,
                insights,
                limit,
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
    format!(
        r#"{{"eventID":"id-{}","eventTime":"{t}","eventName":"{}","eventSource":"ec2.amazonaws.com","userIdentity":{{"type":"IAMUser","userName":"{}"}}{cat}}}"#,
        e.id, NAMES[e.name], USERS[e.user]
    )
    .into_bytes()
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
    let tmp = tempfile::tempdir().unwrap();
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
                user,
                name,
                event_id,
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
                    .filter(|s| user.is_none_or(|u| s.ev.user == u))
                    .filter(|s| name.as_ref().is_none_or(|n| n.contains(&s.ev.name)))
                    .filter(|s| event_id.is_none_or(|id| s.ev.id == id))
                    .filter(|s| {
                        let t = time_ms(s.ev.hour, s.ev.minute);
                        start_ms.is_none_or(|st| t >= st) && end_ms.is_none_or(|en| t <= en)
                    })
                    .collect();
                expected
                    .sort_by_key(|s| std::cmp::Reverse((time_ms(s.ev.hour, s.ev.minute), s.seq)));
                let expected: Vec<String> =
                    expected.iter().map(|s| format!("id-{}", s.ev.id)).collect();

                let mut filters = Vec::new();
                if let Some(u) = user {
                    filters.push((Attr::Username, vec![USERS[u].to_owned()]));
                }
                if let Some(n) = &name {
                    filters.push((
                        Attr::EventName,
                        n.iter().map(|i| NAMES[*i].to_owned()).collect(),
                    ));
                }
                let q = Query {
                    account: ACCOUNTS[account].to_owned(),
                    filters,
                    event_ids: event_id
                        .map(|i| vec![format!("id-{i}")])
                        .unwrap_or_default(),
                    start_ms,
                    end_ms,
                    insights,
                    limit,
                    after: None,
                };
                let got: Vec<String> = page_all(&store, q).into_iter().map(|(id, _)| id).collect();
                assert_eq!(got, expected);
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
            })
            .collect();
        ops.push(Op::Ingest(0, evs));
    }
    ops.push(Op::Lookup {
        account: 0,
        user: Some(1),
        name: None,
        event_id: None,
        start: None,
        end: None,
        insights: false,
        limit: 7,
    });
    ops.push(Op::Lookup {
        account: 0,
        user: None,
        name: None,
        event_id: None,
        start: None,
        end: None,
        insights: false,
        limit: 50,
    });
    ops.push(Op::Restart);
    ops.push(Op::Lookup {
        account: 0,
        user: None,
        name: Some(vec![0, 2]),
        event_id: None,
        start: Some(1),
        end: Some(1),
        insights: false,
        limit: 13,
    });
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
