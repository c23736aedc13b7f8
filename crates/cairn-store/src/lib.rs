//! The event history: durable ingest into the journal with group commit, deduplication by
//! eventID, an in-memory index rebuilt from the journal on start, newest-first lookups through
//! posting lists per attribute value, and retention that drops whole journal segments.
//!
//! Every write goes through one writer thread. It takes all batches waiting in its queue,
//! drops duplicates, appends one frame per batch, makes them durable with a single fdatasync,
//! then publishes them to the index and answers each caller. So an acknowledged event is on
//! disk and already visible to lookups, and concurrent writers share the cost of a sync. A
//! full queue answers "throttled" at once instead of growing without bound.

mod dict;
mod frame;
mod index;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::RwLock;

use cairn_event::{EventMeta, Normalised};
use cairn_journal::{FrameLoc, Journal, JournalError, Options as JournalOptions, SegmentScan};

pub use frame::Attr;
pub use index::{Key, id_hash};

use dict::Dicts;
use index::{AccountIndex, Filter, RecordLoc, Tally, Walked};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the store is over capacity; retry with backoff")]
    Throttled,
    #[error("the store has stopped accepting writes after a storage failure: {0}")]
    Failed(String),
    #[error("the store is shut down")]
    Closed,
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    #[error("cannot decode a frame: {0}")]
    Decode(String),
    #[error("compression error: {0}")]
    Compress(#[source] std::io::Error),
    #[error("invalid request: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Keep events this long after they were stored; `None` keeps them forever.
    pub retention_ms: Option<i64>,
    pub journal: JournalOptions,
    /// Batches that may wait for the writer before new ones are throttled.
    pub queue_batches: usize,
    /// The consumers with a cursor (such as trail delivery) that will open: retention
    /// removes nothing until each of them has called [`Store::hold`].
    pub held_by: Vec<&'static str>,
    /// The most index entries [`Store::count`] visits when it has to walk a list.
    pub count_walk_budget: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retention_ms: Some(90 * 86_400_000),
            journal: JournalOptions::default(),
            queue_batches: 512,
            held_by: Vec::new(),
            count_walk_budget: COUNT_WALK_BUDGET,
        }
    }
}

/// What became of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// An event with the same eventID was already stored (or came earlier in the batch).
    Duplicate,
}

/// Runs a journal consumer's `work` on a thread of its own named `name` until `shutdown`
/// turns true; then sets the flag `work` watches and waits for it to return. An error means
/// the thread could not be started.
pub async fn run_consumer_thread(
    name: &str,
    work: impl FnOnce(&AtomicBool) + Send + 'static,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let worker = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || work(&stopping))?;
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::Release);
    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    Ok(())
}

/// A lookup over one account's history.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub account: String,
    /// Attribute filters: an event must match one of the values of every attribute given.
    pub filters: Vec<(Attr, Vec<String>)>,
    /// eventIDs: if any are given, only these events.
    pub event_ids: Vec<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub insights: bool,
    pub limit: usize,
    /// Resume after this key (exclusive), as returned in [`Page::next`].
    pub after: Option<Key>,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub key: Key,
    pub record: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub events: Vec<Found>,
    /// The key to resume from when more events may follow.
    pub next: Option<Key>,
}

/// The most buckets [`Store::count`] fills.
pub const MAX_BUCKETS: usize = 500;

/// The most index entries [`Store::count`] visits by default when it has to walk a list
/// (several filters): past this the counts come back partial.
pub const COUNT_WALK_BUDGET: usize = 2_000_000;

/// Index entries a counting walk visits per hold of the index lock, so that writers are not
/// held up behind a long count.
const COUNT_WALK_CHUNK: usize = 65_536;

