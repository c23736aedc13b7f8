//! Validation of a trail's files: the checks of `aws cloudtrail validate-logs`, and the ones it
//! leaves out.
//!
//! For each source region, the digest chain is walked newest → oldest. Each digest must be
//! present, one gzip member of JSON with the required members, stored where it says it is
//! (`digestS3Bucket/digestS3Object`) under a name whose stamp is its `digestEndTime`, signed
//! (RSA-SHA256 over the spec's §4.3 string) by a known key. Between two digests the newer one's
//! `previousDigestHashValue` must be the SHA-256 of the older one's bytes (the AWS CLI does not
//! check this) and its `digestStartTime` the older one's `digestEndTime`. A digest whose
//! signature metadata was lost (copied by a tool that drops metadata) is verified with the
//! signature the next newer digest carries for it. A deleted digest is reported together with
//! the span of time that no digest covers any more, however many consecutive digests went.
//! Every log file of a valid digest must be present, exactly one gzip member, and hash to its
//! `hashValue`. Then every log file in the range that no digest lists is reported
//! (unreferenced), except the newest ones a digest has not covered yet; files whose folders
//! disagree with their names are out of place; and given the end time of the latest digest the
//! trail delivered (a checkpoint), a chain that stops short of it was truncated at the tail.
//!
//! Log files are fetched and hashed concurrently, a bounded number at a time; hashing streams
//! (gunzip + SHA-256) on the blocking pool.
//!
//! ```no_run
//! # async fn demo(bucket: cairn_bucket::Bucket, keys: std::collections::BTreeMap<String, Vec<u8>>) {
//! use cairn_trail::validate::{Options, validate};
//! let mut opts = Options::new("111122223333", "my-trail", "us-east-1", 0, 3_600_000);
//! opts.public_keys = keys;
//! let report = validate(&bucket, &opts).await.expect("bucket readable");
//! for f in &report.findings {
//!     println!("{}", f.line());
//! }
//! assert!(report.is_valid());
//! # }
//! ```

mod chain;
mod extras;
pub mod gz;
pub mod names;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use cairn_bucket::{Bucket, BucketError};
use serde_json::Value;

use crate::layout::{Kind, iso_second};
use names::Names;

pub use gz::{GzError, GzHash, hash_gzip};

/// What to validate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The bucket name the digests must name as their own (`digestS3Bucket`). `None`: take it
    /// from the newest digest found (for a local copy of a bucket whose name is unknown).
    pub bucket_name: Option<String>,
    /// The trail's S3 key prefix.
    pub prefix: Option<String>,
    /// The organization id of an organization trail (`AWSLogs/<org>/<account>/`).
    pub org_id: Option<String>,
    pub account_id: String,
    pub trail_name: String,
    pub home_region: String,
    /// Source regions to validate; empty: every region found under `CloudTrail-Digest/` (and,
    /// for a folder, under `CloudTrail/`).
    pub regions: Vec<String>,
    /// Log files delivered in `[start_ms, end_ms]` are validated.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Public keys by fingerprint: DER (PKCS #1 RSAPublicKey, or SubjectPublicKeyInfo).
    pub public_keys: BTreeMap<String, Vec<u8>>,
    /// The end time of the latest digest the trail is known to have delivered: a region
    /// whose newest digest ends earlier (by more than 10 minutes) was truncated at the tail.
    pub expected_latest_digest_end_ms: Option<i64>,
    /// Instead, when only that is known, when the latest digest was delivered
    /// (GetTrailStatus's `LatestDigestDeliveryTime`). A digest delivered late ends before its
    /// delivery, so the newest digest also passes if its object was written then.
    pub latest_digest_delivery_ms: Option<i64>,
    /// Objects fetched at once; 0 picks a default (cores for a folder, 16 for S3).
    pub concurrency: usize,
    /// Keep a finding for every valid file too (the `--verbose` lines); counts are kept anyway.
    pub keep_valid: bool,
    /// Look for log files no digest lists, and for misplaced ones.
    pub check_extra_files: bool,
    /// Updated as log files are hashed, for a progress display.
    pub progress: Option<Arc<Progress>>,
}

