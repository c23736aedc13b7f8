//! `cairn bench --sql`: CloudTrail Lake queries over generated events, Cairn against DuckDB
//! on the same Parquet files, side by side in one run.
//!
//! 1. Generated events are stored in a fresh store in this process, and the lake's segment
//!    writer turns them into Parquet segments (timed: events/s, bytes/event).
//! 2. Each query of a fixed set of realistic ones runs `--runs` times through Cairn's SQL path
//!    (parse, plan over the store's view, run, rows as text), and the same statement, with
//!    the table replaced by `read_parquet(...)` over the same files, runs `--runs` times in
//!    DuckDB (Python's `duckdb`, timed inside Python). Medians are reported with their ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use cairn_lake::segments::{Segments, SegmentsOptions};
use cairn_lake::sql::{self, Limits};
use cairn_lake::stores::Registry;
use cairn_store::{Store, StoreOptions};

use crate::bench::{ACCOUNT, BenchArgs, Plan};

fn time_literal(ms: i64) -> String {
    // '2026-11-21 13:51:00' as CloudTrail Lake writes it.
    cairn_event::format_event_time(ms)
        .replace('T', " ")
        .replace('Z', "")
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The DuckDB side: runs each statement `runs` times, prints one median (ms) per line.
const DUCKDB_SCRIPT: &str = r#"
import json, sys, time, statistics
import duckdb
spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET threads TO %d" % spec["threads"])
con.execute("SET enable_progress_bar = false")
for q in spec["queries"]:
    times = []
    rows = None
    for _ in range(spec["runs"]):
        t = time.perf_counter()
        rows = con.execute(q).fetchall()
        times.append((time.perf_counter() - t) * 1000.0)
    print(json.dumps({"median_ms": statistics.median(times), "rows": len(rows)}), flush=True)
"#;

pub fn run(args: &BenchArgs, plan: Arc<Plan>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let store = Arc::new(Store::open(
        dir,
        StoreOptions {
            retention_ms: None,
            ..StoreOptions::default()
        },
    )?);
    let now = cairn_event::now_ms();
    let started = Instant::now();
    crate::bench::store_backlog(&store, &plan, args.events, now)?;
    println!(
        "stored {} events in {:.1} s (not part of the measure)",
        args.events,
        started.elapsed().as_secs_f64()
    );
    let lake_dir = dir.join("lake");
    std::fs::create_dir_all(&lake_dir)?;
    let registry = Arc::new(Registry::open(&lake_dir, "us-east-1")?);
    registry.ensure_default(ACCOUNT, now)?;
    let segments = Segments::open(
        &lake_dir,
        store.clone(),
        registry.clone(),
        SegmentsOptions {
            flush_rows: 1_000_000,
            compact_idle_ms: 0,
            // Replaced files go at once, so DuckDB's glob does not read them too.
            grace_ms: 0,
            ..SegmentsOptions::default()
        },
    )?;
    let started = Instant::now();
    loop {
        let caught_up = segments.step(now)?;
        if segments.due(now) || caught_up {
            segments.flush(now)?;
        }
        if caught_up {
            break;
        }
    }
    let write_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let merged = segments.compact(now)?;
    segments.retention(now)?;
    let compact_secs = started.elapsed().as_secs_f64();
    let stats = segments.stats();
    println!(
        "lake segments: {} events into {} Parquet files in {write_secs:.1} s = {:.0} events/s; {merged} partitions merged in {compact_secs:.1} s; {:.0} bytes/event ({:.1} MiB)",
        stats.rows,
        stats.files,
        stats.rows as f64 / write_secs,
        stats.bytes as f64 / stats.rows.max(1) as f64,
        stats.bytes as f64 / 1048576.0
    );
    if stats.rows != args.events as u64 {
        bail!(
            "the segments hold {} events, not {}",
            stats.rows,
            args.events
        );
    }

    let id = cairn_lake::stores::default_id(ACCOUNT);
    // The generator spreads events over the `--days` before now.
    let end = now;
    let week = time_literal(end - 7 * 86_400_000);
    let w0 = time_literal(end - 3 * 86_400_000);
    let w1 = time_literal(end - 2 * 86_400_000);
    let queries = [
        (
            "top event names per user, last 7 days",
            format!(
                "SELECT useridentity.username, eventname, count(*) AS n FROM {id} WHERE eventtime >= '{week}' GROUP BY useridentity.username, eventname ORDER BY n DESC, eventname, useridentity.username LIMIT 20"
            ),
        ),
        (
            "failed calls by source IP",
            format!(
                "SELECT sourceipaddress, count(*) AS n FROM {id} WHERE errorcode IS NOT NULL GROUP BY sourceipaddress ORDER BY n DESC, sourceipaddress LIMIT 20"
            ),
        ),
        (
            "one user's activity in a time window",
            format!(
                "SELECT eventtime, eventname, eventsource, sourceipaddress FROM {id} WHERE useridentity.username = 'user-0001' AND eventtime BETWEEN '{w0}' AND '{w1}' ORDER BY eventtime"
            ),
        ),
        (
            "distinct regions per access key",
            format!(
                "SELECT useridentity.accesskeyid, count(DISTINCT awsregion) AS regions FROM {id} GROUP BY useridentity.accesskeyid ORDER BY regions DESC, useridentity.accesskeyid LIMIT 20"
            ),
        ),
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let limits = Limits::default();
    let stores = vec![registry.get(ACCOUNT, &id, now)?];
    let mut cairn_ms = Vec::new();
    let mut cairn_rows = Vec::new();
    for (_, q) in &queries {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let parsed = sql::parse(q)?;
            let answer = runtime.block_on(async {
                let ctx = sql::session(&segments, ACCOUNT, &stores, &limits, now)?;
                let plan = sql::plan(&ctx, &parsed).await?;
                sql::run(&ctx, plan, &limits)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
            })?;
            times.push(t.elapsed());
            rows = answer.rows.len();
        }
        cairn_ms.push(median(times));
        cairn_rows.push(rows);
    }

    let glob = format!(
        "read_parquet('{}/events/account={ACCOUNT}/*/*/*.parquet', hive_partitioning = false)",
        lake_dir.display()
    );
    let duck = duckdb(
        args,
        &queries
            .iter()
            .map(|(_, q)| q.replace(&id, &glob))
            .collect::<Vec<_>>(),
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "query",
        "rows",
        "Cairn median ms",
        "DuckDB median ms",
        "Cairn / DuckDB",
    ]);
    for (k, (name, _)) in queries.iter().enumerate() {
        let (d, ratio) = match &duck {
            Ok(d) => match d.get(k) {
                Some((ms, rows)) => {
                    if *rows != cairn_rows[k] {
                        println!(
                            "note: {name}: DuckDB returned {rows} rows, Cairn {}",
                            cairn_rows[k]
                        );
                    }
                    (
                        format!("{ms:.1}"),
                        format!("{:.2}", cairn_ms[k] / ms.max(0.001)),
                    )
                }
                None => ("-".into(), "-".into()),
            },
            Err(_) => ("-".into(), "-".into()),
        };
        t.add_row([
            name.to_string(),
            cairn_rows[k].to_string(),
            format!("{:.1}", cairn_ms[k]),
            d,
            ratio,
        ]);
    }
    println!(
        "SQL over {} events ({} runs each, medians, {} threads for both):\n{t}",
        args.events,
        args.runs.max(1),
        limits.partitions
    );
    if let Err(e) = duck {
        println!("DuckDB was not measured: {e:#}");
    }
    Ok(())
}

fn duckdb(args: &BenchArgs, statements: &[String]) -> Result<Vec<(f64, usize)>> {
    use std::io::Write;
    let python = args.python.clone().unwrap_or_else(|| {
        let venv = std::path::PathBuf::from(".venv/bin/python");
        if venv.exists() {
            venv
        } else {
            "python3".into()
        }
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spec =
        serde_json::json!({"queries": statements, "runs": args.runs.max(1), "threads": threads});
    let mut child = std::process::Command::new(&python)
        .args(["-c", DUCKDB_SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} (set --python to a Python with duckdb)",
                python.display()
            )
        })?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(spec.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "DuckDB failed (is `duckdb` installed for {}?)",
            python.display()
        );
    }
    let mut res = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
    {
        let v: serde_json::Value = serde_json::from_str(line)?;
        res.push((
            v["median_ms"].as_f64().unwrap_or(0.0),
            v["rows"].as_u64().unwrap_or(0) as usize,
        ));
    }
    Ok(res)
}
