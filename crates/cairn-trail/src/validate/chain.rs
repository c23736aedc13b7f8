//! Walking a region's digest chain newest → oldest, checking each digest and each link, and
//! hashing the log files of the valid ones.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use cairn_bucket::{Bucket, BucketError, Listed, Object};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::gz::{GzError, gunzip, hash_gzip};
use super::names::{DigestName, Names};
use super::{Finding, FindingKind, Options, Severity, ValidateError, note_progress};
use crate::digest::{SIGNATURE_ALGORITHM, verify};
use crate::layout::{Kind, iso_second};

const HOUR_MS: i64 = 3_600_000;
/// How far the newest digest may trail the checkpoint before the tail counts as truncated
/// (regions are digested one after the other; a deleted hour is 60 minutes). A chain with a
/// shorter period gets half its period.
pub const TAIL_SLACK_MS: i64 = 10 * 60_000;
/// Digests are small; anything that inflates past this is not one.
const DIGEST_LIMIT: u64 = 256 << 20;
/// Reasons of files that could not be read start with this.
pub const READ_ERROR: &str = "cannot be read: ";

/// The members `aws cloudtrail validate-logs` requires before it looks at a digest, and
/// `logFiles`, which it reads afterwards.
const REQUIRED: [&str; 7] = [
    "digestPublicKeyFingerprint",
    "digestS3Bucket",
    "digestS3Object",
    "previousDigestSignature",
    "digestEndTime",
    "digestStartTime",
    "logFiles",
];

enum Fetched {
    Missing,
    Failed(String),
    Found(Object),
}

async fn fetch_one(bucket: &Bucket, key: &str) -> Fetched {
    match bucket.get(key).await {
        Ok(o) => Fetched::Found(o),
        Err(BucketError::NoSuchKey(_)) | Err(BucketError::InvalidKey(_)) => Fetched::Missing,
        Err(e) => Fetched::Failed(e.to_string()),
    }
}

/// A log file a digest lists.
#[derive(Debug, Clone)]
pub struct LogRef {
    pub bucket: String,
    pub key: String,
    pub hash: String,
}

/// A digest's members, read leniently.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub key: String,
    pub sha256: String,
    pub end_str: String,
    pub end_ms: i64,
    pub start_ms: Option<i64>,
    pub bucket: String,
    pub object: String,
    pub fingerprint: String,
    pub prev_bucket: Option<String>,
    pub prev_object: Option<String>,
    pub prev_hash: Option<String>,
    pub prev_hash_algorithm: Option<String>,
    pub prev_signature: Option<String>,
    pub logs: Vec<LogRef>,
}

fn opt_str(o: &Map<String, Value>, k: &str) -> Result<Option<String>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{k} is not a string")),
    }
}

fn req_str(o: &Map<String, Value>, k: &str) -> Result<String, String> {
    opt_str(o, k)?.ok_or_else(|| format!("{k} is null"))
}

fn time_of(k: &str, s: &str) -> Result<i64, String> {
    cairn_event::parse_event_time(s).ok_or_else(|| format!("{k} {s:?} is not a time"))
}

pub fn parse_digest(key: &str, raw: &[u8]) -> Result<Parsed, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("not JSON: {e}"))?;
    let o = v.as_object().ok_or("not a JSON object")?;
    if let Some(missing) = REQUIRED.iter().find(|k| !o.contains_key(**k)) {
        return Err(format!("no {missing}"));
    }
    let end_str = req_str(o, "digestEndTime")?;
    let end_ms = time_of("digestEndTime", &end_str)?;
    let start_ms = match opt_str(o, "digestStartTime")? {
        Some(s) => Some(time_of("digestStartTime", &s)?),
        None => None,
    };
    let files = o
        .get("logFiles")
        .and_then(Value::as_array)
        .ok_or("logFiles is not a list")?;
    let mut logs = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let f = f
            .as_object()
            .ok_or_else(|| format!("logFiles[{i}] is not an object"))?;
        logs.push(LogRef {
            bucket: req_str(f, "s3Bucket").map_err(|e| format!("logFiles[{i}]: {e}"))?,
            key: req_str(f, "s3Object").map_err(|e| format!("logFiles[{i}]: {e}"))?,
            hash: req_str(f, "hashValue").map_err(|e| format!("logFiles[{i}]: {e}"))?,
        });
    }
    Ok(Parsed {
        key: key.to_owned(),
        sha256: crate::digest::sha256_hex(raw),
        end_str,
        end_ms,
        start_ms,
        bucket: req_str(o, "digestS3Bucket")?,
        object: req_str(o, "digestS3Object")?,
        fingerprint: req_str(o, "digestPublicKeyFingerprint")?,
        prev_bucket: opt_str(o, "previousDigestS3Bucket")?,
        prev_object: opt_str(o, "previousDigestS3Object")?,
        prev_hash: opt_str(o, "previousDigestHashValue")?,
        prev_hash_algorithm: opt_str(o, "previousDigestHashAlgorithm")?,
        prev_signature: opt_str(o, "previousDigestSignature")?,
        logs,
    })
}

