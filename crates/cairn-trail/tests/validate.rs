//! `cairn_trail::validate` against folder buckets built here with the real signing keyring:
//! chains of signed digests and gzip log files laid out exactly as CloudTrail writes them,
//! then every way of tampering with them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use cairn_bucket::{Backend, Bucket};
use cairn_trail::digest::{self, DigestFile, LogFileEntry, SIGNATURE_ALGORITHM};
use cairn_trail::keys::Keyring;
use cairn_trail::layout::{self, Kind};
use cairn_trail::validate::{self, FindingKind, Options, Report, Severity};

const ACCOUNT: &str = "111122223333";
const TRAIL: &str = "audit_trail";
const HOME: &str = "us-east-1";
const BUCKET: &str = "trail-bucket";
const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;
/// 2024-03-01T00:17:31Z
const T0: i64 = 1_709_252_251_000;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// One hour of a chain as written.
#[derive(Debug, Clone)]
struct Hour {
    region: String,
    digest_key: String,
    start_ms: i64,
    end_ms: i64,
    logs: Vec<String>,
}

/// A folder bucket and a keyring.
struct Fixture {
    _dir: tempfile::TempDir,
    bucket: Bucket,
    keyring: Keyring,
    fingerprint: String,
    keys: BTreeMap<String, Vec<u8>>,
    prefix: Option<String>,
    seq: u64,
}

/// How to write a chain.
struct ChainSpec<'a> {
    region: &'a str,
    start_ms: i64,
    hours: usize,
    logs_per_hour: usize,
    /// Records per log file.
    records: usize,
}

impl Fixture {
    fn new(prefix: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Backend::folder(dir.path());
        backend.create_folder_bucket(BUCKET).expect("bucket");
        let bucket = backend.bucket(BUCKET).expect("bucket");
        let keyring = Keyring::open(
            dir.path(),
            i64::MAX / 4,
            std::sync::Arc::new(cairn_vault::MasterKey::ephemeral().expect("master key")),
        )
        .expect("keyring");
        keyring.ensure(T0).expect("key");
        let public = keyring.public_keys(i64::MIN / 2, i64::MAX / 2);
        let fingerprint = public[0].fingerprint.clone();
        let keys = public.into_iter().map(|k| (k.fingerprint, k.der)).collect();
        Fixture {
            _dir: dir,
            bucket,
            keyring,
            fingerprint,
            keys,
            prefix: prefix.map(str::to_owned),
            seq: 0,
        }
    }

    fn folder(&self) -> PathBuf {
        self.bucket.folder().expect("folder bucket")
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.folder()
            .parent()
            .expect("root")
            .join(".meta")
            .join(BUCKET)
            .join(key)
    }

    fn options(&self, start_ms: i64, end_ms: i64) -> Options {
        let mut o = Options::new(ACCOUNT, TRAIL, HOME, start_ms, end_ms);
        o.bucket_name = Some(BUCKET.into());
        o.prefix = self.prefix.clone();
        o.public_keys = self.keys.clone();
        o.regions = vec![HOME.into()];
        o
    }

