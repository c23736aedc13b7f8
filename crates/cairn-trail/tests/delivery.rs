//! Trail delivery against a real store and a folder bucket: log file layout and content, the
//! signed digest chain, an unreachable bucket, and a restart with files still pending.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use cairn_bucket::Backend;
use cairn_store::{Store, StoreOptions};
use cairn_trail::config::Trail;
use cairn_trail::delivery::{Delivery, DeliveryOptions};
use cairn_trail::digest::{self, DigestFile};
use cairn_trail::keys::Keyring;
use cairn_trail::registry::Trails;
use cairn_trail::status::StatusBoard;

const ACCOUNT: &str = "111122223333";

fn trail(name: &str, bucket: &str) -> Trail {
    Trail {
        s3_key_prefix: Some("pre".into()),
        multi_region: true,
        log_file_validation: true,
        logging: true,
        start_logging_ms: Some(0),
        ..Trail::new(ACCOUNT, "us-east-1", name, bucket)
    }
}

fn write_trails(dir: &Path, trails: &[Trail]) {
    std::fs::create_dir_all(dir.join("trails")).expect("mkdir");
    std::fs::write(
        dir.join("trails/trails.json"),
        serde_json::to_vec(trails).expect("json"),
    )
    .expect("write trails");
}

fn event(i: usize, region: &str) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2026-11-21T10:00:{:02}Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"{region}","eventID":"00000000-0000-0000-0000-{i:012}","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}","userIdentity":{{"type":"IAMUser","userName":"alana"}}}}"#,
        i % 60
    )
    .into_bytes()
}

fn store_events(store: &Store, range: std::ops::Range<usize>, region: &str) {
    let now = cairn_event::now_ms();
    let batch = range
        .map(|i| cairn_event::normalise(&event(i, region), ACCOUNT, now).expect("normalise"))
        .collect();
    tokio::task::block_in_place(|| store.append_blocking(ACCOUNT, batch)).expect("append");
}

struct Setup {
    store: Arc<Store>,
    keys: Arc<Keyring>,
    status: Arc<StatusBoard>,
}

/// One master key for every reopening (the keyring is sealed with it).
fn master() -> Arc<cairn_vault::MasterKey> {
    Arc::new(cairn_vault::MasterKey::from_hex(&"42".repeat(32)).expect("master key"))
}

fn open(dir: &Path, store: Arc<Store>) -> (Arc<Delivery>, Setup) {
    open_with(dir, store, Arc::new(Trails::open(dir).expect("trails")))
}

fn open_with(dir: &Path, store: Arc<Store>, trails: Arc<Trails>) -> (Arc<Delivery>, Setup) {
    let status = Arc::new(StatusBoard::default());
    let keys = Arc::new(Keyring::open(dir, 86_400_000, master()).expect("keys"));
    let delivery = Delivery::open(
        dir,
        store.clone(),
        trails,
        status.clone(),
        keys.clone(),
        Backend::folder(dir),
        DeliveryOptions {
            interval_ms: 1000,
            digest_period_ms: 10_000,
            ..DeliveryOptions::default()
        },
    )
    .expect("delivery");
    (
        delivery,
        Setup {
            store,
            keys,
            status,
        },
    )
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

async fn keys_under(backend: &Backend, bucket: &str, prefix: &str) -> Vec<String> {
    backend
        .bucket(bucket)
        .expect("bucket")
        .list(prefix, None)
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.key)
        .collect()
}