impl Options {
    pub fn new(
        account_id: &str,
        trail_name: &str,
        home_region: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Options {
        Options {
            bucket_name: None,
            prefix: None,
            org_id: None,
            account_id: account_id.to_owned(),
            trail_name: trail_name.to_owned(),
            home_region: home_region.to_owned(),
            regions: Vec::new(),
            start_ms,
            end_ms,
            public_keys: BTreeMap::new(),
            expected_latest_digest_end_ms: None,
            latest_digest_delivery_ms: None,
            concurrency: 0,
            keep_valid: true,
            check_extra_files: true,
            progress: None,
        }
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub log_files: AtomicU64,
    /// Decompressed bytes hashed.
    pub bytes: AtomicU64,
}

/// How a finding bears on the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Valid,
    /// Worth saying, not a failure (a gap in the chain, files not yet digested, ...).
    Info,
    Invalid,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    /// A digest file's own verdict.
    Digest,
    /// A log file listed by a valid digest.
    LogFile,
    /// A span of time whose digests are gone (`key`: the first missing digest).
    DeletedDigests,
    /// Two digests that do not chain (`key`: the newer one).
    Chain,
    /// The chain starts afresh: no log files were delivered between two chains.
    Gap,
    /// A log file in the range that no digest lists.
    Unreferenced,
    /// A log file delivered while no digest chain ran (before validation was enabled, or
    /// while logging was stopped): nothing can vouch for it.
    Uncovered,
    /// A log file newer than the newest digest: the next digest will cover it.
    NotYetCovered,
    /// A log file whose folders disagree with its name, or an object that is not a log file.
    OutOfPlace,
    /// The newest digest is older than the checkpoint (`key`: the region's digest folder).
    TailTruncated,
    /// Anything else worth saying.
    Note,
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub region: String,
    pub bucket: String,
    pub key: String,
    /// For an invalid digest or log file, the AWS CLI's words (`not found`, `invalid format`,
    /// `signature verification failed`, `hash value doesn't match`, ...), sometimes followed by
    /// details in parentheses.
    pub reason: String,
    /// About a backfill digest or one of its log files.
    pub backfill: bool,
}

impl Finding {
    /// The line `aws cloudtrail validate-logs` would print (tab-separated), or one in the same
    /// style for the checks it does not make.
    pub fn line(&self) -> String {
        let status = match self.severity {
            Severity::Valid => "valid".to_owned(),
            Severity::Info => self.reason.clone(),
            Severity::Invalid => format!("INVALID: {}", self.reason),
        };
        let label = match self.kind {
            FindingKind::Gap => return self.reason.clone(),
            FindingKind::Note if self.key.is_empty() => return self.reason.clone(),
            FindingKind::Digest => "Digest file",
            FindingKind::DeletedDigests | FindingKind::TailTruncated => "Digest files",
            FindingKind::Chain => "Digest chain",
            FindingKind::LogFile
            | FindingKind::Unreferenced
            | FindingKind::Uncovered
            | FindingKind::NotYetCovered
            | FindingKind::OutOfPlace => "Log file",
            FindingKind::Note => "Note",
        };
        let backfill = if self.backfill { "(backfill) " } else { "" };
        format!(
            "{backfill}{label}\ts3://{}/{}\t{status}",
            self.bucket, self.key
        )
    }
}

/// Totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub digests_valid: u64,
    pub digests_invalid: u64,
    pub backfill_digests_valid: u64,
    pub backfill_digests_invalid: u64,
    pub logs_valid: u64,
    pub logs_invalid: u64,
    /// Spans of time whose digests were deleted, and the digests they held (estimated from
    /// the hourly cadence).
    pub deleted_digest_spans: u64,
    pub deleted_digests_estimate: u64,
    pub chain_breaks: u64,
    pub gaps: u64,
    pub unreferenced: u64,
    pub uncovered: u64,
    pub not_yet_covered: u64,
    pub out_of_place: u64,
    pub tail_truncated: u64,
    /// Objects that could not be read for a reason other than not existing.
    pub read_errors: u64,
    /// Bytes of log data hashed (decompressed) and read (compressed).
    pub log_bytes: u64,
    pub log_bytes_compressed: u64,
}

