//! `cairn import`: load CloudTrail log files through the server, from files, folders (an
//! `AWSLogs/...` tree such as a copy of a trail's bucket, organisation trails included) or an
//! `s3://bucket/prefix` on AWS S3 or any S3-compatible service. Digest files are skipped (they
//! are not events). Imported objects are remembered in a state file, so a second run (or one
//! after an interruption) skips what is done; the server drops duplicate events by eventID
//! anyway. `--follow` keeps polling for new files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use cairn_bucket::{Backend, Bucket, S3Config};
use cairn_client::{Client, ClientArgs, parse_response};

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Files, folders (searched recursively for .json, .json.gz, .jsonl, .ndjson) or
    /// `s3://bucket/prefix` addresses.
    #[arg(required = true)]
    sources: Vec<String>,
    /// S3-compatible endpoint for `s3://` sources (default: AWS, or AWS_ENDPOINT_URL_S3).
    #[arg(long, env = "CAIRN_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Records per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Import only log files that a valid, signed digest vouches for (checked with
    /// `cairn validate`'s checks; keys from the server, or from --public-keys).
    #[arg(long)]
    validate: bool,
    /// Public keys for --validate, as `aws cloudtrail list-public-keys` prints them (needed
    /// for files that AWS CloudTrail wrote).
    #[arg(long)]
    public_keys: Option<PathBuf>,
    /// Keep running and import new files as they arrive.
    #[arg(long)]
    follow: bool,
    /// How often --follow looks for new files.
    #[arg(long, default_value = "30s")]
    poll: String,
    /// Where to remember imported files (default: a file per source under
    /// ~/.local/state/cairn/imports).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Import everything again, ignoring what the state file says is done.
    #[arg(long)]
    restart: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn is_digest(name: &str) -> bool {
    name.contains("CloudTrail-Digest") && name.ends_with(".json.gz")
}

fn wanted(name: &str) -> bool {
    if name.contains("CloudTrail-Digest") {
        return false;
    }
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

fn collect(path: &Path, digests: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                collect(&e, digests, out)?;
            } else if e
                .to_str()
                .is_some_and(|n| if digests { is_digest(n) } else { wanted(n) })
            {
                out.push(e);
            }
        }
    } else if !digests {
        out.push(path.to_owned());
    }
    Ok(())
}

/// Where one object comes from.
#[derive(Clone)]
pub(crate) enum Origin {
    File(PathBuf),
    S3 { bucket: usize, key: String },
}

#[derive(Clone)]
pub(crate) struct Item {
    /// How the state file and messages name it (`s3://b/k` or a path).
    pub id: String,
    pub size: u64,
    pub origin: Origin,
}

pub(crate) struct Sources {
    specs: Vec<String>,
    buckets: Vec<(Bucket, String)>,
    runtime: tokio::runtime::Runtime,
}

impl Sources {
    /// The digest files among the sources.
    pub fn digests(&self) -> Result<Vec<Item>> {
        self.list_kind(true)
    }

    /// Reads an object with its user metadata (for a file: from a Cairn folder bucket's
    /// sidecar, when there is one).
    pub fn read_with_metadata(
        &self,
        item: &Item,
    ) -> Result<(Vec<u8>, std::collections::BTreeMap<String, String>)> {
        match &item.origin {
            Origin::S3 { bucket, key } => {
                let (b, _) = &self.buckets[*bucket];
                let obj = self
                    .runtime
                    .block_on(b.get(key))
                    .with_context(|| format!("cannot read {}", item.id))?;
                Ok((obj.bytes.to_vec(), obj.metadata))
            }
            Origin::File(p) => {
                let bytes = self.read(item)?;
                let mut meta = std::collections::BTreeMap::new();
                // <root>/<bucket>/<key> keeps metadata in <root>/.meta/<bucket>/<key>.
                for dir in p.ancestors().skip(1) {
                    let (Some(root), Some(bucket)) = (dir.parent(), dir.file_name()) else {
                        break;
                    };
                    let Ok(rest) = p.strip_prefix(dir) else { break };
                    let side = root.join(".meta").join(bucket).join(rest);
                    if let Ok(b) = std::fs::read(&side) {
                        meta = serde_json::from_slice(&b).unwrap_or_default();
                        break;
                    }
                }
                Ok((bytes, meta))
            }
        }
    }

