//! SQL over event data stores: CloudTrail Lake's dialect (the table is the store's id, column
//! names in any case, Presto functions) planned and run by DataFusion over the segments.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::provider_as_source;
use datafusion::datasource::{TableType, ViewTable};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, LogicalPlanBuilder, Operator, TableProviderFilterPushDown,
};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext, col, lit};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Ident, SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;

use crate::LakeError;
use crate::convert::{self, EVENT_TIME, INGESTION_TIME, STORES};
use crate::functions::timestamp_ms;
use crate::segments::Segments;
use crate::stores::{EventDataStore, StoreStatus, inactive};

pub const MAX_STATEMENT: usize = 10_000;
const DAY_MS: i64 = 86_400_000;

fn invalid(message: impl Into<String>) -> LakeError {
    LakeError::client("InvalidQueryStatementException", message)
}

/// Whether `s` looks like an event data store id: five groups of letters and digits joined
/// by dashes, 36 characters in all (a UUID, or the documentation's `EXAMPLE-...` ids).
fn looks_like_id(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    (35..=36).contains(&s.len())
        && groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .enumerate()
            .all(|(i, (g, n))| {
                // (The documentation's ids have a 7-letter first group.)
                (g.len() == n || (i == 0 && g.len() == 7))
                    && g.bytes().all(|b| b.is_ascii_alphanumeric())
            })
}

/// The id an ARN of an event data store names.
fn id_in_arn(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("arn:")?;
    let (_, id) = rest.split_once(":eventdatastore/")?;
    looks_like_id(id).then_some(id)
}

/// Rewrites bare store ids and ARNs (not valid SQL identifiers) as quoted identifiers, and
/// returns the ids named. Text in quotes and comments is left alone.
pub fn rewrite_ids(sql: &str) -> (String, Vec<String>) {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut ids = Vec::new();
    let mut i = 0;
    let note = |id: &str, ids: &mut Vec<String>| {
        let id = id.to_ascii_lowercase();
        if !ids.contains(&id) {
            ids.push(id.clone());
        }
        id
    };
    while i < b.len() {
        let c = b[i];
        if c == b'\'' {
            let start = i;
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push_str(&sql[start..i.min(b.len())]);
        } else if c == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            let inner = &sql[start + 1..i.min(b.len())];
            i = (i + 1).min(b.len());
            if looks_like_id(inner) {
                let id = note(inner, &mut ids);
                out.push_str(&format!("\"{id}\""));
            } else if let Some(id) = id_in_arn(inner) {
                let id = note(id, &mut ids);
                out.push_str(&format!("\"{id}\""));
            } else {
                out.push_str(&sql[start..i]);
            }
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            let start = i;
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            out.push_str(&sql[start..i]);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let start = i;
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(b.len());
            out.push_str(&sql[start..i]);
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            let arn = sql[i..].starts_with("arn:");
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'_'
                    || b[i] == b'-'
                    || (arn && matches!(b[i], b':' | b'/' | b'.')))
            {
                i += 1;
            }
            let word = &sql[start..i];
            if looks_like_id(word) {
                let id = note(word, &mut ids);
                out.push_str(&format!("\"{id}\""));
            } else if let Some(id) = id_in_arn(word) {
                let id = note(id, &mut ids);
                out.push_str(&format!("\"{id}\""));
            } else {
                out.push_str(word);
            }
        } else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    (out, ids)
}

/// A statement that passed the checks: one SELECT, and the stores it names.
pub struct Parsed {
    pub statement: Statement,
    pub store_ids: Vec<String>,
}

