//! `cairn validate`: checks a trail's digests and log files, on a folder (Cairn's own bucket
//! folder, or a local copy of an AWS bucket) or an S3 bucket, and prints what
//! `aws cloudtrail validate-logs` prints, plus what it does not check: deleted digest spans,
//! unreferenced and misplaced log files, a truncated tail.
//!
//! Keys come from a `list-public-keys` JSON file (offline: this is how real AWS CloudTrail
//! chains are verified without AWS) or from the Cairn server (ListPublicKeys), which also
//! gives the bucket and prefix (DescribeTrails) and the checkpoint for the tail check
//! (GetTrailStatus). Exit status: 0 all valid, 1 something invalid, 2 usage or access error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use cairn_bucket::{Backend, Bucket, S3Config, parse_s3_url, valid_bucket_name};
use cairn_client::{Client, ClientArgs};
use cairn_trail::layout::iso_second;
use cairn_trail::validate::{self, Finding, FindingKind, Options, Progress, Report, Severity};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Where the files are: `s3://bucket/prefix`, or a folder holding a bucket's contents
    /// (like --folder).
    location: Option<String>,
    /// The trail's ARN (arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME).
    #[arg(long)]
    trail_arn: String,
    /// Validate log files delivered at or after this time (2024-01-08T05:21:42Z, 2024-01-08,
    /// or epoch seconds).
    #[arg(long)]
    start_time: String,
    /// ... and at or before this time (default: now).
    #[arg(long)]
    end_time: Option<String>,
    /// The bucket's name (default: from DescribeTrails, or from the digests themselves).
    #[arg(long)]
    s3_bucket: Option<String>,
    /// The trail's key prefix in the bucket.
    #[arg(long)]
    s3_prefix: Option<String>,
    /// A folder holding the bucket's contents: `cairn-data/buckets/<bucket>`, or a local copy
    /// made with `aws s3 sync s3://<bucket> <folder>`.
    #[arg(long, conflicts_with = "location")]
    folder: Option<PathBuf>,
    /// The endpoint of an S3-compatible service (also AWS_ENDPOINT_URL_S3); credentials from
    /// the usual AWS environment variables.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Source region(s) to validate, comma-separated (default: every region found).
    #[arg(long, value_delimiter = ',')]
    region: Vec<String>,
    /// The JSON `aws cloudtrail list-public-keys` prints: validate offline with these keys
    /// instead of asking a Cairn server.
    #[arg(long)]
    public_keys: Option<PathBuf>,
    /// The end time of the latest digest the trail delivered: a chain that ends earlier was
    /// truncated at the tail (offline; with a server, GetTrailStatus tells).
    #[arg(long)]
    expect_latest_digest: Option<String>,
    /// The member account, for an organization trail.
    #[arg(long)]
    account_id: Option<String>,
    /// The organization id (o-...) of an organization trail.
    #[arg(long)]
    organization_id: Option<String>,
    /// Print valid files too, and files no digest covers yet.
    #[arg(long)]
    verbose: bool,
    /// Objects fetched and hashed at once (default: the cores for a folder, 16 for S3).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Only what `aws cloudtrail validate-logs` checks: no search for unreferenced or
    /// misplaced log files.
    #[arg(long)]
    no_extra_files: bool,
    /// Cairn's data directory, where a server's folder buckets are (`<dir>/buckets/<bucket>`).
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// The Cairn endpoint (also CAIRN_ENDPOINT_URL, AWS_ENDPOINT_URL_CLOUDTRAIL, AWS_ENDPOINT_URL).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The named profile for the Cairn server's credentials (also AWS_PROFILE).
    #[arg(long)]
    profile: Option<String>,
    /// PEM certificates to trust for an HTTPS Cairn endpoint with a private CA (also
    /// AWS_CA_BUNDLE).
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
}

/// A usage or access problem: exit status 2.
struct Fatal(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.into())
    }
}