/// The outcome of a validation.
#[derive(Debug, Clone)]
pub struct Report {
    /// In the order of the walk: region by region, each digest (newest first) followed by its
    /// log files, then the region's extra files. Valid files only with `keep_valid`.
    pub findings: Vec<Finding>,
    pub counts: Counts,
    pub regions: Vec<String>,
    /// The bucket name checked against the digests (given, or taken from them).
    pub bucket_name: String,
    /// What the valid digests cover, clipped to the requested range (the AWS CLI's
    /// `Results found for`).
    pub found_start_ms: Option<i64>,
    pub found_end_ms: Option<i64>,
    pub elapsed: Duration,
}

impl Report {
    /// No finding is invalid.
    pub fn is_valid(&self) -> bool {
        !self
            .findings
            .iter()
            .any(|f| f.severity == Severity::Invalid)
            && self.invalid_count() == 0
    }

    fn invalid_count(&self) -> u64 {
        let c = &self.counts;
        c.digests_invalid
            + c.backfill_digests_invalid
            + c.logs_invalid
            + c.deleted_digest_spans
            + c.chain_breaks
            + c.unreferenced
            + c.out_of_place
            + c.tail_truncated
    }

    /// Findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// Decompressed log megabytes (10^6 bytes) hashed per second of the whole run.
    pub fn mb_per_s(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s <= 0.0 {
            return 0.0;
        }
        self.counts.log_bytes as f64 / 1e6 / s
    }
}

/// Validation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot list {prefix}: {source}")]
    List {
        prefix: String,
        #[source]
        source: BucketError,
    },
    #[error("invalid time range: the start {start} is after the end {end}")]
    TimeRange { start: String, end: String },
    #[error("a worker task failed: {0}")]
    Task(String),
}

/// A key of a `list-public-keys` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub fingerprint: String,
    pub der: Vec<u8>,
}

/// Reads the JSON that `aws cloudtrail list-public-keys` prints (or ListPublicKeys returns):
/// `{"PublicKeyList":[{"Value": base64 DER, "Fingerprint": "...", ...}]}`; a bare list of
/// such entries is accepted too.
pub fn parse_public_keys(json: &[u8]) -> Result<Vec<KeyEntry>, String> {
    let v: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let list = match &v {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("PublicKeyList") {
            Some(Value::Array(a)) => a,
            _ => return Err("no PublicKeyList array".into()),
        },
        _ => return Err("expected an object with PublicKeyList".into()),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, k) in list.iter().enumerate() {
        let fp = k
            .get("Fingerprint")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("key {i} has no Fingerprint"))?;
        let value = k
            .get("Value")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("key {i} ({fp}) has no Value"))?;
        let cleaned: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .map_err(|e| format!("key {i} ({fp}): Value is not base64: {e}"))?;
        out.push(KeyEntry {
            fingerprint: fp.to_owned(),
            der,
        });
    }
    Ok(out)
}