/// Whether `der` is shaped like an RSA public key: a DER SEQUENCE spanning all of it whose
/// first element is an INTEGER (PKCS #1) or a SEQUENCE (SubjectPublicKeyInfo).
fn der_key_loads(der: &[u8]) -> bool {
    if der.len() < 4 || der[0] != 0x30 {
        return false;
    }
    let (len, header) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n @ 0x81..=0x84 => {
            let k = usize::from(n & 0x7f);
            if der.len() < 2 + k {
                return false;
            }
            let len = der[2..2 + k]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + k)
        }
        _ => return false,
    };
    header + len == der.len() && matches!(der.get(header), Some(0x02) | Some(0x30))
}

/// What the next newer digest says about the one before it.
#[derive(Debug, Clone)]
pub struct NewerLink {
    pub key: String,
    pub start_ms: Option<i64>,
    pub prev_object: Option<String>,
    pub prev_hash: Option<String>,
    pub prev_hash_algorithm: Option<String>,
    pub prev_signature: Option<String>,
}

impl NewerLink {
    fn of(d: &Parsed) -> NewerLink {
        NewerLink {
            key: d.key.clone(),
            start_ms: d.start_ms,
            prev_object: d.prev_object.clone(),
            prev_hash: d.prev_hash.clone(),
            prev_hash_algorithm: d.prev_hash_algorithm.clone(),
            prev_signature: d.prev_signature.clone(),
        }
    }
}

pub enum Check {
    Missing,
    Invalid {
        reason: String,
        parsed: Option<Parsed>,
    },
    Valid {
        d: Parsed,
        /// Verified with the newer digest's `previousDigestSignature` (no metadata).
        vouched: bool,
    },
}

/// A digest key of this trail in the listing.
#[derive(Debug, Clone)]
struct DKey {
    key: String,
    stamp: i64,
    folders_ok: bool,
}

/// In walk order: a finding, or the log files of the digest just before (indexes into the
/// job list).
pub enum Entry {
    Finding(Finding),
    Logs(Range<usize>),
}

/// What walking a region found and what the extra-file check needs from it.
#[derive(Default)]
pub struct RegionWalk {
    pub entries: Vec<Entry>,
    pub found: Option<(i64, i64)>,
    /// Keys of log files listed by a digest of this trail (valid or not).
    pub referenced: HashSet<String>,
    /// Spans no chain covered legitimately (before a starting digest).
    pub gaps: Vec<(i64, i64)>,
    /// Spans whose digests are gone.
    pub spans: Vec<(i64, i64)>,
    pub deleted_estimate: u64,
    pub has_digests: bool,
    /// The newest digest of this trail in the region (its stamp, and when the object was
    /// last written), walked or not.
    pub newest_stamp: Option<i64>,
    pub newest_modified: Option<i64>,
    /// The usual time between two digests of the region (the median step).
    pub period_ms: Option<i64>,
    /// The end of the newest digest walked, when no newer one exists.
    pub covered_until: Option<i64>,
    /// Digests of other trails in the same folders: key and `<name>_<home region>`.
    pub others: Vec<(String, String, i64)>,
}

pub struct LogJob {
    bucket: String,
    key: String,
    hash: String,
    backfill: bool,
}

#[derive(Debug, Clone)]
pub enum LogOutcome {
    Valid { len: u64, compressed: u64 },
    HashMismatch,
    NotFound,
    OtherBucket,
    Format(String),
    TrailingData,
    Unreadable(String),
}

pub struct Ctx<'a> {
    pub bucket: Bucket,
    pub opts: &'a Options,
    pub names: Names,
    pub concurrency: usize,
    bucket_name: Mutex<Option<String>>,
    cache: Mutex<HashMap<String, Fetched>>,
    jobs: Mutex<Vec<LogJob>>,
}

fn span_text(lo: i64, hi: i64) -> String {
    if lo == i64::MIN {
        format!("the time before {}", iso_second(hi))
    } else {
        format!("{} to {}", iso_second(lo), iso_second(hi))
    }
}

