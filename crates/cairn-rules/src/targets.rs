//! Sending alerts: webhooks (signed JSON), Slack-compatible incoming webhooks, an NDJSON file
//! and standard output. Each target reads the alert log from its own saved cursor and sends
//! alerts in order; a failing send is retried with exponential backoff, and after the last
//! try the alert goes to the dead-letter file and the target moves on. Also: trail delivery
//! notifications (the SNS message CloudTrail publishes) posted to a webhook.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::engine::alert_json;
use crate::outbox::{Outbox, Stored};

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook(String),
    Slack(String),
    File(PathBuf),
    Stdout,
}

impl Target {
    /// Parses `webhook=URL`, `slack=URL`, `file=PATH` or `stdout`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let (kind, rest) = text.split_once('=').unwrap_or((text, ""));
        let url = |rest: &str| -> Result<String, String> {
            let u = reqwest::Url::parse(rest)
                .map_err(|e| format!("{text:?}: {rest:?} is not a URL: {e}"))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(format!("{text:?}: the URL must be http or https"));
            }
            Ok(rest.to_owned())
        };
        match kind {
            "webhook" => Ok(Target::Webhook(url(rest)?)),
            "slack" => Ok(Target::Slack(url(rest)?)),
            "file" if !rest.is_empty() => Ok(Target::File(PathBuf::from(rest))),
            "stdout" if rest.is_empty() => Ok(Target::Stdout),
            _ => Err(format!(
                "{text:?}: give webhook=URL, slack=URL, file=PATH or stdout"
            )),
        }
    }

    /// A stable name for the target (its cursor is saved under it).
    pub fn id(&self) -> String {
        match self {
            Target::Webhook(u) => format!("webhook={u}"),
            Target::Slack(u) => format!("slack={u}"),
            Target::File(p) => format!("file={}", p.display()),
            Target::Stdout => "stdout".to_owned(),
        }
    }

    /// The name shown in listings: URLs without their path (incoming-webhook paths are
    /// secrets).
    pub fn display(&self) -> String {
        let host = |u: &str| {
            reqwest::Url::parse(u)
                .map(|u| format!("{}://{}", u.scheme(), u.authority()))
                .unwrap_or_default()
        };
        match self {
            Target::Webhook(u) => format!("webhook {}", host(u)),
            Target::Slack(u) => format!("slack {}", host(u)),
            Target::File(p) => format!("file {}", p.display()),
            Target::Stdout => "stdout".to_owned(),
        }
    }
}

/// How targets send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Tries per alert before it goes to the dead-letter file.
    pub attempts: u32,
    /// The wait before the first retry; doubled after each.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Per request.
    pub timeout: Duration,
    /// The key of the webhook signature.
    pub secret: Vec<u8>,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            attempts: 8,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            secret: Vec::new(),
        }
    }
}

/// What a target has done, for status pages.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetStatus {
    pub target: String,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    /// Alerts in the log it has not sent yet.
    pub pending: u64,
    pub last_error: Option<String>,
    pub last_delivery_ms: Option<i64>,
}

/// The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The text of a Slack message for an alert.
pub fn slack_text(alert: &Value) -> String {
    let s = |p: &str| alert.pointer(p).and_then(Value::as_str).unwrap_or("");
    format!(
        "*[{}] {}* ({})\n{}\n<{}|Open the event in Cairn> · account {} · alert {}",
        s("/rule/severity").to_uppercase(),
        s("/rule/description"),
        s("/rule/name"),
        s("/summary"),
        s("/consoleUrl"),
        s("/account"),
        s("/alertId"),
    )
}

/// Sends the alert log to the targets.
pub struct Dispatcher {
    outbox: Arc<Outbox>,
    targets: Vec<Target>,
    opts: SendOptions,
    client: reqwest::Client,
    console_base: Arc<RwLock<String>>,
    cursors_path: Option<PathBuf>,
    dead_letter: Option<PathBuf>,
    cursors: Mutex<BTreeMap<String, u64>>,
    status: Mutex<BTreeMap<String, TargetStatus>>,
    write: Mutex<()>,
    saving: Mutex<()>,
}

impl Dispatcher {
    /// `dir` holds the targets' cursors (`targets.json`) and the dead-letter file
    /// (`dead-letter.ndjson`). A target seen for the first time starts at the log's end.
    pub fn new(
        dir: Option<&Path>,
        outbox: Arc<Outbox>,
        targets: Vec<Target>,
        opts: SendOptions,
        console_base: Arc<RwLock<String>>,
    ) -> Dispatcher {
        let cursors_path = dir.map(|d| d.join("targets.json"));
        let mut cursors: BTreeMap<String, u64> = cursors_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let end = outbox.len();
        let mut status = BTreeMap::new();
        for t in &targets {
            cursors.entry(t.id()).or_insert(end);
            status.insert(
                t.id(),
                TargetStatus {
                    target: t.display(),
                    ..TargetStatus::default()
                },
            );
        }
        let client = http_client(&opts).unwrap_or_default();
        let d = Dispatcher {
            outbox,
            targets,
            opts,
            client,
            console_base,
            cursors_path,
            dead_letter: dir.map(|d| d.join("dead-letter.ndjson")),
            cursors: Mutex::new(cursors),
            status: Mutex::new(status),
            write: Mutex::new(()),
            saving: Mutex::new(()),
        };
        d.save_cursors();
        d
    }

