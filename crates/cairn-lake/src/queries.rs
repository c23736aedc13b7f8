//! The query lifecycle of StartQuery and its siblings: QUEUED, RUNNING, then FINISHED, FAILED,
//! CANCELLED or TIMED_OUT; at most ten queued or running per account; answers kept seven
//! days in `<lake>/queries/`; optional delivery of the answer as gzipped CSV to a bucket.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use cairn_bucket::Backend;

use crate::segments::Segments;
use crate::sql::{self, Answer, Limits, RunError};
use crate::stores::Registry;
use crate::{LakeError, io_err, write_atomic};

pub const MAX_CONCURRENT: usize = 10;
pub const KEEP_MS: i64 = 7 * 86_400_000;
/// Answers kept in memory (the rest are read back from disk when asked for).
const CACHED_ANSWERS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
    TimedOut,
}

impl QueryState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryState::Queued => "QUEUED",
            QueryState::Running => "RUNNING",
            QueryState::Finished => "FINISHED",
            QueryState::Failed => "FAILED",
            QueryState::Cancelled => "CANCELLED",
            QueryState::TimedOut => "TIMED_OUT",
        }
    }

    pub fn parse(s: &str) -> Option<QueryState> {
        [
            QueryState::Queued,
            QueryState::Running,
            QueryState::Finished,
            QueryState::Failed,
            QueryState::Cancelled,
            QueryState::TimedOut,
        ]
        .into_iter()
        .find(|q| q.as_str() == s)
    }

    pub fn is_done(self) -> bool {
        !matches!(self, QueryState::Queued | QueryState::Running)
    }
}

/// What DescribeQuery tells about a query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryInfo {
    pub id: String,
    pub account: String,
    pub statement: String,
    pub store_ids: Vec<String>,
    pub state: QueryState,
    pub created_ms: i64,
    pub error: Option<String>,
    pub events_matched: u64,
    pub events_scanned: u64,
    pub bytes_scanned: u64,
    pub execution_ms: u64,
    pub results: u64,
    pub delivery_uri: Option<String>,
    pub delivery_status: Option<String>,
}

/// One page of GetQueryResults.
#[derive(Debug, Clone)]
pub struct ResultsPage {
    pub info: QueryInfo,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub next: Option<usize>,
}

/// What StartQuery asks for.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub statement: String,
    pub delivery_uri: Option<String>,
}

struct Entry {
    info: Mutex<QueryInfo>,
    cancel: tokio::sync::Notify,
    answer: Mutex<Option<Arc<Answer>>>,
}

#[derive(Debug, Clone)]
pub struct QueryOptions {
    pub limits: Limits,
    /// A query running longer than this stops as TIMED_OUT.
    pub timeout: Duration,
    /// Queries that run at once (the rest wait, QUEUED).
    pub running: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            limits: Limits::default(),
            timeout: Duration::from_secs(3600),
            running: 2,
        }
    }
}

