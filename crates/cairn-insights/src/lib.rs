//! CloudTrail Insights: per-minute API call and error rates, their 7-day baselines, and the
//! Start/End insight events recorded when activity leaves its baseline and returns.
//!
//! [`engine`] is the detector (pure, no I/O). [`Insights`] runs it as a consumer of the
//! store's journal with a durable cursor: it reads every stored event, and stores the insight
//! events it makes back into the account's history, where LookupEvents
//! (`EventCategory=insight`), trail delivery (`CloudTrail-Insight/`) and SQL find them. Its
//! state is saved with its cursor; insight event IDs are derived from what they describe, so
//! a replay after a crash stores no second Start or End.
//! [`sim`] makes synthetic workloads for the tests and the benchmark.

pub mod engine;
pub mod sim;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_store::{Position, Store};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use engine::{Class, Counters, Emitted, Enabled, Engine, InsightType, Options};

/// The insights consumer's name among the journal's consumers.
pub const CONSUMER: &str = "insights";
/// Records read from the journal per step.
const FEED_BATCH: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum InsightsError {
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the insights state in {0} cannot be read: {1}")]
    State(PathBuf, String),
}

type Result<T> = std::result::Result<T, InsightsError>;

/// Which insights are on, per account and region.
pub type EnabledFn = dyn Fn(&str, &str) -> Enabled + Send + Sync;

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    cursor: Option<Position>,
    engine: Engine,
}

struct State {
    saved: Saved,
    dirty: bool,
    last_save_ms: i64,
    /// Insight events made but not yet stored (the store refused them): stored before
    /// anything else is read, and while any wait the state is not saved, so that a restart
    /// makes them again.
    unrecorded: Vec<Emitted>,
}