    pub fn dead_letter_path(&self) -> Option<&Path> {
        self.dead_letter.as_deref()
    }

    /// Each target's counts.
    pub fn status(&self) -> Vec<TargetStatus> {
        let len = self.outbox.len();
        let cursors = self.cursors.lock();
        self.status
            .lock()
            .iter()
            .map(|(id, s)| {
                let mut s = s.clone();
                s.pending = len.saturating_sub(cursors.get(id).copied().unwrap_or(len));
                s
            })
            .collect()
    }

    /// Runs every target until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .targets
            .clone()
            .into_iter()
            .map(|t| tokio::spawn(self.clone().run_target(t, shutdown.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn run_target(
        self: Arc<Self>,
        target: Target,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let id = target.id();
        let mut len = self.outbox.watch();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let next = self.cursors.lock().get(&id).copied().unwrap_or(0);
            let stored = match self.outbox.get(next) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(target = %target.display(), error = %e, "cannot read the alert log");
                    None
                }
            };
            let Some(stored) = stored else {
                tokio::select! {
                    _ = len.changed() => {}
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            let sent = self
                .send_with_retries(&target, &stored, &mut shutdown)
                .await;
            match sent {
                None => return, // shutting down: the alert is sent again at the next start
                Some(Ok(())) => {
                    let mut st = self.status.lock();
                    if let Some(s) = st.get_mut(&id) {
                        s.delivered += 1;
                        s.last_delivery_ms = Some(now_ms());
                    }
                }
                Some(Err(error)) => {
                    self.dead_letter(&target, &stored, &error);
                    let mut st = self.status.lock();
                    if let Some(s) = st.get_mut(&id) {
                        s.dead_lettered += 1;
                    }
                }
            }
            self.cursors.lock().insert(id.clone(), next + 1);
            self.save_cursors();
        }
    }

    /// Tries to send one alert; `None` when shutdown came first.
    async fn send_with_retries(
        &self,
        target: &Target,
        stored: &Stored,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<Result<(), String>> {
        let base = self.console_base.read().clone();
        let detected = crate::iso(stored.detected_ms);
        let body = alert_json(&stored.alert, &base, &detected);
        let mut wait = self.opts.backoff;
        let mut last = String::new();
        for attempt in 1..=self.opts.attempts.max(1) {
            match self.send_once(target, stored, &body).await {
                Ok(()) => return Some(Ok(())),
                Err(e) => {
                    tracing::warn!(target = %target.display(), alert_id = %stored.alert.alert_id, attempt, error = %e, "alert not delivered");
                    let mut st = self.status.lock();
                    if let Some(s) = st.get_mut(&target.id()) {
                        s.failed_attempts += 1;
                        s.last_error = Some(e.clone());
                    }
                    last = e;
                }
            }
            if attempt == self.opts.attempts.max(1) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return None,
            }
            wait = (wait * 2).min(self.opts.max_backoff);
        }
        Some(Err(last))
    }

    async fn send_once(
        &self,
        target: &Target,
        stored: &Stored,
        body: &Value,
    ) -> Result<(), String> {
        match target {
            Target::Webhook(url) => {
                let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
                let ts = now_ms() / 1000;
                let sig = signature(&self.opts.secret, ts, &bytes);
                let resp = self
                    .client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-cairn-alert-id", &stored.alert.alert_id)
                    .header("x-cairn-timestamp", ts.to_string())
                    .header("x-cairn-signature", sig)
                    .body(bytes)
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
                check_status(resp).await
            }
            Target::Slack(url) => {
                let resp = self
                    .client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(json!({"text": slack_text(body)}).to_string())
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
                check_status(resp).await
            }
            Target::File(path) => {
                let mut line = serde_json::to_vec(body).map_err(|e| e.to_string())?;
                line.push(b'\n');
                let _w = self.write.lock();
                append_line(path, &line, true).map_err(|e| format!("{}: {e}", path.display()))
            }
            Target::Stdout => {
                let line = serde_json::to_string(body).map_err(|e| e.to_string())?;
                let _w = self.write.lock();
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn dead_letter(&self, target: &Target, stored: &Stored, error: &str) {
        tracing::error!(target = %target.display(), alert_id = %stored.alert.alert_id, error, "alert given up after the last try; written to the dead-letter file");
        let Some(path) = &self.dead_letter else {
            return;
        };
        let entry = json!({
            "target": target.display(),
            "alertId": stored.alert.alert_id,
            "attempts": self.opts.attempts.max(1),
            "lastError": error,
            "failedAt": crate::iso(now_ms()),
            "alert": alert_json(&stored.alert, &self.console_base.read(), &crate::iso(stored.detected_ms)),
        });
        let mut line = entry.to_string().into_bytes();
        line.push(b'\n');
        let _w = self.write.lock();
        if let Err(e) = append_line(path, &line, true) {
            tracing::error!(path = %path.display(), error = %e, "cannot write the dead-letter file");
        }
    }

    fn save_cursors(&self) {
        let Some(path) = &self.cursors_path else {
            return;
        };
        // One save at a time: the targets' tasks share the temporary file.
        let _saving = self.saving.lock();
        let bytes = match serde_json::to_vec(&*self.cursors.lock()) {
            Ok(b) => b,
            Err(_) => return,
        };
        // Not synced: a cursor lost in a crash sends some alerts again (at least once).
        let tmp = path.with_extension("tmp");
        let done = std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = done {
            tracing::error!(path = %path.display(), error = %e, "cannot save the alert targets' cursors");
        }
    }
}

/// The HTTP client of targets and notifications. Idle connections are dropped after 4 s:
/// receivers commonly close theirs after 5 s (Node's default), and a request sent on a
/// connection the receiver is closing fails and waits for a retry.
fn http_client(opts: &SendOptions) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(opts.timeout)
        .pool_idle_timeout(Duration::from_secs(4))
        .user_agent(concat!("Cairn/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

async fn check_status(resp: reqwest::Response) -> Result<(), String> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(format!("HTTP {status}: {text}"))
}

fn append_line(path: &Path, line: &[u8], sync: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Posts trail delivery notifications (the SNS message CloudTrail publishes after each
/// delivery) to a webhook, as an SNS `Notification` whose `Message` is
/// `{"s3Bucket": ..., "s3ObjectKey": [...]}`. Retried like alerts; not kept across restarts.
#[derive(Clone)]
pub struct Notifier {
    url: String,
    client: reqwest::Client,
    opts: SendOptions,
    errors: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn new(url: String, opts: SendOptions) -> Notifier {
        let client = http_client(&opts).unwrap_or_default();
        Notifier {
            url,
            client,
            opts,
            errors: Arc::new(Mutex::new(None)),
        }
    }

    /// The SNS envelope of one notification.
    pub fn message(topic_arn: &str, bucket: &str, keys: &[String], now_ms: i64) -> Value {
        let message = json!({"s3Bucket": bucket, "s3ObjectKey": keys}).to_string();
        let id = uuid::Uuid::new_v5(
            &crate::NAMESPACE,
            format!("sns|{topic_arn}|{bucket}|{}", keys.join(",")).as_bytes(),
        );
        json!({
            "Type": "Notification",
            "MessageId": id.to_string(),
            "TopicArn": topic_arn,
            "Subject": "[AWS Notification Message]",
            "Message": message,
            "Timestamp": crate::iso(now_ms),
            "SignatureVersion": "1",
        })
    }

    /// Sends one notification in the background; resolves to the last error, if every try
    /// failed.
    pub fn send(
        &self,
        topic_arn: &str,
        bucket: &str,
        keys: Vec<String>,
    ) -> tokio::task::JoinHandle<Option<String>> {
        let body = Notifier::message(topic_arn, bucket, &keys, now_ms());
        let this = self.clone();
        let topic = topic_arn.to_owned();
        tokio::spawn(async move {
            let bytes = body.to_string().into_bytes();
            let mut wait = this.opts.backoff;
            let mut last = None;
            for attempt in 1..=this.opts.attempts.max(1) {
                let ts = now_ms() / 1000;
                let sent = this
                    .client
                    .post(&this.url)
                    .header("content-type", "text/plain; charset=UTF-8")
                    .header("x-amz-sns-message-type", "Notification")
                    .header("x-amz-sns-topic-arn", &topic)
                    .header("x-cairn-timestamp", ts.to_string())
                    .header(
                        "x-cairn-signature",
                        signature(&this.opts.secret, ts, &bytes),
                    )
                    .body(bytes.clone())
                    .send()
                    .await;
                let result = match sent {
                    Ok(resp) => check_status(resp).await,
                    Err(e) => Err(format!("request failed: {}", error_chain(&e))),
                };
                match result {
                    Ok(()) => {
                        *this.errors.lock() = None;
                        return None;
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, attempt, error = %e, "trail notification not delivered");
                        last = Some(e);
                    }
                }
                if attempt < this.opts.attempts.max(1) {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(this.opts.max_backoff);
                }
            }
            *this.errors.lock() = last.clone();
            last
        })
    }

    /// The last notification's error, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.errors.lock().clone()
    }
}
