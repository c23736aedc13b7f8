//! The lake end to end in process: events stored in a real store become Parquet segments and
//! a hot set; SQL sees both, once; stores see what they should; a restart neither loses nor
//! repeats events; files no catalog names are removed; retention drops whole files.

use std::sync::Arc;

use cairn_lake::queries::QueryOptions;
use cairn_lake::sql::{self, Limits};
use cairn_lake::stores::{CreateRequest, default_id};
use cairn_lake::{Lake, SegmentsOptions};
use cairn_store::{Store, StoreOptions};

const A: &str = "111122223333";
const B: &str = "444455556666";
const HOUR: i64 = 3_600_000;

fn record(i: usize, t: i64, source: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": format!("u{}", i % 3), "accessKeyId": "AKIAEXAMPLE"},
        "eventTime": cairn_event::format_event_time(t),
        "eventSource": source,
        "eventName": if i.is_multiple_of(2) { "PutObject" } else { "GetObject" },
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.1",
        "eventID": uuid::Uuid::from_u128(i as u128 + 1).to_string(),
        "eventType": "AwsApiCall",
        "eventCategory": if source == "s3.amazonaws.com" { "Data" } else { "Management" },
        "managementEvent": source != "s3.amazonaws.com",
        "readOnly": false,
        "requestParameters": {"bucketName": "b1", "nested": {"k": [1, 2]}},
        "recipientAccountId": A,
        "resources": [{"type": if source == "s3.amazonaws.com" { "AWS::S3::Object" } else { "AWS::EC2::Instance" }, "ARN": "arn:aws:s3:::b1/k"}],
    }))
    .unwrap()
}

fn store_events(store: &Store, account: &str, from: usize, n: usize, t0: i64, source: &str) {
    let now = cairn_event::now_ms();
    let batch: Vec<_> = (from..from + n)
        .map(|i| {
            cairn_event::normalise(&record(i, t0 + i as i64 * 60_000, source), account, now)
                .unwrap()
        })
        .collect();
    store.append_blocking(account, batch).unwrap();
}

fn open(dir: &std::path::Path) -> (Arc<Store>, Lake) {
    let store = Arc::new(
        Store::open(
            dir,
            StoreOptions {
                retention_ms: None,
                ..StoreOptions::default()
            },
        )
        .unwrap(),
    );
    let lake = Lake::open(
        dir,
        "us-east-1",
        store.clone(),
        None,
        SegmentsOptions {
            grace_ms: 0,
            ..SegmentsOptions::default()
        },
        QueryOptions::default(),
    )
    .unwrap();
    (store, lake)
}

fn query(lake: &Lake, account: &str, sql_text: &str) -> Vec<Vec<Option<String>>> {
    let now = cairn_event::now_ms();
    let parsed = sql::parse(sql_text).unwrap();
    let stores: Vec<_> = parsed
        .store_ids
        .iter()
        .map(|id| lake.registry.get(account, id, now).unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let limits = Limits::default();
        let ctx = sql::session(&lake.segments, account, &stores, &limits, now).unwrap();
        let plan = sql::plan(&ctx, &parsed).await.unwrap();
        sql::run(&ctx, plan, &limits).await.unwrap().rows
    })
}

