//! Trail delivery: turns the journal into CloudTrail log files and signed hourly digests in
//! each trail's bucket.
//!
//! The worker keeps a durable cursor into the journal. Every interval it reads what became
//! durable since, picks the events each logging trail wants, and writes one gzip log file per
//! trail and region into a local spool; only then does it move the cursor, in the same atomic
//! state write that lists the spooled files as pending. Pending files are uploaded in order
//! and forgotten once the bucket has them. So a crash at any moment neither loses nor
//! duplicates an event: before the state write nothing was uploaded and the same events are
//! read again; after it, the spooled file is uploaded under its fixed key, and uploading it
//! twice writes the same bytes to the same key. An unreachable bucket keeps files pending
//! (GetTrailStatus shows the error) while other trails go on.
//!
//! With log file validation on, uploaded files are added to the digest window of their trail,
//! bucket and region (a trail moved to another bucket closes its chain in the old one and
//! starts one in the new one); at the end of each period a digest listing them is signed,
//! chained to the previous one and delivered the same way. Quiet periods give empty digests; StartLogging begins a new
//! chain (its first digest has null `previous*` members); StopLogging, turning validation off,
//! moving the trail to another bucket, or deleting it closes the chain with a final digest.
//!
//! Trails with an SNS topic are notified after each delivery round: one notification per
//! trail (and bucket) listing the log files just uploaded (digests are not notified), sent in
//! the background so a slow or failing receiver never holds delivery up. Its outcome is what
//! GetTrailStatus reports as `LatestNotificationTime` / `LatestNotificationError`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use cairn_bucket::Backend;
use cairn_store::{Position, Store};

use crate::config::Trail;
use crate::digest::{self, DigestFile, HASH_ALGORITHM, LogFileEntry, SIGNATURE_ALGORITHM};
use crate::keys::Keyring;
use crate::layout::{self, Kind};
use crate::registry::Trails;
use crate::selectors::EventFacts;
use crate::status::{StatusBoard, TrailStatus};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivery state I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("delivery state {0} is damaged: {1}")]
    Damaged(PathBuf, String),
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, DeliveryError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DeliveryError + '_ {
    move |source| DeliveryError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How often log files are written (CloudTrail: about every 5 minutes).
    pub interval_ms: i64,
    /// The digest period (CloudTrail: one hour).
    pub digest_period_ms: i64,
    /// Where the notifications of trails with an SNS topic go (none: not sent).
    pub notifier: Option<cairn_rules::Notifier>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            interval_ms: 60_000,
            digest_period_ms: 3_600_000,
            notifier: None,
        }
    }
}

/// Raw JSON bytes per log file at most (CloudTrail caps files at 50 MB compressed).
const MAX_FILE_RAW: usize = 64 << 20;
/// Records read from the journal per step.
const FEED_BATCH: usize = 100_000;
/// Trail delivery's name among the journal's consumers.
pub const CONSUMER: &str = "trails";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PrevDigest {
    bucket: String,
    key: String,
    hash: String,
    signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Delivered {
    entry: LogFileEntry,
    delivered_ms: i64,
    oldest_ms: i64,
    newest_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Window {
    start_ms: i64,
    files: Vec<Delivered>,
    previous: Option<PrevDigest>,
}

/// The digest chain of one trail while it logs with validation on.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chain {
    /// The trail as it was when the chain started (bucket, prefix, name, regions).
    trail: Trail,
    started_logging_ms: Option<i64>,
    regions: BTreeMap<String, Window>,
    last_end_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum FileKind {
    Log,
    Digest,
    /// An Insights log file (`CloudTrail-Insight/`); digests do not list them.
    Insight,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    spool: String,
    trail_arn: String,
    bucket: String,
    /// The trail's key prefix when the file was spooled.
    #[serde(default)]
    prefix: Option<String>,
    key: String,
    kind: FileKind,
    region: String,
    /// Hex SHA-256 of the uncompressed bytes.
    hash: String,
    oldest_ms: Option<i64>,
    newest_ms: Option<i64>,
    signature: Option<String>,
    digest_end_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    cursor: Option<Position>,
    next_spool: u64,
    chains: BTreeMap<String, Chain>,
    pending: Vec<Pending>,
    status: HashMap<String, TrailStatus>,
    /// Notifications sent so far in this run, numbering them.
    #[serde(skip)]
    notifications_sent: u64,
    /// Per trail, the number of the newest notification whose outcome is recorded: an older
    /// one finishing later (it was retried longer) does not overwrite it.
    #[serde(skip)]
    notification_recorded: HashMap<String, u64>,
}

/// The delivery worker's handle.
pub struct Delivery {
    store: Arc<Store>,
    trails: Arc<Trails>,
    status: Arc<StatusBoard>,
    keys: Arc<Keyring>,
    buckets: Backend,
    opts: DeliveryOptions,
    dir: PathBuf,
    state: Mutex<State>,
}

fn event_time_ms(record: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct T<'a> {
        #[serde(rename = "eventTime", borrow)]
        event_time: Option<std::borrow::Cow<'a, str>>,
    }
    let t: T = serde_json::from_slice(record).ok()?;
    cairn_event::parse_event_time(t.event_time.as_deref()?)
}

/// The `insightDetails.insightType` of an insight record, and the category of the calls it
/// is about (`Data` when `insightDetails.eventCategory` says so, else `Management`).
fn insight_kind(record: &[u8]) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Details {
        #[serde(rename = "insightType")]
        insight_type: Option<String>,
        #[serde(rename = "eventCategory")]
        event_category: Option<String>,
    }
    #[derive(Deserialize)]
    struct R {
        #[serde(rename = "insightDetails")]
        details: Option<Details>,
    }
    let d = serde_json::from_slice::<R>(record).ok()?.details?;
    let category = match d.event_category.as_deref() {
        Some("Data") => "Data",
        _ => "Management",
    };
    Some((d.insight_type?, category.to_owned()))
}

