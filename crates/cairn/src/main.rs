//! The `cairn` command: `serve` runs the server; `lookup`, `import` and `bench` talk to it.

mod admin;
mod alerts;
mod archive;
mod bench;
mod bench_alerts;
mod bench_insights;
mod bench_sql;
mod bench_trails;
mod import;
mod import_validate;
mod lookup;
mod query;
mod rules_cli;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use cairn_api::AppState;
use cairn_api::channels::Channels;
use cairn_store::{Store, StoreOptions};

// Ingest allocates and frees many short-lived buffers on several threads; mimalloc does that
// with far less overhead than the system allocator (measured: malloc and free were a tenth
// of the server's time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A self-hosted, CloudTrail-compatible audit trail"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Cairn server.
    Serve(Box<ServeArgs>),
    /// Manage accounts, users, access keys, console passwords and policies.
    Admin(admin::AdminArgs),
    /// Look events up (LookupEvents), paging through every result.
    Lookup(Box<lookup::LookupArgs>),
    /// Load CloudTrail log files (.json, .json.gz, NDJSON) from files or folders.
    Import(import::ImportArgs),
    /// Measure ingest and lookup performance.
    Bench(bench::BenchArgs),
    /// Validate a trail's digests and log files (like `aws cloudtrail validate-logs`, and more).
    Validate(Box<validate::ValidateArgs>),
    /// Run a CloudTrail Lake SQL query and print its results.
    Query(Box<query::QueryArgs>),
    /// Manage rules (list, add, enable, disable, delete), test them on files or history, and
    /// read alerts.
    Rules(Box<rules_cli::RulesArgs>),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where Cairn keeps its data.
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8517")]
    listen: String,
    /// The first account's id, instead of a generated one (12 digits).
    #[arg(long)]
    account_id: Option<String>,
    /// The region this server reports in ARNs it creates.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Event history to keep, counted from when Cairn stored each event: days (`90`), a
    /// duration (`12h`, `30m`), or `forever`.
    #[arg(long, default_value = "90")]
    retention_days: String,
    /// How often trails get new log files (`60s`, `5m`, `1s` for demos).
    #[arg(long, default_value = "60s")]
    delivery_interval: String,
    /// The period of digest files when log file validation is on (`1h` like CloudTrail;
    /// shorter for tests and demos).
    #[arg(long, default_value = "1h")]
    digest_period: String,
    /// How long new events wait in memory before the lake writes them to Parquet segments
    /// (queries see them at once either way).
    #[arg(long, default_value = "60s")]
    lake_flush: String,
    /// How long a CloudTrail Lake query may run before it stops as TIMED_OUT.
    #[arg(long, default_value = "1h")]
    query_timeout: String,
    /// How unusual a minute must be to start an insight: `low`, `medium`, `high`, or the
    /// number of spreads above the expected rate (medium is 5).
    #[arg(long, default_value = "medium")]
    insights_sensitivity: String,
    /// History an account needs in a region before Insights judge its activity there
    /// (`24h`; stored and imported events count).
    #[arg(long, default_value = "24h")]
    insights_min_history: String,
    /// How often Insights save their state (a few MB, synced). The journal keeps what they
    /// have read since their last save, so retention can run this much late.
    #[arg(long, default_value = "30s")]
    insights_save_interval: String,
    /// Do not run Insights (no insight events are made).
    #[arg(long)]
    no_insights: bool,
    /// A folder of Sigma rules (`aws`/`cloudtrail` log source) run in every account. Rules
    /// Cairn cannot evaluate are listed at start with the reason.
    #[arg(long, env = "CAIRN_RULES_DIR")]
    rules_dir: Option<PathBuf>,
    /// Do not run the default rule pack (root use, failed sign-ins, logging stopped, ...).
    #[arg(long)]
    no_default_rules: bool,
    /// Run no rules at all (no alerts are raised).
    #[arg(long)]
    no_rules: bool,
    /// Where alerts go; repeat for several: `webhook=URL` (signed JSON), `slack=URL` (a
    /// Slack-compatible incoming webhook), `file=PATH` (NDJSON) or `stdout`.
    #[arg(long = "alert-target", value_name = "TARGET")]
    alert_targets: Vec<String>,
    /// The key webhooks are signed with (X-Cairn-Signature). Default: one made at the first
    /// start and kept in <data-dir>/rules/webhook.secret.
    #[arg(long, env = "CAIRN_ALERT_WEBHOOK_SECRET", hide_env_values = true)]
    alert_webhook_secret: Option<String>,
    /// Tries per alert and target before it goes to the dead-letter file.
    #[arg(long, default_value = "8")]
    alert_attempts: u32,
    /// The wait before the first retry of an alert; doubled after each, up to 30 s.
    #[arg(long, default_value = "500ms")]
    alert_backoff: String,
    /// Post trail delivery notifications (trails with an SNS topic) to this webhook, as the
    /// SNS message CloudTrail publishes.
    #[arg(long)]
    notification_webhook: Option<String>,
    /// The address users reach this server at, for links in alerts (default: the address
    /// it listens on).
    #[arg(long)]
    public_url: Option<String>,
    /// How long a digest signing key is used before a new one takes over.
    #[arg(long, default_value = "30d")]
    signing_key_rotation: String,
    /// Put trail buckets on this S3-compatible service instead of folders under the data
    /// directory (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the flags).
    #[arg(long, env = "CAIRN_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Region to sign S3 requests for.
    #[arg(long, env = "CAIRN_S3_REGION")]
    s3_region: Option<String>,
    #[arg(long, env = "CAIRN_S3_ACCESS_KEY_ID", hide_env_values = true)]
    s3_access_key_id: Option<String>,
    #[arg(long, env = "CAIRN_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
    /// Keep a copy of the event store's sealed journal segments and dictionaries in this
    /// bucket (under `cairn-store/`), and restore from it when the data directory is empty.
    #[arg(long)]
    store_bucket: Option<String>,
    /// Start a new journal segment after this long (`1h`; shorter for tests and demos).
    #[arg(long, default_value = "1h")]
    journal_segment_age: String,
    /// The master key that seals secret access keys and digest signing keys, kept outside
    /// the data directory (created if missing; default ~/.config/cairn/master.key; the
    /// CAIRN_MASTER_KEY environment variable, 64 hex digits, takes precedence).
    #[arg(long, env = "CAIRN_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// A duration such as `60s`, `5m`, `1h`, `30d` (a bare number is `unit_ms` units).