/// Parses a query statement, refusing anything but one SELECT.
pub fn parse(sql: &str) -> Result<Parsed, LakeError> {
    if sql.trim().is_empty() {
        return Err(invalid("The query statement is empty"));
    }
    if sql.len() > MAX_STATEMENT {
        return Err(invalid(format!(
            "The query statement has {} characters; at most {MAX_STATEMENT} are allowed",
            sql.len()
        )));
    }
    let (text, ids) = rewrite_ids(sql);
    let mut statements = DFParser::parse_sql_with_dialect(&text, &GenericDialect {})
        .map_err(|e| invalid(syntax_message(&e)))?;
    if statements.len() != 1 {
        return Err(invalid(format!(
            "Give exactly one statement; this text has {}",
            statements.len()
        )));
    }
    let Some(DFStatement::Statement(st)) = statements.pop_front() else {
        return Err(invalid("Only SELECT statements are allowed"));
    };
    let mut statement = *st;
    match &mut statement {
        Statement::Query(q) => name_columns(&mut q.body),
        other => {
            let kind = other.to_string();
            let first = kind
                .split_whitespace()
                .next()
                .unwrap_or("this")
                .to_uppercase();
            return Err(invalid(format!(
                "Only SELECT statements are allowed; {first} statements are not"
            )));
        }
    }
    if ids.is_empty() {
        return Err(invalid(
            "The query names no event data store: write FROM followed by an event data store ID (see ListEventDataStores)",
        ));
    }
    Ok(Parsed {
        statement,
        store_ids: ids,
    })
}

fn syntax_message(e: &DataFusionError) -> String {
    let s = e.to_string();
    let s = s
        .strip_prefix("SQL error: ParserError(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .map(str::to_owned)
        .unwrap_or(s);
    format!("The query statement is not valid SQL: {s}")
}

/// Names the result columns as CloudTrail Lake does: a column keeps the spelling the query
/// gave it (`eventID`, not `eventid`), a nested field its last part, anything else
/// `_col<n>` (from 0).
fn name_columns(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for (n, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(e) = item {
                    let alias = match e {
                        SqlExpr::Identifier(id) => id.value.clone(),
                        SqlExpr::CompoundIdentifier(parts) => match parts.last() {
                            Some(p) => p.value.clone(),
                            None => format!("_col{n}"),
                        },
                        _ => format!("_col{n}"),
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', alias),
                    };
                }
            }
        }
        SetExpr::SetOperation { left, .. } => name_columns(left),
        SetExpr::Query(q) => name_columns(&mut q.body),
        _ => {}
    }
}

/// Limits on one query's run.
#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_bytes: usize,
    pub max_rows: usize,
    pub partitions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            max_rows: 1_000_000,
            partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A session able to plan a query over the given stores of one account.
pub fn session(
    segments: &Arc<Segments>,
    account: &str,
    stores: &[EventDataStore],
    limits: &Limits,
    now: i64,
) -> Result<SessionContext, LakeError> {
    let mut config = SessionConfig::new()
        .with_target_partitions(limits.partitions)
        .with_information_schema(false)
        .with_extension(Arc::new(HotRows::default()));
    let opts = config.options_mut();
    // Filters evaluated while decoding (late materialisation) measured slower on the
    // benchmark's queries; `CAIRN_SQL_PUSHDOWN=1` turns it on, for comparison.
    let pushdown = std::env::var("CAIRN_SQL_PUSHDOWN").is_ok_and(|v| v == "1");
    opts.execution.parquet.pushdown_filters = pushdown;
    opts.execution.parquet.reorder_filters = pushdown;
    opts.sql_parser.enable_ident_normalization = true;
    let runtime = RuntimeEnvBuilder::new()
        .with_cache_manager(
            datafusion::execution::cache::cache_manager::CacheManagerConfig::default()
                .with_file_metadata_cache(Some(metadata_cache())),
        )
        .with_memory_limit(limits.memory_bytes, 1.0)
        .build_arc()
        .map_err(df_internal)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::functions::register(&ctx);
    let base = Arc::new(AccountTable {
        account: account.to_owned(),
        segments: segments.clone(),
    });
    for s in stores {
        if s.status == StoreStatus::PendingDeletion {
            return Err(inactive(s));
        }
        let view = store_view(&base, s, now)?;
        ctx.register_table(format!("\"{}\"", s.id).as_str(), Arc::new(view))
            .map_err(df_internal)?;
    }
    Ok(ctx)
}

/// Parquet footers, shared by every query (each query has its own memory pool, but reading
/// the same files' metadata again would cost more than the query on small files).
fn metadata_cache() -> Arc<datafusion::execution::cache::cache_manager::FileMetadataCache> {
    use datafusion::execution::cache::cache_manager::FileMetadataCache;
    use datafusion::execution::cache::default_cache::DefaultCache;
    static CACHE: std::sync::OnceLock<Arc<FileMetadataCache>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| Arc::new(DefaultCache::new(128 << 20).with_name("CairnParquetFooters")))
        .clone()
}