    fn log_body(&mut self, delivered_ms: i64, records: usize) -> Vec<u8> {
        let mut body = String::from("{\"Records\":[");
        for i in 0..records {
            self.seq += 1;
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDA{:016X}","arn":"arn:aws:iam::{ACCOUNT}:user/u{}","accountId":"{ACCOUNT}","userName":"u{}"}},"eventTime":"{}","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"{HOME}","sourceIPAddress":"10.0.{}.{}","userAgent":"aws-cli/2","requestParameters":{{"bucketName":"b{}","key":"k/{}"}},"responseElements":null,"requestID":"{:X}","eventID":"{:08x}-0000-4000-8000-{:012x}","readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"{ACCOUNT}","eventCategory":"Data"}}"#,
                self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                self.seq % 17,
                self.seq % 17,
                layout::iso_second(delivered_ms - 60_000),
                self.seq % 256,
                (self.seq / 256) % 256,
                self.seq % 5,
                self.seq,
                self.seq.wrapping_mul(0xDEAD_BEEF),
                self.seq,
                self.seq
            ));
        }
        body.push_str("]}");
        body.into_bytes()
    }

    /// Writes a log file delivered at `delivered_ms`; returns its key and digest entry.
    async fn write_log(
        &mut self,
        region: &str,
        delivered_ms: i64,
        records: usize,
    ) -> (String, LogFileEntry) {
        let raw = self.log_body(delivered_ms, records);
        let key = layout::log_key(
            self.prefix.as_deref(),
            ACCOUNT,
            Kind::Log,
            region,
            delivered_ms,
            &layout::unique_string(format!("{region}{delivered_ms}{}", self.seq).as_bytes()),
        );
        self.bucket
            .put(&key, Bytes::from(gz(&raw)), &[])
            .await
            .expect("put log");
        let entry = LogFileEntry {
            s3_bucket: BUCKET.into(),
            s3_object: key.clone(),
            hash_value: digest::sha256_hex(&raw),
            hash_algorithm: digest::HASH_ALGORITHM.into(),
            newest_event_time: Some(layout::iso_second(delivered_ms - 60_000)),
            oldest_event_time: Some(layout::iso_second(delivered_ms - 60_000)),
        };
        (key, entry)
    }

    /// Signs and writes a digest; returns its raw JSON and signature.
    async fn write_digest(&self, key: &str, file: &DigestFile) -> (Vec<u8>, String) {
        let raw = serde_json::to_vec(file).expect("json");
        self.write_digest_bytes(
            key,
            &file.digest_end_time,
            &raw,
            file.previous_digest_signature.as_deref(),
        )
        .await
    }

    async fn write_digest_bytes(
        &self,
        key: &str,
        end: &str,
        raw: &[u8],
        prev_sig: Option<&str>,
    ) -> (Vec<u8>, String) {
        let msg = digest::string_to_sign(end, BUCKET, key, raw, prev_sig);
        let (fp, sig) = self.keyring.sign(T0, msg.as_bytes()).expect("sign");
        assert_eq!(fp, self.fingerprint);
        self.bucket
            .put(
                key,
                Bytes::from(gz(raw)),
                &[
                    ("signature", &sig),
                    ("signature-algorithm", SIGNATURE_ALGORITHM),
                ],
            )
            .await
            .expect("put digest");
        (raw.to_vec(), sig)
    }

    /// Writes a chain: a starting digest and the hourly ones after it, each listing the log
    /// files delivered in its hour.
    async fn chain(&mut self, spec: ChainSpec<'_>) -> Vec<Hour> {
        let mut hours = Vec::new();
        let mut prev: Option<(String, Vec<u8>, String)> = None;
        for h in 0..spec.hours {
            let start = spec.start_ms + h as i64 * HOUR;
            let end = start + HOUR;
            let mut entries = Vec::new();
            let mut logs = Vec::new();
            for j in 0..spec.logs_per_hour {
                let delivered =
                    start + MINUTE + (j as i64 * 50 * MINUTE) / spec.logs_per_hour.max(1) as i64;
                let (key, entry) = self.write_log(spec.region, delivered, spec.records).await;
                logs.push(key);
                entries.push(entry);
            }
            let key = layout::digest_key(
                self.prefix.as_deref(),
                ACCOUNT,
                spec.region,
                TRAIL,
                HOME,
                end,
            );
            let file = DigestFile {
                aws_account_id: ACCOUNT.into(),
                digest_start_time: layout::iso_second(start),
                digest_end_time: layout::iso_second(end),
                digest_s3_bucket: BUCKET.into(),
                digest_s3_object: key.clone(),
                digest_public_key_fingerprint: self.fingerprint.clone(),
                digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
                newest_event_time: entries.last().and_then(|e| e.newest_event_time.clone()),
                oldest_event_time: entries.first().and_then(|e| e.oldest_event_time.clone()),
                previous_digest_s3_bucket: prev.as_ref().map(|_| BUCKET.to_owned()),
                previous_digest_s3_object: prev.as_ref().map(|p| p.0.clone()),
                previous_digest_hash_value: prev.as_ref().map(|p| digest::sha256_hex(&p.1)),
                previous_digest_hash_algorithm: prev
                    .as_ref()
                    .map(|_| digest::HASH_ALGORITHM.to_owned()),
                previous_digest_signature: prev.as_ref().map(|p| p.2.clone()),
                log_files: entries,
            };
            let (raw, sig) = self.write_digest(&key, &file).await;
            prev = Some((key.clone(), raw, sig));
            hours.push(Hour {
                region: spec.region.into(),
                digest_key: key,
                start_ms: start,
                end_ms: end,
                logs,
            });
        }
        hours
    }

    async fn standard_chain(&mut self, hours: usize) -> Vec<Hour> {
        self.chain(ChainSpec {
            region: HOME,
            start_ms: T0,
            hours,
            logs_per_hour: 3,
            records: 20,
        })
        .await
    }

    fn path(&self, key: &str) -> PathBuf {
        self.folder().join(key)
    }

    fn delete(&self, key: &str) {
        std::fs::remove_file(self.path(key)).expect("delete");
        let _ = std::fs::remove_file(self.meta_path(key));
    }

    fn raw(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.path(key)).expect("read")
    }

    fn write_raw(&self, key: &str, bytes: &[u8]) {
        let p = self.path(key);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write");
    }

    /// Moves an object (and its metadata) to another key.
    fn rename(&self, from: &str, to: &str) {
        self.write_raw(to, &self.raw(from));
        let meta = self.meta_path(from);
        if meta.exists() {
            let dest = self.meta_path(to);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::rename(meta, dest).expect("move meta");
        }
        std::fs::remove_file(self.path(from)).expect("remove");
    }
}

async fn run(fx: &Fixture, opts: &Options) -> Report {
    validate::validate(&fx.bucket, opts)
        .await
        .expect("validate")
}

fn invalid(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Invalid)
        .map(|f| f.line())
        .collect()
}

fn find<'a>(report: &'a Report, kind: FindingKind, key: &str) -> &'a validate::Finding {
    report
        .findings
        .iter()
        .find(|f| f.kind == kind && f.key == key)
        .unwrap_or_else(|| panic!("no {kind:?} finding for {key}: {:#?}", report.findings))
}

