//! `--store-bucket`: keeps a copy of the event store's sealed journal segments and its
//! compression dictionaries in a bucket (a folder bucket, or S3 with `--s3-endpoint`), and
//! restores them into an empty data directory on start. Segments are immutable once sealed,
//! so each is uploaded once; segments that retention removed locally are removed from the
//! bucket too.
//!
//! Layout: `<prefix>/journal/<id>.log` and `<prefix>/dicts/<id>.zdict` where the prefix is
//! `cairn-store`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;

use cairn_bucket::Bucket;

const PREFIX: &str = "cairn-store";

fn numbered(dir: &Path, ext: &str) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?;
            let id = name.strip_suffix(ext)?.parse().ok()?;
            Some((id, p))
        })
        .collect();
    out.sort();
    out
}

/// Copies the bucket's segments and dictionaries into a data directory that has no journal
/// yet. Everything is downloaded into a temporary folder first and moved into place only when
/// complete, so an interrupted restore is simply done again on the next start. Returns how
/// many segments it restored.
pub async fn restore(bucket: &Bucket, data_dir: &Path) -> Result<usize> {
    let journal = data_dir.join("journal");
    if !numbered(&journal, ".log").is_empty() {
        return Ok(0);
    }
    let listed = bucket
        .list(&format!("{PREFIX}/"), None)
        .await
        .with_context(|| format!("cannot list the store bucket {}", bucket.name()))?;
    let staging = data_dir.join("restore.tmp");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let mut restored = 0;
    for l in listed {
        let Some(rest) = l.key.strip_prefix(&format!("{PREFIX}/")) else {
            continue;
        };
        let (dir, name) = match rest.split_once('/') {
            Some(("journal", n)) if n.ends_with(".log") => ("journal", n),
            Some(("dicts", n)) if n.ends_with(".zdict") => ("dicts", n),
            _ => continue,
        };
        let obj = bucket.get(&l.key).await?;
        let target_dir = staging.join(dir);
        std::fs::create_dir_all(&target_dir)?;
        let path = target_dir.join(name);
        std::fs::write(&path, &obj.bytes)?;
        std::fs::File::open(&path)?.sync_all()?;
        if dir == "journal" {
            restored += 1;
        }
    }
    if restored == 0 {
        let _ = std::fs::remove_dir_all(&staging);
        return Ok(0);
    }
    // Complete: move the folders into place (an empty journal folder goes first).
    for dir in ["dicts", "journal"] {
        let from = staging.join(dir);
        if !from.exists() {
            continue;
        }
        let to = data_dir.join(dir);
        if to.exists() {
            for entry in std::fs::read_dir(&from)?.flatten() {
                std::fs::rename(entry.path(), to.join(entry.file_name()))?;
            }
        } else {
            std::fs::rename(&from, &to)?;
        }
        std::fs::File::open(&to)?.sync_all()?;
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(restored)
}

/// Uploads sealed segments and dictionaries not yet in the bucket, and removes from the
/// bucket the segments retention removed here.
pub async fn sync_once(bucket: &Bucket, data_dir: &Path) -> Result<usize> {
    let listed: BTreeMap<String, u64> = bucket
        .list(&format!("{PREFIX}/"), None)
        .await?
        .into_iter()
        .map(|l| (l.key, l.size))
        .collect();
    let mut uploaded = 0;
    let segments = numbered(&data_dir.join("journal"), ".log");
    // The newest segment is still being written.
    let sealed = &segments[..segments.len().saturating_sub(1)];
    let dicts = numbered(&data_dir.join("dicts"), ".zdict");
    for (dir, ext, files) in [("dicts", "zdict", &dicts[..]), ("journal", "log", sealed)] {
        for (id, path) in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{id}.{ext}"));
            let key = format!("{PREFIX}/{dir}/{name}");
            // Sealed files never change: one of the same size is already there.
            let size = tokio::fs::metadata(path).await?.len();
            if listed.get(&key) == Some(&size) {
                continue;
            }
            let bytes = tokio::fs::read(path).await?;
            bucket.put(&key, Bytes::from(bytes), &[]).await?;
            uploaded += 1;
        }
    }
    if let Some((first_local, _)) = segments.first() {
        for key in listed.keys() {
            let id = key
                .strip_prefix(&format!("{PREFIX}/journal/"))
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| id < *first_local) {
                bucket.delete(key).await?;
            }
        }
    }
    Ok(uploaded)
}

/// Runs [`sync_once`] every `every` until `stop` changes.
pub async fn run(
    bucket: Bucket,
    data_dir: PathBuf,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match sync_once(&bucket, &data_dir).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                files = n,
                bucket = bucket.name(),
                "store segments copied to the bucket"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), bucket = bucket.name(), "cannot copy store segments to the bucket; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