fn df_internal(e: DataFusionError) -> LakeError {
    LakeError::Internal(e.to_string())
}

fn ts(ms: i64) -> Expr {
    lit(ScalarValue::TimestampMillisecond(Some(ms), None))
}

/// A store as a view over its account's events: its retention, its ingestion periods and,
/// for stores other than the default, the events its selectors chose.
fn store_view(
    base: &Arc<AccountTable>,
    s: &EventDataStore,
    now: i64,
) -> Result<ViewTable, LakeError> {
    let mut pred = col(EVENT_TIME).gt_eq(ts(now - i64::from(s.retention_days) * DAY_MS));
    if !s.default {
        pred = pred.and(datafusion::functions_nested::expr_fn::array_has(
            col(STORES),
            lit(s.id.clone()),
        ));
    }
    if !s.ingested_always() {
        let windows = s
            .ingesting
            .iter()
            .map(|(a, b)| {
                let lo = col(INGESTION_TIME).gt_eq(ts(*a));
                match b {
                    Some(b) => lo.and(col(INGESTION_TIME).lt(ts(*b))),
                    None => lo,
                }
            })
            .reduce(Expr::or)
            .unwrap_or(lit(false));
        pred = pred.and(windows);
    }
    let mut columns: Vec<Expr> = Vec::new();
    for f in convert::sql_schema().fields() {
        columns.push(col(f.name().as_str()));
        if f.name() == "eventjson" {
            columns.push(crate::functions::checksum(col("eventjson")).alias("eventjsonchecksum"));
        }
    }
    let plan = LogicalPlanBuilder::scan(
        format!("cairn_account_{}", base.account),
        provider_as_source(base.clone()),
        None,
    )
    .and_then(|b| b.filter(pred))
    .and_then(|b| b.project(columns))
    .and_then(|b| b.build())
    .map_err(df_internal)?;
    Ok(ViewTable::new(plan, None))
}

/// Events a query read from the hot set (memory scans keep no metrics of their own).
#[derive(Debug, Default)]
struct HotRows(std::sync::atomic::AtomicU64);

/// Every event of one account: its segment files and its hot set.
#[derive(Debug)]
struct AccountTable {
    account: String,
    segments: Arc<Segments>,
}

/// The event-time range `filters` allow, as far as they say.
fn time_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    fn is_time(e: &Expr) -> bool {
        matches!(e, Expr::Column(c) if c.name == EVENT_TIME)
    }
    fn visit(e: &Expr, lo: &mut Option<i64>, hi: &mut Option<i64>) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    visit(left, lo, hi);
                    visit(right, lo, hi);
                    return;
                }
                let (op, v) = match (left.as_ref(), right.as_ref()) {
                    (l, Expr::Literal(v, _)) if is_time(l) => (*op, v),
                    (Expr::Literal(v, _), r) if is_time(r) => match op.swap() {
                        Some(o) => (o, v),
                        None => return,
                    },
                    _ => return,
                };
                let Some(ms) = timestamp_ms(v) else { return };
                match op {
                    Operator::Gt | Operator::GtEq => *lo = Some(lo.map_or(ms, |l| l.max(ms))),
                    Operator::Lt | Operator::LtEq => *hi = Some(hi.map_or(ms, |h| h.min(ms))),
                    Operator::Eq => {
                        *lo = Some(lo.map_or(ms, |l| l.max(ms)));
                        *hi = Some(hi.map_or(ms, |h| h.min(ms)));
                    }
                    _ => {}
                }
            }
            Expr::Between(b) if !b.negated && is_time(&b.expr) => {
                if let (Expr::Literal(a, _), Expr::Literal(z, _)) =
                    (b.low.as_ref(), b.high.as_ref())
                {
                    if let Some(a) = timestamp_ms(a) {
                        *lo = Some(lo.map_or(a, |l| l.max(a)));
                    }
                    if let Some(z) = timestamp_ms(z) {
                        *hi = Some(hi.map_or(z, |h| h.min(z)));
                    }
                }
            }
            _ => {}
        }
    }
    for f in filters {
        visit(f, &mut lo, &mut hi);
    }
    (lo, hi)
}