/// Events per time bucket, as [`Store::count`] returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub start_ms: i64,
    pub end_ms: i64,
    pub bucket_ms: i64,
    /// Bucket `i` holds the events of `[start_ms + i * bucket_ms, start_ms + (i + 1) *
    /// bucket_ms)`, the last one ending at `end_ms`.
    pub counts: Vec<u64>,
    /// Whether counting stopped before it reached `start_ms` (see `complete_from_ms`).
    pub partial: bool,
    /// The counts are exact for events at or after this time: `start_ms` unless `partial`.
    /// Earlier events were counted newest first until the walk's budget ran out, so the
    /// buckets before this time hold only some of theirs.
    pub complete_from_ms: i64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub events: u64,
    /// Bytes of compressed records (in the journal).
    pub record_bytes: u64,
    /// Bytes of frame headers and framing (in the journal).
    pub header_bytes: u64,
    /// Bytes of compression dictionaries.
    pub dictionary_bytes: u64,
}

/// A place in the journal: a segment and the byte offset of a frame's start in it. Consumers
/// (trail delivery, ...) keep one as their durable cursor.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// One frame read back for a consumer: one batch of one account.
#[derive(Debug, Clone)]
pub struct Fed {
    pub account: String,
    /// When Cairn stored the batch (epoch ms).
    pub stored_ms: i64,
    /// The records, verbatim.
    pub records: Vec<Vec<u8>>,
    /// Where the frame after this one starts: the cursor once this frame is consumed.
    pub next: Position,
}

/// A record ready for the writer: its metadata and its compressed bytes.
struct Prepared {
    meta: EventMeta,
    hash: u64,
    data: Vec<u8>,
}

struct Job {
    account: String,
    dict: u32,
    records: Vec<Prepared>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Outcome>>>,
}

struct Shared {
    index: RwLock<HashMap<String, AccountIndex>>,
    /// Everything before this position is durable (synced).
    durable: parking_lot::Mutex<Position>,
    /// Woken whenever `durable` moves.
    durable_moved: tokio::sync::Notify,
    /// Retention keeps every segment from this one on (a consumer still needs them): the
    /// lowest of `holds`.
    hold_from: AtomicU64,
    holds: parking_lot::Mutex<HashMap<&'static str, u64>>,
    reader: cairn_journal::Reader,
    dicts: Arc<Dicts>,
    failed: AtomicBool,
    events: AtomicU64,
    record_bytes: AtomicU64,
    header_bytes: AtomicU64,
}

/// The event store. Cheap to share behind an `Arc`.
pub struct Store {
    shared: Arc<Shared>,
    tx: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    count_walk_budget: usize,
}