pub fn parse_duration(s: &str, unit_ms: i64, what: &str) -> Result<i64> {
    let (number, unit) = match s.char_indices().last() {
        Some((i, 's')) if s.ends_with("ms") => (&s[..i - 1], 1),
        Some((i, 's')) => (&s[..i], 1_000),
        Some((i, 'm')) => (&s[..i], 60_000),
        Some((i, 'h')) => (&s[..i], 3_600_000),
        Some((i, 'd')) => (&s[..i], 86_400_000),
        _ => (s, unit_ms),
    };
    let n: i64 = number
        .parse()
        .with_context(|| format!("{what} {s:?}: give a duration such as 60s, 5m or 1h"))?;
    if n < 1 {
        bail!("{what} must be positive");
    }
    Ok(n.saturating_mul(unit))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Admin(args) => admin::run(args),
        Command::Lookup(args) => lookup::run(*args),
        Command::Import(args) => import::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Validate(args) => validate::run(*args),
        Command::Query(args) => query::run(*args),
        Command::Rules(args) => rules_cli::run(*args),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `90` (days), `forever`, or a duration with a unit (`12h`, `30m`, `3s`) for tests and demos.
pub fn parse_retention(s: &str) -> Result<Option<i64>> {
    if s.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let (number, unit_ms) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1_000),
        Some((i, 'm')) => (&s[..i], 60_000),
        Some((i, 'h')) => (&s[..i], 3_600_000),
        Some((i, 'd')) => (&s[..i], 86_400_000),
        _ => (s, 86_400_000),
    };
    let n: i64 = number.parse().with_context(|| {
        format!(
            "--retention-days {s:?}: give a number of days, a duration such as 12h, or `forever`"
        )
    })?;
    if n < 1 {
        bail!("--retention-days must be positive (or `forever`)");
    }
    Ok(Some(n.saturating_mul(unit_ms)))
}