/// Validates a trail's digests and log files in `bucket`.
pub async fn validate(bucket: &Bucket, opts: &Options) -> Result<Report, ValidateError> {
    let started = Instant::now();
    if opts.start_ms > opts.end_ms {
        return Err(ValidateError::TimeRange {
            start: iso_second(opts.start_ms),
            end: iso_second(opts.end_ms),
        });
    }
    let names = Names::new(
        opts.prefix.as_deref(),
        opts.org_id.as_deref(),
        &opts.account_id,
        &opts.trail_name,
        &opts.home_region,
    );
    let concurrency = match opts.concurrency {
        0 if bucket.folder().is_some() => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2),
        0 => 16,
        n => n,
    };
    let ctx = chain::Ctx::new(bucket.clone(), opts, names, concurrency);

    let (regions, digest_listing) = discover_regions(&ctx).await?;
    let mut region_walks = Vec::new();
    for region in &regions {
        let listed = match digest_listing.as_ref() {
            Some(all) => all
                .iter()
                .filter(|l| ctx.names.region_of(Kind::Digest, &l.key).as_deref() == Some(region))
                .cloned()
                .collect(),
            None => list_region_digests(&ctx, region).await?,
        };
        region_walks.push(ctx.walk_region(region, listed).await);
    }

    // Hash every listed log file of every valid digest, a bounded number at a time.
    let outcomes = ctx.run_log_jobs().await?;

    let mut findings = Vec::new();
    let mut counts = Counts::default();
    let mut found: Option<(i64, i64)> = None;
    let bucket_name = ctx.bucket_name();
    let mut sink = Sink {
        findings: &mut findings,
        counts: &mut counts,
        keep_valid: opts.keep_valid,
    };
    if opts.bucket_name.is_none() && !sink_is_empty(&region_walks) {
        sink.push(Finding {
            kind: FindingKind::Note,
            severity: Severity::Info,
            region: String::new(),
            bucket: bucket_name.clone(),
            key: String::new(),
            reason: format!("The bucket's name was taken from its newest digest: {bucket_name}"),
            backfill: false,
        });
    }
    for (region, walk) in regions.iter().zip(region_walks.iter()) {
        for entry in &walk.entries {
            match entry {
                chain::Entry::Finding(f) => sink.push(f.clone()),
                chain::Entry::Logs(range) => {
                    for i in range.clone() {
                        sink.push(ctx.log_finding(region, i, &outcomes[i]));
                    }
                }
            }
        }
        sink.counts.deleted_digests_estimate += walk.deleted_estimate;
        if let Some((s, e)) = walk.found {
            found = Some(match found {
                Some((fs, fe)) => (fs.min(s), fe.max(e)),
                None => (s, e),
            });
        }
        for f in chain::tail_findings(&ctx, region, walk) {
            sink.push(f);
        }
        if opts.check_extra_files {
            for f in extras::check_region(&ctx, region, walk).await? {
                sink.push(f);
            }
        }
    }
    for (bytes, compressed) in outcomes.iter().filter_map(|o| match o {
        chain::LogOutcome::Valid { len, compressed } => Some((*len, *compressed)),
        _ => None,
    }) {
        counts.log_bytes += bytes;
        counts.log_bytes_compressed += compressed;
    }
    Ok(Report {
        findings,
        counts,
        regions,
        bucket_name,
        found_start_ms: found.map(|(s, _)| s.max(opts.start_ms)),
        found_end_ms: found.map(|(_, e)| e.min(opts.end_ms)),
        elapsed: started.elapsed(),
    })
}

fn sink_is_empty(walks: &[chain::RegionWalk]) -> bool {
    walks.iter().all(|w| w.entries.is_empty())
}

struct Sink<'a> {
    findings: &'a mut Vec<Finding>,
    counts: &'a mut Counts,
    keep_valid: bool,
}

impl Sink<'_> {
    fn push(&mut self, f: Finding) {
        let c = &mut *self.counts;
        let invalid = f.severity == Severity::Invalid;
        match f.kind {
            FindingKind::Digest => match (f.backfill, invalid) {
                (false, false) => c.digests_valid += 1,
                (false, true) => c.digests_invalid += 1,
                (true, false) => c.backfill_digests_valid += 1,
                (true, true) => c.backfill_digests_invalid += 1,
            },
            FindingKind::LogFile => {
                if invalid {
                    c.logs_invalid += 1
                } else {
                    c.logs_valid += 1
                }
            }
            FindingKind::DeletedDigests => c.deleted_digest_spans += 1,
            FindingKind::Chain => c.chain_breaks += 1,
            FindingKind::Gap => c.gaps += 1,
            FindingKind::Unreferenced => c.unreferenced += 1,
            FindingKind::Uncovered => c.uncovered += 1,
            FindingKind::NotYetCovered => c.not_yet_covered += 1,
            FindingKind::OutOfPlace => c.out_of_place += 1,
            FindingKind::TailTruncated => c.tail_truncated += 1,
            FindingKind::Note => {}
        }
        if f.reason.starts_with(chain::READ_ERROR) {
            c.read_errors += 1;
        }
        if f.severity != Severity::Valid || self.keep_valid {
            self.findings.push(f);
        }
    }
}