impl Store {
    /// Opens the store in `dir`, replaying the journal into the index.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store> {
        let now = cairn_event::now_ms();
        let journal_dir = dir.join("journal");
        let mut journal = Journal::open(&journal_dir, opts.journal.clone(), now)?;
        let dicts = Dicts::open(dir)?;
        let mut accounts: HashMap<String, AccountIndex> = HashMap::new();
        let mut next_seq = 0u64;
        let mut events = 0u64;
        let mut record_bytes = 0u64;
        let mut header_bytes = 0u64;
        let started = std::time::Instant::now();
        // Reading and decoding frames runs on its own thread, building the index on this one.
        let segments = journal.segments().to_vec();
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = mpsc::sync_channel::<Result<Replayed>>(256);
            let journal_dir = &journal_dir;
            let dicts = dicts.clone();
            scope.spawn(move || {
                for seg in segments {
                    let mut scan = match SegmentScan::open(journal_dir, seg.id) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(e.into()));
                            return;
                        }
                    };
                    loop {
                        match scan.next_frame() {
                            Ok(Some((loc, payload))) => {
                                let decoded = frame::decode_header(&payload).map(|(header, start)| {
                                    let metas = replay_metas(&dicts, &header, &payload[start..]);
                                    (loc, start, payload.len(), header, metas)
                                });
                                let failed = decoded.is_err();
                                if tx.send(decoded).is_err() || failed {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(end) => {
                                // Only the newest segment can have a torn tail, and
                                // Journal::open cut it; anything here is damage to a sealed
                                // segment.
                                tracing::error!(
                                    segment = seg.id,
                                    ?end,
                                    "journal segment is damaged; events after this point in it are not readable"
                                );
                                break;
                            }
                        }
                    }
                }
            });
            for item in rx {
                let (loc, start, len, header, metas) = item?;
                let n = header.len() as u64;
                accounts
                    .entry(header.account.clone())
                    .or_default()
                    .add_frame(loc, loc.offset + start as u64, &header, &metas);
                next_seq = next_seq.max(header.first_seq + n);
                events += n;
                header_bytes += start as u64 + FRAMING;
                record_bytes += (len - start) as u64;
            }
            Ok(())
        })?;
        if events > 0 {
            tracing::info!(
                events,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "event history loaded from the journal"
            );
        }
        journal.maybe_rotate(now)?;
        let (end_segment, end_offset) = journal.end();
        let shared = Arc::new(Shared {
            index: RwLock::new(accounts),
            durable: parking_lot::Mutex::new(Position {
                segment: end_segment,
                offset: end_offset,
            }),
            durable_moved: tokio::sync::Notify::new(),
            hold_from: AtomicU64::new(if opts.held_by.is_empty() { u64::MAX } else { 0 }),
            holds: parking_lot::Mutex::new(opts.held_by.iter().map(|c| (*c, 0)).collect()),
            reader: journal.reader(),
            dicts,
            failed: AtomicBool::new(false),
            events: AtomicU64::new(events),
            record_bytes: AtomicU64::new(record_bytes),
            header_bytes: AtomicU64::new(header_bytes),
        });
        let (tx, rx) = mpsc::sync_channel(opts.queue_batches);
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("cairn-writer".into())
            .spawn(move || {
                Writer {
                    journal,
                    shared: writer_shared,
                    next_seq,
                    retention_ms: opts.retention_ms,
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Failed(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            shared,
            tx: Some(tx),
            writer: Some(writer),
            count_walk_budget: opts.count_walk_budget.max(1),
        })
    }

    /// Queues a batch for durable storage. The returned receiver resolves once the batch is
    /// on disk and visible, with one outcome per record. Fails at once with
    /// [`StoreError::Throttled`] when the writer's queue is full.
    ///
    /// The records are compressed here, on the caller's thread (about 5 µs a record), so
    /// that concurrent writers compress in parallel: call it from a blocking context for
    /// large batches.
    pub fn submit(
        &self,
        account: &str,
        records: Vec<Normalised>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<Outcome>>>> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed("see the server log".into()));
        }
        let (dict, compressed) = self
            .shared
            .dicts
            .compress_all(records.iter().map(|r| r.bytes.as_slice()))?;
        let records = records
            .into_iter()
            .zip(compressed)
            .map(|(r, data)| Prepared {
                hash: id_hash(&r.meta.event_id),
                meta: r.meta,
                data,
            })
            .collect();
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        match tx.try_send(Job {
            account: account.to_owned(),
            dict,
            records,
            reply,
        }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(StoreError::Throttled),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }

    /// Stores a batch and waits for it (for callers outside an async runtime).
    pub fn append_blocking(&self, account: &str, records: Vec<Normalised>) -> Result<Vec<Outcome>> {
        let rx = self.submit(account, records)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Looks events up, newest first.
    pub fn lookup(&self, q: &Query) -> Result<Page> {
        let limit = q.limit.max(1);
        let lo: Key = (q.start_ms.unwrap_or(i64::MIN), 0);
        let mut hi: Key = match q.end_ms {
            Some(end) => (end.saturating_add(1), 0),
            None => (i64::MAX, 0),
        };
        if let Some(after) = q.after {
            hi = hi.min(after);
        }
        // Resolve filters and find candidate slots under the read lock; read records after.
        let candidates: Vec<RecordLoc> = {
            let index = self.shared.index.read();
            let Some(acct) = index.get(&q.account) else {
                return Ok(Page::default());
            };
            let Some(filters) = resolve(acct, &q.filters) else {
                return Ok(Page::default());
            };
            if q.event_ids.is_empty() {
                let slots = acct.query(q.insights, &filters, lo, hi, limit + 1);
                slots.into_iter().map(|s| acct.loc(s)).collect()
            } else {
                let mut hits: Vec<(Key, u32)> = q
                    .event_ids
                    .iter()
                    .flat_map(|id| acct.slots_for_id(id_hash(id)))
                    .map(|s| (acct.loc(s).key, s))
                    .filter(|(k, s)| {
                        *k >= lo && *k < hi && acct.slot_matches(q.insights, *s, &filters)
                    })
                    .collect();
                hits.sort_by_key(|h| std::cmp::Reverse(h.0));
                hits.dedup();
                hits.into_iter().map(|(_, s)| acct.loc(s)).collect()
            }
        };
        let mut events = Vec::with_capacity(limit.min(candidates.len()));
        let mut next = None;
        for loc in candidates {
            // A candidate past the page only tells that there is more: it is not read.
            if events.len() == limit {
                next = events.last().map(|f: &Found| f.key);
                break;
            }
            let record = self.shared.read(&loc)?;
            if !q.event_ids.is_empty() && !record_has_id(&record, &q.event_ids) {
                continue; // an eventID hash collision
            }
            events.push(Found {
                key: loc.key,
                record,
            });
        }
        Ok(Page { events, next })
    }

    /// Counts the events of `q`'s account and category class that match its filters (and
    /// eventIDs, if any), per bucket of `bucket_ms` over `[start_ms, end_ms)`, buckets aligned
    /// to `start_ms` (at most [`MAX_BUCKETS`]); `q`'s times, limit and cursor are not used.
    ///
    /// Without filters, or with one attribute whose values' lists never overlap, the posting
    /// lists' sorted runs are cut at the bucket edges by binary search: the cost does not
    /// depend on how many events there are. Otherwise the shortest filter list is walked
    /// newest first, releasing the index lock every 65,536 entries; after
    /// [`StoreOptions::count_walk_budget`] entries the counts come back `partial`.
    pub fn count(&self, q: &Query, bucket_ms: i64, start_ms: i64, end_ms: i64) -> Result<Counts> {
        let span = end_ms.checked_sub(start_ms).filter(|s| *s > 0);
        let (Some(span), true) = (span, bucket_ms > 0) else {
            return Err(StoreError::Invalid(
                "the range must not be empty and buckets must be at least 1 ms".into(),
            ));
        };
        let n = span / bucket_ms + i64::from(span % bucket_ms != 0);
        if n > MAX_BUCKETS as i64 {
            return Err(StoreError::Invalid(format!(
                "{n} buckets; the most is {MAX_BUCKETS}"
            )));
        }
        let bounds: Vec<i64> = (0..=n)
            .map(|i| {
                start_ms
                    .saturating_add(i.saturating_mul(bucket_ms))
                    .min(end_ms)
            })
            .collect();
        let mut tally = Tally::new(bounds);
        let mut out = Counts {
            start_ms,
            end_ms,
            bucket_ms,
            counts: Vec::new(),
            partial: false,
            complete_from_ms: start_ms,
        };
        let lo: Key = (start_ms, 0);
        let mut hi: Key = (end_ms, 0);
        if !q.event_ids.is_empty() {
            let candidates: Vec<RecordLoc> = {
                let index = self.shared.index.read();
                let filters = index
                    .get(&q.account)
                    .and_then(|acct| Some((acct, resolve(acct, &q.filters)?)));
                match filters {
                    None => Vec::new(),
                    Some((acct, filters)) => {
                        let mut slots: Vec<u32> = q
                            .event_ids
                            .iter()
                            .flat_map(|id| acct.slots_for_id(id_hash(id)))
                            .collect();
                        slots.sort_unstable();
                        slots.dedup();
                        slots
                            .into_iter()
                            .filter(|s| acct.slot_matches(q.insights, *s, &filters))
                            .map(|s| acct.loc(s))
                            .filter(|loc| loc.key.0 >= start_ms && loc.key.0 < end_ms)
                            .collect()
                    }
                }
            };
            for loc in candidates {
                // A match of the eventID hash is confirmed against the record.
                if record_has_id(&self.shared.read(&loc)?, &q.event_ids) {
                    tally.add(loc.key.0);
                }
            }
        } else {
            let mut budget = self.count_walk_budget;
            loop {
                let index = self.shared.index.read();
                let Some(acct) = index.get(&q.account) else {
                    break;
                };
                let Some(filters) = resolve(acct, &q.filters) else {
                    break;
                };
                if AccountIndex::countable_without_walk(&filters) {
                    acct.count_lists(q.insights, &filters, &mut tally);
                    break;
                }
                let steps = budget.min(COUNT_WALK_CHUNK);
                match acct.count_walk(q.insights, &filters, (lo, hi), &mut tally, steps) {
                    Walked::Done => break,
                    Walked::Stopped(at) => {
                        hi = at;
                        budget -= steps;
                        if budget == 0 {
                            if acct.walk_len(q.insights, &filters, lo, hi) > 0 {
                                out.partial = true;
                                out.complete_from_ms = at.0.saturating_add(1).min(end_ms);
                            }
                            break;
                        }
                    }
                }
                // The lock is released here, between steps of the walk.
            }
        }
        out.counts = tally.counts;
        Ok(out)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            events: self.shared.events.load(Ordering::Relaxed),
            record_bytes: self.shared.record_bytes.load(Ordering::Relaxed),
            header_bytes: self.shared.header_bytes.load(Ordering::Relaxed),
            dictionary_bytes: self.shared.dicts.disk_bytes(),
        }
    }

    /// Where the durable journal ends now: a consumer that has read up to here is caught up.
    pub fn durable_end(&self) -> Position {
        *self.shared.durable.lock()
    }

    /// Where the journal begins now: a new consumer that wants every stored event starts
    /// here.
    pub fn start(&self) -> Position {
        match self.shared.reader.first_segment() {
            Some(segment) => Position {
                segment,
                offset: cairn_journal::Journal::FIRST_FRAME,
            },
            None => self.durable_end(),
        }
    }

    /// Waits until the durable end moves past `pos` (or `timeout` passes).
    pub async fn wait_past(&self, pos: Position, timeout: Duration) {
        let notified = self.shared.durable_moved.notified();
        if self.durable_end() > pos {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    /// Keeps retention from removing journal segments from `pos` on for `consumer` (`None`
    /// releases its hold). A consumer sets this to its cursor, so no event is removed before
    /// it is consumed.
    pub fn hold(&self, consumer: &'static str, pos: Option<Position>) {
        let mut holds = self.shared.holds.lock();
        holds.insert(consumer, pos.map_or(u64::MAX, |p| p.segment));
        let low = holds.values().copied().min().unwrap_or(u64::MAX);
        self.shared.hold_from.store(low, Ordering::Release);
    }

    /// Reads durable frames from `from` on, up to `until` and about `max_records` records. Returns them
    /// and the position after the last one (equal to `from` when caught up). Frames of
    /// accounts that `want` refuses come back without their records (they are not
    /// decompressed). Segments removed by retention are skipped with an error in the log.
    pub fn feed(
        &self,
        from: Position,
        until: Position,
        max_records: usize,
        want: impl Fn(&str) -> bool,
    ) -> Result<(Vec<Fed>, Position)> {
        let end = self.durable_end().min(until);
        let mut pos = from;
        if pos.offset < cairn_journal::Journal::FIRST_FRAME {
            pos.offset = cairn_journal::Journal::FIRST_FRAME;
        }
        let mut out = Vec::new();
        let mut count = 0usize;
        while pos < end && count < max_records {
            let frame = match self.shared.reader.frame_at(pos.segment, pos.offset) {
                Ok(f) => f,
                Err(JournalError::SegmentGone(id)) => {
                    tracing::error!(
                        segment = id,
                        "a journal segment was removed before a consumer read it; its events are skipped"
                    );
                    pos = Position {
                        segment: id + 1,
                        offset: cairn_journal::Journal::FIRST_FRAME,
                    };
                    continue;
                }
                Err(e @ JournalError::Corrupt { .. }) if pos.segment < end.segment => {
                    // Damage in a sealed segment: what follows in it cannot be framed. The
                    // store's own replay skipped it the same way; go on with the next one.
                    tracing::error!(error = %e, "skipping the rest of a damaged journal segment");
                    pos = Position {
                        segment: pos.segment + 1,
                        offset: cairn_journal::Journal::FIRST_FRAME,
                    };
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some((loc, payload)) = frame else {
                // The end of a sealed segment: go on with the next one.
                if pos.segment >= end.segment {
                    break;
                }
                pos = Position {
                    segment: pos.segment + 1,
                    offset: cairn_journal::Journal::FIRST_FRAME,
                };
                continue;
            };
            let next = Position {
                segment: loc.segment,
                offset: loc.offset + u64::from(loc.len),
            };
            if pos.segment == end.segment && next.offset > end.offset {
                break; // written but not yet durable
            }
            let (header, start) = match frame::decode_header(&payload) {
                Ok(h) => h,
                Err(e) => {
                    // A frame whose checksum holds but whose header does not decode: skip it.
                    tracing::error!(error = %e, segment = pos.segment, offset = pos.offset, "skipping an undecodable journal frame");
                    pos = next;
                    continue;
                }
            };
            let wanted = want(&header.account);
            let mut records = Vec::with_capacity(if wanted { header.lens.len() } else { 0 });
            let mut at = start;
            for len in header.lens.iter().filter(|_| wanted) {
                let stop = at + *len as usize;
                let record = payload
                    .get(at..stop)
                    .ok_or_else(|| StoreError::Decode("record outside its frame".into()))
                    .and_then(|data| self.shared.dicts.decompress(header.dict, data));
                match record {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        tracing::error!(error = %e, segment = pos.segment, "a stored record cannot be read back; consumers skip it")
                    }
                }
                at = stop;
            }
            count += records.len();
            out.push(Fed {
                account: header.account,
                stored_ms: header.stored_ms,
                records,
                next,
            });
            pos = next;
        }
        Ok((out, pos))
    }

    /// Stops the writer after it has finished what is queued.
    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A frame written by a group commit, to publish to the index once it is durable.
struct Written {
    account: String,
    loc: FrameLoc,
    records_start: u64,
    header: frame::FrameHeader,
    metas: Vec<Option<EventMeta>>,
}

/// A frame read back on start: where it is, where its records start, its length, its header
/// and the metadata of each record.
type Replayed = (
    FrameLoc,
    usize,
    usize,
    frame::FrameHeader,
    Vec<Option<EventMeta>>,
);

/// The lookup attributes of a frame's records, read back from the records themselves.
fn replay_metas(
    dicts: &Dicts,
    header: &frame::FrameHeader,
    records: &[u8],
) -> Vec<Option<EventMeta>> {
    let mut at = 0usize;
    header
        .lens
        .iter()
        .map(|len| {
            let end = at + *len as usize;
            let bytes = records.get(at..end);
            at = end;
            let meta = bytes
                .ok_or_else(|| "record outside its frame".to_owned())
                .and_then(|b| dicts.decompress(header.dict, b).map_err(|e| e.to_string()))
                .and_then(|r| cairn_event::lookup_view(&r).map_err(|e| e.to_string()));
            match meta {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(error = %e, "a stored record cannot be read back; it stays findable by eventID and time only");
                    None
                }
            }
        })
        .collect()
}

impl Shared {
    fn read(&self, loc: &RecordLoc) -> Result<Vec<u8>> {
        let data = self
            .reader
            .read_at(loc.segment, loc.offset, loc.len as usize)?;
        self.dicts.decompress(loc.dict, &data)
    }
}

/// A query's filters as the interned ids of their values, or `None` when some filter has no
/// value that any stored event of the account carries (so nothing matches).
fn resolve(acct: &AccountIndex, filters: &[(Attr, Vec<String>)]) -> Option<Vec<Filter>> {
    let mut out = Vec::with_capacity(filters.len());
    for (attr, values) in filters {
        let mut ids: Vec<u32> = values.iter().filter_map(|v| acct.value_id(v)).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return None;
        }
        out.push(Filter {
            attr: *attr,
            values: ids,
        });
    }
    Some(out)
}

fn record_has_id(record: &[u8], ids: &[String]) -> bool {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(rename = "eventID", borrow)]
        event_id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Id>(record)
        .ok()
        .and_then(|r| r.event_id)
        .is_some_and(|id| ids.iter().any(|i| *i == id))
}

