//! The segments: every account's events as Parquet files, one folder per account, date and
//! hour (`events/account=<id>/date=<YYYY-MM-DD>/hour=<HH>/<seq>.parquet`), each file sorted by
//! event time, plus the hot set of events read from the journal but not yet written out.
//!
//! The writer is a journal consumer with a durable cursor, kept in `catalog.json` with the
//! list of files. A flush writes and syncs the files first, then the catalog: a crash in
//! between leaves files no catalog names, which the next start removes, and the events are
//! read again from the journal. Partitions with many small files are merged, and files past
//! every store's retention are removed; replaced files are kept a while for queries that
//! are still reading them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::TimestampMillisecondType;
use parking_lot::{Mutex, RwLock};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use cairn_store::{Position, Store};
use cairn_trail::selectors::EventFacts;

use crate::convert::{self, Converter, EVENT_TIME};
use crate::stores::Registry;
use crate::{LakeError, io_err, sync_parent, write_atomic};

/// The lake's name among the journal's consumers.
pub const CONSUMER: &str = "lake";

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone)]
pub struct SegmentsOptions {
    /// Write the hot set out once it holds this many events...
    pub flush_rows: usize,
    /// ...or once its oldest event has waited this long.
    pub flush_age_ms: i64,
    /// Merge a partition's files once it has this many.
    pub compact_files: usize,
    /// Merge a partition's files once none was written for this long.
    pub compact_idle_ms: i64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Replaced files stay this long for queries still reading them.
    pub grace_ms: i64,
}

impl Default for SegmentsOptions {
    fn default() -> Self {
        SegmentsOptions {
            flush_rows: 100_000,
            flush_age_ms: 60_000,
            compact_files: 8,
            compact_idle_ms: HOUR_MS,
            row_group_rows: 128 * 1024,
            grace_ms: 10 * 60_000,
        }
    }
}

/// One Parquet file of the lake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentFile {
    pub account: String,
    /// Relative to the lake folder.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub min_ms: i64,
    pub max_ms: i64,
    pub written_ms: i64,
}

impl SegmentFile {
    fn partition(&self) -> (&str, i64) {
        (&self.account, self.min_ms.div_euclid(HOUR_MS))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Catalog {
    cursor: Position,
    seq: u64,
    files: Vec<SegmentFile>,
}

#[derive(Default)]
struct State {
    catalog: Catalog,
    /// Per account, converted events not yet in a file.
    hot: HashMap<String, Vec<RecordBatch>>,
    hot_rows: usize,
    /// When the oldest hot event was read (wall clock, ms).
    hot_since: Option<i64>,
    /// Where reading the journal goes on (ahead of the catalog's cursor by the hot set).
    read_to: Position,
}

/// What a query reads for one account: files and the hot set.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub files: Vec<SegmentFile>,
    pub hot: Vec<RecordBatch>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SegmentStats {
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub hot_rows: usize,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

pub struct Segments {
    dir: PathBuf,
    store: Arc<Store>,
    registry: Arc<Registry>,
    opts: SegmentsOptions,
    state: RwLock<State>,
    /// Only one flush, compaction or retention pass at a time.
    writing: Mutex<()>,
    graveyard: Mutex<Vec<(PathBuf, i64)>>,
    /// Whether the writer loop runs (queries then wait for it to catch up).
    running: std::sync::atomic::AtomicBool,
}

fn partition_dir(account: &str, hour: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(hour * 3600)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "events/account={account}/date={:04}-{:02}-{:02}/hour={:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

fn writer_props(opts: &SegmentsOptions) -> Result<WriterProperties, LakeError> {
    let schema = convert::schema();
    let time_idx = schema
        .index_of(EVENT_TIME)
        .map_err(|e| LakeError::Internal(e.to_string()))?;
    let level = ZstdLevel::try_new(3).map_err(|e| LakeError::Parquet(e.to_string()))?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(opts.row_group_rows))
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: time_idx as i32,
            descending: false,
            nulls_first: false,
        }]));
    for c in [
        "eventid",
        "eventname",
        "eventsource",
        "useridentity.username",
        "useridentity.accesskeyid",
    ] {
        b = b.set_column_bloom_filter_enabled(ColumnPath::from(c), true);
    }
    Ok(b.build())
}

/// The batch sorted by event time.
fn sorted(batch: &RecordBatch) -> Result<RecordBatch, LakeError> {
    let col = batch
        .column_by_name(EVENT_TIME)
        .ok_or_else(|| LakeError::Internal("a batch without event times".into()))?;
    let idx = sort_to_indices(col, None, None).map_err(|e| LakeError::Internal(e.to_string()))?;
    take_record_batch(batch, &idx).map_err(|e| LakeError::Internal(e.to_string()))
}

