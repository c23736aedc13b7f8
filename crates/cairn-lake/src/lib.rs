//! CloudTrail Lake on Cairn: event data stores, the Parquet segments that hold every
//! account's events (one folder per account, date and hour, Hive-style), and SQL queries over
//! them with DataFusion, with CloudTrail Lake's query lifecycle.
//!
//! The segments are derived from the journal: a consumer with a durable cursor reads new
//! events, keeps the newest in memory (the hot set, queried with the files), and writes them
//! out as Parquet files sorted by event time. An event data store is a view over its
//! account's segments: the default store sees every event of the account; any other store
//! sees the events that arrived while it was ingesting and that its selectors chose (the
//! choice is made once, when the event is converted, and kept in a hidden column).

pub mod convert;
pub mod functions;
pub mod queries;
pub mod segments;
pub mod sql;
pub mod stores;

pub use queries::{QueryInfo, QueryManager, QueryOptions, QueryState, ResultsPage, StartRequest};
pub use segments::{Segments, SegmentsOptions};
pub use stores::{EventDataStore, Registry, StoreStatus};

/// What can go wrong. `Client` errors carry the CloudTrail error code the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{message}")]
    Client {
        code: &'static str,
        status: u16,
        message: String,
    },
    #[error("cannot convert a record: {0}")]
    Convert(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("Parquet: {0}")]
    Parquet(String),
    #[error("the store: {0}")]
    Store(#[from] cairn_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

impl LakeError {
    pub fn client(code: &'static str, message: impl Into<String>) -> LakeError {
        LakeError::Client {
            code,
            status: 400,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> LakeError {
        LakeError::Client {
            code,
            status: 404,
            message: message.into(),
        }
    }
}

pub(crate) fn io_err(what: &std::path::Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |e| LakeError::Io(what.display().to_string(), e)
}

/// Writes `bytes` to `path` atomically: a temporary file, synced, renamed over it, and the
/// folder synced.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), LakeError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_parent(path)
}

pub(crate) fn sync_parent(path: &std::path::Path) -> Result<(), LakeError> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Everything of the lake a server holds: the store registry, the segments and the queries.
pub struct Lake {
    pub registry: std::sync::Arc<Registry>,
    pub segments: std::sync::Arc<Segments>,
    pub queries: std::sync::Arc<QueryManager>,
}

impl Lake {
    /// Opens (or starts) the lake in `<data-dir>/lake`.
    pub fn open(
        data_dir: &std::path::Path,
        region: &str,
        store: std::sync::Arc<cairn_store::Store>,
        buckets: Option<cairn_bucket::Backend>,
        segments: SegmentsOptions,
        queries: queries::QueryOptions,
    ) -> Result<Lake, LakeError> {
        let dir = data_dir.join("lake");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let registry = std::sync::Arc::new(Registry::open(&dir, region)?);
        let segments = Segments::open(&dir, store, registry.clone(), segments)?;
        let queries =
            QueryManager::open(&dir, segments.clone(), registry.clone(), buckets, queries)?;
        Ok(Lake {
            registry,
            segments,
            queries,
        })
    }
}