/// Whether a trail delivers insight events of this type about calls of this category.
fn wants_insight(t: &Trail, (ty, category): &(String, String), region: &str) -> bool {
    (t.multi_region || t.home_region == region)
        && t.insight_selectors.iter().any(|s| {
            s.get("InsightType").and_then(|v| v.as_str()) == Some(ty.as_str())
                && match s.get("EventCategories").and_then(|c| c.as_array()) {
                    Some(cats) => cats.iter().any(|c| c.as_str() == Some(category.as_str())),
                    None => category == "Management",
                }
        })
}

fn gzip(raw: &[u8]) -> Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(raw.len() / 8), Compression::fast());
    enc.write_all(raw)
        .and_then(|()| enc.finish())
        .map_err(|e| DeliveryError::Other(format!("gzip failed: {e}")))
}

/// A log file in the making: records of one trail and region.
#[derive(Default)]
struct Batch {
    raw: Vec<u8>,
    count: usize,
    oldest_ms: i64,
    newest_ms: i64,
}

impl Batch {
    fn push(&mut self, record: &[u8], time_ms: Option<i64>) {
        self.raw.push(if self.count == 0 { b'[' } else { b',' });
        self.raw.extend_from_slice(record);
        self.count += 1;
        if let Some(t) = time_ms {
            if self.count == 1 || t < self.oldest_ms {
                self.oldest_ms = t;
            }
            if self.count == 1 || t > self.newest_ms {
                self.newest_ms = t;
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 16);
        out.extend_from_slice(b"{\"Records\":");
        out.extend_from_slice(&self.raw);
        out.extend_from_slice(b"]}");
        out
    }
}

impl Delivery {
    pub fn open(
        data_dir: &Path,
        store: Arc<Store>,
        trails: Arc<Trails>,
        status: Arc<StatusBoard>,
        keys: Arc<Keyring>,
        buckets: Backend,
        opts: DeliveryOptions,
    ) -> Result<Arc<Delivery>> {
        let dir = data_dir.join("trails").join("delivery");
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).map_err(io_err(&spool))?;
        let path = dir.join("state.json");
        let mut state: State = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| DeliveryError::Damaged(path.clone(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        // Spooled files the state does not list were written by a cycle that never
        // committed: its events will be read again.
        let keep: std::collections::HashSet<&str> =
            state.pending.iter().map(|p| p.spool.as_str()).collect();
        for entry in std::fs::read_dir(&spool).map_err(io_err(&spool))?.flatten() {
            let name = entry.file_name();
            if !keep.contains(name.to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if state.cursor.is_none() {
            // Trails deliver what is stored from now on.
            state.cursor = Some(store.durable_end());
        }
        // Until a trail has logged, nothing is read behind the cursor: retention is free.
        let logged = trails
            .snapshot()
            .iter()
            .any(|t| t.start_logging_ms.is_some());
        store.hold(CONSUMER, if logged { state.cursor } else { None });
        status.replace_all(state.status.clone());
        keys.ensure(cairn_event::now_ms())?;
        let delivery = Arc::new(Delivery {
            store,
            trails,
            status,
            keys,
            buckets,
            opts,
            dir,
            state: Mutex::new(state),
        });
        delivery.save()?;
        Ok(delivery)
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// Runs delivery until `shutdown` resolves, once per interval.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        let interval = Duration::from_millis(self.opts.interval_ms.max(100) as u64);
        loop {
            if let Err(e) = self.clone().tick(cairn_event::now_ms()).await {
                tracing::error!(error = %e, "trail delivery failed; retrying next interval");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => break,
            }
        }
    }

    /// One delivery cycle at time `now`: spool new log files, start digest chains for trails
    /// that began logging with validation on (before any of their files is uploaded, so every
    /// file lands in a digest), upload, close due digests, upload them.
    pub async fn tick(self: Arc<Self>, now: i64) -> Result<()> {
        // The journal's end first, then the trails: every event up to that end was stored
        // under a configuration this snapshot already shows.
        let until = self.store.durable_end();
        let trails = self.trails.snapshot();
        let this = self.clone();
        let trails_for_spool = trails.clone();
        let spooled =
            tokio::task::spawn_blocking(move || this.spool_logs(&trails_for_spool, until, now))
                .await
                .map_err(|e| DeliveryError::Other(format!("delivery task failed: {e}")))?;
        // Whatever went wrong reading the journal, files already spooled still go out and
        // digests still close.
        if let Err(e) = &spooled {
            tracing::error!(error = %e, "cannot write new trail log files; retrying next interval");
        }
        self.start_chains(&trails, now)?;
        self.upload(now).await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.digests(&trails, now))
            .await
            .map_err(|e| DeliveryError::Other(format!("delivery task failed: {e}")))??;
        self.upload(now).await;
        spooled
    }

    /// A new digest chain for every trail that logs with validation on and has none.
    fn start_chains(&self, trails: &[Trail], now: i64) -> Result<()> {
        let mut state = self.state.lock();
        let mut started = false;
        for t in trails {
            let key = chain_key(&t.arn(), &t.s3_bucket, t.s3_key_prefix.as_deref());
            if t.logging && t.log_file_validation && !state.chains.contains_key(&key) {
                let mut regions = BTreeMap::new();
                regions.insert(
                    t.home_region.clone(),
                    Window {
                        start_ms: now,
                        files: Vec::new(),
                        previous: None,
                    },
                );
                state.chains.insert(
                    key,
                    Chain {
                        trail: t.clone(),
                        started_logging_ms: t.start_logging_ms,
                        regions,
                        last_end_ms: now,
                    },
                );
                started = true;
            }
        }
        drop(state);
        if started { self.save() } else { Ok(()) }
    }

    /// Reads the journal from the cursor to its durable end and spools one log file per trail
    /// and region, moving the cursor in the same state write.
    fn spool_logs(&self, trails: &[Trail], until: Position, now: i64) -> Result<()> {
        let mut by_account: HashMap<&str, Vec<&Trail>> = HashMap::new();
        for t in trails.iter().filter(|t| t.start_logging_ms.is_some()) {
            by_account.entry(t.account_id.as_str()).or_default().push(t);
        }
        loop {
            let from = self.state.lock().cursor.unwrap_or_default();
            let (fed, next) = if by_account.is_empty() {
                // No trail has ever logged: nothing to read, only the cursor to move.
                (Vec::new(), until.max(from))
            } else {
                self.store
                    .feed(from, until, FEED_BATCH, |a| by_account.contains_key(a))?
            };
            if next == from {
                return Ok(());
            }
            let mut batches: BTreeMap<(String, String, bool), Vec<Batch>> = BTreeMap::new();
            for frame in &fed {
                let Some(account_trails) = by_account.get(frame.account.as_str()) else {
                    continue;
                };
                let live: Vec<&&Trail> = account_trails
                    .iter()
                    .filter(|t| t.logging_at(frame.stored_ms))
                    .collect();
                if live.is_empty() {
                    continue;
                }
                for record in &frame.records {
                    let Some(facts) = EventFacts::from_record(record) else {
                        continue;
                    };
                    let mut time = None;
                    let insight = (facts.category() == "Insight")
                        .then(|| insight_kind(record))
                        .flatten();
                    for t in &live {
                        let wanted = match &insight {
                            Some(ty) => wants_insight(t, ty, &facts.aws_region),
                            None => t.wants(&facts),
                        };
                        if !wanted {
                            continue;
                        }
                        let region = if facts.aws_region.is_empty() {
                            t.home_region.clone()
                        } else {
                            facts.aws_region.clone()
                        };
                        let time_ms = *time.get_or_insert_with(|| event_time_ms(record));
                        let list = batches
                            .entry((t.arn(), region, insight.is_some()))
                            .or_default();
                        if list.last().is_none_or(|b| b.raw.len() >= MAX_FILE_RAW) {
                            list.push(Batch::default());
                        }
                        if let Some(b) = list.last_mut() {
                            b.push(record, time_ms);
                        }
                    }
                }
            }
            let trail_by_arn: HashMap<String, &Trail> =
                trails.iter().map(|t| (t.arn(), t)).collect();
            let mut state = self.state.lock();
            let mut spooled = Vec::new();
            for ((arn, region, insight), list) in batches {
                let Some(trail) = trail_by_arn.get(&arn) else {
                    continue;
                };
                for (i, batch) in list.into_iter().enumerate() {
                    let (oldest, newest) = (batch.oldest_ms, batch.newest_ms);
                    let raw = batch.finish();
                    let hash = digest::sha256_hex(&raw);
                    let gz = gzip(&raw)?;
                    let seed = format!(
                        "{arn}\n{region}\n{}:{}\n{i}{}",
                        from.segment,
                        from.offset,
                        if insight { "\ninsight" } else { "" }
                    );
                    let key = layout::log_key(
                        trail.s3_key_prefix.as_deref(),
                        &trail.account_id,
                        if insight { Kind::Insight } else { Kind::Log },
                        &region,
                        now,
                        &layout::unique_string(seed.as_bytes()),
                    );
                    let spool = format!("{:016}.gz", state.next_spool);
                    state.next_spool += 1;
                    self.write_spool(&spool, &gz)?;
                    spooled.push(Pending {
                        spool,
                        trail_arn: arn.clone(),
                        bucket: trail.s3_bucket.clone(),
                        prefix: trail.s3_key_prefix.clone(),
                        key,
                        kind: if insight {
                            FileKind::Insight
                        } else {
                            FileKind::Log
                        },
                        region: region.clone(),
                        hash,
                        oldest_ms: Some(oldest),
                        newest_ms: Some(newest),
                        signature: None,
                        digest_end_ms: None,
                    });
                }
            }
            if !spooled.is_empty() {
                sync_dir(&self.dir.join("spool"))?;
            }
            state.pending.extend(spooled);
            state.cursor = Some(next);
            drop(state);
            self.save()?;
            // With no trail that ever logged, nothing will be read behind the cursor: let
            // retention work freely.
            self.store
                .hold(CONSUMER, (!by_account.is_empty()).then_some(next));
            if fed.is_empty() {
                return Ok(());
            }
        }
    }

    fn write_spool(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join("spool").join(name);
        let mut f = std::fs::File::create(&path).map_err(io_err(&path))?;
        f.write_all(bytes).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))
    }