    fn list(&self) -> Result<Vec<Item>> {
        self.list_kind(false)
    }

    fn list_kind(&self, digests: bool) -> Result<Vec<Item>> {
        let specs = &self.specs;
        let keep = |name: &str| {
            if digests {
                is_digest(name)
            } else {
                wanted(name)
            }
        };
        let mut items = Vec::new();
        let mut s3_index = 0;
        for spec in specs {
            if spec.starts_with("s3://") {
                let (bucket, prefix) = &self.buckets[s3_index];
                s3_index += 1;
                let listed = self
                    .runtime
                    .block_on(bucket.list(prefix, None))
                    .with_context(|| format!("cannot list {spec}"))?;
                for l in listed.into_iter().filter(|l| keep(&l.key)) {
                    items.push(Item {
                        id: format!("s3://{}/{}", bucket.name(), l.key),
                        size: l.size,
                        origin: Origin::S3 {
                            bucket: s3_index - 1,
                            key: l.key,
                        },
                    });
                }
            } else {
                let mut files = Vec::new();
                collect(Path::new(spec), digests, &mut files)?;
                for f in files {
                    let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
                    items.push(Item {
                        id: f.display().to_string(),
                        size,
                        origin: Origin::File(f),
                    });
                }
            }
        }
        Ok(items)
    }

    fn read(&self, item: &Item) -> Result<Vec<u8>> {
        match &item.origin {
            Origin::File(p) => {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            }
            Origin::S3 { bucket, key } => {
                let (b, _) = &self.buckets[*bucket];
                let obj = self
                    .runtime
                    .block_on(b.get(key))
                    .with_context(|| format!("cannot read {}", item.id))?;
                Ok(obj.bytes.to_vec())
            }
        }
    }
}

/// The append-only list of imported objects.
struct StateFile {
    path: PathBuf,
    done: HashSet<String>,
    out: std::fs::File,
}

impl StateFile {
    fn open(path: PathBuf, restart: bool) -> Result<StateFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if restart {
            let _ = std::fs::remove_file(&path);
        }
        let mut done = HashSet::new();
        if let Ok(f) = std::fs::File::open(&path) {
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if !line.is_empty() {
                    done.insert(line);
                }
            }
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(StateFile { path, done, out })
    }

    fn mark(&mut self, id: &str) -> Result<()> {
        writeln!(self.out, "{id}")
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.done.insert(id.to_owned());
        Ok(())
    }
}

fn default_state_path(args: &ImportArgs, endpoint: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    let mut sources = args.sources.clone();
    sources.sort();
    let key = format!("{endpoint}\n{}", sources.join("\n"));
    base.join("cairn/imports").join(format!(
        "{:016x}.done",
        xxhash_rust::xxh3::xxh3_64(key.as_bytes())
    ))
}

#[derive(Default)]
struct Summary {
    files: usize,
    skipped: usize,
    unverified: usize,
    read: usize,
    stored: usize,
    duplicates: usize,
    rejected: usize,
    reasons: BTreeMap<String, usize>,
    examples: Vec<String>,
}

impl Summary {
    fn note(&mut self, at: &str, code: &str, msg: &str) {
        self.rejected += 1;
        *self.reasons.entry(format!("{code}: {msg}")).or_default() += 1;
        if self.examples.len() < 20 {
            self.examples.push(format!("{at}: {code}: {msg}"));
        }
    }
}

/// A request body and where each of its records came from.
#[derive(Default)]
struct Batch {
    body: Vec<u8>,
    origins: Vec<(usize, usize)>,
    /// Items whose last record is in this batch.
    completes: Vec<usize>,
    /// A whole gzip log file sent as it is (the server splits it): its item.
    whole: Option<usize>,
}