fn range(hours: &[Hour]) -> (i64, i64) {
    (hours[0].start_ms, hours[hours.len() - 1].end_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_chain_is_valid() {
    let mut fx = Fixture::new(Some("org/logs"));
    let hours = fx.standard_chain(5).await;
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.counts.digests_valid, 5);
    assert_eq!(report.counts.digests_invalid, 0);
    assert_eq!(report.counts.logs_valid, 15);
    assert_eq!(report.counts.unreferenced, 0);
    assert!(report.counts.log_bytes > 15 * 20 * 500);
    assert_eq!(report.found_start_ms, Some(s));
    assert_eq!(report.found_end_ms, Some(e));
    // Walk order: newest digest first, each followed by its log files.
    let first = &report.findings[0];
    assert_eq!(first.kind, FindingKind::Digest);
    assert_eq!(first.key, hours[4].digest_key);
    assert_eq!(
        first.line(),
        format!("Digest file\ts3://{BUCKET}/{}\tvalid", hours[4].digest_key)
    );
    assert_eq!(report.findings[1].kind, FindingKind::LogFile);
    // The starting digest has nothing before it: no gap is reported.
    assert_eq!(report.counts.gaps, 0);

    // A narrower range walks only the digests that cover it.
    let report = run(
        &fx,
        &fx.options(hours[2].start_ms + 10 * MINUTE, hours[2].end_ms - MINUTE),
    )
    .await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.counts.digests_valid, 1, "{:#?}", report.findings);
    assert_eq!(report.counts.logs_valid, 3);
    let report = run(
        &fx,
        &fx.options(hours[2].start_ms + 10 * MINUTE, hours[3].start_ms + MINUTE),
    )
    .await;
    assert_eq!(report.counts.digests_valid, 2, "{:#?}", report.findings);
    // The bucket name can be learned from the digests (a local copy of unknown name).
    let mut opts = fx.options(s, e);
    opts.bucket_name = None;
    let report = run(&fx, &opts).await;
    assert!(report.is_valid());
    assert_eq!(report.bucket_name, BUCKET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_log_file_fails_its_hash() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(3).await;
    let key = &hours[1].logs[1];
    let mut raw = gunzip(&fx.raw(key));
    let pos = raw.iter().position(|b| *b == b'G').expect("a G");
    raw[pos] = b'P'; // GetObject -> PetObject
    fx.write_raw(key, &gz(&raw));
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert!(!report.is_valid());
    assert_eq!(
        invalid(&report),
        [format!(
            "Log file\ts3://{BUCKET}/{key}\tINVALID: hash value doesn't match"
        )]
    );
    assert_eq!(report.counts.logs_invalid, 1);
    assert_eq!(report.counts.logs_valid, 8);
    assert_eq!(report.counts.digests_valid, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_log_file_is_not_found() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(3).await;
    let key = &hours[0].logs[2];
    fx.delete(key);
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert_eq!(
        invalid(&report),
        [format!("Log file\ts3://{BUCKET}/{key}\tINVALID: not found")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appended_gzip_member_is_trailing_data() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(2).await;
    let key = &hours[1].logs[0];
    let mut bytes = fx.raw(key);
    bytes.extend(gz(br#"{"Records":[{"eventName":"Injected"}]}"#));
    fx.write_raw(key, &bytes);
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert_eq!(
        invalid(&report),
        [format!(
            "Log file\ts3://{BUCKET}/{key}\tINVALID: unexpected data after end of compressed stream"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_digest_is_reported_with_the_span_it_covered() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(5).await;
    fx.delete(&hours[2].digest_key);
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    let nf = find(&report, FindingKind::Digest, &hours[2].digest_key);
    assert_eq!(
        nf.line(),
        format!(
            "Digest file\ts3://{BUCKET}/{}\tINVALID: not found",
            hours[2].digest_key
        )
    );
    let span = find(&report, FindingKind::DeletedDigests, &hours[2].digest_key);
    assert!(
        span.reason.contains(&layout::iso_second(hours[2].start_ms)),
        "{}",
        span.reason
    );
    assert!(
        span.reason.contains(&layout::iso_second(hours[2].end_ms)),
        "{}",
        span.reason
    );
    assert!(
        span.reason.contains("about 1 digest file;"),
        "{}",
        span.reason
    );
    assert_eq!(report.counts.deleted_digest_spans, 1);
    assert_eq!(report.counts.deleted_digests_estimate, 1);
    assert_eq!(report.counts.digests_valid, 4);
    assert_eq!(report.counts.digests_invalid, 1);
    // Its log files are now vouched for by nothing.
    assert_eq!(report.counts.unreferenced, 3);
    for key in &hours[2].logs {
        let f = find(&report, FindingKind::Unreferenced, key);
        assert!(f.reason.contains("were deleted"), "{}", f.reason);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consecutive_deleted_digests_are_both_noticed() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(6).await;
    fx.delete(&hours[2].digest_key);
    fx.delete(&hours[3].digest_key);
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    // The stock CLI reports the first as not found and then silently validates hour 1. Here
    // the span from hour 1's end to hour 4's start is reported: two digests.
    let span = find(&report, FindingKind::DeletedDigests, &hours[3].digest_key);
    assert!(
        span.reason.contains(&format!(
            "{} to {}",
            layout::iso_second(hours[2].start_ms),
            layout::iso_second(hours[3].end_ms)
        )),
        "{}",
        span.reason
    );
    assert!(
        span.reason.contains("about 2 digest files"),
        "{}",
        span.reason
    );
    assert_eq!(report.counts.deleted_digests_estimate, 2);
    assert_eq!(report.counts.digests_valid, 4);
    assert_eq!(report.counts.unreferenced, 6);
    for h in &hours[2..4] {
        for key in &h.logs {
            find(&report, FindingKind::Unreferenced, key);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_digest_fails_its_signature() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(4).await;
    let key = &hours[1].digest_key;
    // Drop one log file from the digest's list, keeping the signature metadata.
    let raw = gunzip(&fx.raw(key));
    let mut d: DigestFile = serde_json::from_slice(&raw).expect("digest");
    let dropped = d.log_files.remove(0);
    fx.write_raw(key, &gz(&serde_json::to_vec(&d).expect("json")));
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    let f = find(&report, FindingKind::Digest, key);
    assert_eq!(
        f.line(),
        format!("Digest file\ts3://{BUCKET}/{key}\tINVALID: signature verification failed")
    );
    assert_eq!(report.counts.digests_invalid, 1);
    assert_eq!(report.counts.digests_valid, 3);
    // The file it no longer lists is unreferenced.
    find(&report, FindingKind::Unreferenced, &dropped.s3_object);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_digest_breaks_the_hash_chain_even_when_signed() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(4).await;
    // Someone holding the signing key rewrites hour 1's digest without one log file: its own
    // signature verifies, but hour 2's previousDigestHashValue names the original bytes.
    let key = hours[1].digest_key.clone();
    let raw = gunzip(&fx.raw(&key));
    let mut d: DigestFile = serde_json::from_slice(&raw).expect("digest");
    d.log_files.pop();
    fx.write_digest(&key, &d).await;
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    let f = find(&report, FindingKind::Digest, &key);
    assert_eq!(f.severity, Severity::Invalid);
    assert!(
        f.reason
            .starts_with("signature differs from the previousDigestSignature")
            || f.reason
                .starts_with("hash value doesn't match the previousDigestHashValue"),
        "{}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_digest_is_reported_where_it_went() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(4).await;
    let from = hours[1].digest_key.clone();
    let to = from.replace("/2024/03/01/", "/2024/03/02/");
    assert_ne!(from, to);
    fx.rename(&from, &to);
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert_eq!(
        find(&report, FindingKind::Digest, &from).reason,
        "not found"
    );
    assert_eq!(
        find(&report, FindingKind::Digest, &to).line(),
        format!(
            "Digest file\ts3://{BUCKET}/{to}\tINVALID: has been moved from its original location"
        )
    );
    // A digest named for the wrong bucket is moved too.
    let mut opts = fx.options(s, e);
    opts.bucket_name = Some("another-bucket".into());
    let report = run(&fx, &opts).await;
    assert_eq!(
        find(&report, FindingKind::Digest, &hours[3].digest_key).reason,
        "has been moved from its original location"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_whose_name_disagrees_with_its_end_time_is_out_of_place() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(2).await;
    // A properly signed digest under a name whose stamp is not its end time.
    let end = hours[1].end_ms + HOUR;
    let key = layout::digest_key(None, ACCOUNT, HOME, TRAIL, HOME, end + 5_000);
    let prev_raw = gunzip(&fx.raw(&hours[1].digest_key));
    let prev_sig = std::fs::read_to_string(fx.meta_path(&hours[1].digest_key)).expect("meta");
    let prev_sig: BTreeMap<String, String> = serde_json::from_str(&prev_sig).expect("meta json");
    let file = DigestFile {
        aws_account_id: ACCOUNT.into(),
        digest_start_time: layout::iso_second(hours[1].end_ms),
        digest_end_time: layout::iso_second(end),
        digest_s3_bucket: BUCKET.into(),
        digest_s3_object: key.clone(),
        digest_public_key_fingerprint: fx.fingerprint.clone(),
        digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
        newest_event_time: None,
        oldest_event_time: None,
        previous_digest_s3_bucket: Some(BUCKET.into()),
        previous_digest_s3_object: Some(hours[1].digest_key.clone()),
        previous_digest_hash_value: Some(digest::sha256_hex(&prev_raw)),
        previous_digest_hash_algorithm: Some("SHA-256".into()),
        previous_digest_signature: prev_sig.get("signature").cloned(),
        log_files: vec![],
    };
    fx.write_digest(&key, &file).await;
    let report = run(&fx, &fx.options(hours[0].start_ms, end)).await;
    let f = find(&report, FindingKind::Digest, &key);
    assert!(
        f.reason.starts_with("out of place: its name's stamp"),
        "{}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_newest_hour_is_caught_against_a_checkpoint() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(4).await;
    let last = hours[3].clone();
    fx.delete(&last.digest_key);
    for key in &last.logs {
        fx.delete(key);
    }
    let (s, e) = range(&hours);
    // Without a checkpoint the remaining chain is consistent.
    let report = run(&fx, &fx.options(s, e)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    // With the end time of the latest digest the trail delivered, the tail is missing.
    let mut opts = fx.options(s, e);
    opts.expected_latest_digest_end_ms = Some(last.end_ms);
    let report = run(&fx, &opts).await;
    assert!(!report.is_valid());
    assert_eq!(report.counts.tail_truncated, 1);
    let f = report
        .of_kind(FindingKind::TailTruncated)
        .next()
        .expect("tail finding");
    assert!(
        f.reason.contains(&layout::iso_second(hours[2].end_ms)),
        "{}",
        f.reason
    );
    // A checkpoint that is only a delivery time passes when the newest digest object was
    // written then (a late delivery), here: just now.
    let mut opts = fx.options(s, e);
    opts.latest_digest_delivery_ms = Some(cairn_event::now_ms());
    let report = run(&fx, &opts).await;
    assert_eq!(report.counts.tail_truncated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_log_file_is_unreferenced() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(3).await;
    let (extra, _) = fx.write_log(HOME, hours[1].start_ms + 33 * MINUTE, 5).await;
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert_eq!(
        invalid(&report),
        [format!(
            "Log file\ts3://{BUCKET}/{extra}\tINVALID: unreferenced: no digest lists it"
        )]
    );
    assert_eq!(report.counts.unreferenced, 1);
    // A log file in the wrong date folder is out of place.
    let moved = hours[0].logs[0].replace("/2024/03/01/", "/2024/03/02/");
    fx.write_raw(&moved, &fx.raw(&hours[0].logs[0]));
    let report = run(&fx, &fx.options(s, e + 24 * HOUR)).await;
    let f = find(&report, FindingKind::OutOfPlace, &moved);
    assert!(f.reason.contains("disagree"), "{}", f.reason);
    // And anything else in a log folder is too.
    let junk = format!("AWSLogs/{ACCOUNT}/CloudTrail/{HOME}/2024/03/01/notes.txt");
    fx.write_raw(&junk, b"hello");
    let report = run(&fx, &fx.options(s, e)).await;
    find(&report, FindingKind::OutOfPlace, &junk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_signature_metadata_is_vouched_for_by_the_next_digest() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(4).await;
    // Copied with a tool that drops metadata: every digest but the newest.
    for h in &hours[..3] {
        std::fs::remove_file(fx.meta_path(&h.digest_key)).expect("drop metadata");
    }
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.counts.digests_valid, 4);
    let note = find(&report, FindingKind::Note, &hours[1].digest_key);
    assert!(
        note.reason.contains("previousDigestSignature"),
        "{}",
        note.reason
    );
    // The digest past the range vouches for the newest one in it.
    let report = run(&fx, &fx.options(s, hours[2].end_ms)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    find(&report, FindingKind::Note, &hours[2].digest_key);
    // The newest digest of all has nobody to vouch for it.
    std::fs::remove_file(fx.meta_path(&hours[3].digest_key)).expect("drop metadata");
    let report = run(&fx, &fx.options(s, e)).await;
    let f = find(&report, FindingKind::Digest, &hours[3].digest_key);
    assert!(
        f.reason.starts_with("signature verification failed"),
        "{}",
        f.reason
    );
    assert_eq!(hours[3].region, HOME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_reported_like_the_aws_cli() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(2).await;
    let (s, e) = range(&hours);
    let mut opts = fx.options(s, e);
    opts.public_keys.clear();
    opts.public_keys.insert(
        "00112233445566778899aabbccddeeff".into(),
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
    );
    let report = run(&fx, &opts).await;
    assert_eq!(report.counts.digests_invalid, 2);
    assert_eq!(
        find(&report, FindingKind::Digest, &hours[1].digest_key).line(),
        format!(
            "Digest file\ts3://{BUCKET}/{}\tINVALID: public key not found in region {HOME} for fingerprint {}",
            hours[1].digest_key, fx.fingerprint
        )
    );
    // A key that does not load.
    let mut opts = fx.options(s, e);
    opts.public_keys
        .insert(fx.fingerprint.clone(), b"garbage".to_vec());
    let report = run(&fx, &opts).await;
    assert!(
        find(&report, FindingKind::Digest, &hours[1].digest_key)
            .reason
            .starts_with("Unable to load PKCS #1 key with fingerprint")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_chain_is_a_gap_not_an_error() {
    let mut fx = Fixture::new(None);
    let first = fx.standard_chain(2).await;
    // Logging stopped for three hours, a file was delivered while validation was off, then a
    // new chain started.
    let (off, _) = fx.write_log(HOME, first[1].end_ms + HOUR, 3).await;
    let second = fx
        .chain(ChainSpec {
            region: HOME,
            start_ms: first[1].end_ms + 3 * HOUR,
            hours: 2,
            logs_per_hour: 2,
            records: 5,
        })
        .await;
    let report = run(&fx, &fx.options(first[0].start_ms, second[1].end_ms)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.counts.digests_valid, 4);
    assert_eq!(report.counts.gaps, 1);
    let gap = report.of_kind(FindingKind::Gap).next().expect("gap");
    assert_eq!(
        gap.line(),
        format!(
            "No log files were delivered by CloudTrail between {} and {}",
            layout::iso_second(first[1].end_ms),
            layout::iso_second(second[0].start_ms)
        )
    );
    let f = find(&report, FindingKind::Uncovered, &off);
    assert_eq!(f.severity, Severity::Info);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_newer_than_the_newest_digest_are_not_yet_covered() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(2).await;
    let (fresh, _) = fx.write_log(HOME, hours[1].end_ms + 4 * MINUTE, 3).await;
    let report = run(
        &fx,
        &fx.options(hours[0].start_ms, hours[1].end_ms + 10 * MINUTE),
    )
    .await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    let f = find(&report, FindingKind::NotYetCovered, &fresh);
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(report.counts.not_yet_covered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_region_is_discovered() {
    let mut fx = Fixture::new(None);
    let a = fx.standard_chain(2).await;
    let b = fx
        .chain(ChainSpec {
            region: "eu-west-1",
            start_ms: T0,
            hours: 2,
            logs_per_hour: 1,
            records: 3,
        })
        .await;
    // A region with log files but no digest at all (its digests were all deleted).
    let (orphan, _) = fx.write_log("ap-south-1", T0 + 30 * MINUTE, 2).await;
    let mut opts = fx.options(a[0].start_ms, a[1].end_ms);
    opts.regions.clear();
    let report = run(&fx, &opts).await;
    assert_eq!(report.regions, ["ap-south-1", "eu-west-1", "us-east-1"]);
    assert_eq!(report.counts.digests_valid, 4);
    assert_eq!(report.counts.logs_valid, 8);
    find(&report, FindingKind::Digest, &b[1].digest_key);
    let f = find(&report, FindingKind::Unreferenced, &orphan);
    assert!(
        f.reason.contains("no digest of this trail in ap-south-1"),
        "{}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_trails_files_in_the_same_folders_are_not_unreferenced() {
    let mut fx = Fixture::new(None);
    let ours = fx.standard_chain(2).await;
    // A second trail delivering to the same bucket and prefix: its digest lists its files.
    let (theirs, entry) = fx.write_log(HOME, T0 + 20 * MINUTE, 3).await;
    let end = T0 + HOUR;
    let key = layout::digest_key(None, ACCOUNT, HOME, "other", HOME, end);
    let file = DigestFile {
        aws_account_id: ACCOUNT.into(),
        digest_start_time: layout::iso_second(T0),
        digest_end_time: layout::iso_second(end),
        digest_s3_bucket: BUCKET.into(),
        digest_s3_object: key.clone(),
        digest_public_key_fingerprint: fx.fingerprint.clone(),
        digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
        newest_event_time: None,
        oldest_event_time: None,
        previous_digest_s3_bucket: None,
        previous_digest_s3_object: None,
        previous_digest_hash_value: None,
        previous_digest_hash_algorithm: None,
        previous_digest_signature: None,
        log_files: vec![entry],
    };
    fx.write_digest(&key, &file).await;
    let (s, e) = range(&ours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.counts.digests_valid, 2);
    // Unless that digest does not verify.
    fx.write_raw(&key, &gz(b"{}"));
    let report = run(&fx, &fx.options(s, e)).await;
    let f = find(&report, FindingKind::Unreferenced, &theirs);
    assert!(f.reason.contains("no digest lists it"), "{}", f.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_with_a_hole_between_start_and_end_is_a_chain_break() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(2).await;
    // The next digest points at hour 1 but starts 20 minutes after it ended.
    let prev_raw = gunzip(&fx.raw(&hours[1].digest_key));
    let meta: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(fx.meta_path(&hours[1].digest_key)).expect("meta"))
            .expect("meta json");
    let end = hours[1].end_ms + HOUR;
    let key = layout::digest_key(None, ACCOUNT, HOME, TRAIL, HOME, end);
    let file = DigestFile {
        aws_account_id: ACCOUNT.into(),
        digest_start_time: layout::iso_second(hours[1].end_ms + 20 * MINUTE),
        digest_end_time: layout::iso_second(end),
        digest_s3_bucket: BUCKET.into(),
        digest_s3_object: key.clone(),
        digest_public_key_fingerprint: fx.fingerprint.clone(),
        digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
        newest_event_time: None,
        oldest_event_time: None,
        previous_digest_s3_bucket: Some(BUCKET.into()),
        previous_digest_s3_object: Some(hours[1].digest_key.clone()),
        previous_digest_hash_value: Some(digest::sha256_hex(&prev_raw)),
        previous_digest_hash_algorithm: Some("SHA-256".into()),
        previous_digest_signature: meta.get("signature").cloned(),
        log_files: vec![],
    };
    fx.write_digest(&key, &file).await;
    let report = run(&fx, &fx.options(hours[0].start_ms, end)).await;
    assert_eq!(report.counts.digests_valid, 3);
    assert_eq!(report.counts.chain_breaks, 1);
    let f = find(&report, FindingKind::Chain, &key);
    assert!(
        f.reason.contains("is not the digestEndTime"),
        "{}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_digests_are_validated_and_counted_apart() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(2).await;
    // A backfill digest for hour 0 listing a late file.
    let (late, entry) = fx.write_log(HOME, hours[0].start_ms + 7 * MINUTE, 4).await;
    let key = hours[0].digest_key.replace(".json.gz", "_backfill.json.gz");
    let file = DigestFile {
        aws_account_id: ACCOUNT.into(),
        digest_start_time: layout::iso_second(hours[0].start_ms),
        digest_end_time: layout::iso_second(hours[0].end_ms),
        digest_s3_bucket: BUCKET.into(),
        digest_s3_object: key.clone(),
        digest_public_key_fingerprint: fx.fingerprint.clone(),
        digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
        newest_event_time: None,
        oldest_event_time: None,
        previous_digest_s3_bucket: None,
        previous_digest_s3_object: None,
        previous_digest_hash_value: None,
        previous_digest_hash_algorithm: None,
        previous_digest_signature: None,
        log_files: vec![entry],
    };
    let raw = serde_json::to_vec(&file).expect("json");
    let msg = digest::string_to_sign(&file.digest_end_time, BUCKET, &key, &raw, None);
    let (_, sig) = fx.keyring.sign(T0, msg.as_bytes()).expect("sign");
    let put = |meta: Vec<(&'static str, String)>| {
        let (bucket, key, bytes) = (fx.bucket.clone(), key.clone(), gz(&raw));
        async move {
            let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
            bucket
                .put(&key, Bytes::from(bytes), &meta)
                .await
                .expect("put");
        }
    };
    put(vec![
        ("signature", sig.clone()),
        ("signature-algorithm", SIGNATURE_ALGORITHM.into()),
        (
            "backfill-generation-timestamp",
            "2024-03-02T00:00:00Z".into(),
        ),
    ])
    .await;
    let (s, e) = range(&hours);
    let report = run(&fx, &fx.options(s, e)).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.counts.digests_valid, 2);
    assert_eq!(report.counts.backfill_digests_valid, 1);
    assert_eq!(report.counts.logs_valid, 7);
    let f = find(&report, FindingKind::LogFile, &late);
    assert!(f.backfill);
    // The AWS CLI requires the generation timestamp on a backfill digest.
    put(vec![
        ("signature", sig),
        ("signature-algorithm", SIGNATURE_ALGORITHM.into()),
    ])
    .await;
    let report = run(&fx, &fx.options(s, e)).await;
    let f = find(&report, FindingKind::Digest, &key);
    assert!(
        f.line().starts_with("(backfill) Digest file\t"),
        "{}",
        f.line()
    );
    assert!(f.reason.starts_with("invalid format"), "{}", f.reason);
    assert_eq!(report.counts.backfill_digests_invalid, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_digests_are_findings_never_panics() {
    let mut fx = Fixture::new(None);
    let hours = fx.standard_chain(3).await;
    let key = hours[1].digest_key.clone();
    let good = fx.raw(&key);
    let (s, e) = range(&hours);
    let raw = gunzip(&good);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not gzip", b"hello".to_vec()),
        ("empty", Vec::new()),
        ("truncated gzip", good[..good.len() / 2].to_vec()),
        ("not JSON", gz(b"{\"digestEndTime\":")),
        ("a JSON list", gz(b"[1,2,3]")),
        ("wrong types", gz(br#"{"digestPublicKeyFingerprint":1,"digestS3Bucket":[],"digestS3Object":{},"previousDigestSignature":2,"digestEndTime":true,"digestStartTime":null,"logFiles":"x"}"#)),
        ("trailing member", [good.clone(), gz(b"x")].concat()),
    ];
    for (what, bytes) in cases {
        fx.write_raw(&key, &bytes);
        let report = run(&fx, &fx.options(s, e)).await;
        let f = find(&report, FindingKind::Digest, &key);
        assert_eq!(f.severity, Severity::Invalid, "{what}");
        assert!(
            f.reason.starts_with("invalid format") || f.reason.starts_with("unexpected data"),
            "{what}: {}",
            f.reason
        );
    }
    // Random damage anywhere in the JSON or the gzip bytes.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..60 {
        let mut bytes = if round % 2 == 0 {
            raw.clone()
        } else {
            good.clone()
        };
        for _ in 0..1 + next() % 4 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] ^= 1 << (next() % 8);
        }
        let stored = if round % 2 == 0 { gz(&bytes) } else { bytes };
        fx.write_raw(&key, &stored);
        let report = run(&fx, &fx.options(s, e)).await;
        assert!(!report.is_valid(), "round {round}");
    }
}

/// A bucket as AWS CloudTrail leaves it (prefix, `HHMMSS` stamps at :01:31, an empty hourly
/// digest with null event times, a starting digest), checked with the key file that
/// `aws cloudtrail list-public-keys` prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_aws_shaped_input_validates_with_a_keys_file() {
    let fx = Fixture::new(Some("cloudtrail"));
    let prefix = Some("cloudtrail");
    let region = "us-east-2";
    // 2015-08-17T13:01:31Z, 14:01:31Z, 15:01:31Z
    let ends = [1_439_816_491_000i64, 1_439_820_091_000, 1_439_823_691_000];
    let mut prev: Option<(String, Vec<u8>, String)> = None;
    let mut log_keys = Vec::new();
    for (i, end) in ends.iter().enumerate() {
        let start = end - HOUR;
        let key = layout::digest_key(prefix, ACCOUNT, region, TRAIL, HOME, *end);
        let mut logs = String::new();
        let (newest, oldest) = if i == 1 {
            ("null".to_owned(), "null".to_owned())
        } else {
            let delivered = start + 43 * MINUTE + 59_000;
            let raw = format!(
                r#"{{"Records":[{{"eventVersion":"1.03","userIdentity":{{"type":"Root","principalId":"{ACCOUNT}","arn":"arn:aws:iam::{ACCOUNT}:root","accountId":"{ACCOUNT}"}},"eventTime":"{}","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"{region}","sourceIPAddress":"192.0.2.110","userAgent":"Mozilla/5.0","requestParameters":null,"responseElements":{{"ConsoleLogin":"Success"}},"eventID":"d7d4f2b3-0000-4000-8000-00000000000{i}","eventType":"AwsConsoleSignIn","recipientAccountId":"{ACCOUNT}"}}]}}"#,
                layout::iso_second(delivered - 5 * MINUTE)
            );
            let log_key = layout::log_key(
                prefix,
                ACCOUNT,
                Kind::Log,
                region,
                delivered,
                &format!("9nYN7gp2eWAJHIf{i}"),
            );
            fx.bucket
                .put(&log_key, Bytes::from(gz(raw.as_bytes())), &[])
                .await
                .expect("put");
            log_keys.push(log_key.clone());
            let t = format!("\"{}\"", layout::iso_second(delivered - 5 * MINUTE));
            logs = format!(
                r#"{{"s3Bucket":"{BUCKET}","s3Object":"{log_key}","hashValue":"{}","hashAlgorithm":"SHA-256","newestEventTime":{t},"oldestEventTime":{t}}}"#,
                digest::sha256_hex(raw.as_bytes())
            );
            (t.clone(), t)
        };
        let q = |s: Option<String>| {
            s.map(|v| format!("\"{v}\""))
                .unwrap_or_else(|| "null".into())
        };
        let json = format!(
            r#"{{"awsAccountId":"{ACCOUNT}","digestStartTime":"{}","digestEndTime":"{}","digestS3Bucket":"{BUCKET}","digestS3Object":"{key}","digestPublicKeyFingerprint":"{}","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":{newest},"oldestEventTime":{oldest},"previousDigestS3Bucket":{},"previousDigestS3Object":{},"previousDigestHashValue":{},"previousDigestHashAlgorithm":{},"previousDigestSignature":{},"logFiles":[{logs}]}}"#,
            layout::iso_second(start),
            layout::iso_second(*end),
            fx.fingerprint,
            q(prev.as_ref().map(|_| BUCKET.to_owned())),
            q(prev.as_ref().map(|p| p.0.clone())),
            q(prev.as_ref().map(|p| digest::sha256_hex(&p.1))),
            q(prev.as_ref().map(|_| "SHA-256".to_owned())),
            q(prev.as_ref().map(|p| p.2.clone())),
        );
        let (raw, sig) = fx
            .write_digest_bytes(
                &key,
                &layout::iso_second(*end),
                json.as_bytes(),
                prev.as_ref().map(|p| p.2.as_str()),
            )
            .await;
        prev = Some((key, raw, sig));
    }
    // The key file, as `aws cloudtrail list-public-keys` prints it.
    let der = fx.keys.get(&fx.fingerprint).expect("key");
    use base64::Engine;
    let keys_json = format!(
        r#"{{
    "PublicKeyList": [
        {{
            "Value": "{}",
            "ValidityStartTime": "2015-08-01T00:00:00+00:00",
            "ValidityEndTime": "2015-09-01T00:00:00+00:00",
            "Fingerprint": "{}"
        }}
    ]
}}"#,
        base64::engine::general_purpose::STANDARD.encode(der),
        fx.fingerprint
    );
    let keys = validate::parse_public_keys(keys_json.as_bytes()).expect("keys file");
    let mut opts = Options::new(ACCOUNT, TRAIL, HOME, ends[0] - HOUR, ends[2]);
    opts.prefix = Some("cloudtrail".into());
    opts.public_keys = keys.into_iter().map(|k| (k.fingerprint, k.der)).collect();
    let report = run(&fx, &opts).await;
    assert!(report.is_valid(), "{:#?}", invalid(&report));
    assert_eq!(report.regions, [HOME, region]);
    assert_eq!(report.counts.digests_valid, 3);
    assert_eq!(report.counts.logs_valid, 2);
    assert_eq!(report.bucket_name, BUCKET);
    assert_eq!(digest::fingerprint(der), fx.fingerprint);
}

/// Throughput: `VALIDATE_BENCH_MB` megabytes of log files (default 256), validated with the
/// concurrency of `VALIDATE_BENCH_JOBS` (default 1). Run in release mode, pinned to one core:
/// `taskset -c 0 cargo test --release -p cairn-trail --test validate -- --ignored --nocapture bench`
/// (or `scripts/bench-validate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_validation_throughput() {
    let mb: usize = std::env::var("VALIDATE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let jobs: usize = std::env::var("VALIDATE_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let runs: usize = std::env::var("VALIDATE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut fx = Fixture::new(None);
    // About 1 MB (decompressed) per log file of ~600-byte records, 12 files an hour.
    let records = 1_650;
    let files = mb.max(1);
    let hours = files.div_ceil(12);
    let built = std::time::Instant::now();
    let chain = fx
        .chain(ChainSpec {
            region: HOME,
            start_ms: T0,
            hours,
            logs_per_hour: 12,
            records,
        })
        .await;
    eprintln!(
        "fixture: {} digests, {} log files in {:.1} s",
        chain.len(),
        chain.len() * 12,
        built.elapsed().as_secs_f64()
    );
    if let Ok(dir) = std::env::var("VALIDATE_BENCH_KEEP") {
        // For scripts/bench-validate: keep the bucket and write the keys file next to it.
        let dest = PathBuf::from(dir);
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(fx.folder().parent().expect("root"))
            .arg(&dest)
            .status()
            .expect("cp");
        assert!(status.success());
        use base64::Engine;
        let list: Vec<serde_json::Value> = fx
            .keys
            .iter()
            .map(|(fp, der)| serde_json::json!({"Fingerprint": fp, "Value": base64::engine::general_purpose::STANDARD.encode(der)}))
            .collect();
        std::fs::write(
            dest.join("keys.json"),
            serde_json::to_vec_pretty(&serde_json::json!({ "PublicKeyList": list })).expect("json"),
        )
        .expect("keys file");
        std::fs::write(
            dest.join("range"),
            format!(
                "{} {}\n",
                layout::iso_second(T0),
                layout::iso_second(chain[chain.len() - 1].end_ms)
            ),
        )
        .expect("range");
    }
    let (s, e) = range(&chain);
    let mut rates = Vec::new();
    for _ in 0..runs {
        let mut opts = fx.options(s, e);
        opts.concurrency = jobs;
        opts.keep_valid = false;
        let report = run(&fx, &opts).await;
        assert!(report.is_valid());
        rates.push(report.mb_per_s());
        eprintln!(
            "{} log files, {:.1} MB decompressed ({:.1} MB compressed) in {:.3} s: {:.0} MB/s",
            report.counts.logs_valid,
            report.counts.log_bytes as f64 / 1e6,
            report.counts.log_bytes_compressed as f64 / 1e6,
            report.elapsed.as_secs_f64(),
            report.mb_per_s()
        );
    }
    rates.sort_by(f64::total_cmp);
    eprintln!(
        "median of {runs}: {:.0} MB/s (concurrency {jobs})",
        rates[rates.len() / 2]
    );
}