fn count(lake: &Lake, account: &str, store: &str) -> i64 {
    let rows = query(lake, account, &format!("SELECT count(*) FROM {store}"));
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

#[test]
fn segments_hot_set_stores_restart_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let now = cairn_event::now_ms();
    let t0 = (now - 30 * 24 * HOUR) / HOUR * HOUR;
    let (da, db) = (default_id(A), default_id(B));
    {
        let (store, lake) = open(dir.path());
        // 300 events a minute apart: 5 hours; and another account.
        store_events(&store, A, 0, 300, t0, "ec2.amazonaws.com");
        store_events(&store, B, 1000, 10, t0, "ec2.amazonaws.com");
        lake.segments.catch_up(now).unwrap();
        let stats = lake.segments.stats();
        assert_eq!(stats.rows, 310);
        assert_eq!(stats.hot_rows, 0);
        assert_eq!(stats.files, 6, "one file per account and hour");
        let folders: Vec<_> = walk(&dir.path().join("lake/events"));
        assert!(
            folders
                .iter()
                .any(|p| p.contains("account=111122223333/date=")),
            "{folders:?}"
        );
        assert_eq!(count(&lake, A, &da), 300);
        assert_eq!(count(&lake, B, &db), 10);
        // An account cannot name another's store.
        assert!(lake.registry.get(B, &da, now).is_err());

        // A store that keeps data events only, from now on.
        let data = lake
            .registry
            .create(
                A,
                CreateRequest {
                    name: "data-only".into(),
                    selectors: Some(serde_json::json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}]}])),
                    ..Default::default()
                },
                cairn_event::now_ms(),
            )
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        store_events(&store, A, 300, 20, t0, "s3.amazonaws.com");
        store_events(&store, A, 320, 5, t0, "ec2.amazonaws.com");
        // Read into the hot set, not yet written out.
        while !lake.segments.step(cairn_event::now_ms()).unwrap() {}
        assert_eq!(lake.segments.stats().hot_rows, 25);
        assert_eq!(
            count(&lake, A, &da),
            325,
            "files and hot set, each event once"
        );
        assert_eq!(count(&lake, A, &data.id), 20);
        let rows = query(
            &lake,
            A,
            &format!(
                "SELECT element_at(requestParameters, 'bucketName'), json_extract_scalar(requestparameters, '$.nested.k[1]'), userIdentity.userName FROM {} LIMIT 1",
                data.id
            ),
        );
        assert_eq!(rows[0][0].as_deref(), Some("b1"));
        assert_eq!(rows[0][1].as_deref(), Some("2"));
        // A time predicate prunes to the files of that hour.
        let lo = cairn_event::format_event_time(t0 + HOUR).replace(['T', 'Z'], " ");
        let hi = cairn_event::format_event_time(t0 + 2 * HOUR - 1).replace(['T', 'Z'], " ");
        let rows = query(
            &lake,
            A,
            &format!(
                "SELECT count(*) FROM {da} WHERE eventtime BETWEEN '{}' AND '{}'",
                lo.trim(),
                hi.trim()
            ),
        );
        assert_eq!(rows[0][0].as_deref(), Some("60"));
        // Stopped without writing the hot set out: it comes back from the journal.
    }
    // A file left by a crash between writing and the catalog.
    let stray = dir
        .path()
        .join("lake/events/account=111122223333/date=2000-01-01/hour=00");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("ffffffffffffffff.parquet"), b"half").unwrap();
    {
        let (_store, lake) = open(dir.path());
        assert!(!stray.join("ffffffffffffffff.parquet").exists());
        lake.segments.catch_up(cairn_event::now_ms()).unwrap();
        assert_eq!(count(&lake, A, &da), 325);
        assert_eq!(lake.segments.stats().rows, 335);
        // Retention: the default store keeps 10 years; a 7-day store alone would drop all.
        lake.registry
            .update(
                A,
                &da,
                cairn_lake::stores::UpdateRequest {
                    retention_days: Some(7),
                    ..Default::default()
                },
                cairn_event::now_ms(),
            )
            .unwrap();
        // The data-only store still keeps 366 days: nothing goes yet.
        assert_eq!(lake.segments.retention(cairn_event::now_ms()).unwrap(), 0);
        // But the default store's view already hides what its retention excludes.
        assert_eq!(count(&lake, A, &da), 0);
        let data_id = lake
            .registry
            .list(A, cairn_event::now_ms())
            .into_iter()
            .find(|s| !s.default)
            .unwrap()
            .id;
        lake.registry
            .update(
                A,
                &data_id,
                cairn_lake::stores::UpdateRequest {
                    retention_days: Some(7),
                    ..Default::default()
                },
                cairn_event::now_ms(),
            )
            .unwrap();
        let removed = lake.segments.retention(cairn_event::now_ms()).unwrap();
        assert!(removed >= 5, "{removed}");
        lake.segments.retention(cairn_event::now_ms()).unwrap();
        let left = walk(&dir.path().join("lake/events/account=111122223333"));
        assert!(left.iter().all(|p| !p.ends_with(".parquet")), "{left:?}");
        assert_eq!(count(&lake, B, &db), 10, "another account keeps its events");
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