    /// Uploads pending files in order. A bucket that fails keeps its later files waiting.
    /// Trails with an SNS topic are then notified of the log files they got.
    async fn upload(self: &Arc<Self>, now: i64) {
        let pending: Vec<Pending> = self.state.lock().pending.clone();
        let mut failed_buckets: Vec<String> = Vec::new();
        let mut done: Vec<String> = Vec::new();
        // Log files uploaded, per trail and bucket, in upload order.
        let mut uploaded: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for p in pending {
            if failed_buckets.contains(&p.bucket) {
                continue;
            }
            let result = self.upload_one(&p).await;
            let mut state = self.state.lock();
            match result {
                Ok(()) => {
                    done.push(p.spool.clone());
                    state.pending.retain(|q| q.spool != p.spool);
                    if p.kind != FileKind::Digest {
                        uploaded
                            .entry((p.trail_arn.clone(), p.bucket.clone()))
                            .or_default()
                            .push(p.key.clone());
                    }
                    let status = state.status.entry(p.trail_arn.clone()).or_default();
                    match p.kind {
                        FileKind::Log => {
                            status.latest_delivery_ms = Some(now);
                            status.latest_delivery_attempt_ms = Some(now);
                            status.latest_delivery_error = None;
                            let key = chain_key(&p.trail_arn, &p.bucket, p.prefix.as_deref());
                            if let Some(chain) = state.chains.get_mut(&key) {
                                let window =
                                    chain.regions.entry(p.region.clone()).or_insert_with(|| {
                                        Window {
                                            start_ms: chain.last_end_ms,
                                            files: Vec::new(),
                                            previous: None,
                                        }
                                    });
                                window.files.push(Delivered {
                                    entry: LogFileEntry {
                                        s3_bucket: p.bucket.clone(),
                                        s3_object: p.key.clone(),
                                        hash_value: p.hash.clone(),
                                        hash_algorithm: HASH_ALGORITHM.into(),
                                        newest_event_time: p.newest_ms.map(layout::iso_second),
                                        oldest_event_time: p.oldest_ms.map(layout::iso_second),
                                    },
                                    delivered_ms: now,
                                    oldest_ms: p.oldest_ms.unwrap_or(now),
                                    newest_ms: p.newest_ms.unwrap_or(now),
                                });
                            }
                        }
                        FileKind::Insight => {}
                        FileKind::Digest => {
                            status.latest_digest_delivery_ms = Some(now);
                            status.latest_digest_delivery_error = None;
                            status.latest_digest_end_ms =
                                status.latest_digest_end_ms.max(p.digest_end_ms);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(bucket = %p.bucket, key = %p.key, error = %e, "trail file delivery failed; it stays pending");
                    failed_buckets.push(p.bucket.clone());
                    let status = state.status.entry(p.trail_arn.clone()).or_default();
                    match p.kind {
                        FileKind::Log | FileKind::Insight => {
                            status.latest_delivery_error = Some(e);
                            status.latest_delivery_attempt_ms = Some(now);
                        }
                        FileKind::Digest => status.latest_digest_delivery_error = Some(e),
                    }
                }
            }
        }
        {
            // Under the state lock, so a notification outcome recorded meanwhile is not
            // overwritten on the board by an older copy.
            let state = self.state.lock();
            self.status.replace_all(state.status.clone());
        }
        let saved = self.save();
        if let Err(e) = &saved {
            tracing::error!(error = %e, "cannot save the delivery state");
        }
        // The files are in their buckets whether or not the state could be saved.
        self.notify(uploaded);
        if saved.is_err() {
            return;
        }
        for spool in done {
            let _ = std::fs::remove_file(self.dir.join("spool").join(spool));
        }
    }

    /// Sends one notification per trail with an SNS topic (and bucket) for the log files it
    /// just got, in the background; each outcome is recorded for GetTrailStatus when known.
    fn notify(self: &Arc<Self>, uploaded: BTreeMap<(String, String), Vec<String>>) {
        let Some(notifier) = &self.opts.notifier else {
            return;
        };
        if uploaded.is_empty() {
            return;
        }
        let trails = self.trails.snapshot();
        for ((arn, bucket), keys) in uploaded {
            let Some(topic) = trails
                .iter()
                .find(|t| t.arn() == arn)
                .and_then(Trail::sns_topic_arn)
            else {
                continue;
            };
            let number = {
                let mut state = self.state.lock();
                state.notifications_sent += 1;
                state.notifications_sent
            };
            let attempt_ms = cairn_event::now_ms();
            let sent = notifier.send(&topic, &bucket, keys);
            let this = self.clone();
            tokio::spawn(async move {
                let error = sent
                    .await
                    .unwrap_or_else(|e| Some(format!("the notification task failed: {e}")));
                this.record_notification(&arn, number, attempt_ms, error);
            });
        }
    }

    /// Records how a notification ended, unless a newer one's outcome is recorded already.
    fn record_notification(&self, arn: &str, number: u64, attempt_ms: i64, error: Option<String>) {
        let mut state = self.state.lock();
        let recorded = state
            .notification_recorded
            .entry(arn.to_owned())
            .or_default();
        if *recorded > number {
            return;
        }
        *recorded = number;
        let status = state.status.entry(arn.to_owned()).or_default();
        status.latest_notification_attempt_ms = Some(attempt_ms);
        match error {
            None => {
                status.latest_notification_ms = Some(cairn_event::now_ms());
                status.latest_notification_error = None;
            }
            Some(e) => {
                tracing::warn!(trail = %arn, error = %e, "trail notification given up");
                status.latest_notification_error = Some(e);
            }
        }
        let status = status.clone();
        self.status.update(arn, |s| *s = status);
    }

    async fn upload_one(&self, p: &Pending) -> std::result::Result<(), String> {
        let path = self.dir.join("spool").join(&p.spool);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| format!("cannot read spooled file {}: {e}", path.display()))?;
        let bucket = self.buckets.bucket(&p.bucket).map_err(|e| e.to_string())?;
        let mut meta: Vec<(&str, &str)> = Vec::new();
        if let Some(sig) = &p.signature {
            meta.push(("signature", sig));
            meta.push(("signature-algorithm", SIGNATURE_ALGORITHM));
        }
        bucket
            .put(&p.key, Bytes::from(bytes), &meta)
            .await
            .map_err(|e| e.to_string())
    }

    /// Starts, closes and advances digest chains; spools every digest that is due.
    fn digests(&self, trails: &[Trail], now: i64) -> Result<()> {
        let period = self.opts.digest_period_ms.max(1000);
        let by_arn: HashMap<String, &Trail> = trails.iter().map(|t| (t.arn(), t)).collect();
        let mut guard = self.state.lock();
        // Work on a copy: if any digest cannot be signed or spooled, nothing of this round
        // is kept (no chain points at a digest that was never delivered) and it is retried.
        let mut work = guard.clone();
        let state = &mut work;
        let mut spooled: Vec<Pending> = Vec::new();
        let keys: Vec<String> = state.chains.keys().cloned().collect();
        for key in keys {
            let Some(mut chain) = state.chains.remove(&key) else {
                continue;
            };
            let arn = chain.trail.arn();
            let current = by_arn.get(&arn);
            let same_chain = current.is_some_and(|t| {
                t.logging
                    && t.log_file_validation
                    && t.start_logging_ms == chain.started_logging_ms
                    && t.s3_bucket == chain.trail.s3_bucket
                    && t.s3_key_prefix == chain.trail.s3_key_prefix
            });
            // Periodic digests that are due.
            while chain.last_end_ms + period <= now {
                let end = chain.last_end_ms + period;
                self.close_windows(state, &mut chain, end, &mut spooled)?;
            }
            if same_chain {
                state.chains.insert(key, chain);
                continue;
            }
            // The chain ends: once every log file it will list is delivered, a final digest.
            let logs_waiting = state.pending.iter().any(|p| {
                p.trail_arn == arn
                    && p.kind == FileKind::Log
                    && chain_key(&p.trail_arn, &p.bucket, p.prefix.as_deref()) == key
            });
            if logs_waiting {
                state.chains.insert(key, chain);
                continue;
            }
            let end = now.max(chain.last_end_ms + 1000);
            self.close_windows(state, &mut chain, end, &mut spooled)?;
            tracing::info!(trail = %arn, "digest chain closed with a final digest");
        }
        state.pending.extend(spooled);
        sync_dir(&self.dir.join("spool"))?;
        *guard = work;
        drop(guard);
        self.save()
    }

    /// Signs and spools the digest of every region of a chain for the window ending at `end`.
    fn close_windows(
        &self,
        state: &mut State,
        chain: &mut Chain,
        end: i64,
        spooled: &mut Vec<Pending>,
    ) -> Result<()> {
        let trail = chain.trail.clone();
        let arn = trail.arn();
        let signer = self.keys.signer(end.min(cairn_event::now_ms()))?;
        for (region, window) in chain.regions.iter_mut() {
            let (covered, later): (Vec<Delivered>, Vec<Delivered>) =
                std::mem::take(&mut window.files)
                    .into_iter()
                    .partition(|f| f.delivered_ms < end);
            window.files = later;
            let key = layout::digest_key(
                trail.s3_key_prefix.as_deref(),
                &trail.account_id,
                region,
                &trail.name,
                &trail.home_region,
                end,
            );
            let newest = covered.iter().map(|f| f.newest_ms).max();
            let oldest = covered.iter().map(|f| f.oldest_ms).min();
            let prev = window.previous.take();
            let file = DigestFile {
                aws_account_id: trail.account_id.clone(),
                digest_start_time: layout::iso_second(window.start_ms),
                digest_end_time: layout::iso_second(end),
                digest_s3_bucket: trail.s3_bucket.clone(),
                digest_s3_object: key.clone(),
                digest_public_key_fingerprint: signer.fingerprint.clone(),
                digest_signature_algorithm: SIGNATURE_ALGORITHM.into(),
                newest_event_time: newest.map(layout::iso_second),
                oldest_event_time: oldest.map(layout::iso_second),
                previous_digest_s3_bucket: prev.as_ref().map(|p| p.bucket.clone()),
                previous_digest_s3_object: prev.as_ref().map(|p| p.key.clone()),
                previous_digest_hash_value: prev.as_ref().map(|p| p.hash.clone()),
                previous_digest_hash_algorithm: prev.as_ref().map(|_| HASH_ALGORITHM.into()),
                previous_digest_signature: prev.as_ref().map(|p| p.signature.clone()),
                log_files: covered.into_iter().map(|f| f.entry).collect(),
            };
            let raw = serde_json::to_vec(&file)
                .map_err(|e| DeliveryError::Other(format!("cannot render a digest: {e}")))?;
            let to_sign = digest::string_to_sign(
                &file.digest_end_time,
                &trail.s3_bucket,
                &key,
                &raw,
                prev.as_ref().map(|p| p.signature.as_str()),
            );
            let signature = signer.sign(to_sign.as_bytes())?;
            let hash = digest::sha256_hex(&raw);
            let spool = format!("{:016}.gz", state.next_spool);
            state.next_spool += 1;
            self.write_spool(&spool, &gzip(&raw)?)?;
            window.previous = Some(PrevDigest {
                bucket: trail.s3_bucket.clone(),
                key: key.clone(),
                hash: hash.clone(),
                signature: signature.clone(),
            });
            window.start_ms = end;
            spooled.push(Pending {
                spool,
                trail_arn: arn.clone(),
                bucket: trail.s3_bucket.clone(),
                prefix: trail.s3_key_prefix.clone(),
                key,
                kind: FileKind::Digest,
                region: region.clone(),
                hash,
                oldest_ms: oldest,
                newest_ms: newest,
                signature: Some(signature),
                digest_end_ms: Some(end),
            });
        }
        chain.last_end_ms = end;
        Ok(())
    }

    /// Writes the state atomically: a temporary file, synced, renamed over the old one.
    fn save(&self) -> Result<()> {
        let json = {
            let state = self.state.lock();
            serde_json::to_vec(&*state)
                .map_err(|e| DeliveryError::Other(format!("cannot encode the state: {e}")))?
        };
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&json).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }

    /// Files waiting for their bucket.
    pub fn pending_files(&self) -> usize {
        self.state.lock().pending.len()
    }
}

/// Chains are per trail and destination: a trail moved to another bucket or prefix closes
/// its old chain there while a new one starts at once in the new place.
fn chain_key(arn: &str, bucket: &str, prefix: Option<&str>) -> String {
    format!("{arn}\n{bucket}\n{}", prefix.unwrap_or_default())
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::StoreOptions;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ACCOUNT: &str = "111122223333";

    /// A webhook receiver on 127.0.0.1 answering `status` and passing each body on.
    async fn receiver(
        status: u16,
    ) -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/sns", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        let body = &buf[end + 4..end + 4 + len];
                        if let Ok(v) = serde_json::from_slice(body) {
                            let _ = tx.send(v);
                        }
                        let reply = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                        let _ = sock.write_all(reply.as_bytes()).await;
                        return;
                    }
                });
            }
        });
        (url, rx)
    }

    fn setup(dir: &Path, url: &str, trails: &[Trail]) -> (Arc<Delivery>, Arc<Store>) {
        std::fs::create_dir_all(dir.join("trails")).expect("mkdir");
        std::fs::write(
            dir.join("trails/trails.json"),
            serde_json::to_vec(trails).expect("json"),
        )
        .expect("write trails");
        let backend = Backend::folder(dir);
        backend.create_folder_bucket("logs").expect("bucket");
        let store = Arc::new(Store::open(dir, StoreOptions::default()).expect("store"));
        let master =
            Arc::new(cairn_vault::MasterKey::from_hex(&"42".repeat(32)).expect("master key"));
        let delivery = Delivery::open(
            dir,
            store.clone(),
            Arc::new(Trails::open(dir).expect("trails")),
            Arc::new(StatusBoard::default()),
            Arc::new(Keyring::open(dir, 86_400_000, master).expect("keys")),
            backend,
            DeliveryOptions {
                interval_ms: 1000,
                digest_period_ms: 10_000,
                notifier: Some(cairn_rules::Notifier::new(
                    url.to_owned(),
                    cairn_rules::SendOptions {
                        attempts: 2,
                        backoff: Duration::from_millis(10),
                        ..cairn_rules::SendOptions::default()
                    },
                )),
            },
        )
        .expect("delivery");
        (delivery, store)
    }

    fn trail(name: &str, topic: Option<&str>) -> Trail {
        Trail {
            sns_topic_name: topic.map(str::to_owned),
            multi_region: true,
            log_file_validation: true,
            logging: true,
            start_logging_ms: Some(0),
            ..Trail::new(ACCOUNT, "us-east-1", name, "logs")
        }
    }

    fn store_events(store: &Store, ids: std::ops::Range<usize>, region: &str) {
        let now = cairn_event::now_ms();
        let batch = ids
            .map(|i| {
                let raw = format!(
                    r#"{{"eventVersion":"1.08","eventTime":"2026-11-21T10:00:00Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"{region}","eventID":"00000000-0000-0000-0000-{i:012}","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}"}}"#
                );
                cairn_event::normalise(raw.as_bytes(), ACCOUNT, now).expect("normalise")
            })
            .collect();
        tokio::task::block_in_place(|| store.append_blocking(ACCOUNT, batch)).expect("append");
    }

    async fn wait_for(mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trails_with_a_topic_are_notified_of_their_log_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, mut got) = receiver(200).await;
        let trails = [trail("notified", Some("alerts")), trail("quiet", None)];
        let (delivery, store) = setup(dir.path(), &url, &trails);
        let t0 = 1_800_000_000_000i64;
        delivery.clone().tick(t0).await.expect("tick");
        store_events(&store, 0..3, "us-east-1");
        store_events(&store, 3..5, "eu-west-1");
        delivery.clone().tick(t0 + 1000).await.expect("tick");

        let msg = tokio::time::timeout(Duration::from_secs(10), got.recv())
            .await
            .expect("a notification")
            .expect("open");
        assert_eq!(msg["Type"], "Notification");
        assert_eq!(msg["TopicArn"], "arn:aws:sns:us-east-1:111122223333:alerts");
        let inner: serde_json::Value =
            serde_json::from_str(msg["Message"].as_str().expect("Message")).expect("json");
        assert_eq!(inner["s3Bucket"], "logs");
        let keys: Vec<&str> = inner["s3ObjectKey"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k.as_str().expect("key"))
            .collect();
        // One notification lists both regions' log files; no digest is listed.
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(keys.iter().all(|k| k.contains("/CloudTrail/")), "{keys:?}");
        let bucket = Backend::folder(dir.path()).bucket("logs").expect("bucket");
        for k in &keys {
            bucket
                .get(k)
                .await
                .expect("the notified key is in the bucket");
        }

        let arn = trails[0].arn();
        wait_for(|| delivery.status.get(&arn).latest_notification_ms.is_some()).await;
        let s = delivery.status.get(&arn);
        assert_eq!(s.latest_notification_error, None);
        assert!(s.latest_notification_attempt_ms.is_some());
        // The trail without a topic is not notified.
        assert!(
            delivery
                .status
                .get(&trails[1].arn())
                .latest_notification_ms
                .is_none()
        );

        // A round with digests only (the period ends) notifies nothing.
        delivery.clone().tick(t0 + 20_000).await.expect("tick");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(got.try_recv().is_err(), "digests are not notified");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_receiver_is_reported_and_does_not_hold_delivery_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, mut got) = receiver(500).await;
        let trails = [trail(
            "notified",
            Some("arn:aws:sns:eu-west-1:111122223333:t"),
        )];
        let (delivery, store) = setup(dir.path(), &url, &trails);
        let t0 = 1_800_000_000_000i64;
        delivery.clone().tick(t0).await.expect("tick");
        store_events(&store, 0..1, "us-east-1");
        delivery.clone().tick(t0 + 1000).await.expect("tick");
        assert!(
            delivery
                .status
                .get(&trails[0].arn())
                .latest_delivery_ms
                .is_some()
        );

        let msg = tokio::time::timeout(Duration::from_secs(10), got.recv())
            .await
            .expect("a notification")
            .expect("open");
        assert_eq!(msg["TopicArn"], "arn:aws:sns:eu-west-1:111122223333:t");
        let arn = trails[0].arn();
        wait_for(|| {
            delivery
                .status
                .get(&arn)
                .latest_notification_error
                .is_some()
        })
        .await;
        let s = delivery.status.get(&arn);
        assert!(
            s.latest_notification_error
                .as_deref()
                .is_some_and(|e| e.contains("500")),
            "{s:?}"
        );
        assert_eq!(s.latest_notification_ms, None);
        // The outcome survives the next round's status refresh.
        delivery.clone().tick(t0 + 2000).await.expect("tick");
        assert!(
            delivery
                .status
                .get(&arn)
                .latest_notification_error
                .is_some()
        );
    }
}