struct Writer {
    journal: Journal,
    shared: Arc<Shared>,
    next_seq: u64,
    retention_ms: Option<i64>,
}

/// Bytes the journal adds around each frame (magic, length, checksum).
const FRAMING: u64 = 12;

/// How many queued batches one group commit takes at most.
const GROUP_MAX_BATCHES: usize = 256;

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        let mut last_maintenance = std::time::Instant::now();
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
                let mut group = vec![first];
                while group.len() < GROUP_MAX_BATCHES {
                    match rx.try_recv() {
                        Ok(m) => group.push(m),
                        Err(_) => break,
                    }
                }
                self.commit(group);
            }
            if last_maintenance.elapsed() >= Duration::from_secs(1) {
                last_maintenance = std::time::Instant::now();
                self.maintain();
            }
        }
        if let Err(e) = self.journal.sync() {
            tracing::error!(error = %e, "final journal sync failed");
        }
    }

    fn fail_all(&self, jobs: Vec<Job>, err: &str) {
        for job in jobs {
            let _ = job.reply.send(Err(StoreError::Failed(err.to_owned())));
        }
    }

    fn commit(&mut self, mut jobs: Vec<Job>) {
        if self.shared.failed.load(Ordering::Acquire) {
            self.fail_all(jobs, "an earlier storage failure");
            return;
        }
        // Decide duplicates and write one frame per batch.
        let mut pending: hashbrown::HashMap<(String, u64), Vec<String>> = hashbrown::HashMap::new();
        let mut written: Vec<Written> = Vec::new();
        let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(jobs.len());
        let mut error: Option<String> = None;
        for job in &mut jobs {
            let mut out = Vec::with_capacity(job.records.len());
            let mut keep: Vec<Prepared> = Vec::with_capacity(job.records.len());
            for rec in std::mem::take(&mut job.records) {
                let key = (job.account.clone(), rec.hash);
                let seen_now = pending
                    .get(&key)
                    .is_some_and(|ids| ids.contains(&rec.meta.event_id));
                if seen_now || self.stored_already(&job.account, rec.hash, &rec.meta.event_id) {
                    out.push(Outcome::Duplicate);
                    continue;
                }
                pending
                    .entry(key)
                    .or_default()
                    .push(rec.meta.event_id.clone());
                out.push(Outcome::Stored);
                keep.push(rec);
            }
            outcomes.push(out);
            if keep.is_empty() || error.is_some() {
                continue;
            }
            let metas: Vec<(&EventMeta, u64, u32)> = keep
                .iter()
                .map(|r| (&r.meta, r.hash, r.data.len() as u32))
                .collect();
            let header = frame::FrameHeader::build(
                &job.account,
                cairn_event::now_ms(),
                self.next_seq,
                job.dict,
                &metas,
            );
            let (metas, datas): (Vec<Option<EventMeta>>, Vec<Vec<u8>>) =
                keep.into_iter().map(|r| (Some(r.meta), r.data)).unzip();
            let result = frame::encode(&header, &datas).and_then(|(payload, start)| {
                let loc = self.journal.append(&payload)?;
                Ok((loc, start))
            });
            match result {
                Ok((loc, start)) => {
                    self.next_seq += header.len() as u64;
                    self.shared
                        .header_bytes
                        .fetch_add(start as u64 + FRAMING, Ordering::Relaxed);
                    self.shared
                        .record_bytes
                        .fetch_add(u64::from(loc.len) - start as u64, Ordering::Relaxed);
                    written.push(Written {
                        account: job.account.clone(),
                        loc,
                        records_start: loc.offset + start as u64,
                        header,
                        metas,
                    });
                }
                Err(e) => error = Some(e.to_string()),
            }
        }
        if error.is_none()
            && let Err(e) = self.journal.sync()
        {
            error = Some(e.to_string());
        }
        if let Some(err) = error {
            // After a failed write or fsync the state of the file is unknown: stop taking
            // writes rather than acknowledge anything that might not be durable.
            tracing::error!(error = %err, "journal write failed; the store now refuses writes");
            self.shared.failed.store(true, Ordering::Release);
            self.fail_all(jobs, &err);
            return;
        }
        self.publish_durable();
        {
            let mut index = self.shared.index.write();
            let mut added = 0u64;
            for w in &written {
                index.entry(w.account.clone()).or_default().add_frame(
                    w.loc,
                    w.records_start,
                    &w.header,
                    &w.metas,
                );
                added += w.header.len() as u64;
            }
            self.shared.events.fetch_add(added, Ordering::Relaxed);
        }
        for (job, out) in jobs.into_iter().zip(outcomes) {
            let _ = job.reply.send(Ok(out));
        }
        match self.journal.maybe_rotate(cairn_event::now_ms()) {
            Ok(true) => self.publish_durable(),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "journal rotation failed"),
        }
    }

    /// Tells consumers that everything written so far is durable.
    fn publish_durable(&self) {
        let (segment, offset) = self.journal.end();
        *self.shared.durable.lock() = Position { segment, offset };
        self.shared.durable_moved.notify_waiters();
    }

    fn stored_already(&self, account: &str, hash: u64, event_id: &str) -> bool {
        let slots = {
            let index = self.shared.index.read();
            match index.get(account) {
                Some(acct) => acct
                    .slots_for_id(hash)
                    .into_iter()
                    .map(|s| acct.loc(s))
                    .collect::<Vec<_>>(),
                None => return false,
            }
        };
        // Confirm against the stored record, so a hash collision never drops an event.
        slots.into_iter().any(|loc| match self.shared.read(&loc) {
            Ok(rec) => record_has_id(&rec, &[event_id.to_owned()]),
            // Unreadable: treat as stored rather than write a second copy.
            Err(_) => true,
        })
    }

    fn maintain(&mut self) {
        if self.shared.failed.load(Ordering::Acquire) {
            // After a failed write nothing more is flushed or published as durable.
            return;
        }
        let now = cairn_event::now_ms();
        match self.journal.maybe_rotate(now) {
            Ok(true) => self.publish_durable(),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "journal rotation failed"),
        }
        if let Some(retention) = self.retention_ms {
            let cutoff = now.saturating_sub(retention);
            if self.journal.active_created_ms() <= cutoff {
                match self.journal.rotate(now) {
                    Ok(()) => self.publish_durable(),
                    Err(e) => tracing::error!(error = %e, "journal rotation failed"),
                }
            }
            let keep_from = self.shared.hold_from.load(Ordering::Acquire);
            match self.journal.remove_before(cutoff, keep_from) {
                Ok(removed) if !removed.is_empty() => {
                    let first_kept = self.journal.segments().first().map_or(0, |s| s.id);
                    let mut index = self.shared.index.write();
                    let mut dropped = 0;
                    for acct in index.values_mut() {
                        dropped += acct.purge_before(first_kept);
                    }
                    index.retain(|_, a| !a.is_empty());
                    self.shared
                        .events
                        .fetch_sub(dropped as u64, Ordering::Relaxed);
                    tracing::info!(
                        segments = removed.len(),
                        events = dropped,
                        "retention removed old journal segments"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention failed"),
            }
        }
    }
}