fn serve(args: ServeArgs) -> Result<()> {
    init_logging();
    let retention_ms = parse_retention(&args.retention_days)?;
    let interval_ms = parse_duration(&args.delivery_interval, 1_000, "--delivery-interval")?;
    let lake_flush_ms = parse_duration(&args.lake_flush, 1_000, "--lake-flush")?;
    let query_timeout_ms = parse_duration(&args.query_timeout, 1_000, "--query-timeout")?;
    let insights_options = cairn_insights::Options {
        sensitivity: cairn_insights::engine::parse_sensitivity(&args.insights_sensitivity)
            .with_context(|| {
                format!(
                    "--insights-sensitivity {:?}: give low, medium, high or a positive number",
                    args.insights_sensitivity
                )
            })?,
        min_history_minutes: parse_duration(
            &args.insights_min_history,
            3_600_000,
            "--insights-min-history",
        )? / 60_000,
        save_every_ms: parse_duration(
            &args.insights_save_interval,
            1_000,
            "--insights-save-interval",
        )?,
        ..cairn_insights::Options::default()
    };
    let digest_period_ms = parse_duration(&args.digest_period, 1_000, "--digest-period")?;
    let alert_setup = alerts::Setup::from_args(
        &args.data_dir,
        &args.alert_targets,
        args.alert_webhook_secret.as_deref(),
        args.alert_attempts,
        &args.alert_backoff,
        args.notification_webhook.as_deref(),
    )?;
    let segment_age_ms = parse_duration(&args.journal_segment_age, 1_000, "--journal-segment-age")?;
    let rotation_ms = parse_duration(
        &args.signing_key_rotation,
        86_400_000,
        "--signing-key-rotation",
    )?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let lock_path = args.data_dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another Cairn server is using {}; stop it or choose another --data-dir",
            args.data_dir.display()
        );
    }
    let given_key = match (
        std::env::var("CAIRN_ACCESS_KEY_ID").ok(),
        std::env::var("CAIRN_SECRET_ACCESS_KEY").ok(),
    ) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => bail!("set both CAIRN_ACCESS_KEY_ID and CAIRN_SECRET_ACCESS_KEY, or neither"),
    };
    let (master, master_text) = cairn_vault::resolve(args.master_key_file.as_deref())?;
    let master = Arc::new(master);
    let iam = Arc::new(cairn_iam::Directory::open(&args.data_dir, master.clone())?);
    let boot = iam.bootstrap(args.account_id.as_deref(), given_key)?;
    let account_ids: Vec<String> = iam.accounts().into_iter().map(|a| a.id).collect();
    let channels =
        Channels::open(&args.data_dir, &args.region, &account_ids).map_err(anyhow::Error::msg)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(cairn_api::tls::load_config(cert, key)?),
        _ => None,
    };
    let buckets = match &args.s3_endpoint {
        Some(endpoint) => cairn_bucket::Backend::S3(cairn_bucket::S3Config {
            endpoint: Some(endpoint.clone()),
            region: args.s3_region.clone(),
            access_key_id: args.s3_access_key_id.clone(),
            secret_access_key: args.s3_secret_access_key.clone(),
            session_token: None,
        }),
        None => cairn_bucket::Backend::folder(&args.data_dir),
    };
    let store_bucket = match &args.store_bucket {
        Some(name) => {
            let bucket = buckets.bucket(name)?;
            let restored = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(archive::restore(&bucket, &args.data_dir))?;
            if restored > 0 {
                tracing::info!(segments = restored, bucket = %name, "event store restored from the bucket");
            }
            Some(bucket)
        }
        None => None,
    };
    let store = Store::open(
        &args.data_dir,
        StoreOptions {
            retention_ms,
            journal: cairn_journal::Options {
                segment_max_age_ms: segment_age_ms,
                ..cairn_journal::Options::default()
            },
            // Trail delivery, the lake and Insights set their real holds as they open,
            // before retention may run.
            held_by: {
                let mut v = vec![
                    cairn_trail::delivery::CONSUMER,
                    cairn_lake::segments::CONSUMER,
                ];
                if !args.no_insights {
                    v.push(cairn_insights::CONSUMER);
                }
                if !args.no_rules {
                    v.push(cairn_rules::CONSUMER);
                }
                v
            },
            ..StoreOptions::default()
        },
    )?;
    let store = Arc::new(store);
    let trails =
        Arc::new(cairn_trail::registry::Trails::open(&args.data_dir).map_err(anyhow::Error::msg)?);
    let status = Arc::new(cairn_trail::status::StatusBoard::default());
    let keys = Arc::new(cairn_trail::keys::Keyring::open(
        &args.data_dir,
        rotation_ms,
        master.clone(),
    )?);
    let delivery = cairn_trail::delivery::Delivery::open(
        &args.data_dir,
        store.clone(),
        trails.clone(),
        status.clone(),
        keys.clone(),
        buckets.clone(),
        cairn_trail::delivery::DeliveryOptions {
            interval_ms,
            digest_period_ms,
            notifier: alert_setup
                .notification_webhook
                .clone()
                .map(|url| cairn_rules::Notifier::new(url, alert_setup.send.clone())),
        },
    )?;
    let lake = Arc::new(cairn_lake::Lake::open(
        &args.data_dir,
        &args.region,
        store.clone(),
        Some(buckets.clone()),
        cairn_lake::SegmentsOptions {
            flush_age_ms: lake_flush_ms,
            ..cairn_lake::SegmentsOptions::default()
        },
        cairn_lake::QueryOptions {
            timeout: std::time::Duration::from_millis(query_timeout_ms.max(1) as u64),
            ..cairn_lake::QueryOptions::default()
        },
    )?);
    lake.registry
        .ensure_default(&boot.account_id, cairn_event::now_ms())?;
    let insights = if args.no_insights {
        None
    } else {
        Some(Arc::new(cairn_insights::Insights::open(
            &args.data_dir,
            store.clone(),
            insights_enabled(trails.clone(), lake.clone()),
            insights_options,
        )?))
    };
    let alerting = if args.no_rules {
        None
    } else {
        Some(alert_setup.open(
            &args.data_dir,
            store.clone(),
            args.rules_dir.as_deref(),
            !args.no_default_rules,
        )?)
    };
    let buckets_text = buckets.describe();
    let (auditor, audit_writer) = cairn_api::audit::Auditor::start(store.clone())?;
    let console = cairn_api::console::Console::new(iam.clone(), tls.is_some());
    let state = Arc::new(AppState {
        store: store.clone(),
        iam,
        console,
        auditor,
        region: args.region.clone(),
        channels,
        trails,
        status,
        buckets,
        keys,
        lake: Some(lake.clone()),
        alerting: alerting.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (stop_delivery, delivery_stopped) = tokio::sync::watch::channel(false);
        let archive_task = store_bucket.map(|bucket| {
            tokio::spawn(archive::run(
                bucket,
                args.data_dir.clone(),
                std::time::Duration::from_millis(interval_ms.clamp(100, 60_000) as u64),
                delivery_stopped.clone(),
            ))
        });
        let lake_task = tokio::spawn(lake.segments.clone().run(delivery_stopped.clone()));
        let insights_task = insights
            .clone()
            .map(|i| tokio::spawn(i.run(delivery_stopped.clone())));
        let alert_tasks = alerting.as_ref().map(|a| {
            (
                tokio::spawn(a.rules.clone().run(delivery_stopped.clone())),
                tokio::spawn(a.dispatcher.clone().run(delivery_stopped.clone())),
            )
        });
        let delivery_task = tokio::spawn(delivery.run(delivery_stopped));
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{addr}");
        if let Some(a) = &alerting {
            *a.console_base.write() = args.public_url.clone().unwrap_or_else(|| endpoint.clone());
        }
        let stats = store.stats();
        println!("Cairn {} is running.", env!("CARGO_PKG_VERSION"));
        println!();
        println!("  API endpoint:      {endpoint}");
        println!("  Console:           {endpoint}/ (sign in as {} in account {})", boot.user_name, boot.account_id);
        println!("  Account:           {}", boot.account_id);
        match &boot.access_key_id {
            Some(id) => println!("  Access key id:     {id}"),
            None => println!("  Access key id:     (none: create one with `cairn admin create-access-key`)"),
        }
        match &boot.secret {
            Some(secret) => println!("  Secret access key: {secret}   (shown once: keep it now)"),
            None if std::env::var_os("CAIRN_SECRET_ACCESS_KEY").is_some() => {
                println!("  Secret access key: from CAIRN_SECRET_ACCESS_KEY")
            }
            None => println!("  Secret access key: shown when this data directory was created (lost it? `cairn admin reset-admin`)"),
        }
        if let Some(password) = &boot.password {
            println!("  Console password:  {password}   (user {}; shown once: keep it now)", boot.user_name);
        }
        println!("  Master key:        {master_text}");
        println!(
            "  Data directory:    {} ({} events stored{})",
            args.data_dir.display(),
            stats.events,
            if boot.created { ", new" } else { "" }
        );
        println!("  Trail buckets:     {buckets_text}");
        println!(
            "  SQL (Lake):        FROM {} (the default event data store)",
            cairn_lake::stores::default_id(&boot.account_id)
        );
        match &alerting {
            Some(a) => alerts::print_banner(a, &alert_setup),
            None => println!("  Rules:             off (--no-rules)"),
        }
        println!();
        if let (Some(id), Some(secret)) = (&boot.access_key_id, &boot.secret) {
            println!("Try it:");
            println!(
                "  AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} aws --endpoint-url {endpoint} --region {} cloudtrail lookup-events --max-results 5",
                args.region
            );
            println!();
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // Live console streams never end by themselves: end them as shutdown begins.
        let shutdown = async {
            shutdown_signal().await;
            cairn_api::ui::end_streams();
        };
        match tls {
            Some(config) => {
                cairn_api::tls::serve_tls(listener, cairn_api::router(state), config, shutdown)
                    .await?
            }
            None => cairn_api::serve(listener, state, shutdown).await?,
        }
        tracing::info!("shutting down");
        let _ = stop_delivery.send(true);
        let _ = delivery_task.await;
        let _ = lake_task.await;
        if let Some(t) = insights_task {
            let _ = t.await;
        }
        if let Some((rules, dispatch)) = alert_tasks {
            let _ = rules.await;
            let _ = dispatch.await;
        }
        if let Some(t) = archive_task {
            let _ = t.await;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // The server has stopped; the store's writer drains its queue and syncs when the last
    // reference goes.
    drop(runtime);
    // The records of the last calls, then the store's final sync.
    audit_writer.join();
    drop(lock);
    Ok(())
}

/// Which insights are on in an account and region: those of its logging trails that cover
/// the region, and of its ingesting event data stores.
fn insights_enabled(
    trails: Arc<cairn_trail::registry::Trails>,
    lake: Arc<cairn_lake::Lake>,
) -> Arc<cairn_insights::EnabledFn> {
    Arc::new(move |account: &str, region: &str| {
        let mut on = cairn_insights::Enabled::default();
        for t in trails.of_account(account) {
            if t.logging && (t.multi_region || t.home_region == region) {
                on.add_selectors(&t.insight_selectors);
            }
        }
        let now = cairn_event::now_ms();
        for s in lake.registry.list(account, now) {
            if s.ingested_at(now) && s.insights_destination.is_some() {
                on.add_selectors(&s.insight_selectors);
            }
        }
        on
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
