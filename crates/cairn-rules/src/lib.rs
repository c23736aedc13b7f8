//! Rules and alerts: deciding which audit events deserve attention and telling someone in
//! about a second.
//!
//! Two kinds of rule are parsed and validated once and then matched against events:
//! EventBridge-compatible event patterns ([`pattern`], over the [`envelope`]) and Sigma rules
//! for the `aws`/`cloudtrail` log source ([`sigma`]); either may count matches per group in a
//! window ([`rule::Threshold`]). [`pack`] is the default pack, [`registry`] which rules each
//! account runs. [`Rules`] runs them as a consumer of the store's journal with a durable
//! cursor; [`engine`] is the pure evaluator, [`outbox`] the synced alert log and [`targets`]
//! what sends it on (webhooks, Slack, a file, stdout) and trail delivery notifications.

pub mod engine;
pub mod envelope;
pub mod outbox;
pub mod pack;
pub mod pattern;
pub mod registry;
pub mod rule;
pub mod sigma;
pub mod targets;

use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_store::{Position, Store};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use engine::{Alert, Engine, Hits};
pub use outbox::{Outbox, Stored};
pub use pattern::{Pattern, PatternError};
pub use registry::{Refused, Registry};
pub use rule::{Kind, Origin, Rule, RuleError, RuleSet, RuleSpec, Severity, Threshold};
pub use sigma::{SigmaError, SigmaRule, load_dir as load_sigma_dir};
pub use targets::{Dispatcher, Notifier, SendOptions, Target, TargetStatus};

/// The namespace of the UUIDv5 IDs rules make (alert IDs, envelope IDs).
pub const NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5c1e_7a2b_9d4f_4e31_8a6b_c0ff_ee0a_1e27_u128);

/// The rules consumer's name among the journal's consumers.
pub const CONSUMER: &str = "rules";
/// Records read from the journal per step: small, so that the alerts of a step are logged
/// (and sent) while the next is read.
const FEED_BATCH: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the rules state cannot be saved: {0}")]
    State(String),
}

type Result<T> = std::result::Result<T, RulesError>;

/// RFC 3339 UTC with milliseconds.
pub fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// Writes a file through a synced temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[derive(Default, Serialize, Deserialize)]
struct Saved {
    cursor: Option<Position>,
    engine: Engine,
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the state (cursor, windows, counters) is saved while events flow. Alerts
    /// are synced to the alert log before; a restart replays from the saved cursor and
    /// raises the same alerts, which the log recognises by their IDs.
    pub save_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            save_every: Duration::from_secs(1),
        }
    }
}

/// The rules worker: reads every stored event from a durable cursor, runs each account's
/// rules on it and appends the alerts to the alert log.
pub struct Rules {
    store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub outbox: Arc<Outbox>,
    path: PathBuf,
    opts: Options,
    state: Mutex<State>,
    running: AtomicBool,
}

struct State {
    saved: Saved,
    dirty: bool,
    last_save: std::time::Instant,
    /// Alerts raised but not yet in the log (it refused them): logged before anything else
    /// is read, and while any wait the state is not saved, so a restart raises them again.
    pending: Vec<Alert>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RulesError + '_ {
    move |source| RulesError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Rules {
    /// Opens the state in `data_dir/rules/`. A new state starts at the journal's end: rules
    /// alert on what happens from now on (`cairn rules test` looks at history).
    pub fn open(
        data_dir: &Path,
        store: Arc<Store>,
        registry: Arc<Registry>,
        outbox: Arc<Outbox>,
        opts: Options,
    ) -> Result<Rules> {
        let dir = data_dir.join("rules");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join("state.json");
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "the rules state cannot be read; starting from the journal's end");
                    Saved::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let cursor = saved.cursor.unwrap_or_else(|| store.durable_end());
        store.hold(CONSUMER, Some(cursor));
        let rules = Rules {
            store,
            registry,
            outbox,
            path,
            opts,
            state: Mutex::new(State {
                saved: Saved {
                    cursor: Some(cursor),
                    engine: saved.engine,
                },
                dirty: true,
                last_save: std::time::Instant::now(),
                pending: Vec::new(),
            }),
            running: AtomicBool::new(false),
        };
        rules.save(true)?;
        Ok(rules)
    }

    /// Where the worker has read to.
    pub fn cursor(&self) -> Position {
        self.state.lock().saved.cursor.unwrap_or_default()
    }

    /// Hits per rule of an account.
    pub fn hits(&self, account: &str) -> Vec<(String, Hits)> {
        self.state.lock().saved.engine.hits(account)
    }

    /// Events counted in open threshold windows.
    pub fn open_windows(&self) -> usize {
        self.state.lock().saved.engine.open_windows()
    }

    /// Forgets a deleted rule's hits and windows.
    pub fn forget(&self, account: &str, rule: &str) {
        let mut st = self.state.lock();
        st.saved.engine.forget(account, rule);
        st.dirty = true;
    }