fn event_ids(file: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(file).expect("log file json");
    v["Records"]
        .as_array()
        .expect("Records")
        .iter()
        .map(|r| r["eventID"].as_str().expect("eventID").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_and_a_signed_digest_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::folder(dir.path());
    backend.create_folder_bucket("logs").expect("bucket");
    write_trails(dir.path(), &[trail("main", "logs")]);
    let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).expect("store"));
    let (delivery, s) = open(dir.path(), store);

    let t0 = 1_800_000_000_000i64; // a fixed clock for the delivery side
    delivery.clone().tick(t0).await.expect("tick"); // starts the chain
    store_events(&s.store, 0..50, "us-east-1");
    store_events(&s.store, 50..60, "eu-west-1");
    delivery.clone().tick(t0 + 1000).await.expect("tick");

    let logs = keys_under(&backend, "logs", "pre/AWSLogs/111122223333/CloudTrail/").await;
    assert_eq!(logs.len(), 2, "{logs:?}");
    let bucket = backend.bucket("logs").expect("bucket");
    let mut ids = Vec::new();
    for key in &logs {
        let re_prefix = if key.contains("/eu-west-1/") {
            "pre/AWSLogs/111122223333/CloudTrail/eu-west-1/2027/01/15/111122223333_CloudTrail_eu-west-1_20270115T0800Z_"
        } else {
            "pre/AWSLogs/111122223333/CloudTrail/us-east-1/2027/01/15/111122223333_CloudTrail_us-east-1_20270115T0800Z_"
        };
        assert!(key.starts_with(re_prefix), "{key}");
        assert!(key.ends_with(".json.gz"));
        let obj = bucket.get(key).await.expect("get");
        let raw = gunzip(&obj.bytes);
        assert!(raw.starts_with(b"{\"Records\":["));
        ids.extend(event_ids(&raw));
    }
    ids.sort();
    assert_eq!(ids.len(), 60);
    ids.dedup();
    assert_eq!(ids.len(), 60);

    // The first digest closes at t0 + 10 s, covering both files, one digest per region.
    delivery.clone().tick(t0 + 10_000).await.expect("tick");
    let digests = keys_under(
        &backend,
        "logs",
        "pre/AWSLogs/111122223333/CloudTrail-Digest/",
    )
    .await;
    assert_eq!(digests.len(), 2, "{digests:?}");
    let pubkeys = s.keys.public_keys(0, i64::MAX);
    for key in &digests {
        let obj = bucket.get(key).await.expect("get digest");
        let raw = gunzip(&obj.bytes);
        let d: DigestFile = serde_json::from_slice(&raw).expect("digest json");
        assert_eq!(&d.digest_s3_object, key);
        assert_eq!(d.digest_end_time, "2027-01-15T08:00:10Z");
        assert!(
            key.ends_with("_main_us-east-1_20270115T080010Z.json.gz"),
            "{key}"
        );
        assert!(d.previous_digest_signature.is_none());
        assert_eq!(d.log_files.len(), 1);
        let sig = obj.metadata.get("signature").expect("signature metadata");
        assert_eq!(
            obj.metadata.get("signature-algorithm").map(String::as_str),
            Some("SHA256withRSA")
        );
        let msg = digest::string_to_sign(&d.digest_end_time, "logs", key, &raw, None);
        let k = pubkeys
            .iter()
            .find(|k| k.fingerprint == d.digest_public_key_fingerprint)
            .expect("key published");
        assert!(digest::verify(&k.der, msg.as_bytes(), sig));
        let file = bucket.get(&d.log_files[0].s3_object).await.expect("log");
        assert_eq!(
            digest::sha256_hex(&gunzip(&file.bytes)),
            d.log_files[0].hash_value
        );
    }
    // A quiet period gives empty digests chained to the previous ones.
    delivery.clone().tick(t0 + 20_000).await.expect("tick");
    let digests2 = keys_under(
        &backend,
        "logs",
        "pre/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/",
    )
    .await;
    assert_eq!(digests2.len(), 2);
    let newest = gunzip(&bucket.get(&digests2[1]).await.expect("get").bytes);
    let d: DigestFile = serde_json::from_slice(&newest).expect("json");
    assert!(d.log_files.is_empty());
    assert!(d.newest_event_time.is_none());
    assert_eq!(
        d.previous_digest_s3_object.as_deref(),
        Some(digests2[0].as_str())
    );
    let prev_raw = gunzip(&bucket.get(&digests2[0]).await.expect("get").bytes);
    assert_eq!(
        d.previous_digest_hash_value,
        Some(digest::sha256_hex(&prev_raw))
    );
    assert_eq!(d.digest_start_time, "2027-01-15T08:00:10Z");
    let status = s
        .status
        .get("arn:aws:cloudtrail:us-east-1:111122223333:trail/main");
    assert_eq!(status.latest_digest_end_ms, Some(t0 + 20_000));
    assert!(status.latest_delivery_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bucket_keeps_files_until_it_is_back_even_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::folder(dir.path());
    write_trails(dir.path(), &[trail("main", "late-bucket")]);
    let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).expect("store"));
    {
        let (delivery, s) = open(dir.path(), store.clone());
        store_events(&s.store, 0..30, "us-east-1");
        delivery
            .clone()
            .tick(cairn_event::now_ms())
            .await
            .expect("tick");
        assert_eq!(delivery.pending_files(), 1);
        let status = s
            .status
            .get("arn:aws:cloudtrail:us-east-1:111122223333:trail/main");
        assert!(
            status
                .latest_delivery_error
                .as_deref()
                .is_some_and(|e| e.contains("does not exist")),
            "{status:?}"
        );
        store_events(&s.store, 30..40, "us-east-1");
        delivery
            .clone()
            .tick(cairn_event::now_ms())
            .await
            .expect("tick");
        assert_eq!(delivery.pending_files(), 2);
    }
    backend.create_folder_bucket("late-bucket").expect("bucket");
    let (delivery, _s) = open(dir.path(), store);
    delivery
        .clone()
        .tick(cairn_event::now_ms())
        .await
        .expect("tick");
    assert_eq!(delivery.pending_files(), 0);
    let logs = keys_under(&backend, "late-bucket", "pre/AWSLogs/").await;
    assert_eq!(logs.len(), 2);
    let bucket = backend.bucket("late-bucket").expect("bucket");
    let mut ids = Vec::new();
    for key in &logs {
        ids.extend(event_ids(&gunzip(
            &bucket.get(key).await.expect("get").bytes,
        )));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_journal_segment_does_not_stop_delivery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::folder(dir.path());
    backend.create_folder_bucket("logs").expect("bucket");
    write_trails(dir.path(), &[trail("main", "logs")]);
    // One segment per batch.
    let opts = || StoreOptions {
        journal: cairn_journal::Options {
            segment_max_bytes: 1,
            ..cairn_journal::Options::default()
        },
        ..StoreOptions::default()
    };
    {
        let store = Arc::new(Store::open(dir.path(), opts()).expect("store"));
        // The delivery cursor starts before the events.
        let (_delivery, _s) = open(dir.path(), store.clone());
        store_events(&store, 0..10, "us-east-1");
        store_events(&store, 10..20, "us-east-1");
    }
    // Damage the frame of the first batch (in the first segment holding a frame).
    let mut segments: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("journal"))
        .expect("journal")
        .flatten()
        .map(|e| e.path())
        .collect();
    segments.sort();
    let first = segments
        .into_iter()
        .find(|p| std::fs::metadata(p).map(|m| m.len() > 16).unwrap_or(false))
        .expect("a segment with a frame");
    let mut bytes = std::fs::read(&first).expect("segment");
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&first, bytes).expect("write");
    let store = Arc::new(Store::open(dir.path(), opts()).expect("store reopens"));
    let (delivery, _s) = open(dir.path(), store.clone());
    store_events(&store, 20..30, "us-east-1");
    delivery
        .clone()
        .tick(cairn_event::now_ms())
        .await
        .expect("tick");
    let bucket = backend.bucket("logs").expect("bucket");
    let mut ids = Vec::new();
    for key in keys_under(&backend, "logs", "pre/AWSLogs/").await {
        if key.contains("/CloudTrail/") {
            ids.extend(event_ids(&gunzip(
                &bucket.get(&key).await.expect("get").bytes,
            )));
        }
    }
    ids.sort();
    let expected: Vec<String> = (10..30)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    assert_eq!(
        ids, expected,
        "everything after the damaged segment is delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_trail_to_another_bucket_closes_one_chain_and_starts_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::folder(dir.path());
    backend.create_folder_bucket("one").expect("bucket");
    backend.create_folder_bucket("two").expect("bucket");
    write_trails(dir.path(), &[trail("main", "one")]);
    let store = Arc::new(Store::open(dir.path(), StoreOptions::default()).expect("store"));
    let trails = Arc::new(Trails::open(dir.path()).expect("trails"));
    let (delivery, _s) = open_with(dir.path(), store.clone(), trails.clone());
    let t0 = 1_800_000_000_000i64;
    delivery.clone().tick(t0).await.expect("tick");
    store_events(&store, 0..5, "us-east-1");
    delivery.clone().tick(t0 + 1000).await.expect("tick");
    trails
        .update::<cairn_trail::registry::RegistryError>(ACCOUNT, "us-east-1", "main", |t| {
            t.s3_bucket = "two".into();
            Ok(())
        })
        .expect("update");
    store_events(&store, 5..10, "us-east-1");
    delivery.clone().tick(t0 + 2000).await.expect("tick");
    delivery.clone().tick(t0 + 12_000).await.expect("tick");
    for bucket in ["one", "two"] {
        let b = backend.bucket(bucket).expect("bucket");
        let logs: Vec<String> =
            keys_under(&backend, bucket, "pre/AWSLogs/111122223333/CloudTrail/").await;
        let digests = keys_under(
            &backend,
            bucket,
            "pre/AWSLogs/111122223333/CloudTrail-Digest/",
        )
        .await;
        assert_eq!(logs.len(), 1, "{bucket}: {logs:?}");
        let mut listed = Vec::new();
        for d in &digests {
            let raw = gunzip(&b.get(d).await.expect("digest").bytes);
            let file: DigestFile = serde_json::from_slice(&raw).expect("json");
            listed.extend(file.log_files.into_iter().map(|f| f.s3_object));
        }
        assert_eq!(
            listed, logs,
            "{bucket}: every log file is in a digest of its bucket"
        );
    }
}