fn times(batch: &RecordBatch) -> Result<&arrow::array::TimestampMillisecondArray, LakeError> {
    batch
        .column_by_name(EVENT_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .ok_or_else(|| LakeError::Internal("a batch without event times".into()))
}

/// Writes one sorted batch (all in one hour) as a Parquet file; returns its size.
fn write_file(path: &Path, batch: &RecordBatch, props: WriterProperties) -> Result<u64, LakeError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
    w.write(batch)
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
    let file = w
        .into_inner()
        .map_err(|e| LakeError::Parquet(e.to_string()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    let bytes = file.metadata().map_err(io_err(&tmp))?.len();
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent(path)?;
    Ok(bytes)
}

/// Reads a whole Parquet file back.
fn read_file(path: &Path) -> Result<Vec<RecordBatch>, LakeError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|e| LakeError::Parquet(format!("{}: {e}", path.display())))?;
    reader
        .map(|b| b.map_err(|e| LakeError::Parquet(format!("{}: {e}", path.display()))))
        .collect()
}

impl Segments {
    pub fn open(
        lake_dir: &Path,
        store: Arc<Store>,
        registry: Arc<Registry>,
        opts: SegmentsOptions,
    ) -> Result<Arc<Segments>, LakeError> {
        std::fs::create_dir_all(lake_dir).map_err(io_err(lake_dir))?;
        let path = lake_dir.join("catalog.json");
        let catalog: Catalog = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                LakeError::Internal(format!("{} is not a valid catalog: {e}", path.display()))
            })?,
            // A new lake takes in every event the journal still has.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Catalog {
                cursor: store.start(),
                ..Catalog::default()
            },
            Err(e) => return Err(LakeError::Io(path.display().to_string(), e)),
        };
        let s = Segments {
            dir: lake_dir.to_owned(),
            store,
            registry,
            opts,
            state: RwLock::new(State {
                read_to: catalog.cursor,
                catalog,
                ..State::default()
            }),
            writing: Mutex::new(()),
            graveyard: Mutex::new(Vec::new()),
            running: std::sync::atomic::AtomicBool::new(false),
        };
        s.remove_orphans()?;
        s.store.hold(CONSUMER, Some(s.state.read().catalog.cursor));
        Ok(Arc::new(s))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes files under `events/` that the catalog does not name (left by a crash).
    fn remove_orphans(&self) -> Result<(), LakeError> {
        let known: std::collections::HashSet<PathBuf> = self
            .state
            .read()
            .catalog
            .files
            .iter()
            .map(|f| self.dir.join(&f.path))
            .collect();
        let mut stack = vec![self.dir.join("events")];
        while let Some(d) = stack.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LakeError::Io(d.display().to_string(), e)),
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !known.contains(&p) {
                    tracing::info!(file = %p.display(), "removing a segment file no catalog names");
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        Ok(())
    }

    /// The files and hot events of `account` whose times may fall in `[lo, hi]`.
    pub fn snapshot(&self, account: &str, lo: Option<i64>, hi: Option<i64>) -> Snapshot {
        let st = self.state.read();
        let files = st
            .catalog
            .files
            .iter()
            .filter(|f| f.account == account)
            .filter(|f| lo.is_none_or(|lo| f.max_ms >= lo) && hi.is_none_or(|hi| f.min_ms <= hi))
            .cloned()
            .collect();
        let hot = st.hot.get(account).cloned().unwrap_or_default();
        Snapshot { files, hot }
    }

    pub fn stats(&self) -> SegmentStats {
        let st = self.state.read();
        SegmentStats {
            files: st.catalog.files.len(),
            rows: st.catalog.files.iter().map(|f| f.rows).sum(),
            bytes: st.catalog.files.iter().map(|f| f.bytes).sum(),
            hot_rows: st.hot_rows,
        }
    }

    /// Reads what the journal has past the cursor into the hot set. Returns whether it is
    /// caught up.
    pub fn step(&self, now: i64) -> Result<bool, LakeError> {
        let from = self.state.read().read_to;
        let until = self.store.durable_end();
        let (fed, next) = self.store.feed(from, until, 20_000, |_| true)?;
        if fed.is_empty() {
            self.state.write().read_to = next;
            return Ok(next >= until);
        }
        let stores = self.registry.all(now);
        let mut by_account: HashMap<String, Converter> = HashMap::new();
        for frame in &fed {
            self.registry.ensure_default(&frame.account, now)?;
            let candidates: Vec<_> = stores
                .iter()
                .filter(|s| {
                    s.account == frame.account && !s.default && s.ingested_at(frame.stored_ms)
                })
                .collect();
            let conv = by_account.entry(frame.account.clone()).or_default();
            for record in &frame.records {
                let mut keep: Vec<&str> = Vec::new();
                if !candidates.is_empty() {
                    let facts = EventFacts::from_record(record).unwrap_or_default();
                    keep.extend(
                        candidates
                            .iter()
                            .filter(|s| s.keeps(&facts, frame.stored_ms))
                            .map(|s| s.id.as_str()),
                    );
                }
                if let Err(e) = conv.push(record, frame.stored_ms, &keep) {
                    tracing::error!(error = %e, account = %frame.account, "a stored record cannot go into the lake; it is skipped");
                }
            }
        }
        let mut batches = Vec::new();
        for (account, mut conv) in by_account {
            if conv.rows() > 0 {
                batches.push((account, conv.finish()?));
            }
        }
        let mut st = self.state.write();
        for (account, b) in batches {
            st.hot_rows += b.num_rows();
            st.hot.entry(account).or_default().push(b);
        }
        if st.hot_since.is_none() && st.hot_rows > 0 {
            st.hot_since = Some(now);
        }
        st.read_to = next;
        Ok(next >= until)
    }

    /// Whether the hot set is due to be written out.
    pub fn due(&self, now: i64) -> bool {
        let st = self.state.read();
        st.hot_rows >= self.opts.flush_rows
            || st
                .hot_since
                .is_some_and(|t| now - t >= self.opts.flush_age_ms)
    }

    /// Writes the hot set out as files and moves the cursor past it.
    pub fn flush(&self, now: i64) -> Result<(), LakeError> {
        let _w = self.writing.lock();
        let (hot, upto, mut seq) = {
            let st = self.state.read();
            (st.hot.clone(), st.read_to, st.catalog.seq)
        };
        let props = writer_props(&self.opts)?;
        let mut written = Vec::new();
        let mut flushed: HashMap<String, usize> = HashMap::new();
        for (account, batches) in &hot {
            flushed.insert(account.clone(), batches.len());
            if batches.is_empty() {
                continue;
            }
            let all = concat_batches(&convert::schema(), batches)
                .map_err(|e| LakeError::Internal(e.to_string()))?;
            for f in self.write_hours(account, &sorted(&all)?, &mut seq, &props, now)? {
                written.push(f);
            }
        }
        let mut st = self.state.write();
        st.catalog.files.extend(written);
        st.catalog.seq = seq;
        st.catalog.cursor = upto;
        self.save(&st.catalog)?;
        for (account, n) in flushed {
            if let Some(list) = st.hot.get_mut(&account) {
                list.drain(..n.min(list.len()));
                if list.is_empty() {
                    st.hot.remove(&account);
                }
            }
        }
        st.hot_rows = st.hot.values().flatten().map(RecordBatch::num_rows).sum();
        st.hot_since = (st.hot_rows > 0).then_some(now);
        drop(st);
        self.store.hold(CONSUMER, Some(upto));
        Ok(())
    }

    /// Writes a sorted batch of one account as one file per hour.
    fn write_hours(
        &self,
        account: &str,
        batch: &RecordBatch,
        seq: &mut u64,
        props: &WriterProperties,
        now: i64,
    ) -> Result<Vec<SegmentFile>, LakeError> {
        let t = times(batch)?;
        let mut out = Vec::new();
        let mut start = 0usize;
        while start < batch.num_rows() {
            let hour = t.value(start).div_euclid(HOUR_MS);
            let mut end = start;
            while end < batch.num_rows() && t.value(end).div_euclid(HOUR_MS) == hour {
                end += 1;
            }
            let part = batch.slice(start, end - start);
            *seq += 1;
            let rel = format!("{}/{:016x}.parquet", partition_dir(account, hour), *seq);
            let bytes = write_file(&self.dir.join(&rel), &part, props.clone())?;
            out.push(SegmentFile {
                account: account.to_owned(),
                path: rel,
                rows: part.num_rows() as u64,
                bytes,
                min_ms: t.value(start),
                max_ms: t.value(end - 1),
                written_ms: now,
            });
            start = end;
        }
        Ok(out)
    }

    fn save(&self, catalog: &Catalog) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec(catalog)
            .map_err(|e| LakeError::Internal(format!("cannot encode the catalog: {e}")))?;
        write_atomic(&self.dir.join("catalog.json"), &bytes)
    }

    /// Merges partitions with many files, or with several files and no new one for a while.
    pub fn compact(&self, now: i64) -> Result<usize, LakeError> {
        let _w = self.writing.lock();
        let groups: Vec<Vec<SegmentFile>> = {
            let st = self.state.read();
            let mut by_part: HashMap<(String, i64), Vec<SegmentFile>> = HashMap::new();
            for f in &st.catalog.files {
                let (a, h) = f.partition();
                by_part
                    .entry((a.to_owned(), h))
                    .or_default()
                    .push(f.clone());
            }
            by_part
                .into_values()
                .filter(|fs| {
                    fs.len() >= self.opts.compact_files
                        || (fs.len() > 1
                            && fs
                                .iter()
                                .all(|f| now - f.written_ms >= self.opts.compact_idle_ms))
                })
                .collect()
        };
        let props = writer_props(&self.opts)?;
        let mut merged = 0;
        for group in groups {
            let mut batches = Vec::new();
            for f in &group {
                batches.extend(read_file(&self.dir.join(&f.path))?);
            }
            let all = concat_batches(&convert::schema(), &batches)
                .map_err(|e| LakeError::Internal(e.to_string()))?;
            let mut seq = self.state.read().catalog.seq;
            let account = group[0].account.clone();
            let new = self.write_hours(&account, &sorted(&all)?, &mut seq, &props, now)?;
            let mut st = self.state.write();
            let old: std::collections::HashSet<&str> =
                group.iter().map(|f| f.path.as_str()).collect();
            st.catalog.files.retain(|f| !old.contains(f.path.as_str()));
            st.catalog.files.extend(new);
            st.catalog.seq = seq;
            self.save(&st.catalog)?;
            drop(st);
            let mut g = self.graveyard.lock();
            for f in &group {
                g.push((self.dir.join(&f.path), now));
            }
            merged += 1;
        }
        Ok(merged)
    }

    /// Removes files older than every live store of their account keeps, and buries
    /// replaced files once their grace period is over.
    pub fn retention(&self, now: i64) -> Result<usize, LakeError> {
        let _w = self.writing.lock();
        let stores = self.registry.all(now);
        let mut keep_days: HashMap<&str, u32> = HashMap::new();
        for s in &stores {
            let e = keep_days.entry(s.account.as_str()).or_insert(0);
            *e = (*e).max(s.retention_days);
        }
        let mut st = self.state.write();
        let before = st.catalog.files.len();
        let mut gone = Vec::new();
        st.catalog.files.retain(|f| {
            // An account without any store keeps its events as long as a default would.
            let days = keep_days.get(f.account.as_str()).copied().unwrap_or(3653);
            let keep = f.max_ms >= now - i64::from(days) * DAY_MS;
            if !keep {
                gone.push(f.path.clone());
            }
            keep
        });
        let removed = before - st.catalog.files.len();
        if removed > 0 {
            self.save(&st.catalog)?;
        }
        drop(st);
        let mut g = self.graveyard.lock();
        g.extend(gone.into_iter().map(|p| (self.dir.join(p), now)));
        let grace = self.opts.grace_ms;
        g.retain(|(p, at)| {
            if now - at < grace {
                return true;
            }
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %p.display(), error = %e, "cannot remove a replaced segment file");
            }
            false
        });
        Ok(removed)
    }

    /// Waits (up to `timeout`) until the writer has read every event the store had
    /// acknowledged when this was called, so a query sees the caller's own writes.
    pub async fn catch_up_with_store(&self, timeout: Duration) {
        if !self.running.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let target = self.store.durable_end();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.state.read().read_to < target && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Runs the writer until `shutdown` turns true, then writes the hot set out.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        self.running
            .store(true, std::sync::atomic::Ordering::Release);
        let mut last_upkeep = 0i64;
        loop {
            let this = self.clone();
            let now = cairn_event::now_ms();
            let caught_up = tokio::task::spawn_blocking(move || -> Result<bool, LakeError> {
                let caught_up = this.step(now)?;
                if this.due(now) {
                    this.flush(now)?;
                }
                Ok(caught_up)
            })
            .await
            .unwrap_or_else(|e| Err(LakeError::Internal(format!("the lake writer failed: {e}"))));
            let caught_up = match caught_up {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the lake writer failed a step; retrying");
                    true
                }
            };
            if now - last_upkeep >= 60_000 {
                last_upkeep = now;
                let this = self.clone();
                let done = tokio::task::spawn_blocking(move || {
                    this.compact(now)?;
                    this.retention(now)
                })
                .await;
                if let Ok(Err(e)) = done {
                    tracing::error!(error = %e, "lake upkeep failed; retrying later");
                }
            }
            if *shutdown.borrow() {
                break;
            }
            if caught_up {
                let pos = self.state.read().read_to;
                tokio::select! {
                    _ = self.store.wait_past(pos, Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        let this = self.clone();
        let now = cairn_event::now_ms();
        let done = tokio::task::spawn_blocking(move || {
            while !this.step(now)? {}
            this.flush(now)
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::error!(error = %e, "cannot write the lake's hot set out at shutdown; it is read again from the journal at the next start");
        }
    }

    /// Reads the journal to its end and writes everything out (for tools and tests).
    pub fn catch_up(&self, now: i64) -> Result<(), LakeError> {
        while !self.step(now)? {}
        self.flush(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_folders_are_hive_style() {
        assert_eq!(
            partition_dir("111122223333", 1_704_462_660_000 / HOUR_MS),
            "events/account=111122223333/date=2024-01-05/hour=13"
        );
    }
}