/// Gzip files at least this large go to the server as they are, one request each; smaller
/// ones are split here and batched together.
const WHOLE_FILE_MIN: u64 = 256 << 10;
/// And at most this large (the server's limit for a native ingest body is 32 MiB).
const WHOLE_FILE_MAX: u64 = 24 << 20;

/// Which items still wait for batches in flight.
#[derive(Default)]
struct Tracker {
    outstanding: HashMap<usize, usize>,
    read_fully: HashSet<usize>,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let poll_ms = crate::parse_duration(&args.poll, 1_000, "--poll")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut buckets = Vec::new();
    for spec in args.sources.iter().filter(|s| s.starts_with("s3://")) {
        let (bucket, mut prefix) = cairn_bucket::parse_s3_url(spec)
            .with_context(|| format!("{spec} is not an s3://bucket/prefix address"))?;
        // `s3://b/logs/` means the folder `logs`, not `logs-old` beside it.
        if spec.ends_with('/') && !prefix.is_empty() {
            prefix.push('/');
        }
        let backend = Backend::S3(S3Config {
            endpoint: args.s3_endpoint.clone(),
            ..S3Config::default()
        });
        buckets.push((backend.bucket(&bucket)?, prefix));
    }
    let sources = Sources {
        specs: args.sources.clone(),
        buckets,
        runtime,
    };
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| default_state_path(&args, client.endpoint()));
    let mut state = StateFile::open(state_path, args.restart)?;
    let verifier = if args.validate {
        Some(crate::import_validate::Verifier::new(
            &client,
            args.public_keys.as_deref(),
        )?)
    } else {
        None
    };
    let mut total = Summary::default();
    loop {
        let items: Vec<Item> = sources
            .list()?
            .into_iter()
            .filter(|i| !state.done.contains(&i.id))
            .collect();
        if items.is_empty() && !args.follow && total.files == 0 {
            if state.done.is_empty() {
                bail!("no CloudTrail log files found under the given sources");
            }
            println!(
                "Nothing new to import ({} files imported before).",
                state.done.len()
            );
            return Ok(());
        }
        if !items.is_empty() {
            let round = import_items(
                &args,
                &client,
                &sources,
                &items,
                &mut state,
                verifier.as_ref(),
            )?;
            report(&round, client.endpoint());
            total.files += round.files;
            total.rejected += round.rejected;
        }
        if !args.follow {
            if total.rejected > 0 {
                std::process::exit(1);
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(poll_ms as u64));
    }
}

fn report(s: &Summary, endpoint: &str) {
    println!(
        "Imported {} files into {}: {} records read, {} stored, {} duplicates, {} rejected{}{}.",
        s.files,
        endpoint,
        s.read,
        s.stored,
        s.duplicates,
        s.rejected,
        if s.skipped > 0 {
            format!(", {} files skipped", s.skipped)
        } else {
            String::new()
        },
        if s.unverified > 0 {
            format!(" ({} not vouched for by a valid digest)", s.unverified)
        } else {
            String::new()
        }
    );
    if s.rejected > 0 {
        println!("Rejected, by reason:");
        for (reason, n) in &s.reasons {
            println!("  {n:>8}  {reason}");
        }
        println!("First rejections:");
        for e in &s.examples {
            println!("  {e}");
        }
    }
}