pub struct QueryManager {
    /// Queries run on threads of their own, so a heavy query never holds up the API.
    runtime: Option<tokio::runtime::Runtime>,
    dir: PathBuf,
    segments: Arc<Segments>,
    registry: Arc<Registry>,
    buckets: Option<Backend>,
    opts: QueryOptions,
    gate: Arc<tokio::sync::Semaphore>,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

fn not_found(id: &str) -> LakeError {
    LakeError::not_found(
        "QueryIdNotFoundException",
        format!("The query {id} was not found"),
    )
}

impl QueryManager {
    pub fn open(
        lake_dir: &std::path::Path,
        segments: Arc<Segments>,
        registry: Arc<Registry>,
        buckets: Option<Backend>,
        opts: QueryOptions,
    ) -> Result<Arc<QueryManager>, LakeError> {
        let dir = lake_dir.join("queries");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let now = cairn_event::now_ms();
        let mut entries = HashMap::new();
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".info.json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let Ok(mut info) = serde_json::from_slice::<QueryInfo>(&bytes) else {
                tracing::warn!(file = %p.display(), "skipping an unreadable query record");
                continue;
            };
            if now - info.created_ms > KEEP_MS {
                let _ = std::fs::remove_file(&p);
                let _ = std::fs::remove_file(dir.join(format!("{}.rows.json", info.id)));
                continue;
            }
            if !info.state.is_done() {
                info.state = QueryState::Failed;
                info.error = Some("Cairn stopped while the query was running; run it again".into());
            }
            entries.insert(
                info.id.clone(),
                Arc::new(Entry {
                    info: Mutex::new(info),
                    cancel: tokio::sync::Notify::new(),
                    answer: Mutex::new(None),
                }),
            );
        }
        let running = opts.running.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.limits.partitions.max(1))
            .thread_name("cairn-query")
            .enable_all()
            .build()
            .map_err(|e| LakeError::Io("query threads".into(), e))?;
        Ok(Arc::new(QueryManager {
            runtime: Some(runtime),
            dir,
            segments,
            registry,
            buckets,
            opts,
            gate: Arc::new(tokio::sync::Semaphore::new(running)),
            entries: Mutex::new(entries),
        }))
    }

    fn entry(&self, account: &str, id: &str) -> Result<Arc<Entry>, LakeError> {
        let e = self
            .entries
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(id))?;
        if e.info.lock().account != account {
            return Err(not_found(id));
        }
        Ok(e)
    }

    /// Checks, plans and queues a query. Errors in the statement come back here.
    pub async fn start(
        self: &Arc<Self>,
        account: &str,
        req: StartRequest,
    ) -> Result<QueryInfo, LakeError> {
        let now = cairn_event::now_ms();
        self.registry.ensure_default(account, now)?;
        let parsed = sql::parse(&req.statement)?;
        let mut stores = Vec::new();
        for id in &parsed.store_ids {
            stores.push(self.registry.get(account, id, now)?);
        }
        if let Some(uri) = &req.delivery_uri {
            self.check_delivery(account, uri).await?;
        }
        // Read your writes: every event acknowledged before this query is in what it reads.
        self.segments
            .catch_up_with_store(Duration::from_secs(2))
            .await;
        let ctx = sql::session(&self.segments, account, &stores, &self.opts.limits, now)?;
        let plan = sql::plan(&ctx, &parsed).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let info = QueryInfo {
            id: id.clone(),
            account: account.to_owned(),
            statement: req.statement.clone(),
            store_ids: parsed.store_ids.clone(),
            state: QueryState::Queued,
            created_ms: now,
            error: None,
            events_matched: 0,
            events_scanned: 0,
            bytes_scanned: 0,
            execution_ms: 0,
            results: 0,
            delivery_uri: req.delivery_uri.clone(),
            delivery_status: req.delivery_uri.as_ref().map(|_| "PENDING".to_owned()),
        };
        let entry = Arc::new(Entry {
            info: Mutex::new(info.clone()),
            cancel: tokio::sync::Notify::new(),
            answer: Mutex::new(None),
        });
        {
            let mut entries = self.entries.lock();
            let active = entries
                .values()
                .filter(|e| {
                    let i = e.info.lock();
                    i.account == account && !i.state.is_done()
                })
                .count();
            if active >= MAX_CONCURRENT {
                return Err(LakeError::Client {
                    code: "MaxConcurrentQueriesException",
                    status: 429,
                    message: format!(
                        "You already have {MAX_CONCURRENT} queries queued or running; wait for one to finish or cancel one"
                    ),
                });
            }
            entries.insert(id.clone(), entry.clone());
        }
        self.save_info(&info)?;
        let this = self.clone();
        let task = async move { this.execute(entry, ctx, plan).await };
        match &self.runtime {
            Some(rt) => {
                rt.spawn(task);
            }
            None => {
                tokio::spawn(task);
            }
        }
        Ok(info)
    }

    async fn execute(
        self: Arc<Self>,
        entry: Arc<Entry>,
        ctx: datafusion::prelude::SessionContext,
        plan: datafusion::logical_expr::LogicalPlan,
    ) {
        let gate = self.gate.clone();
        let permit = tokio::select! {
            p = gate.acquire_owned() => p.ok(),
            _ = entry.cancel.notified() => None,
        };
        if permit.is_none() {
            return; // cancelled while queued: CancelQuery has recorded it
        }
        {
            let mut i = entry.info.lock();
            if i.state.is_done() {
                return;
            }
            i.state = QueryState::Running;
        }
        let started = Instant::now();
        let limits = self.opts.limits.clone();
        let run = sql::run(&ctx, plan, &limits);
        let outcome = tokio::select! {
            r = tokio::time::timeout(self.opts.timeout, run) => Some(r),
            _ = entry.cancel.notified() => None,
        };
        drop(permit);
        let elapsed = started.elapsed().as_millis() as u64;
        let mut answer = None;
        if let Some(Ok(Ok(a))) = &outcome {
            // The answer is kept (on disk and in memory) before the state says FINISHED, so
            // GetQueryResults can read it the moment DescribeQuery shows it done.
            let id = entry.info.lock().id.clone();
            if let Err(e) = self.save_rows(&id, a) {
                tracing::error!(query = %id, error = %e, "cannot keep a query's results");
            }
        }
        let info = {
            let mut i = entry.info.lock();
            if i.state.is_done() {
                return; // cancelled
            }
            i.execution_ms = elapsed;
            match outcome {
                None => {
                    i.state = QueryState::Cancelled;
                }
                Some(Err(_)) => {
                    i.state = QueryState::TimedOut;
                    i.error = Some(format!(
                        "The query ran longer than {} s and was stopped; narrow the time range or filter more",
                        self.opts.timeout.as_secs()
                    ));
                }
                Some(Ok(Err(RunError::Failed(m)))) => {
                    i.state = QueryState::Failed;
                    i.error = Some(m);
                }
                Some(Ok(Err(RunError::Internal(m)))) => {
                    tracing::error!(query = %i.id, error = %m, "a query failed inside Cairn");
                    i.state = QueryState::Failed;
                    i.error = Some(format!("The query failed inside Cairn: {m}"));
                }
                Some(Ok(Ok(a))) => {
                    i.events_matched = a.events_matched;
                    i.events_scanned = a.events_scanned;
                    i.bytes_scanned = a.bytes_scanned;
                    i.results = a.rows.len() as u64;
                    let a = Arc::new(a);
                    *entry.answer.lock() = Some(a.clone());
                    answer = Some(a);
                    i.state = QueryState::Finished;
                }
            }
            if i.state != QueryState::Finished && i.delivery_uri.is_some() {
                i.delivery_status = Some("CANCELLED".into());
            }
            i.clone()
        };
        if answer.is_some() {
            self.trim();
        }
        if let Err(e) = self.save_info(&info) {
            tracing::error!(query = %info.id, error = %e, "cannot record a query");
        }
        if let (Some(a), Some(uri)) = (&answer, &info.delivery_uri) {
            let status = match self.deliver(&info, uri, a).await {
                Ok(()) => "SUCCESS",
                Err(e) => {
                    tracing::warn!(query = %info.id, error = %e, "cannot deliver a query's results");
                    "FAILED"
                }
            };
            let info = {
                let mut i = entry.info.lock();
                i.delivery_status = Some(status.into());
                i.clone()
            };
            if let Err(e) = self.save_info(&info) {
                tracing::error!(query = %info.id, error = %e, "cannot record a query");
            }
        }
    }

    /// Keeps the newest answers in memory only, and forgets queries older than 7 days.
    fn trim(&self) {
        let now = cairn_event::now_ms();
        let mut entries = self.entries.lock();
        let old: Vec<String> = entries
            .iter()
            .filter(|(_, e)| now - e.info.lock().created_ms > KEEP_MS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            entries.remove(&id);
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.info.json")));
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.rows.json")));
        }
        let mut cached: Vec<(i64, Arc<Entry>)> = entries
            .values()
            .filter(|e| e.answer.lock().is_some())
            .map(|e| (e.info.lock().created_ms, e.clone()))
            .collect();
        if cached.len() > CACHED_ANSWERS {
            cached.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
            for (_, e) in cached.iter().skip(CACHED_ANSWERS) {
                *e.answer.lock() = None;
            }
        }
    }

    fn save_info(&self, info: &QueryInfo) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec(info).map_err(|e| LakeError::Internal(e.to_string()))?;
        write_atomic(&self.dir.join(format!("{}.info.json", info.id)), &bytes)
    }

    fn save_rows(&self, id: &str, a: &Answer) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec(a).map_err(|e| LakeError::Internal(e.to_string()))?;
        write_atomic(&self.dir.join(format!("{id}.rows.json")), &bytes)
    }

    fn answer(&self, entry: &Entry, id: &str) -> Result<Arc<Answer>, LakeError> {
        if let Some(a) = entry.answer.lock().clone() {
            return Ok(a);
        }
        let path = self.dir.join(format!("{id}.rows.json"));
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let a: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| LakeError::Internal(format!("{} is damaged: {e}", path.display())))?;
        let a = Arc::new(a);
        *entry.answer.lock() = Some(a.clone());
        self.trim();
        Ok(a)
    }

    pub fn describe(&self, account: &str, id: &str) -> Result<QueryInfo, LakeError> {
        Ok(self.entry(account, id)?.info.lock().clone())
    }

    pub fn results(
        &self,
        account: &str,
        id: &str,
        from: usize,
        max: usize,
    ) -> Result<ResultsPage, LakeError> {
        let entry = self.entry(account, id)?;
        let info = entry.info.lock().clone();
        if info.state != QueryState::Finished {
            return Ok(ResultsPage {
                info,
                columns: Vec::new(),
                rows: Vec::new(),
                next: None,
            });
        }
        let a = self.answer(&entry, id)?;
        if from > a.rows.len() {
            return Err(LakeError::client(
                "InvalidNextTokenException",
                "The NextToken is not valid for this query",
            ));
        }
        let end = (from + max).min(a.rows.len());
        Ok(ResultsPage {
            info,
            columns: a.columns.clone(),
            rows: a.rows[from..end].to_vec(),
            next: (end < a.rows.len()).then_some(end),
        })
    }

    /// The account's queries of the last 7 days over store `store_id`, newest first.
    pub fn list(&self, account: &str, store_id: &str) -> Vec<QueryInfo> {
        let mut out = self.recent(account);
        out.retain(|i| i.store_ids.iter().any(|s| s == store_id));
        out
    }

    /// The account's queries of the last 7 days, newest first (for the console).
    pub fn recent(&self, account: &str) -> Vec<QueryInfo> {
        let now = cairn_event::now_ms();
        let mut out: Vec<QueryInfo> = self
            .entries
            .lock()
            .values()
            .map(|e| e.info.lock().clone())
            .filter(|i| i.account == account && now - i.created_ms <= KEEP_MS)
            .collect();
        out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        out
    }

    pub fn cancel(&self, account: &str, id: &str) -> Result<QueryInfo, LakeError> {
        let entry = self.entry(account, id)?;
        let info = {
            let mut i = entry.info.lock();
            if i.state.is_done() {
                return Err(LakeError::client(
                    "InactiveQueryException",
                    format!(
                        "The query {id} is {} and cannot be cancelled",
                        i.state.as_str()
                    ),
                ));
            }
            i.state = QueryState::Cancelled;
            if i.delivery_uri.is_some() {
                i.delivery_status = Some("CANCELLED".into());
            }
            i.clone()
        };
        entry.cancel.notify_one();
        self.save_info(&info)?;
        Ok(info)
    }

    async fn check_delivery(&self, account: &str, uri: &str) -> Result<(), LakeError> {
        let (bucket, _) = split_uri(uri)?;
        let Some(backend) = &self.buckets else {
            return Err(LakeError::client(
                "S3BucketDoesNotExistException",
                format!("The bucket {bucket} does not exist"),
            ));
        };
        let b = backend
            .bucket(&bucket)
            .map_err(|e| LakeError::client("InvalidS3BucketNameException", e.to_string()))?;
        let exists = b.exists().await.unwrap_or(false);
        if !exists {
            return Err(LakeError::client(
                "S3BucketDoesNotExistException",
                format!("The bucket {bucket} does not exist"),
            ));
        }
        if backend.is_folder()
            && let Ok(Some(owner)) = backend.folder_bucket_owner(&bucket)
            && owner != account
        {
            return Err(LakeError::client(
                "InsufficientS3BucketPolicyException",
                format!("The bucket {bucket} belongs to another account"),
            ));
        }
        Ok(())
    }

    /// Writes the answer as `result_1.csv.gz` under CloudTrail Lake's key layout.
    async fn deliver(&self, info: &QueryInfo, uri: &str, a: &Answer) -> Result<(), LakeError> {
        let (bucket, prefix) = split_uri(uri)?;
        let backend = self
            .buckets
            .as_ref()
            .ok_or_else(|| LakeError::Internal("no bucket storage".into()))?;
        let t = time::OffsetDateTime::from_unix_timestamp(info.created_ms / 1000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let key = format!(
            "{}AWSLogs/{}/CloudTrail-Lake/Query/{:04}/{:02}/{:02}/{}/result_1.csv.gz",
            if prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", prefix.trim_end_matches('/'))
            },
            info.account,
            t.year(),
            u8::from(t.month()),
            t.day(),
            info.id
        );
        let csv = to_csv(a);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let bytes = gz
            .write_all(csv.as_bytes())
            .and_then(|_| gz.finish())
            .map_err(|e| LakeError::Io("gzip".into(), e))?;
        let b = backend
            .bucket(&bucket)
            .map_err(|e| LakeError::Internal(e.to_string()))?;
        b.put(&key, bytes::Bytes::from(bytes), &[])
            .await
            .map_err(|e| LakeError::Internal(e.to_string()))
    }
}

impl Drop for QueryManager {
    fn drop(&mut self) {
        // (Dropped from inside the server's runtime: do not block on the queries' threads.)
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn split_uri(uri: &str) -> Result<(String, String), LakeError> {
    let Some(rest) = uri.strip_prefix("s3://") else {
        return Err(LakeError::client(
            "InvalidS3PrefixException",
            format!("DeliveryS3Uri must look like s3://bucket/prefix; '{uri}' does not"),
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !cairn_bucket::valid_bucket_name(bucket) {
        return Err(LakeError::client(
            "InvalidS3BucketNameException",
            format!("'{bucket}' is not a valid bucket name"),
        ));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// The answer as CSV with a header row (RFC 4180 quoting).
pub fn to_csv(a: &Answer) -> String {
    fn field(out: &mut String, v: &str) {
        if v.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&v.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    let mut out = String::new();
    for (i, c) in a.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, c);
    }
    out.push('\n');
    for r in &a.rows {
        for (i, v) in r.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, v.as_deref().unwrap_or(""));
        }
        out.push('\n');
    }
    out
}