    /// Reads up to a batch of stored events and logs the alerts they raise. Returns whether
    /// it has caught up with the journal.
    pub fn step(&self) -> Result<bool> {
        let waiting = std::mem::take(&mut self.state.lock().pending);
        self.log(waiting)?;
        let from = self.cursor();
        let until = self.store.durable_end();
        if from >= until {
            self.save(false)?;
            return Ok(true);
        }
        let (fed, next) = self.store.feed(from, until, FEED_BATCH, |_| true)?;
        let mut alerts = Vec::new();
        {
            let mut st = self.state.lock();
            let engine = &mut st.saved.engine;
            for frame in &fed {
                let rules = self.registry.rules_for(&frame.account);
                if rules.is_empty() {
                    continue;
                }
                let open = rules.iter().any(|r| r.prefilter.is_open());
                for bytes in &frame.records {
                    if !open && !may_match(&rules, bytes) {
                        continue;
                    }
                    match serde_json::from_slice::<Value>(bytes) {
                        Ok(record) => {
                            engine.observe_owned(&frame.account, record, &rules, &mut alerts)
                        }
                        Err(_) => engine.unreadable += 1,
                    }
                }
            }
            st.saved.cursor = Some(next);
            st.dirty = true;
        }
        self.log(alerts)?;
        self.save(false)?;
        Ok(next >= until || next == from)
    }

    /// Syncs alerts to the log; those it refuses wait in memory for the next step.
    fn log(&self, alerts: Vec<Alert>) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        match self.outbox.append(&alerts, cairn_event::now_ms()) {
            Ok(_) => {
                for a in &alerts {
                    tracing::info!(rule = %a.rule, account = %a.account, alert_id = %a.alert_id, event_id = %a.event_id, "alert");
                }
                Ok(())
            }
            Err(e) => {
                self.state.lock().pending.extend(alerts);
                let path = self.outbox.path().map(Path::to_owned).unwrap_or_default();
                Err(io_err(&path)(e))
            }
        }
    }

    fn save(&self, force: bool) -> Result<()> {
        let (bytes, cursor) = {
            let mut st = self.state.lock();
            if !st.dirty
                || !st.pending.is_empty()
                || (!force && st.last_save.elapsed() < self.opts.save_every)
            {
                return Ok(());
            }
            st.saved.engine.prune();
            let bytes =
                serde_json::to_vec(&st.saved).map_err(|e| RulesError::State(e.to_string()))?;
            st.dirty = false;
            st.last_save = std::time::Instant::now();
            (bytes, st.saved.cursor)
        };
        write_atomically(&self.path, &bytes).map_err(io_err(&self.path))?;
        self.store.hold(CONSUMER, cursor);
        Ok(())
    }

    /// Reads the journal to its end and saves (for tools and tests).
    pub fn catch_up(&self) -> Result<()> {
        while !self.step()? {}
        self.save(true)
    }

    /// Waits until the worker has read everything durable now (or `timeout` passes).
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

    /// Runs on a thread of its own until `shutdown` turns true, then saves.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        self.running.store(true, Ordering::Release);
        let this = self.clone();
        let started =
            cairn_store::run_consumer_thread("cairn-rules", move |stop| this.work(stop), shutdown)
                .await;
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start the rules worker; no alerts are raised");
        }
    }

    fn work(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            match self.step() {
                Ok(true) => {
                    let pos = self.cursor();
                    let deadline = std::time::Instant::now() + Duration::from_secs(1);
                    while !stop.load(Ordering::Acquire)
                        && self.store.durable_end() <= pos
                        && std::time::Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the rules worker failed a step; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        let done = self.step().and_then(|_| self.save(true));
        if let Err(e) = done {
            tracing::error!(error = %e, "cannot save the rules state at shutdown; events since the last save are evaluated again at the next start");
        }
    }
}

/// The two members rules are prefiltered on, read without building the record.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "userIdentity", borrow, default)]
    user_identity: Option<IdentityHead<'a>>,
}

#[derive(Deserialize)]
struct IdentityHead<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// Whether any rule may match a stored record, judged from its `eventName` and
/// `userIdentity.type` alone (a record whose head cannot be read this way may match).
pub fn may_match(rules: &[Arc<Rule>], bytes: &[u8]) -> bool {
    let Ok(head) = serde_json::from_slice::<Head>(bytes) else {
        return true;
    };
    let name = head.event_name.as_deref();
    let kind = head.user_identity.as_ref().and_then(|u| u.kind.as_deref());
    rules.iter().any(|r| r.prefilter.admits(name, kind))
}

/// The result of testing a rule on events.
#[derive(Debug, Default)]
pub struct TestOutcome {
    pub scanned: u64,
    pub matched: u64,
    pub alerts: Vec<Alert>,
    /// Whether the scan stopped at its limit before the end.
    pub truncated: bool,
}

/// Runs one rule over records in the order given (a fresh engine: thresholds count from
/// zero), keeping at most `max_alerts` alerts.
pub fn test_rule(
    rule: Rule,
    account: &str,
    records: impl IntoIterator<Item = impl Borrow<Value>>,
    max_alerts: usize,
) -> TestOutcome {
    let name = rule.spec.name.clone();
    let set: RuleSet = Arc::new(vec![Arc::new(rule)]);
    let mut engine = Engine::default();
    let mut out = TestOutcome::default();
    let mut alerts = Vec::new();
    for record in records {
        out.scanned += 1;
        engine.observe(account, record.borrow(), &set, &mut alerts);
        if alerts.len() > max_alerts {
            alerts.truncate(max_alerts);
            out.truncated = true;
        }
    }
    out.matched = engine
        .hits(account)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, h)| h.matched);
    out.alerts = alerts;
    out
}