#[async_trait]
impl TableProvider for AccountTable {
    fn schema(&self) -> SchemaRef {
        convert::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let (lo, hi) = time_bounds(filters);
        let snap = self.segments.snapshot(&self.account, lo, hi);
        let schema = convert::schema();
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !snap.files.is_empty() {
            let n = state.config().target_partitions().max(1);
            let mut groups: Vec<(u64, Vec<PartitionedFile>)> =
                (0..n).map(|_| (0, Vec::new())).collect();
            let mut files = snap.files;
            files.sort_by_key(|f| std::cmp::Reverse(f.bytes));
            for f in files {
                let path = self.segments.dir().join(&f.path);
                let path = path.to_string_lossy();
                let file = PartitionedFile::new(path.trim_start_matches('/').to_owned(), f.bytes);
                if let Some(g) = groups.iter_mut().min_by_key(|g| g.0) {
                    g.0 += f.bytes;
                    g.1.push(file);
                }
            }
            let groups: Vec<FileGroup> = groups
                .into_iter()
                .filter(|g| !g.1.is_empty())
                .map(|g| FileGroup::new(g.1))
                .collect();
            let format =
                ParquetFormat::default().with_options(state.table_options().parquet.clone());
            let source = format.file_source(schema.clone().into());
            let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            plans.push(format.create_physical_plan(state, config).await?);
        }
        if !snap.hot.is_empty() {
            if let Some(h) = state.config().get_extension::<HotRows>() {
                let n: usize = snap.hot.iter().map(RecordBatch::num_rows).sum();
                h.0.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
            plans.push(MemorySourceConfig::try_new_exec(
                &[snap.hot],
                schema.clone(),
                projection.cloned(),
            )?);
        }
        if plans.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(plans)
    }
}

/// Plans a parsed statement in `ctx`; an error is the user's (InvalidQueryStatement).
pub async fn plan(ctx: &SessionContext, parsed: &Parsed) -> Result<LogicalPlan, LakeError> {
    let st = DFStatement::Statement(Box::new(parsed.statement.clone()));
    let plan = ctx
        .state()
        .statement_to_plan(st)
        .await
        .map_err(|e| invalid(plan_message(&e)))?;
    ctx.state()
        .optimize(&plan)
        .map_err(|e| invalid(plan_message(&e)))
}

fn plan_message(e: &DataFusionError) -> String {
    let s = e.to_string();
    let s = s
        .strip_prefix("Error during planning: ")
        .or_else(|| s.strip_prefix("Schema error: "))
        .unwrap_or(&s)
        .replace("cairn_account_", "account ");
    format!("The query statement cannot run: {s}")
}

/// A finished query's answer.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub events_scanned: u64,
    pub events_matched: u64,
    pub bytes_scanned: u64,
}

/// Why a run stopped without an answer.
#[derive(Debug)]
pub enum RunError {
    /// The user's to fix: too much memory, too many rows, a function failing on data.
    Failed(String),
    Internal(String),
}

fn run_error(e: DataFusionError) -> RunError {
    match e {
        DataFusionError::ResourcesExhausted(m) => RunError::Failed(format!(
            "The query needed more memory than a query may use; narrow the time range, filter more, or aggregate ({m})"
        )),
        DataFusionError::Execution(m) => RunError::Failed(m),
        DataFusionError::ArrowError(e, _) => RunError::Failed(e.to_string()),
        DataFusionError::Context(c, inner) => match run_error(*inner) {
            RunError::Failed(m) => RunError::Failed(format!("{c}: {m}")),
            other => other,
        },
        other => RunError::Internal(other.to_string()),
    }
}

/// Runs a planned query and collects its rows as text.
pub async fn run(
    ctx: &SessionContext,
    plan: LogicalPlan,
    limits: &Limits,
) -> Result<Answer, RunError> {
    let physical = ctx
        .state()
        .create_physical_plan(&plan)
        .await
        .map_err(run_error)?;
    let schema = physical.schema();
    let mut stream = execute_stream(physical.clone(), ctx.task_ctx()).map_err(run_error)?;
    let opts = FormatOptions::default()
        .with_null("")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f %Z"));
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(run_error)?;
        if rows.len() + batch.num_rows() > limits.max_rows {
            return Err(RunError::Failed(format!(
                "The result has more than {} rows; add a LIMIT, filter more, or aggregate",
                limits.max_rows
            )));
        }
        text_rows(&batch, &opts, &mut rows).map_err(|e| RunError::Internal(e.to_string()))?;
    }
    let (mut scanned, mut matched, bytes, unfiltered) = plan_counts(&physical);
    if let Some(h) = ctx.state().config().get_extension::<HotRows>() {
        let hot = h.0.load(std::sync::atomic::Ordering::Relaxed);
        scanned += hot;
        if unfiltered {
            matched += hot;
        }
    }
    Ok(Answer {
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        rows,
        events_scanned: scanned,
        events_matched: matched.min(scanned),
        bytes_scanned: bytes,
    })
}