/// The Insights worker.
pub struct Insights {
    store: Arc<Store>,
    path: PathBuf,
    opts: Options,
    enabled: Arc<EnabledFn>,
    state: Mutex<State>,
    running: AtomicBool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InsightsError + '_ {
    move |source| InsightsError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Insights {
    /// Opens the state in `data_dir/insights/` (a new one reads the journal from its start,
    /// so stored and imported history makes the baseline at once).
    pub fn open(
        data_dir: &Path,
        store: Arc<Store>,
        enabled: Arc<EnabledFn>,
        opts: Options,
    ) -> Result<Insights> {
        let dir = data_dir.join("insights");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join("state.bin");
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match postcard::from_bytes::<Saved>(&bytes) {
                Ok(saved) => saved,
                Err(e) => {
                    // Derived state: rebuild it from the journal rather than refuse to start.
                    tracing::warn!(path = %path.display(), error = %e, "the insights state cannot be read; rebuilding it from the journal");
                    Saved::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let cursor = saved.cursor.unwrap_or_else(|| store.start());
        store.hold(CONSUMER, Some(cursor));
        Ok(Insights {
            store,
            path,
            opts,
            enabled,
            state: Mutex::new(State {
                saved: Saved {
                    cursor: Some(cursor),
                    engine: saved.engine,
                },
                dirty: false,
                last_save_ms: 0,
                unrecorded: Vec::new(),
            }),
            running: AtomicBool::new(false),
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The detector's counters.
    pub fn counters(&self) -> Counters {
        self.state.lock().saved.engine.counters
    }

    /// Insights open now (see [`Engine::open_incidents`]).
    pub fn open_incidents(&self) -> Vec<(String, String, String, String, InsightType, i64)> {
        self.state.lock().saved.engine.open_incidents()
    }

    /// Where the consumer has read to.
    pub fn cursor(&self) -> Position {
        self.state.lock().saved.cursor.unwrap_or_default()
    }

    /// Reads up to a batch of stored events, stores the insight events they cause, and
    /// returns whether it has caught up with the journal.
    pub fn step(&self, now_ms: i64) -> Result<bool> {
        let waiting = std::mem::take(&mut self.state.lock().unrecorded);
        self.record(waiting, now_ms)?;
        let from = self.cursor();
        let until = self.store.durable_end();
        let (fed, next) = self.store.feed(from, until, FEED_BATCH, |_| true)?;
        let mut out = Vec::new();
        {
            let mut st = self.state.lock();
            let engine = &mut st.saved.engine;
            for frame in &fed {
                for record in &frame.records {
                    engine.observe(&frame.account, record, &self.opts, &*self.enabled, &mut out);
                }
            }
            // The events are counted: the cursor moves past them whatever becomes of the
            // insight events they made.
            if next != from {
                st.saved.cursor = Some(next);
                st.dirty = true;
            }
        }
        self.record(out, now_ms)?;
        let caught_up = next == from || next >= until;
        if caught_up {
            self.tick(now_ms)?;
        }
        self.save_if_due(now_ms, false)?;
        Ok(caught_up)
    }

    /// Settles live minutes by the wall clock.
    fn tick(&self, now_ms: i64) -> Result<()> {
        let mut out = Vec::new();
        {
            let mut st = self.state.lock();
            st.saved
                .engine
                .tick(now_ms, &self.opts, &*self.enabled, &mut out);
            if !out.is_empty() {
                st.dirty = true;
            }
        }
        self.record(out, now_ms)
    }

    /// Stores insight events durably (a repeat of one already stored is dropped by its ID).
    /// Those the store refuses wait in memory for the next step.
    fn record(&self, out: Vec<Emitted>, now_ms: i64) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let done = self.store_all(&out, now_ms);
        if done.is_err() {
            self.state.lock().unrecorded.extend(out);
        }
        done
    }

    fn store_all(&self, out: &[Emitted], now_ms: i64) -> Result<()> {
        let mut by_account: Vec<(String, Vec<cairn_event::Normalised>)> = Vec::new();
        for e in out {
            let n = match cairn_event::normalise(&e.record, &e.account, now_ms) {
                Ok(n) => n,
                Err(err) => {
                    tracing::error!(error = %err, "an insight event could not be prepared; it is not recorded");
                    continue;
                }
            };
            tracing::info!(
                account = %e.account,
                state = if e.start { "Start" } else { "End" },
                event_id = %n.meta.event_id,
                event_name = %n.meta.event_name,
                "insight event"
            );
            match by_account.iter_mut().find(|(a, _)| *a == e.account) {
                Some((_, list)) => list.push(n),
                None => by_account.push((e.account.clone(), vec![n])),
            }
        }
        for (account, records) in by_account {
            loop {
                match self.store.append_blocking(&account, records.clone()) {
                    Ok(_) => break,
                    Err(cairn_store::StoreError::Throttled) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn save_if_due(&self, now_ms: i64, force: bool) -> Result<()> {
        let (bytes, cursor) = {
            let mut st = self.state.lock();
            if !st.dirty
                || !st.unrecorded.is_empty()
                || (!force && now_ms - st.last_save_ms < self.opts.save_every_ms)
            {
                return Ok(());
            }
            st.saved.engine.prune();
            let bytes = postcard::to_allocvec(&st.saved)
                .map_err(|e| InsightsError::State(self.path.clone(), e.to_string()))?;
            st.dirty = false;
            st.last_save_ms = now_ms;
            (bytes, st.saved.cursor)
        };
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        // The journal may now let go of what the saved cursor is past.
        self.store.hold(CONSUMER, cursor);
        Ok(())
    }

    /// Reads the journal to its end and saves (for tools and tests).
    pub fn catch_up(&self, now_ms: i64) -> Result<()> {
        while !self.step(now_ms)? {}
        self.save_if_due(now_ms, true)
    }

    /// Waits until the consumer has read everything durable now (or `timeout` passes).
    pub async fn catch_up_with_store(&self, timeout: Duration) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let target = self.store.durable_end();
        let deadline = tokio::time::Instant::now() + timeout;
        while self.cursor() < target && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Runs until `shutdown` turns true, then saves. The work happens on a thread of its
    /// own at the lowest CPU priority: Insights take only the CPU time that durable ingest
    /// leaves, and under ingest at full speed they fall behind and catch up when it eases.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        self.running.store(true, Ordering::Release);
        let this = self.clone();
        let started = cairn_store::run_consumer_thread(
            "cairn-insights",
            move |stop| this.work(stop),
            shutdown,
        )
        .await;
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start the insights worker; Insights are off");
        }
    }

    fn work(&self, stop: &AtomicBool) {
        lower_priority();
        while !stop.load(Ordering::Acquire) {
            let caught_up = match self.step(cairn_event::now_ms()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the insights worker failed a step; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                    true
                }
            };
            if caught_up {
                // Wait for new events, and settle live minutes by the clock at least each
                // second.
                let pos = self.cursor();
                let deadline = std::time::Instant::now() + Duration::from_secs(1);
                while !stop.load(Ordering::Acquire)
                    && self.store.durable_end() <= pos
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let now = cairn_event::now_ms();
        let done = self.step(now).and_then(|_| self.save_if_due(now, true));
        if let Err(e) = done {
            tracing::error!(error = %e, "cannot save the insights state at shutdown; it is rebuilt from the journal at the next start");
        }
    }
}

/// Puts the calling thread at the lowest CPU priority (nice 19), on Linux.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; on Linux, PRIO_PROCESS with a
        // thread id changes that thread only. A failure leaves the priority as it was.
        let done =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
        if done != 0 {
            tracing::debug!("cannot lower the insights worker's CPU priority");
        }
    }
}