pub fn run(args: ValidateArgs) -> Result<()> {
    let code = match run_inner(args) {
        Ok(code) => code,
        Err(Fatal(e)) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e:#}");
            2
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

struct Trail {
    arn: String,
    account: String,
    home_region: String,
    name: String,
}

fn parse_arn(arn: &str) -> Result<Trail> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "cloudtrail"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("trail/")
        && parts[5].len() > "trail/".len();
    if !ok {
        bail!(
            "Invalid trail ARN provided: {arn} (expected arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME)"
        );
    }
    Ok(Trail {
        arn: arn.to_owned(),
        account: parts[4].to_owned(),
        home_region: parts[3].to_owned(),
        name: parts[5].rsplit('/').next().unwrap_or_default().to_owned(),
    })
}

/// RFC 3339, `YYYY-MM-DD[ T]HH:MM[:SS]` (UTC unless a zone is given), a date (midnight UTC),
/// `YYYYMMDDTHHMMSSZ`, or epoch seconds.
pub fn parse_time(s: &str) -> Result<i64> {
    let t = s.trim();
    if let Some(ms) = cairn_event::parse_event_time(t) {
        return Ok(ms);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = t.parse().context("epoch seconds out of range")?;
        return Ok(secs.saturating_mul(1000));
    }
    if let Some(ms) = cairn_trail::validate::names::parse_stamp(t) {
        return Ok(ms);
    }
    let b = t.as_bytes();
    // A date alone, or a time without seconds (with or without the zone).
    let completed = if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        Some(format!("{t}T00:00:00Z"))
    } else if b.len() == 16 && (b[10] == b'T' || b[10] == b' ') {
        Some(format!("{t}:00"))
    } else if b.len() == 17 && b[16] == b'Z' && t.is_char_boundary(16) {
        Some(format!("{}:00Z", &t[..16]))
    } else {
        None
    };
    if let Some(ms) = completed.and_then(|c| cairn_event::parse_event_time(&c)) {
        return Ok(ms);
    }
    bail!(
        "Unable to parse date value: {s} (use e.g. 2024-01-08T05:21:42Z, 2024-01-08 or epoch seconds)"
    )
}

fn epoch_secs(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| (f * 1000.0).round() as i64),
        Value::String(s) => parse_time(s).ok(),
        _ => None,
    }
}

/// What the Cairn server says about the trail.
#[derive(Default)]
struct ServerFacts {
    keys: Vec<validate::KeyEntry>,
    bucket: Option<String>,
    prefix: Option<String>,
    latest_digest_delivery_ms: Option<i64>,
}

fn ask_server(
    args: &ValidateArgs,
    trail: &Trail,
    start: i64,
    key_end: i64,
    need_bucket: bool,
) -> Result<ServerFacts> {
    let client = Client::new(&ClientArgs {
        endpoint_url: args.endpoint_url.clone(),
        profile: args.profile.clone(),
        region: Some(trail.home_region.clone()),
        ca_bundle: args.ca_bundle.clone(),
    })?;
    let mut facts = ServerFacts::default();
    if need_bucket {
        let out = client
            .call("DescribeTrails", &json!({ "trailNameList": [trail.arn] }))
            .with_context(|| format!("DescribeTrails at {}", client.endpoint()))?;
        let found = out["trailList"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|t| t["TrailARN"].as_str() == Some(&trail.arn))
            })
            .ok_or_else(|| {
                anyhow!(
                    "trail {} not found at {}; give --s3-bucket (and --s3-prefix)",
                    trail.arn,
                    client.endpoint()
                )
            })?;
        if found["IsOrganizationTrail"].as_bool() == Some(true) && args.organization_id.is_none() {
            bail!(
                "{} is an organization trail: give --organization-id and --account-id",
                trail.arn
            );
        }
        facts.bucket = found["S3BucketName"].as_str().map(str::to_owned);
        facts.prefix = found["S3KeyPrefix"].as_str().map(str::to_owned);
    }
    if args.public_keys.is_none() {
        let out = client
            .call(
                "ListPublicKeys",
                &json!({ "StartTime": start / 1000, "EndTime": key_end / 1000 }),
            )
            .with_context(|| format!("ListPublicKeys at {}", client.endpoint()))?;
        let text = serde_json::to_vec(&out)?;
        facts.keys =
            validate::parse_public_keys(&text).map_err(|e| anyhow!("ListPublicKeys: {e}"))?;
    }
    if args.expect_latest_digest.is_none() {
        match client.call("GetTrailStatus", &json!({ "Name": trail.arn })) {
            Ok(out) => {
                facts.latest_digest_delivery_ms = epoch_secs(&out["LatestDigestDeliveryTime"])
            }
            Err(e) => eprintln!("note: no tail check: GetTrailStatus failed: {e:#}"),
        }
    }
    Ok(facts)
}