fn text_rows(
    batch: &RecordBatch,
    opts: &FormatOptions,
    rows: &mut Vec<Vec<Option<String>>>,
) -> Result<(), arrow::error::ArrowError> {
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect::<Result<_, _>>()?;
    for r in 0..batch.num_rows() {
        let row = batch
            .columns()
            .iter()
            .zip(&formatters)
            .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
            .collect();
        rows.push(row);
    }
    Ok(())
}

/// Events scanned (rows read from segments and the hot set), events matched (rows that
/// passed the first filter above a scan) and bytes read, from the plan's metrics; and
/// whether no filter was above the scans.
fn plan_counts(plan: &Arc<dyn ExecutionPlan>) -> (u64, u64, u64, bool) {
    fn is_scan(p: &Arc<dyn ExecutionPlan>) -> bool {
        p.name() == "DataSourceExec"
    }
    fn walk(
        p: &Arc<dyn ExecutionPlan>,
        scanned: &mut u64,
        matched: &mut u64,
        bytes: &mut u64,
    ) -> bool {
        // Returns whether an unfiltered scan is below `p` (its rows count as matched by
        // the first filter above, or by the caller).
        if is_scan(p) {
            if let Some(m) = p.metrics() {
                *scanned += m.output_rows().unwrap_or(0) as u64;
                *bytes += m.sum_by_name("bytes_scanned").map_or(0, |v| v.as_usize()) as u64;
            }
            return true;
        }
        let mut below = false;
        for c in p.children() {
            below |= walk(c, scanned, matched, bytes);
        }
        if below && p.name() == "FilterExec" {
            if let Some(m) = p.metrics() {
                *matched += m.output_rows().unwrap_or(0) as u64;
            }
            return false;
        }
        below
    }
    let (mut s, mut m, mut b) = (0, 0, 0);
    let unfiltered = walk(plan, &mut s, &mut m, &mut b);
    if unfiltered {
        m = s;
    }
    (s, m, b, unfiltered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_quoted_identifiers() {
        let (s, ids) = rewrite_ids(
            "SELECT eventID FROM EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE WHERE x = 'EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE' -- 0b3c1c2d-1111-2222-3333-444455556666",
        );
        assert_eq!(
            s,
            "SELECT eventID FROM \"example-f852-4e8f-8bd1-bcf6cexample\" WHERE x = 'EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE' -- 0b3c1c2d-1111-2222-3333-444455556666"
        );
        assert_eq!(ids, vec!["example-f852-4e8f-8bd1-bcf6cexample"]);
        let (s, ids) = rewrite_ids(
            "select 1 from arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/0b3c1c2d-1111-2222-3333-444455556666 a, x-1",
        );
        assert_eq!(
            s,
            "select 1 from \"0b3c1c2d-1111-2222-3333-444455556666\" a, x-1"
        );
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn only_select() {
        let id = "0b3c1c2d-1111-2222-3333-444455556666";
        assert!(parse(&format!("SELECT eventname FROM {id}")).is_ok());
        for bad in [
            format!("DELETE FROM {id}"),
            format!("DROP TABLE {id}"),
            format!("SELECT 1 FROM {id}; SELECT 2 FROM {id}"),
            "SELECT 1".to_owned(),
            format!("SELECT * FROM {id} WHERE"),
            String::new(),
        ] {
            let e = parse(&bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"));
            assert!(
                matches!(
                    e,
                    LakeError::Client {
                        code: "InvalidQueryStatementException",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn rewriting_never_panics(s in ".{0,200}") {
            let _ = rewrite_ids(&s);
            let _ = parse(&s);
        }
    }
}