impl<'a> Ctx<'a> {
    pub fn new(bucket: Bucket, opts: &'a Options, names: Names, concurrency: usize) -> Ctx<'a> {
        Ctx {
            bucket,
            opts,
            names,
            concurrency: concurrency.max(1),
            bucket_name: Mutex::new(opts.bucket_name.clone()),
            cache: Mutex::new(HashMap::new()),
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// The bucket name in use (given, learned from a digest, or the handle's).
    pub fn bucket_name(&self) -> String {
        self.bucket_name
            .lock()
            .clone()
            .unwrap_or_else(|| self.bucket.name().to_owned())
    }

    fn finding(
        &self,
        kind: FindingKind,
        severity: Severity,
        region: &str,
        key: &str,
        reason: String,
    ) -> Finding {
        Finding {
            kind,
            severity,
            region: region.to_owned(),
            bucket: self.bucket_name(),
            key: key.to_owned(),
            reason,
            backfill: false,
        }
    }

    /// Fetches objects not yet cached, a bounded number at a time.
    async fn prefetch(&self, keys: Vec<String>) {
        let todo: Vec<String> = {
            let cache = self.cache.lock();
            keys.into_iter()
                .filter(|k| !cache.contains_key(k))
                .collect()
        };
        let results: Vec<(String, Fetched)> = futures::stream::iter(todo)
            .map(|k| {
                let b = self.bucket.clone();
                async move {
                    let handle = tokio::spawn(async move {
                        let r = fetch_one(&b, &k).await;
                        (k, r)
                    });
                    handle.await.ok()
                }
            })
            .buffer_unordered(self.concurrency)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        self.cache.lock().extend(results);
    }

    async fn fetch(&self, key: &str) -> Fetched {
        let cached = self.cache.lock().remove(key);
        match cached {
            Some(f) => f,
            None => fetch_one(&self.bucket, key).await,
        }
    }

    /// Checks one digest on its own and, when `link` names it, against the newer digest.
    pub async fn check_digest(
        &self,
        key: &str,
        stamp: Option<i64>,
        folders_ok: bool,
        link: Option<&NewerLink>,
    ) -> Check {
        let invalid = |reason: String, parsed: Option<Parsed>| Check::Invalid { reason, parsed };
        let obj = match self.fetch(key).await {
            Fetched::Missing => return Check::Missing,
            Fetched::Failed(e) => return invalid(format!("{READ_ERROR}{e}"), None),
            Fetched::Found(o) => o,
        };
        let raw = match gunzip(&obj.bytes, DIGEST_LIMIT) {
            Ok(r) => r,
            Err(GzError::TrailingData) => {
                return invalid(
                    "unexpected data after end of compressed stream".into(),
                    None,
                );
            }
            Err(GzError::Format(e)) => return invalid(format!("invalid format ({e})"), None),
        };
        let d = match parse_digest(key, &raw) {
            Ok(d) => d,
            Err(e) => return invalid(format!("invalid format ({e})"), None),
        };
        drop(raw);
        if key.ends_with("_backfill.json.gz")
            && !obj.metadata.contains_key("backfill-generation-timestamp")
        {
            return invalid(
                "invalid format (a backfill digest without backfill-generation-timestamp metadata)"
                    .into(),
                Some(d),
            );
        }
        let bucket_name = {
            let mut name = self.bucket_name.lock();
            match name.as_ref() {
                Some(n) => n.clone(),
                None => {
                    *name = Some(d.bucket.clone());
                    d.bucket.clone()
                }
            }
        };
        if d.bucket != bucket_name || d.object != key {
            return invalid("has been moved from its original location".into(), Some(d));
        }
        if let Some(stamp) = stamp {
            if stamp != d.end_ms {
                let reason = format!(
                    "out of place: its name's stamp {} is not its digestEndTime {}",
                    iso_second(stamp),
                    d.end_str
                );
                return invalid(reason, Some(d));
            }
            if !folders_ok {
                return invalid(
                    "out of place: its date folders disagree with its digestEndTime".into(),
                    Some(d),
                );
            }
        }
        let Some(der) = self.opts.public_keys.get(&d.fingerprint) else {
            let reason = format!(
                "public key not found in region {} for fingerprint {}",
                self.opts.home_region, d.fingerprint
            );
            return invalid(reason, Some(d));
        };
        if !der_key_loads(der) {
            let reason = format!(
                "Unable to load PKCS #1 key with fingerprint {}",
                d.fingerprint
            );
            return invalid(reason, Some(d));
        }
        let link = link.filter(|l| l.prev_object.as_deref() == Some(key));
        let meta_sig = obj.metadata.get("signature").map(|s| s.trim().to_owned());
        let (signature, vouched) = match (&meta_sig, link.and_then(|l| l.prev_signature.clone())) {
            (Some(s), _) => (s.clone(), false),
            (None, Some(s)) => (s, true),
            (None, None) => {
                return invalid(
                    "signature verification failed (the object has no signature metadata, and no newer digest vouches for it)".into(),
                    Some(d),
                );
            }
        };
        if !vouched
            && let Some(alg) = obj.metadata.get("signature-algorithm")
            && alg != SIGNATURE_ALGORITHM
        {
            let reason =
                format!("signature verification failed (unsupported signature algorithm {alg})");
            return invalid(reason, Some(d));
        }
        let message = signed_string(&d);
        if !verify(der, message.as_bytes(), &signature) {
            return invalid("signature verification failed".into(), Some(d));
        }
        if let Some(l) = link {
            if let (Some(meta), Some(prev)) = (&meta_sig, &l.prev_signature)
                && !meta.eq_ignore_ascii_case(prev)
            {
                let reason = format!(
                    "signature differs from the previousDigestSignature of s3://{bucket_name}/{}",
                    l.key
                );
                return invalid(reason, Some(d));
            }
            let sha256_alg = l
                .prev_hash_algorithm
                .as_deref()
                .is_none_or(|a| a.eq_ignore_ascii_case("SHA-256"));
            if let Some(h) = &l.prev_hash
                && sha256_alg
                && !h.eq_ignore_ascii_case(&d.sha256)
            {
                let reason = format!(
                    "hash value doesn't match the previousDigestHashValue of s3://{bucket_name}/{} (the digest was replaced)",
                    l.key
                );
                return invalid(reason, Some(d));
            }
        }
        Check::Valid { d, vouched }
    }

    /// Walks the region's chains (standard, then backfill).
    pub async fn walk_region(&self, region: &str, listed: Vec<Listed>) -> RegionWalk {
        let mut standard = Vec::new();
        let mut backfill = Vec::new();
        let mut walk = RegionWalk::default();
        let mut modified: HashMap<String, i64> = HashMap::new();
        for l in listed {
            let key = l.key;
            match self.names.classify_digest(region, &key) {
                DigestName::Ours {
                    stamp_ms,
                    backfill: bf,
                    folders_ok,
                } => {
                    modified.insert(key.clone(), l.last_modified_ms);
                    let k = DKey {
                        key,
                        stamp: stamp_ms,
                        folders_ok,
                    };
                    if bf {
                        backfill.push(k)
                    } else {
                        standard.push(k)
                    }
                }
                DigestName::OtherTrail { label, stamp_ms } => {
                    walk.others.push((key, label, stamp_ms))
                }
                DigestName::Foreign => {}
            }
        }
        for keys in [&mut standard, &mut backfill] {
            keys.sort_by(|a, b| (a.stamp, &a.key).cmp(&(b.stamp, &b.key)));
        }
        walk.has_digests = !standard.is_empty() || !backfill.is_empty();
        walk.newest_stamp = standard.last().map(|k| k.stamp);
        walk.newest_modified = standard.last().and_then(|k| modified.get(&k.key).copied());
        let mut steps: Vec<i64> = standard
            .windows(2)
            .map(|w| w[1].stamp - w[0].stamp)
            .filter(|d| *d > 0)
            .collect();
        steps.sort_unstable();
        walk.period_ms = steps.get(steps.len() / 2).copied();
        self.walk_chain(region, &standard, false, &mut walk).await;
        self.walk_chain(region, &backfill, true, &mut walk).await;
        walk
    }

    async fn walk_chain(&self, region: &str, keys: &[DKey], backfill: bool, walk: &mut RegionWalk) {
        let (start, end) = (self.opts.start_ms, self.opts.end_ms);
        let first = keys.partition_point(|k| k.stamp < start);
        if first >= keys.len() {
            if !backfill {
                walk.covered_until = keys.last().map(|k| k.stamp);
            }
            return;
        }
        // The newest digest walked is the first one ending at or after the range's end: it
        // covers the range's last deliveries.
        let top = keys
            .iter()
            .position(|k| k.stamp >= end)
            .unwrap_or(keys.len() - 1)
            .max(first);
        let older = &keys[..first];
        let in_walk = &keys[first..=top];
        let newer = keys.get(top + 1);
        if !backfill {
            walk.covered_until = newer.is_none().then_some(keys[top].stamp);
        }
        self.prefetch(in_walk.iter().map(|k| k.key.clone()).collect())
            .await;
        let bucket_name = || self.bucket_name();
        let tag = |mut f: Finding| {
            f.backfill = backfill;
            f
        };

        // The digest after the walk vouches for the walk's first one.
        let mut link: Option<NewerLink> = None;
        if let Some(n) = newer
            && let Check::Valid { d, .. } = self
                .check_digest(&n.key, Some(n.stamp), n.folders_ok, None)
                .await
        {
            walk.referenced.extend(d.logs.iter().map(|l| l.key.clone()));
            link = Some(NewerLink::of(&d));
        }

        let mut visited: HashSet<String> = HashSet::new();
        let next_older = |below: i64, visited: &HashSet<String>| -> Option<DKey> {
            in_walk
                .iter()
                .rev()
                .find(|k| k.stamp < below && !visited.contains(&k.key))
                .cloned()
        };
        let older_end = |below: i64| -> Option<i64> {
            older
                .iter()
                .rev()
                .find(|k| k.stamp < below)
                .map(|k| k.stamp)
        };
        let mut current: Option<(String, i64, bool)> =
            Some((keys[top].key.clone(), keys[top].stamp, keys[top].folders_ok));
        let mut last_start = keys[top].stamp;
        while let Some((key, stamp, folders_ok)) = current.take() {
            if last_start < start || !visited.insert(key.clone()) {
                break;
            }
            let named = link
                .as_ref()
                .filter(|l| l.prev_object.as_deref() == Some(key.as_str()));
            let check = self
                .check_digest(&key, Some(stamp), folders_ok, named)
                .await;
            match check {
                Check::Missing => {
                    walk.entries.push(Entry::Finding(tag(self.finding(
                        FindingKind::Digest,
                        Severity::Invalid,
                        region,
                        &key,
                        "not found".into(),
                    ))));
                    let next = next_older(stamp, &visited);
                    if let Some(l) = named {
                        let hi = l.start_ms.unwrap_or(stamp);
                        let lo = next
                            .as_ref()
                            .map(|k| k.stamp)
                            .or_else(|| older_end(stamp))
                            .unwrap_or(i64::MIN);
                        let estimate = if lo == i64::MIN {
                            1
                        } else {
                            (((hi - lo) + HOUR_MS / 2) / HOUR_MS).max(1) as u64
                        };
                        let resumes = match &next {
                            Some(k) => {
                                format!("the chain resumes at s3://{}/{}", bucket_name(), k.key)
                            }
                            None => match older_end(stamp) {
                                Some(_) => "the chain resumes before the requested range".into(),
                                None => "no older digest exists".into(),
                            },
                        };
                        let reason = format!(
                            "deleted: no digest covers {} any more (about {estimate} digest file{}; s3://{}/{} names it as its previous digest; {resumes})",
                            span_text(lo, hi),
                            if estimate == 1 { "" } else { "s" },
                            bucket_name(),
                            l.key,
                        );
                        walk.spans.push((lo, hi));
                        walk.deleted_estimate += estimate;
                        walk.entries.push(Entry::Finding(tag(self.finding(
                            FindingKind::DeletedDigests,
                            Severity::Invalid,
                            region,
                            &key,
                            reason,
                        ))));
                    }
                    current = next.map(|k| (k.key, k.stamp, k.folders_ok));
                    link = None;
                }
                Check::Invalid { reason, parsed } => {
                    if let Some(p) = parsed {
                        walk.referenced.extend(p.logs.into_iter().map(|l| l.key));
                    }
                    walk.entries.push(Entry::Finding(tag(self.finding(
                        FindingKind::Digest,
                        Severity::Invalid,
                        region,
                        &key,
                        reason,
                    ))));
                    current = next_older(stamp, &visited).map(|k| (k.key, k.stamp, k.folders_ok));
                    link = None;
                }
                Check::Valid { d, vouched } => {
                    walk.entries.push(Entry::Finding(tag(self.finding(
                        FindingKind::Digest,
                        Severity::Valid,
                        region,
                        &key,
                        String::new(),
                    ))));
                    if vouched && let Some(l) = named {
                        let reason = format!(
                            "the digest has no signature metadata (copied without it?); its signature was taken from the previousDigestSignature of s3://{}/{} and verified",
                            bucket_name(),
                            l.key
                        );
                        walk.entries.push(Entry::Finding(tag(self.finding(
                            FindingKind::Note,
                            Severity::Info,
                            region,
                            &key,
                            reason,
                        ))));
                    }
                    if let Some(l) = named
                        && let Some(newer_start) = l.start_ms
                        && newer_start != d.end_ms
                    {
                        let reason = format!(
                            "the digestStartTime {} of s3://{}/{} is not the digestEndTime {} of its previous digest s3://{}/{}: no digest covers the time between",
                            iso_second(newer_start),
                            bucket_name(),
                            l.key,
                            d.end_str,
                            bucket_name(),
                            key
                        );
                        walk.entries.push(Entry::Finding(tag(self.finding(
                            FindingKind::Chain,
                            Severity::Invalid,
                            region,
                            &l.key,
                            reason,
                        ))));
                    }
                    // Its log files.
                    let first_job = {
                        let mut jobs = self.jobs.lock();
                        let first = jobs.len();
                        for l in &d.logs {
                            walk.referenced.insert(l.key.clone());
                            jobs.push(LogJob {
                                bucket: l.bucket.clone(),
                                key: l.key.clone(),
                                hash: l.hash.clone(),
                                backfill,
                            });
                        }
                        first..jobs.len()
                    };
                    if !first_job.is_empty() {
                        walk.entries.push(Entry::Logs(first_job));
                    }
                    let d_start = d.start_ms.unwrap_or(d.end_ms);
                    let span = (d_start.max(start), d.end_ms.min(end));
                    walk.found = Some(match walk.found {
                        Some((s, e)) => (s.min(span.0), e.max(span.1)),
                        None => span,
                    });
                    last_start = d_start;
                    link = Some(NewerLink::of(&d));
                    current = None;
                    match (&d.prev_bucket, &d.prev_object) {
                        (Some(pb), Some(po)) if *pb != bucket_name() => {
                            let reason = format!(
                                "the chain continues in another bucket (s3://{pb}/{po}), which this validation does not read"
                            );
                            walk.entries.push(Entry::Finding(tag(self.finding(
                                FindingKind::Note,
                                Severity::Info,
                                region,
                                &key,
                                reason,
                            ))));
                        }
                        (_, Some(po)) => {
                            let pstamp = match self.names.classify_digest(region, po) {
                                DigestName::Ours {
                                    stamp_ms,
                                    backfill: bf,
                                    folders_ok,
                                } if bf == backfill => Some((stamp_ms, folders_ok)),
                                _ => None,
                            };
                            match pstamp {
                                Some((ps, pf)) if ps < stamp && !visited.contains(po) => {
                                    let skipped: Vec<DKey> = in_walk
                                        .iter()
                                        .filter(|k| k.stamp > ps && k.stamp < stamp)
                                        .filter(|k| !visited.contains(&k.key))
                                        .cloned()
                                        .collect();
                                    for k in skipped {
                                        visited.insert(k.key.clone());
                                        let why = format!(
                                            "s3://{}/{key} names s3://{}/{po} as its previous digest",
                                            bucket_name(),
                                            bucket_name()
                                        );
                                        if let Some(f) = self.stray(region, &k, &why, walk).await {
                                            walk.entries.push(Entry::Finding(tag(f)));
                                        }
                                    }
                                    current = Some((po.clone(), ps, pf));
                                }
                                _ => {
                                    let reason = format!(
                                        "its previousDigestS3Object {po} is not an older digest of this trail in {region}"
                                    );
                                    walk.entries.push(Entry::Finding(tag(self.finding(
                                        FindingKind::Chain,
                                        Severity::Invalid,
                                        region,
                                        &key,
                                        reason,
                                    ))));
                                    current = next_older(stamp, &visited)
                                        .map(|k| (k.key, k.stamp, k.folders_ok));
                                    link = None;
                                }
                            }
                        }
                        _ => {
                            // A starting digest: the chain before it (if any) ended earlier.
                            let next = next_older(stamp, &visited);
                            let lo = next
                                .as_ref()
                                .map(|k| k.stamp)
                                .or_else(|| older_end(stamp))
                                .unwrap_or(i64::MIN);
                            walk.gaps.push((lo, d_start));
                            if let Some(n) = &next {
                                let reason = format!(
                                    "No log files were delivered by CloudTrail between {} and {}",
                                    iso_second(n.stamp),
                                    iso_second(d_start)
                                );
                                let mut f = self.finding(
                                    FindingKind::Gap,
                                    Severity::Info,
                                    region,
                                    &key,
                                    reason,
                                );
                                if backfill {
                                    f.reason = format!("(backfill) {}", f.reason);
                                }
                                walk.entries.push(Entry::Finding(f));
                            }
                            current = next.map(|k| (k.key, k.stamp, k.folders_ok));
                            link = None;
                        }
                    }
                }
            }
        }
        // Listed digests of the walked span that the walk never reached (a copy moved into
        // another folder, a stray file): what is wrong with them.
        let strays: Vec<DKey> = in_walk
            .iter()
            .filter(|k| k.stamp >= last_start.max(start) && !visited.contains(&k.key))
            .cloned()
            .collect();
        for k in strays {
            if let Some(f) = self
                .stray(region, &k, "no digest of the chain names it", walk)
                .await
            {
                walk.entries.push(Entry::Finding(tag(f)));
            }
        }
    }

    /// The finding for a listed digest that is not in the chain: what is wrong with it, or
    /// that it does not belong.
    async fn stray(
        &self,
        region: &str,
        k: &DKey,
        why: &str,
        walk: &mut RegionWalk,
    ) -> Option<Finding> {
        let reason = match self
            .check_digest(&k.key, Some(k.stamp), k.folders_ok, None)
            .await
        {
            Check::Missing => return None,
            Check::Invalid { reason, parsed } => {
                if let Some(p) = parsed {
                    walk.referenced.extend(p.logs.into_iter().map(|l| l.key));
                }
                reason
            }
            Check::Valid { .. } => format!("not part of the digest chain: {why}"),
        };
        Some(self.finding(
            FindingKind::Digest,
            Severity::Invalid,
            region,
            &k.key,
            reason,
        ))
    }

    /// Fetches and hashes every listed log file, a bounded number at a time; outcomes in job
    /// order.
    pub async fn run_log_jobs(&self) -> Result<Vec<LogOutcome>, ValidateError> {
        let name = self.bucket_name();
        let work: Vec<Option<(String, String)>> = self
            .jobs
            .lock()
            .iter()
            .map(|j| (j.bucket == name).then(|| (j.key.clone(), j.hash.clone())))
            .collect();
        let progress = self.opts.progress.clone();
        let outcomes: Vec<Result<LogOutcome, String>> = futures::stream::iter(work)
            .map(|w| {
                let bucket = self.bucket.clone();
                let progress = progress.clone();
                async move {
                    let Some((key, hash)) = w else {
                        return Ok(LogOutcome::OtherBucket);
                    };
                    tokio::spawn(async move {
                        let o = check_log(&bucket, &key, &hash).await;
                        if let LogOutcome::Valid { len, .. } = o {
                            note_progress(&progress, len);
                        }
                        o
                    })
                    .await
                    .map_err(|e| e.to_string())
                }
            })
            .buffered(self.concurrency)
            .collect()
            .await;
        outcomes
            .into_iter()
            .map(|r| r.map_err(ValidateError::Task))
            .collect()
    }

    /// The finding for log job `i`.
    pub fn log_finding(&self, region: &str, i: usize, outcome: &LogOutcome) -> Finding {
        let jobs = self.jobs.lock();
        let (key, backfill, job_bucket) = jobs
            .get(i)
            .map(|j| (j.key.clone(), j.backfill, j.bucket.clone()))
            .unwrap_or_default();
        let (severity, reason) = match outcome {
            LogOutcome::Valid { .. } => (Severity::Valid, String::new()),
            LogOutcome::HashMismatch => (Severity::Invalid, "hash value doesn't match".into()),
            LogOutcome::NotFound => (Severity::Invalid, "not found".into()),
            LogOutcome::OtherBucket => (
                Severity::Invalid,
                format!(
                    "not found (it is in bucket {job_bucket}; this validation reads only {})",
                    self.bucket_name()
                ),
            ),
            LogOutcome::Format(e) => (Severity::Invalid, format!("invalid format ({e})")),
            LogOutcome::TrailingData => (
                Severity::Invalid,
                "unexpected data after end of compressed stream".into(),
            ),
            LogOutcome::Unreadable(e) => (Severity::Invalid, format!("{READ_ERROR}{e}")),
        };
        Finding {
            kind: FindingKind::LogFile,
            severity,
            region: region.to_owned(),
            bucket: if job_bucket.is_empty() {
                self.bucket_name()
            } else {
                job_bucket
            },
            key,
            reason,
            backfill,
        }
    }
}

/// The signed string (spec §4.3, as `digest::string_to_sign` builds it) from a digest's
/// members and the hash of its bytes taken when it was parsed.
fn signed_string(d: &Parsed) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        d.end_str,
        d.bucket,
        d.object,
        d.sha256,
        d.prev_signature.as_deref().unwrap_or("null")
    )
}

async fn check_log(bucket: &Bucket, key: &str, want: &str) -> LogOutcome {
    let obj = match bucket.get(key).await {
        Ok(o) => o,
        Err(BucketError::NoSuchKey(_)) | Err(BucketError::InvalidKey(_)) => {
            return LogOutcome::NotFound;
        }
        Err(e) => return LogOutcome::Unreadable(e.to_string()),
    };
    let compressed = obj.bytes.len() as u64;
    let bytes = obj.bytes;
    match tokio::task::spawn_blocking(move || hash_gzip(&bytes)).await {
        Err(e) => LogOutcome::Unreadable(format!("hashing failed: {e}")),
        Ok(Err(GzError::TrailingData)) => LogOutcome::TrailingData,
        Ok(Err(GzError::Format(e))) => LogOutcome::Format(e),
        Ok(Ok(h)) if h.sha256.eq_ignore_ascii_case(want.trim()) => LogOutcome::Valid {
            len: h.len,
            compressed,
        },
        Ok(Ok(_)) => LogOutcome::HashMismatch,
    }
}

/// The tail check of a region against the checkpoint.
pub fn tail_findings(ctx: &Ctx, region: &str, walk: &RegionWalk) -> Vec<Finding> {
    let opts = ctx.opts;
    let (checkpoint, what) = match (
        opts.expected_latest_digest_end_ms,
        opts.latest_digest_delivery_ms,
    ) {
        (Some(end), _) => (end, "a digest ending at"),
        (None, Some(delivered)) => (delivered, "a digest at"),
        (None, None) => return Vec::new(),
    };
    let dir = ctx.names.region_dir(Kind::Digest, region);
    let slack = walk
        .period_ms
        .map_or(TAIL_SLACK_MS, |p| TAIL_SLACK_MS.min(p / 2).max(1_000));
    let threshold = checkpoint - slack;
    // A digest delivered at the checkpoint may end earlier (one delivered late, catching
    // up): then the object itself was written at the checkpoint.
    let delivered_then = opts.expected_latest_digest_end_ms.is_none()
        && walk.newest_modified.is_some_and(|m| m >= threshold);
    let reason = match walk.newest_stamp {
        Some(n) if n >= threshold || delivered_then => return Vec::new(),
        Some(n) => format!(
            "tail truncated: the newest digest ends at {}, but the trail delivered {what} {}: the digests and log files delivered after {} were deleted",
            iso_second(n),
            iso_second(checkpoint),
            iso_second(n)
        ),
        None if region == ctx.opts.home_region => format!(
            "tail truncated: no digest of this trail is left, but the trail delivered a digest at {}",
            iso_second(checkpoint)
        ),
        None => return Vec::new(),
    };
    vec![ctx.finding(
        FindingKind::TailTruncated,
        Severity::Invalid,
        region,
        &dir,
        reason,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_string_from_a_known_hash_matches() {
        let d = parse_digest(
            "c",
            br#"{"digestPublicKeyFingerprint":"f","digestS3Bucket":"b","digestS3Object":"c","previousDigestSignature":null,"digestEndTime":"2015-08-17T15:01:31Z","digestStartTime":"2015-08-17T14:01:31Z","logFiles":[]}"#,
        )
        .expect("parse");
        let raw = b"abc";
        let d = Parsed {
            sha256: crate::digest::sha256_hex(raw),
            ..d
        };
        assert_eq!(
            signed_string(&d),
            crate::digest::string_to_sign("2015-08-17T15:01:31Z", "b", "c", raw, None)
        );
    }

    #[test]
    fn lenient_parsing_reports_what_is_wrong() {
        assert!(parse_digest("k", b"[]").is_err());
        assert_eq!(
            parse_digest("k", b"{}").err().as_deref(),
            Some("no digestPublicKeyFingerprint")
        );
        let bad_time = br#"{"digestPublicKeyFingerprint":"f","digestS3Bucket":"b","digestS3Object":"c","previousDigestSignature":null,"digestEndTime":"yesterday","digestStartTime":null,"logFiles":[]}"#;
        assert!(parse_digest("k", bad_time).is_err());
        let bad_log = br#"{"digestPublicKeyFingerprint":"f","digestS3Bucket":"b","digestS3Object":"c","previousDigestSignature":null,"digestEndTime":"2015-08-17T15:01:31Z","digestStartTime":null,"logFiles":[{"s3Bucket":"b"}]}"#;
        assert!(parse_digest("k", bad_log).is_err());
    }

    #[test]
    fn der_shape() {
        let mut k = vec![0x30, 0x82, 0x01, 0x0a, 0x02];
        k.resize(0x10e, 0);
        assert!(der_key_loads(&k));
        assert!(!der_key_loads(&k[..100]));
        assert!(!der_key_loads(b"\x30\x03\x04\x01\x00"));
        assert!(!der_key_loads(b""));
    }
}
