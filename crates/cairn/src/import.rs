//! `cairn import`: load CloudTrail log files through the server.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use cairn_client::{Client, ClientArgs, parse_response};

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Files or folders (searched recursively for .json, .json.gz, .jsonl, .ndjson).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Records per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn wanted(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    [
        ".json",
        ".json.gz",
        ".jsonl",
        ".jsonl.gz",
        ".ndjson",
        ".ndjson.gz",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || wanted(&e) {
                collect(&e, out)?;
            }
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

#[derive(Default)]
struct Summary {
    files: usize,
    read: usize,
    stored: usize,
    duplicates: usize,
    rejected: usize,
    reasons: BTreeMap<String, usize>,
    examples: Vec<String>,
}

struct Pending {
    body: Vec<u8>,
    origins: Vec<(usize, usize)>,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files)?;
    }
    if files.is_empty() {
        bail!("no CloudTrail log files found under the given paths");
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = Summary::default();
    let mut pending = Pending {
        body: Vec::new(),
        origins: Vec::new(),
    };
    let batch = args.batch.clamp(1, 10_000);
    for (file_no, file) in files.iter().enumerate() {
        let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let size = raw.len() as u64;
        let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            if let Err(e) = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out) {
                note(
                    &mut summary,
                    file,
                    None,
                    "InvalidData",
                    &format!("not valid gzip: {e}"),
                );
                bar.inc(size);
                continue;
            }
            out
        } else {
            raw
        };
        summary.files += 1;
        match cairn_event::split_records(&bytes) {
            Err(e) => note(&mut summary, file, None, "InvalidData", &e.to_string()),
            Ok(parts) => {
                for (i, rec) in parts.into_iter().enumerate() {
                    summary.read += 1;
                    pending.body.extend_from_slice(&cairn_event::minify(rec));
                    pending.body.push(b'\n');
                    pending.origins.push((file_no, i));
                    if pending.origins.len() >= batch || pending.body.len() >= 8 << 20 {
                        send(&client, &mut pending, &files, &mut summary)?;
                    }
                }
            }
        }
        bar.inc(size);
        bar.set_message(format!("{} stored", summary.stored));
    }
    send(&client, &mut pending, &files, &mut summary)?;
    bar.finish_and_clear();
    println!(
        "Imported {} files from {}: {} records read, {} stored, {} duplicates, {} rejected.",
        summary.files,
        client.endpoint(),
        summary.read,
        summary.stored,
        summary.duplicates,
        summary.rejected
    );
    if summary.rejected > 0 {
        println!("Rejected, by reason:");
        for (reason, n) in &summary.reasons {
            println!("  {n:>8}  {reason}");
        }
        println!("First rejections:");
        for e in &summary.examples {
            println!("  {e}");
        }
    }
    Ok(())
}

fn note(s: &mut Summary, file: &Path, record: Option<usize>, code: &str, msg: &str) {
    s.rejected += 1;
    *s.reasons.entry(format!("{code}: {msg}")).or_default() += 1;
    if s.examples.len() < 20 {
        let at = match record {
            Some(i) => format!("{} record {}", file.display(), i + 1),
            None => file.display().to_string(),
        };
        s.examples.push(format!("{at}: {code}: {msg}"));
    }
}

fn send(client: &Client, pending: &mut Pending, files: &[PathBuf], s: &mut Summary) -> Result<()> {
    if pending.origins.is_empty() {
        return Ok(());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&pending.body)?;
    let body = gz.finish()?;
    let mut delay = Duration::from_millis(100);
    let resp = loop {
        let (status, bytes) = client.post(
            "/v1/events",
            "cloudtrail",
            &[
                ("content-type", "application/x-ndjson"),
                ("content-encoding", "gzip"),
            ],
            body.clone(),
        )?;
        if status == 429 && delay < Duration::from_secs(30) {
            std::thread::sleep(delay);
            delay *= 2;
            continue;
        }
        break parse_response(status, &bytes)?;
    };
    s.stored += resp["stored"].as_u64().unwrap_or(0) as usize;
    s.duplicates += resp["duplicates"].as_u64().unwrap_or(0) as usize;
    for r in resp["rejected"].as_array().into_iter().flatten() {
        let idx = r["index"].as_u64().unwrap_or(0) as usize;
        let (file_no, rec) = pending.origins.get(idx).copied().unwrap_or((0, 0));
        let code = r["errorCode"].as_str().unwrap_or("InvalidData");
        let msg = r["errorMessage"].as_str().unwrap_or_default();
        note(s, &files[file_no], Some(rec), code, msg);
    }
    let _: &Value = &resp;
    pending.body.clear();
    pending.origins.clear();
    Ok(())
}
