//! `cairn bench --trails`: how fast trail delivery writes events into log files, and how fast
//! `cairn import` loads those files into a server.
//!
//! 1. Generated events are stored in a fresh store in this process (not measured).
//! 2. A multi-region trail that logs everything is configured, and one delivery cycle turns
//!    the whole backlog into gzip log files in a folder bucket: events/s into trail files.
//! 3. A fresh `cairn serve` child imports that bucket folder with `cairn import`: events/s.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use cairn_bucket::Backend;
use cairn_store::{Store, StoreOptions};
use cairn_trail::delivery::{Delivery, DeliveryOptions};
use cairn_trail::keys::Keyring;
use cairn_trail::registry::Trails;
use cairn_trail::status::StatusBoard;

use crate::bench::{ACCOUNT, BenchArgs, KEY, Plan, SECRET, start_server};

fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            total += dir_size(&p);
        } else {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

fn count_records(dir: &std::path::Path) -> Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if p.is_dir() {
            n += count_records(&p)?;
        } else if p.to_string_lossy().contains("/CloudTrail/") {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(&p)?),
                &mut raw,
            )?;
            n += cairn_event::split_records(&raw)?.len();
        }
    }
    Ok(n)
}

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
    // A multi-region trail that logs everything, and delivery opened before the backlog is
    // stored, so its cursor starts at the beginning of the journal.
    let trail = cairn_trail::config::Trail {
        multi_region: true,
        log_file_validation: true,
        logging: true,
        start_logging_ms: Some(0),
        ..cairn_trail::config::Trail::new(ACCOUNT, "us-east-1", "bench", "bench-trail")
    };
    std::fs::create_dir_all(dir.join("trails"))?;
    std::fs::write(
        dir.join("trails/trails.json"),
        serde_json::to_vec(&[trail])?,
    )?;
    let backend = Backend::folder(dir);
    backend.create_folder_bucket("bench-trail")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let delivery = Delivery::open(
        dir,
        store.clone(),
        Arc::new(Trails::open(dir).map_err(anyhow::Error::msg)?),
        Arc::new(StatusBoard::default()),
        Arc::new(Keyring::open(
            dir,
            30 * 86_400_000,
            Arc::new(cairn_vault::MasterKey::ephemeral()?),
        )?),
        backend.clone(),
        DeliveryOptions::default(),
    )?;
    // 1. The backlog.
    let now = cairn_event::now_ms();
    crate::bench::store_backlog(&store, &plan, args.events, now)?;
    // 2. One delivery cycle over the whole backlog.
    let started = Instant::now();
    runtime.block_on(delivery.clone().tick(cairn_event::now_ms()))?;
    let secs = started.elapsed().as_secs_f64();
    let bucket_dir = dir.join("buckets/bench-trail");
    let gz_bytes = dir_size(&bucket_dir);
    let delivered = count_records(&bucket_dir)?;
    println!(
        "trail delivery: read {} stored events, wrote {delivered} (management events; the trail has default selectors) into log files in {secs:.2} s = {:.0} events/s read ({:.1} MiB of gzip files)",
        args.events,
        args.events as f64 / secs,
        gz_bytes as f64 / (1 << 20) as f64
    );
    drop(delivery);
    drop(runtime);

    // 3. Import the bucket folder into a fresh server.
    let import_dir = tempfile::tempdir()?;
    let (server, endpoint) = start_server(import_dir.path())?;
    let exe = std::env::current_exe()?;
    let state = import_dir.path().join("import-state");
    let started = Instant::now();
    let status = std::process::Command::new(exe)
        .args(["import", "--quiet", "--endpoint-url", &endpoint, "--state"])
        .arg(&state)
        .arg(&bucket_dir)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .status()
        .context("cannot run cairn import")?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "cairn import failed");
    println!(
        "cairn import: {delivered} events from {:.1} MiB of gzip log files in {secs:.2} s = {:.0} events/s",
        gz_bytes as f64 / (1 << 20) as f64,
        delivered as f64 / secs
    );
    drop(server);
    Ok(())
}