/// The regions to validate, and (for a remote bucket without given regions) the whole digest
/// listing that discovering them took.
async fn discover_regions(
    ctx: &chain::Ctx<'_>,
) -> Result<(Vec<String>, Option<Vec<cairn_bucket::Listed>>), ValidateError> {
    let opts = ctx.opts;
    if !opts.regions.is_empty() {
        let mut r = opts.regions.clone();
        r.dedup();
        return Ok((r, None));
    }
    let mut found: HashSet<String> = HashSet::new();
    let mut listing = None;
    if let Some(folder) = ctx.bucket.folder() {
        for kind in [Kind::Digest, Kind::Log] {
            let dir = folder.join(ctx.names.kind_root(kind));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if e.path().is_dir()
                        && let Ok(name) = e.file_name().into_string()
                        && !name.starts_with('.')
                    {
                        found.insert(name);
                    }
                }
            }
        }
    } else {
        let prefix = ctx.names.kind_root(Kind::Digest);
        let all = ctx
            .bucket
            .list(&prefix, None)
            .await
            .map_err(|source| ValidateError::List { prefix, source })?;
        for l in &all {
            if let Some(r) = ctx.names.region_of(Kind::Digest, &l.key) {
                found.insert(r);
            }
        }
        listing = Some(all);
    }
    found.insert(opts.home_region.clone());
    let mut regions: Vec<String> = found.into_iter().collect();
    regions.sort();
    Ok((regions, listing))
}

/// Digest keys of a region, from two days before the range on (the chain may need an older
/// neighbour, the tail check the newest of all).
async fn list_region_digests(
    ctx: &chain::Ctx<'_>,
    region: &str,
) -> Result<Vec<cairn_bucket::Listed>, ValidateError> {
    let prefix = ctx.names.region_dir(Kind::Digest, region);
    let after = ctx
        .names
        .digest_key(region, ctx.opts.start_ms.saturating_sub(2 * names::DAY_MS));
    let after = after
        .rsplit_once('/')
        .map(|(dir, _)| format!("{dir}/"))
        .unwrap_or(after);
    match ctx.bucket.list(&prefix, Some(&after)).await {
        Ok(v) => Ok(v),
        Err(BucketError::NoSuchKey(_)) => Ok(Vec::new()),
        Err(source) => Err(ValidateError::List { prefix, source }),
    }
}

/// Counts a log file as hashed for the progress display.
pub(crate) fn note_progress(p: &Option<Arc<Progress>>, bytes: u64) {
    if let Some(p) = p {
        p.log_files.fetch_add(1, Ordering::Relaxed);
        p.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_the_aws_cli() {
        let mut f = Finding {
            kind: FindingKind::Digest,
            severity: Severity::Invalid,
            region: "us-east-1".into(),
            bucket: "b".into(),
            key: "k".into(),
            reason: "not found".into(),
            backfill: false,
        };
        assert_eq!(f.line(), "Digest file\ts3://b/k\tINVALID: not found");
        f.severity = Severity::Valid;
        f.backfill = true;
        assert_eq!(f.line(), "(backfill) Digest file\ts3://b/k\tvalid");
        f.kind = FindingKind::LogFile;
        f.backfill = false;
        f.severity = Severity::Invalid;
        f.reason = "hash value doesn't match".into();
        assert_eq!(
            f.line(),
            "Log file\ts3://b/k\tINVALID: hash value doesn't match"
        );
    }

    #[test]
    fn reads_a_list_public_keys_file() {
        let json = br#"{"PublicKeyList":[{"Value":"MIIBCgKCAQEAn11L","ValidityStartTime":"2024-01-01T00:00:00+00:00","ValidityEndTime":"2024-02-01T00:00:00+00:00","Fingerprint":"8eba5db5bea9b640d1c96a77256fe7f2"}]}"#;
        let keys = parse_public_keys(json).expect("parse");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].fingerprint, "8eba5db5bea9b640d1c96a77256fe7f2");
        assert_eq!(&keys[0].der[..4], &[0x30, 0x82, 0x01, 0x0a]);
        assert!(parse_public_keys(b"{}").is_err());
        assert!(parse_public_keys(br#"[{"Fingerprint":"x","Value":"%%"}]"#).is_err());
        assert!(parse_public_keys(b"garbage").is_err());
    }
}