/// A folder holding a bucket's contents as a bucket handle.
fn folder_bucket(path: &Path, keep: &mut Option<tempfile::TempDir>) -> Result<Bucket> {
    if !path.is_dir() {
        bail!("{} is not a folder", path.display());
    }
    let path =
        std::fs::canonicalize(path).with_context(|| format!("cannot open {}", path.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| valid_bucket_name(n))
        .map(str::to_owned);
    match (name, path.parent()) {
        (Some(name), Some(parent)) => Ok(Backend::Folder {
            root: parent.to_owned(),
        }
        .bucket(&name)?),
        _ => {
            // A folder whose name is no bucket name: reach it through a link that has one.
            let dir = tempfile::tempdir()?;
            std::os::unix::fs::symlink(&path, dir.path().join("local-copy"))
                .context("cannot link to the folder")?;
            let bucket = Backend::Folder {
                root: dir.path().to_owned(),
            }
            .bucket("local-copy")?;
            *keep = Some(dir);
            Ok(bucket)
        }
    }
}

fn run_inner(args: ValidateArgs) -> Result<i32, Fatal> {
    let trail = parse_arn(&args.trail_arn)?;
    let start = parse_time(&args.start_time).context("--start-time")?;
    let end = match &args.end_time {
        Some(t) => parse_time(t).context("--end-time")?,
        None => cairn_event::now_ms(),
    };
    if start > end {
        return Err(
            anyhow!("Invalid time range specified: start-time must occur before end-time").into(),
        );
    }
    let expect_end = match &args.expect_latest_digest {
        Some(t) => Some(parse_time(t).context("--expect-latest-digest")?),
        None => None,
    };
    let account = args
        .account_id
        .clone()
        .unwrap_or_else(|| trail.account.clone());

    // Where the files are.
    let url = args
        .location
        .as_deref()
        .filter(|l| l.starts_with("s3://"))
        .map(|l| parse_s3_url(l).ok_or_else(|| anyhow!("{l} is not an s3://bucket/prefix address")))
        .transpose()?;
    let folder = args.folder.clone().or_else(|| {
        args.location
            .as_deref()
            .filter(|l| !l.starts_with("s3://"))
            .map(PathBuf::from)
    });
    let offline = args.public_keys.is_some();
    let need_bucket = !offline && args.s3_bucket.is_none() && url.is_none();

    // Keys, and what the server knows.
    let key_end = end
        .max(expect_end.unwrap_or(end))
        .saturating_add(2 * 3_600_000);
    let facts = if offline {
        ServerFacts::default()
    } else {
        ask_server(&args, &trail, start, key_end, need_bucket)?
    };
    let keys = match &args.public_keys {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            validate::parse_public_keys(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => facts.keys.clone(),
    };
    if keys.is_empty() {
        return Err(anyhow!(
            "No public keys found between {} and {}",
            iso_second(start),
            iso_second(key_end)
        )
        .into());
    }

    let bucket_name = args
        .s3_bucket
        .clone()
        .or_else(|| url.as_ref().map(|(b, _)| b.clone()))
        .or_else(|| facts.bucket.clone());
    let prefix = args
        .s3_prefix
        .clone()
        .or_else(|| url.as_ref().map(|(_, p)| p.clone()))
        .or_else(|| facts.prefix.clone())
        .filter(|p| !p.trim_matches('/').is_empty());

    let mut keep_link = None;
    let s3 = |name: &str| -> Result<Bucket> {
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| trail.home_region.clone());
        Ok(Backend::S3(S3Config {
            endpoint: args.s3_endpoint.clone(),
            region: Some(region),
            ..S3Config::default()
        })
        .bucket(name)?)
    };
    let bucket = match (&folder, &url) {
        (Some(path), _) => folder_bucket(path, &mut keep_link)?,
        (None, Some((name, _))) => s3(name)?,
        (None, None) => {
            let name = bucket_name.clone().ok_or_else(|| {
                anyhow!(
                    "say where the files are: --folder PATH, s3://bucket/prefix, or --s3-bucket"
                )
            })?;
            let local = args.data_dir.join("buckets").join(&name);
            if args.s3_endpoint.is_none() && local.is_dir() {
                Backend::folder(&args.data_dir).bucket(&name)?
            } else {
                s3(&name)?
            }
        }
    };
    let where_ = match bucket.folder() {
        Some(f) => format!("folder {}", folder.as_deref().unwrap_or(&f).display()),
        None => format!("s3://{}", bucket.name()),
    };

    let mut opts = Options::new(&account, &trail.name, &trail.home_region, start, end);
    opts.bucket_name = bucket_name;
    opts.prefix = prefix;
    opts.org_id = args.organization_id.clone();
    opts.regions = args.region.clone();
    opts.public_keys = keys.into_iter().map(|k| (k.fingerprint, k.der)).collect();
    opts.expected_latest_digest_end_ms = expect_end;
    opts.latest_digest_delivery_ms = facts.latest_digest_delivery_ms;
    opts.concurrency = args.jobs;
    opts.keep_valid = args.verbose;
    opts.check_extra_files = !args.no_extra_files;
    let progress = Arc::new(Progress::default());
    opts.progress = Some(progress.clone());

    println!(
        "Validating log files for trail {} between {} and {}\n",
        trail.arn,
        iso_second(start),
        iso_second(end)
    );
    let _ = std::io::stdout().flush();

    let done = Arc::new(AtomicBool::new(false));
    let ticker = std::io::stderr().is_terminal().then(|| {
        let (done, progress) = (done.clone(), progress.clone());
        std::thread::spawn(move || {
            let mut shown = false;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let files = progress.log_files.load(Ordering::Relaxed);
                if files > 0 && !done.load(Ordering::Relaxed) {
                    let mb = progress.bytes.load(Ordering::Relaxed) as f64 / 1e6;
                    eprint!("\r{files} log files, {mb:.1} MB hashed ...");
                    shown = true;
                }
            }
            if shown {
                eprint!("\r\x1b[2K");
            }
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(validate::validate(&bucket, &opts));
    done.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    let report = result.with_context(|| format!("validating {where_}"))?;
    drop(keep_link);
    print_report(&report, &opts, args.verbose, bucket.name());
    let c = &report.counts;
    Ok(if c.read_errors > 0 {
        2
    } else if report.is_valid() {
        0
    } else {
        1
    })
}

/// Whether a finding is printed without --verbose.
fn shown(f: &Finding, verbose: bool) -> bool {
    verbose
        || match f.severity {
            Severity::Invalid => true,
            Severity::Valid => false,
            Severity::Info => {
                !matches!(f.kind, FindingKind::NotYetCovered | FindingKind::Uncovered)
            }
        }
}

fn print_report(report: &Report, opts: &Options, verbose: bool, folder_name: &str) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    // Like the AWS CLI: problems to stderr, each followed by a blank line; valid files (with
    // --verbose) to stdout.
    let mut last_double = true;
    // The bucket's name learned from the digests is news only when the folder has another.
    let obvious = |f: &Finding| {
        f.kind == FindingKind::Note && f.key.is_empty() && report.bucket_name == folder_name
    };
    for f in report
        .findings
        .iter()
        .filter(|f| shown(f, verbose) && !obvious(f))
    {
        if f.severity == Severity::Valid {
            let _ = writeln!(out, "{}", f.line());
            last_double = false;
        } else {
            let _ = out.flush();
            let lead = if last_double { "" } else { "\n" };
            let _ = write!(err, "{lead}{}\n\n", f.line());
            last_double = true;
        }
    }
    if !last_double {
        let _ = writeln!(out);
    }
    let c = &report.counts;
    let _ = writeln!(
        out,
        "Results requested for {} to {}",
        iso_second(opts.start_ms),
        iso_second(opts.end_ms)
    );
    let digests =
        c.digests_valid + c.digests_invalid + c.backfill_digests_valid + c.backfill_digests_invalid;
    if digests == 0 {
        let _ = writeln!(out, "No digests found");
    } else {
        match (report.found_start_ms, report.found_end_ms) {
            (Some(s), Some(e)) => {
                let _ = writeln!(
                    out,
                    "Results found for {} to {}:",
                    iso_second(s),
                    iso_second(e)
                );
            }
            _ => {
                let _ = writeln!(out, "No valid digests found in range");
            }
        }
        let ratio = |out: &mut std::io::StdoutLock, valid: u64, invalid: u64, name: &str| {
            let total = valid + invalid;
            if total > 0 {
                let _ = write!(out, "\n{valid}/{total} {name} files valid");
                if invalid > 0 {
                    let _ = write!(out, ", {invalid}/{total} {name} files INVALID");
                }
            }
        };
        ratio(&mut out, c.digests_valid, c.digests_invalid, "digest");
        ratio(
            &mut out,
            c.backfill_digests_valid,
            c.backfill_digests_invalid,
            "backfill digest",
        );
        ratio(&mut out, c.logs_valid, c.logs_invalid, "log");
        let _ = writeln!(out, "\n");
    }
    // What the AWS CLI does not check.
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = vec![
        if c.deleted_digest_spans == 0 {
            "no deleted digests".to_owned()
        } else {
            format!(
                "{} (about {})",
                plural(
                    c.deleted_digest_spans,
                    "span of deleted digests",
                    "spans of deleted digests"
                ),
                plural(c.deleted_digests_estimate, "digest file", "digest files")
            )
        },
        plural(c.chain_breaks, "digest chain break", "digest chain breaks"),
    ];
    if opts.check_extra_files {
        parts.push(plural(
            c.unreferenced,
            "unreferenced log file",
            "unreferenced log files",
        ));
        parts.push(plural(
            c.out_of_place,
            "object out of place",
            "objects out of place",
        ));
    }
    parts.push(
        if opts.expected_latest_digest_end_ms.is_none() && opts.latest_digest_delivery_ms.is_none()
        {
            "tail not checked (no checkpoint)".to_owned()
        } else if c.tail_truncated > 0 {
            format!(
                "tail TRUNCATED in {}",
                plural(c.tail_truncated, "region", "regions")
            )
        } else {
            "tail complete".to_owned()
        },
    );
    let _ = writeln!(out, "Cairn checks: {}", parts.join(", "));
    if c.not_yet_covered + c.uncovered > 0 {
        let _ = writeln!(
            out,
            "Not vouched for by any digest, as expected: {} not yet covered (newer than the newest digest), {} delivered while no digest chain ran",
            c.not_yet_covered, c.uncovered
        );
    }
    if c.read_errors > 0 {
        let _ = writeln!(
            out,
            "{} could not be read: the results are incomplete",
            plural(c.read_errors, "object", "objects")
        );
    }
    let secs = report.elapsed.as_secs_f64();
    let _ = writeln!(
        out,
        "Hashed {}, {:.1} MB ({:.1} MB compressed), in {:.2} s: {:.0} MB/s; regions {}",
        plural(c.logs_valid, "log file", "log files"),
        c.log_bytes as f64 / 1e6,
        c.log_bytes_compressed as f64 / 1e6,
        secs,
        report.mb_per_s(),
        report.regions.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_times() {
        let t = parse_arn("arn:aws:cloudtrail:us-east-2:111122223333:trail/my_trail").expect("arn");
        assert_eq!(
            (t.account.as_str(), t.home_region.as_str(), t.name.as_str()),
            ("111122223333", "us-east-2", "my_trail")
        );
        assert!(parse_arn("arn:aws:cloudtrail:us-east-2:1111:trail/x").is_err());
        assert!(parse_arn("arn:aws:s3:::bucket").is_err());
        let ms = 1_439_823_691_000;
        assert_eq!(parse_time("2015-08-17T15:01:31Z").expect("t"), ms);
        assert_eq!(parse_time("2015-08-17T15:01:31+00:00").expect("t"), ms);
        assert_eq!(parse_time("1439823691").expect("t"), ms);
        assert_eq!(parse_time("20150817T150131Z").expect("t"), ms);
        assert_eq!(parse_time("2015-08-17 15:01:31").expect("t"), ms);
        assert_eq!(parse_time("2015-08-17T15:01").expect("t"), ms - 31_000);
        assert_eq!(
            parse_time("2015-08-17").expect("t"),
            ms - (15 * 3600 + 91) * 1000
        );
        assert!(parse_time("yesterday").is_err());
    }
}
