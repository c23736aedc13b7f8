//! The alert log: every alert raised, in order, one JSON line each in `rules/alerts.ndjson`,
//! synced before the rules' cursor moves past the events that raised it. Each target reads
//! it from a cursor of its own, so a slow or failing target holds up nobody else.
//! An alert ID already in the log is not written again (a replay after a crash raises the
//! same alerts with the same IDs).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::engine::Alert;

/// An alert as the log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Its place in the log, from 0.
    pub seq: u64,
    /// When it was raised (epoch ms).
    pub detected_ms: i64,
    #[serde(flatten)]
    pub alert: Alert,
}

struct Log {
    file: Option<File>,
    /// Byte offset of each line; the entry after the last is the file's length.
    offsets: Vec<u64>,
    ids: HashSet<String>,
    /// Kept in memory when there is no file (tools and tests).
    memory: Vec<Stored>,
}

/// The alert log.
pub struct Outbox {
    path: Option<PathBuf>,
    log: Mutex<Log>,
    /// The number of alerts in the log, watched by the targets.
    len: tokio::sync::watch::Sender<u64>,
    /// Alerts per account and rule, newest last, for listing without reading the file.
    recent: RwLock<Vec<(u64, String, String)>>,
}

impl Outbox {
    /// Opens (or creates) the log in `dir`; `None` keeps it in memory. A torn last line,
    /// left by a crash in the middle of a write, is cut off.
    pub fn open(dir: Option<&Path>) -> std::io::Result<Outbox> {
        let Some(dir) = dir else {
            return Ok(Outbox {
                path: None,
                log: Mutex::new(Log {
                    file: None,
                    offsets: vec![0],
                    ids: HashSet::new(),
                    memory: Vec::new(),
                }),
                len: tokio::sync::watch::channel(0).0,
                recent: RwLock::new(Vec::new()),
            });
        };
        std::fs::create_dir_all(dir)?;
        let path = dir.join("alerts.ndjson");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let mut offsets = vec![0u64];
        let mut ids = HashSet::new();
        let mut recent = Vec::new();
        {
            let mut reader = BufReader::new(&file);
            // Bytes, not text: a line torn in the middle of a character is not UTF-8.
            let mut line = Vec::new();
            let mut at = 0u64;
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                let whole = line.ends_with(b"\n");
                match serde_json::from_slice::<Stored>(&line) {
                    Ok(s) if whole && s.seq == offsets.len() as u64 - 1 => {
                        at += n as u64;
                        offsets.push(at);
                        recent.push((s.seq, s.alert.account.clone(), s.alert.rule.clone()));
                        ids.insert(s.alert.alert_id);
                    }
                    _ => {
                        tracing::warn!(path = %path.display(), offset = at, "the alert log ends in a torn or unreadable line; cutting it off");
                        break;
                    }
                }
            }
        }
        let end = *offsets.last().unwrap_or(&0);
        file.set_len(end)?;
        file.seek(SeekFrom::Start(end))?;
        let count = offsets.len() as u64 - 1;
        Ok(Outbox {
            path: Some(path),
            log: Mutex::new(Log {
                file: Some(file),
                offsets,
                ids,
                memory: Vec::new(),
            }),
            len: tokio::sync::watch::channel(count).0,
            recent: RwLock::new(recent),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How many alerts the log holds.
    pub fn len(&self) -> u64 {
        *self.len.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Watches the log's length.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.len.subscribe()
    }

    /// Appends the alerts not already in the log and syncs. Returns how many were new.
    pub fn append(&self, alerts: &[Alert], detected_ms: i64) -> std::io::Result<usize> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let mut log = self.log.lock();
        let mut buf = Vec::new();
        let mut new = Vec::new();
        let mut seen = HashSet::new();
        let mut seq = log.offsets.len() as u64 - 1;
        let mut lens = Vec::new();
        for a in alerts {
            if log.ids.contains(&a.alert_id) || !seen.insert(a.alert_id.clone()) {
                continue;
            }
            let stored = Stored {
                seq,
                detected_ms,
                alert: a.clone(),
            };
            let before = buf.len();
            serde_json::to_writer(&mut buf, &stored).map_err(std::io::Error::other)?;
            buf.push(b'\n');
            lens.push((buf.len() - before) as u64);
            new.push(stored);
            seq += 1;
        }
        if new.is_empty() {
            return Ok(0);
        }
        let end = *log.offsets.last().unwrap_or(&0);
        if let Some(file) = log.file.as_mut() {
            let written = file.write_all(&buf).and_then(|_| file.sync_data());
            if let Err(e) = written {
                // Leave the log as it was: cut anything half written.
                let _ = file.set_len(end);
                let _ = file.seek(SeekFrom::Start(end));
                return Err(e);
            }
        }
        let mut recent = self.recent.write();
        for (stored, len) in new.iter().zip(lens) {
            let last = *log.offsets.last().unwrap_or(&0);
            log.offsets.push(last + len);
            log.ids.insert(stored.alert.alert_id.clone());
            recent.push((
                stored.seq,
                stored.alert.account.clone(),
                stored.alert.rule.clone(),
            ));
        }
        let n = new.len();
        if log.file.is_none() {
            log.memory.extend(new);
        }
        let count = log.offsets.len() as u64 - 1;
        drop(recent);
        drop(log);
        self.len.send_replace(count);
        Ok(n)
    }

    /// The alert at `seq`.
    pub fn get(&self, seq: u64) -> std::io::Result<Option<Stored>> {
        let log = self.log.lock();
        let i = seq as usize;
        if i + 1 >= log.offsets.len() {
            return Ok(None);
        }
        let Some(file) = log.file.as_ref() else {
            return Ok(log.memory.get(i).cloned());
        };
        let (from, to) = (log.offsets[i], log.offsets[i + 1]);
        let mut buf = vec![0u8; (to - from) as usize];
        file.read_exact_at(&mut buf, from)?;
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(std::io::Error::other)
    }

    /// The newest alerts of an account (of one rule, if given), newest first, from before
    /// `before` (a seq) if given.
    pub fn recent(
        &self,
        account: &str,
        rule: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> std::io::Result<Vec<Stored>> {
        let seqs: Vec<u64> = self
            .recent
            .read()
            .iter()
            .rev()
            .filter(|(seq, a, r)| {
                a == account && rule.is_none_or(|x| x == r) && before.is_none_or(|b| *seq < b)
            })
            .take(limit)
            .map(|(seq, _, _)| *seq)
            .collect();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(s) = self.get(seq)? {
                out.push(s);
            }
        }
        Ok(out)
    }
}