fn import_items(
    args: &ImportArgs,
    client: &Client,
    sources: &Sources,
    items: &[Item],
    state: &mut StateFile,
    verifier: Option<&crate::import_validate::Verifier>,
) -> Result<Summary> {
    let total: u64 = items.iter().map(|i| i.size).sum();
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
    let vouched = match verifier {
        Some(v) => Some(v.vouched(sources)?),
        None => None,
    };
    let summary = Mutex::new(Summary::default());
    let tracker = Mutex::new(Tracker::default());
    let state = Mutex::new(state);
    let batch_records = args.batch.clamp(1, 10_000);
    let (tx, rx) = mpsc::sync_channel::<Batch>(args.parallel.max(1) * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| -> Result<()> {
        let mut senders = Vec::new();
        for _ in 0..args.parallel.max(1) {
            senders.push(scope.spawn(|| -> Result<()> {
                loop {
                    let next = lock(&rx)?.recv();
                    let Ok(batch) = next else { return Ok(()) };
                    send(client, &batch, items, &summary)?;
                    let finished: Vec<usize> = {
                        let mut t = lock(&tracker)?;
                        let mut files: Vec<usize> = batch.origins.iter().map(|o| o.0).collect();
                        files.dedup();
                        let mut finished = Vec::new();
                        for f in files {
                            if let Some(n) = t.outstanding.get_mut(&f) {
                                *n -= 1;
                                if *n == 0 && t.read_fully.contains(&f) {
                                    finished.push(f);
                                }
                            }
                        }
                        for f in &finished {
                            t.outstanding.remove(f);
                        }
                        finished
                    };
                    let mut st = lock(&state)?;
                    for f in finished.into_iter().chain(batch.whole) {
                        st.mark(&items[f].id)?;
                    }
                }
            }));
        }
        let mut current = Batch::default();
        let flush = |current: &mut Batch| -> Result<()> {
            if current.origins.is_empty() {
                return Ok(());
            }
            let batch = std::mem::take(current);
            {
                let mut t = lock(&tracker)?;
                let mut files: Vec<usize> = batch.origins.iter().map(|o| o.0).collect();
                files.dedup();
                for f in files {
                    *t.outstanding.entry(f).or_default() += 1;
                }
                for f in &batch.completes {
                    t.read_fully.insert(*f);
                }
            }
            tx.send(batch)
                .map_err(|_| anyhow::anyhow!("the import stopped: a request failed"))
        };
        for (file_no, item) in items.iter().enumerate() {
            let expected_hash = match &vouched {
                Some(v) => match v.hash_for(item) {
                    Some(h) => Some(h.to_owned()),
                    None => {
                        let mut s = lock(&summary)?;
                        s.unverified += 1;
                        s.skipped += 1;
                        bar.inc(item.size);
                        continue;
                    }
                },
                None => None,
            };
            let raw = match sources.read(item) {
                Ok(r) => r,
                Err(e) => {
                    let mut s = lock(&summary)?;
                    s.note(&item.id, "Unreadable", &format!("{e:#}"));
                    bar.inc(item.size);
                    continue;
                }
            };
            let gz = raw.starts_with(&[0x1f, 0x8b]);
            let size = raw.len() as u64;
            if gz && expected_hash.is_none() && (WHOLE_FILE_MIN..=WHOLE_FILE_MAX).contains(&size) {
                tx.send(Batch {
                    body: raw,
                    origins: Vec::new(),
                    completes: Vec::new(),
                    whole: Some(file_no),
                })
                .map_err(|_| anyhow::anyhow!("the import stopped: a request failed"))?;
                bar.inc(item.size);
                continue;
            }
            let bytes = if gz {
                let mut out = Vec::with_capacity(raw.len() * 8);
                if let Err(e) = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out) {
                    let mut s = lock(&summary)?;
                    s.note(&item.id, "InvalidData", &format!("not valid gzip: {e}"));
                    bar.inc(item.size);
                    continue;
                }
                out
            } else {
                raw
            };
            if let Some(expected) = expected_hash
                && cairn_trail::digest::sha256_hex(&bytes) != expected
            {
                let mut s = lock(&summary)?;
                s.skipped += 1;
                s.note(
                    &item.id,
                    "InvalidLogFile",
                    "its SHA-256 does not match the hash its digest gives: not imported",
                );
                bar.inc(item.size);
                continue;
            }
            let parts = match cairn_event::split_records(&bytes) {
                Ok(p) => p,
                Err(e) => {
                    let mut s = lock(&summary)?;
                    s.files += 1;
                    s.note(&item.id, "InvalidData", &e.to_string());
                    bar.inc(item.size);
                    continue;
                }
            };
            {
                let mut s = lock(&summary)?;
                s.files += 1;
                s.read += parts.len();
            }
            if parts.is_empty() {
                lock(&state)?.mark(&item.id)?;
            }
            let last = parts.len().saturating_sub(1);
            for (i, rec) in parts.into_iter().enumerate() {
                // NDJSON needs one record a line; the server normalises the rest.
                if rec.contains(&b'\n') {
                    current.body.extend_from_slice(&cairn_event::minify(rec));
                } else {
                    current.body.extend_from_slice(rec);
                }
                current.body.push(b'\n');
                current.origins.push((file_no, i));
                if i == last {
                    current.completes.push(file_no);
                }
                if current.origins.len() >= batch_records || current.body.len() >= 8 << 20 {
                    flush(&mut current)?;
                }
            }
            bar.inc(item.size);
            if let Ok(s) = summary.lock() {
                bar.set_message(format!("{} stored", s.stored));
            }
        }
        flush(&mut current)?;
        drop(tx);
        for s in senders {
            s.join()
                .map_err(|_| anyhow::anyhow!("an import thread panicked"))??;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    summary
        .into_inner()
        .map_err(|_| anyhow::anyhow!("an import thread failed while holding a lock"))
}

/// Whether the server is on this machine (bodies then go uncompressed).
fn local(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| anyhow::anyhow!("an import thread failed while holding a lock"))
}

fn send(client: &Client, batch: &Batch, items: &[Item], summary: &Mutex<Summary>) -> Result<()> {
    let (body, content_type, encoding) = if batch.whole.is_some() {
        (batch.body.clone(), "application/json", Some("gzip"))
    } else if local(client.endpoint()) {
        (batch.body.clone(), "application/x-ndjson", None)
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&batch.body)?;
        (gz.finish()?, "application/x-ndjson", Some("gzip"))
    };
    let mut headers = vec![("content-type", content_type)];
    if let Some(e) = encoding {
        headers.push(("content-encoding", e));
    }
    let mut delay = Duration::from_millis(100);
    let resp = loop {
        let (status, bytes) = client.post("/v1/events", "cloudtrail", &headers, body.clone())?;
        if status == 429 && delay < Duration::from_secs(30) {
            std::thread::sleep(delay);
            delay *= 2;
            continue;
        }
        match parse_response(status, &bytes) {
            Ok(v) => break v,
            // A whole file the server refuses (damaged gzip, not a log file) is that file's
            // rejection, not the end of the import.
            Err(e) if batch.whole.is_some() && status < 500 && status != 429 => {
                let mut s = lock(summary)?;
                s.files += 1;
                let id = batch
                    .whole
                    .and_then(|f| items.get(f))
                    .map_or("?", |i| i.id.as_str());
                s.note(id, "InvalidData", &format!("{e:#}"));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    };
    let mut s = lock(summary)?;
    if batch.whole.is_some() {
        s.files += 1;
        s.read += resp["received"].as_u64().unwrap_or(0) as usize;
    }
    s.stored += resp["stored"].as_u64().unwrap_or(0) as usize;
    s.duplicates += resp["duplicates"].as_u64().unwrap_or(0) as usize;
    for r in resp["rejected"].as_array().into_iter().flatten() {
        let idx = r["index"].as_u64().unwrap_or(0) as usize;
        let (file_no, rec) = match batch.whole {
            Some(f) => (f, idx),
            None => batch.origins.get(idx).copied().unwrap_or((0, 0)),
        };
        let code = r["errorCode"].as_str().unwrap_or("InvalidData");
        let msg = r["errorMessage"].as_str().unwrap_or_default();
        let at = format!(
            "{} record {}",
            items.get(file_no).map_or("?", |i| i.id.as_str()),
            rec + 1
        );
        s.note(&at, code, msg);
    }
    Ok(())
}
