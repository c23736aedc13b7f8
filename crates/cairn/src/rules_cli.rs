//! `cairn rules`: an account's rules and alerts through the server's `Cairn_20261121`
//! operations (list, show, add, enable, disable, delete, alerts, targets), and `test`, which
//! runs a rule over a file here (no server needed for a rule given inline) or over the stored
//! history on the server.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use cairn_client::{Client, ClientArgs};
use cairn_rules::{Kind, Origin, Rule, RuleSpec, Severity, SigmaRule, Threshold};

/// Writes a line to standard output; a closed pipe (`| head`) ends the output quietly.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// The account a local test evaluates in (records with `recipientAccountId` keep theirs).
const LOCAL_ACCOUNT: &str = "000000000000";
/// The name a rule given inline is tested under.
const TEST_NAME: &str = "test";

#[derive(Args)]
pub struct RulesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// The account's rules (default pack, rules folder, its own) with their hits.
    List {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One rule: its settings, source and hits.
    Show {
        name: String,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a rule to the account, or replace the one of that name.
    Add(Box<AddArgs>),
    /// Turn a rule on (default pack and folder rules too).
    Enable { name: String },
    /// Turn a rule off (default pack and folder rules too, for this account).
    Disable { name: String },
    /// Delete one of the account's own rules (shared ones can only be disabled).
    Delete { name: String },
    /// Run a rule over a file of records (here) or over stored history (on the server), and
    /// print the alerts it would raise.
    Test(Box<TestArgs>),
    /// The latest alerts, newest first.
    Alerts {
        /// Only this rule's alerts.
        #[arg(long)]
        rule: Option<String>,
        /// Stop after this many alerts.
        #[arg(long, default_value_t = 20)]
        max: usize,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Where alerts go, and how delivery fares.
    Targets {
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How a rule matches, from the flags.
#[derive(Args)]
struct SourceArgs {
    /// An EventBridge event pattern (JSON text), matched against the event's envelope:
    /// `{"detail": {"eventName": ["DeleteBucket"]}}`.
    #[arg(long, value_name = "JSON")]
    pattern: Option<String>,
    /// Read the event pattern from this file ("-": standard input).
    #[arg(long, value_name = "FILE")]
    pattern_file: Option<PathBuf>,
    /// A Sigma rule (YAML, `aws`/`cloudtrail` log source) from this file ("-": standard input).
    #[arg(long, value_name = "FILE")]
    sigma: Option<PathBuf>,
}

/// N matching events within a window, per group.
#[derive(Args)]
struct ThresholdArgs {
    /// Alert only when this many matching events arrive within --window.
    #[arg(long, value_name = "N", requires = "window")]
    threshold: Option<u32>,
    /// The threshold's window (`90s`, `5m`, `1h`).
    #[arg(long, value_name = "DURATION", requires = "threshold")]
    window: Option<String>,
    /// Count per value of this path into the envelope (`detail.sourceIPAddress`);
    /// repeatable. Without it the whole account counts as one group.
    #[arg(long = "group-by", value_name = "PATH", requires = "threshold")]
    group_by: Vec<String>,
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").args(["pattern", "pattern_file", "sigma"]).required(true)))]
struct AddArgs {
    /// Letters, digits, `.`, `_` and `-` (not starting with `cairn-` or `sigma-`).
    name: String,
    #[command(flatten)]
    source: SourceArgs,
    /// What the rule is about (default: a Sigma rule's title).
    #[arg(long)]
    description: Option<String>,
    /// info, low, medium, high or critical (default: a Sigma rule's level, else medium).
    #[arg(long)]
    severity: Option<String>,
    #[command(flatten)]
    threshold: ThresholdArgs,
    /// Add it turned off.
    #[arg(long)]
    disabled: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("rule").args(["name", "pattern", "pattern_file", "sigma"]).required(true)))]
#[command(group(ArgGroup::new("events").args(["file", "start"]).required(true)))]
struct TestArgs {
    /// A rule of the account (fetched from the server), instead of one given inline.
    name: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    /// The severity the alerts show (default: the rule's).
    #[arg(long)]
    severity: Option<String>,
    /// Thresholds replace the named rule's.
    #[command(flatten)]
    threshold: ThresholdArgs,
    /// Evaluate here, over this file: JSON lines of records, a CloudTrail log file
    /// (`{"Records": [...]}`, .gz too), a JSON array, or lines of `{"event": {...}}`.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Evaluate on the server over the events stored from this time (2026-01-02,
    /// 2026-01-02T13:00:00Z, epoch seconds, or relative: -24h, -30m).
    #[arg(long, requires = "end", allow_hyphen_values = true)]
    start: Option<String>,
    /// ... to this time (same forms; `now`).
    #[arg(long, requires = "start", allow_hyphen_values = true)]
    end: Option<String>,
    /// Keep at most this many alerts.
    #[arg(long, default_value_t = 100)]
    max_alerts: usize,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RulesArgs) -> Result<()> {
    let RulesArgs { client, command } = args;
    match command {
        RulesCommand::List { json } => list(&Client::new(&client)?, json),
        RulesCommand::Show { name, json } => show(&Client::new(&client)?, &name, json),
        RulesCommand::Add(a) => add(&Client::new(&client)?, *a),
        RulesCommand::Enable { name } => {
            let c = Client::new(&client)?;
            c.call_cairn("EnableRule", &json!({"Name": name}))?;
            out!("Enabled rule {name}.");
            Ok(())
        }
        RulesCommand::Disable { name } => {
            let c = Client::new(&client)?;
            c.call_cairn("DisableRule", &json!({"Name": name}))?;
            out!("Disabled rule {name}.");
            Ok(())
        }
        RulesCommand::Delete { name } => {
            let c = Client::new(&client)?;
            c.call_cairn("DeleteRule", &json!({"Name": name}))?;
            out!("Deleted rule {name}.");
            Ok(())
        }
        RulesCommand::Test(t) => test(&client, *t),
        RulesCommand::Alerts { rule, max, json } => {
            alerts(&Client::new(&client)?, rule.as_deref(), max, json)
        }
        RulesCommand::Targets { json } => targets(&Client::new(&client)?, json),
    }
}

fn print_json(v: &Value) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An API time (epoch seconds) as CloudTrail writes times.
fn seconds_text(v: &Value) -> String {
    v.as_f64()
        .map(|s| cairn_event::format_event_time((s * 1000.0) as i64))
        .unwrap_or_default()
}

fn yes_no(v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

fn threshold_text(t: &Value) -> Option<String> {
    let count = t.get("Count")?.as_u64()?;
    let window = t.get("WindowSeconds")?.as_u64()?;
    let groups: Vec<String> = t
        .get("GroupBy")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut s = format!("{count} within {window} s");
    if !groups.is_empty() {
        s.push_str(&format!(" per {}", groups.join(", ")));
    }
    Some(s)
}

fn list(client: &Client, as_json: bool) -> Result<()> {
    let out = client.call_cairn("ListRules", &json!({}))?;
    if as_json {
        return print_json(&out);
    }
    let rules = out["Rules"].as_array().cloned().unwrap_or_default();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "Name",
        "Origin",
        "Kind",
        "Severity",
        "Enabled",
        "Matched",
        "Alerts",
        "Last match",
    ]);
    for r in &rules {
        let mut kind = text(&r["Kind"]);
        if r["Threshold"].is_object() {
            kind.push_str(" + threshold");
        }
        table.add_row([
            text(&r["Name"]),
            text(&r["Origin"]),
            kind,
            text(&r["Severity"]),
            yes_no(&r["Enabled"]).to_owned(),
            text(&r["Hits"]["Matched"]),
            text(&r["Hits"]["Alerts"]),
            seconds_text(&r["Hits"]["LastMatch"]),
        ]);
    }
    out!("{table}");
    eprintln!("{} rules", rules.len());
    let refused = out["Refused"].as_array().cloned().unwrap_or_default();
    if !refused.is_empty() {
        out!();
        out!("Refused from the rules folder:");
        for r in &refused {
            out!("  {}: {}", text(&r["File"]), text(&r["Reason"]));
        }
    }
    Ok(())
}

fn show(client: &Client, name: &str, as_json: bool) -> Result<()> {
    let out = client.call_cairn("GetRule", &json!({"Name": name}))?;
    if as_json {
        return print_json(&out["Rule"]);
    }
    let r = &out["Rule"];
    let line = |label: &str, value: String| out!("{:<13}{value}", format!("{label}:"));
    line("Name", text(&r["Name"]));
    line("Description", text(&r["Description"]));
    line("Origin", text(&r["Origin"]));
    line("Kind", text(&r["Kind"]));
    line("Severity", text(&r["Severity"]));
    line("Enabled", yes_no(&r["Enabled"]).to_owned());
    if let Some(t) = threshold_text(&r["Threshold"]) {
        line("Threshold", t);
    }
    if r["File"].is_string() {
        line("File", text(&r["File"]));
    }
    if !r["UpdatedAt"].is_null() {
        line("Updated", seconds_text(&r["UpdatedAt"]));
    }
    let hits = &r["Hits"];
    let last = if hits["LastMatch"].is_null() {
        String::new()
    } else {
        format!(" (last {})", seconds_text(&hits["LastMatch"]))
    };
    line("Matched", format!("{}{last}", text(&hits["Matched"])));
    line("Alerts", text(&hits["Alerts"]));
    let source = r["EventPattern"]
        .as_str()
        .or_else(|| r["SigmaRule"].as_str())
        .unwrap_or_default();
    out!("Source:");
    // An event pattern reads best indented; a Sigma rule is shown as written.
    let pretty = serde_json::from_str::<Value>(source)
        .ok()
        .filter(|_| r["Kind"] == "pattern")
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| source.to_owned());
    for l in pretty.lines() {
        out!("  {l}");
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_severity(s: &str) -> Result<Severity> {
    Severity::parse(s)
        .with_context(|| format!("--severity {s:?}: give info, low, medium, high or critical"))
}

impl ThresholdArgs {
    fn threshold(&self) -> Result<Option<Threshold>> {
        let (Some(count), Some(window)) = (self.threshold, &self.window) else {
            return Ok(None);
        };
        let ms = crate::parse_duration(window, 1000, "--window")?;
        if ms % 1000 != 0 {
            bail!("--window {window:?} must be whole seconds");
        }
        let window_seconds = u32::try_from(ms / 1000)
            .ok()
            .with_context(|| format!("--window {window:?} is too long"))?;
        Ok(Some(Threshold {
            count,
            window_seconds,
            group_by: self.group_by.clone(),
        }))
    }
}

/// A rule before it has a name: how it matches, and what the flags or the server say about
/// it.
struct Draft {
    kind: Kind,
    source: String,
    description: Option<String>,
    severity: Option<Severity>,
    threshold: Option<Threshold>,
    /// The name a local test reports (a file's stem, or the server's name).
    label: String,
}

impl Draft {
    fn from_flags(source: &SourceArgs) -> Result<Draft> {
        let stem = |p: &Path| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| s != "-")
                .unwrap_or_else(|| TEST_NAME.to_owned())
        };
        let (kind, text, label) = match (&source.pattern, &source.pattern_file, &source.sigma) {
            (Some(p), None, None) => (Kind::Pattern, p.clone(), TEST_NAME.to_owned()),
            (None, Some(f), None) => (Kind::Pattern, read_text(f)?, stem(f)),
            (None, None, Some(f)) => (Kind::Sigma, read_text(f)?, stem(f)),
            _ => bail!("give one of --pattern, --pattern-file and --sigma"),
        };
        let mut d = Draft {
            kind,
            source: text,
            description: None,
            severity: None,
            threshold: None,
            label,
        };
        // A Sigma rule says what it is about and how urgent it is.
        if kind == Kind::Sigma
            && let Ok(s) = SigmaRule::parse(&d.source)
        {
            d.description = Some(s.title.clone());
            d.severity = s.level.as_deref().and_then(Severity::parse);
        }
        Ok(d)
    }

    /// A rule as GetRule returns it.
    fn from_api(rule: &Value) -> Result<Draft> {
        let name = text(&rule["Name"]);
        let (kind, source) = match (rule["EventPattern"].as_str(), rule["SigmaRule"].as_str()) {
            (Some(p), _) => (Kind::Pattern, p.to_owned()),
            (None, Some(s)) => (Kind::Sigma, s.to_owned()),
            _ => bail!("the server's rule {name:?} has neither EventPattern nor SigmaRule"),
        };
        let threshold = match rule.get("Threshold").filter(|t| t.is_object()) {
            None => None,
            Some(t) => {
                let num = |k: &str| {
                    t[k].as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .with_context(|| {
                            format!("the server's rule {name:?} has a bad Threshold.{k}")
                        })
                };
                Some(Threshold {
                    count: num("Count")?,
                    window_seconds: num("WindowSeconds")?,
                    group_by: t["GroupBy"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            }
        };
        Ok(Draft {
            kind,
            source,
            description: rule["Description"].as_str().map(str::to_owned),
            severity: rule["Severity"].as_str().and_then(Severity::parse),
            threshold,
            label: name,
        })
    }

    /// The members PutRule and TestRule take.
    fn input(&self, name: &str) -> Value {
        let mut v = json!({"Name": name});
        match self.kind {
            Kind::Pattern => v["EventPattern"] = json!(self.source),
            Kind::Sigma => v["SigmaRule"] = json!(self.source),
        }
        if let Some(d) = &self.description {
            v["Description"] = json!(d);
        }
        if let Some(s) = self.severity {
            v["Severity"] = json!(s.as_str());
        }
        if let Some(t) = &self.threshold {
            v["Threshold"] = json!({
                "Count": t.count,
                "WindowSeconds": t.window_seconds,
                "GroupBy": t.group_by,
            });
        }
        v
    }

    /// The rule, compiled here; a refusal carries the code the server would answer with.
    fn compile(&self) -> Result<Rule> {
        Rule::compile(RuleSpec {
            name: self.label.clone(),
            description: self.description.clone().unwrap_or_default(),
            severity: self.severity.unwrap_or(Severity::Medium),
            kind: self.kind,
            source: self.source.clone(),
            threshold: self.threshold.clone(),
            enabled: true,
            origin: Origin::Custom,
            file: None,
            updated_ms: 0,
        })
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))
    }
}

fn add(client: &Client, a: AddArgs) -> Result<()> {
    let mut d = Draft::from_flags(&a.source)?;
    if let Some(desc) = a.description {
        d.description = Some(desc);
    }
    if let Some(s) = &a.severity {
        d.severity = Some(parse_severity(s)?);
    }
    d.threshold = a.threshold.threshold()?;
    let mut input = d.input(&a.name);
    input["Enabled"] = json!(!a.disabled);
    let out = client.call_cairn("PutRule", &input)?;
    let r = &out["Rule"];
    out!(
        "{} rule {} ({}, {}{}{}).",
        if out["Created"].as_bool().unwrap_or(false) {
            "Created"
        } else {
            "Replaced"
        },
        text(&r["Name"]),
        text(&r["Kind"]),
        text(&r["Severity"]),
        threshold_text(&r["Threshold"])
            .map(|t| format!(", {t}"))
            .unwrap_or_default(),
        if r["Enabled"].as_bool().unwrap_or(false) {
            ""
        } else {
            ", disabled"
        },
    );
    Ok(())
}

/// A time for TestRule: relative times (`-24h`, `now`) become epoch seconds; the rest goes
/// to the server as written (dates, ISO 8601, epoch seconds), as `cairn lookup` sends them.
fn time_input(s: &str, flag: &str) -> Result<Value> {
    let now = cairn_event::now_ms();
    if s.eq_ignore_ascii_case("now") {
        return Ok(json!(now / 1000));
    }
    if let Some(rest) = s.strip_prefix('-')
        && rest.starts_with(|c: char| c.is_ascii_digit())
        && rest.ends_with(|c: char| c.is_ascii_alphabetic())
    {
        let ms = crate::parse_duration(rest, 1000, flag)?;
        return Ok(json!((now - ms) / 1000));
    }
    Ok(json!(s))
}

/// The endpoint links in local results point at (where the server would be).
fn endpoint_of(args: &ClientArgs) -> String {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    args.endpoint_url
        .clone()
        .or_else(|| env("CAIRN_ENDPOINT_URL"))
        .or_else(|| env("AWS_ENDPOINT_URL_CLOUDTRAIL"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| cairn_client::DEFAULT_ENDPOINT.to_owned())
}

/// The records of a file: NDJSON, a JSON array, a CloudTrail log file (gzipped too), and
/// records wrapped as `{"event": {...}}`. Also returns how many items were not records.
pub(crate) fn read_records(path: &Path) -> Result<(Vec<Value>, usize)> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 8);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{} is not valid gzip", path.display()))?;
        out
    } else {
        raw
    };
    let parts = cairn_event::split_records(&bytes)
        .with_context(|| format!("{} holds no records", path.display()))?;
    let mut records = Vec::with_capacity(parts.len());
    let mut skipped = 0;
    for part in parts {
        match serde_json::from_slice::<Value>(part) {
            Ok(v) => push_record(v, &mut records, &mut skipped),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

fn push_record(v: Value, out: &mut Vec<Value>, skipped: &mut usize) {
    match v {
        Value::Object(mut m) => {
            if let Some(Value::Array(list)) = m.get_mut("Records") {
                for r in std::mem::take(list) {
                    push_record(r, out, skipped);
                }
            } else if !m.contains_key("eventName")
                && let Some(Value::Object(inner)) = m.remove("event")
            {
                out.push(Value::Object(inner));
            } else {
                out.push(Value::Object(m));
            }
        }
        _ => *skipped += 1,
    }
}

fn test(client_args: &ClientArgs, t: TestArgs) -> Result<()> {
    let severity = t.severity.as_deref().map(parse_severity).transpose()?;
    let threshold = t.threshold.threshold()?;
    let client = || Client::new(client_args);
    let named = match &t.name {
        Some(name) => {
            let out = client()?.call_cairn("GetRule", &json!({"Name": name}))?;
            Some(Draft::from_api(&out["Rule"])?)
        }
        None => None,
    };
    let changed = severity.is_some() || threshold.is_some();
    // The rule to test: the named one or the one given inline, with the flags' changes.
    let draft = |named: Option<Draft>| -> Result<Draft> {
        let mut d = match named {
            Some(d) => d,
            None => Draft::from_flags(&t.source)?,
        };
        if severity.is_some() {
            d.severity = severity;
        }
        if threshold.is_some() {
            d.threshold = threshold.clone();
        }
        Ok(d)
    };
    let out = if let Some(file) = &t.file {
        let d = draft(named)?;
        let rule = d.compile()?;
        let (records, skipped) = read_records(file)?;
        if skipped > 0 {
            eprintln!(
                "{skipped} items of {} are not JSON objects and were skipped",
                file.display()
            );
        }
        let outcome = cairn_rules::test_rule(rule, LOCAL_ACCOUNT, records.iter(), t.max_alerts);
        let base = endpoint_of(client_args);
        let now = cairn_rules::iso(cairn_event::now_ms());
        let alerts: Vec<Value> = outcome
            .alerts
            .iter()
            .map(|a| cairn_rules::engine::alert_json(a, &base, &now))
            .collect();
        json!({
            "Scanned": outcome.scanned,
            "Matched": outcome.matched,
            "Alerts": alerts,
            "Truncated": outcome.truncated,
        })
    } else {
        let (Some(start), Some(end)) = (&t.start, &t.end) else {
            bail!("give --file, or --start and --end");
        };
        if !(1..=1000).contains(&t.max_alerts) {
            bail!("--max-alerts must be between 1 and 1000 on the server (the limit of TestRule)");
        }
        let mut input = if named.is_some() && !changed {
            // A named rule as stored.
            json!({"Name": t.name})
        } else {
            let d = draft(named)?;
            d.input(&d.label)
        };
        input["StartTime"] = time_input(start, "--start")?;
        input["EndTime"] = time_input(end, "--end")?;
        input["MaxAlerts"] = json!(t.max_alerts);
        client()?.call_cairn("TestRule", &input)?
    };
    if t.json {
        return print_json(&out);
    }
    let alerts = out["Alerts"].as_array().cloned().unwrap_or_default();
    if !alerts.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "Event time",
            "Rule",
            "Summary",
            "Event ID",
        ]);
        for a in &alerts {
            table.add_row([
                text(&a["eventTime"]),
                text(&a["rule"]["name"]),
                text(&a["summary"]),
                text(&a["eventId"]),
            ]);
        }
        out!("{table}");
    }
    let n = |k: &str| out[k].as_u64().unwrap_or(0);
    out!(
        "{} scanned, {} matched, {} alert{}{}",
        n("Scanned"),
        n("Matched"),
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        if out["Truncated"].as_bool().unwrap_or(false) {
            if t.file.is_some() {
                format!(" (stopped at --max-alerts {})", t.max_alerts)
            } else {
                format!(
                    " (stopped at --max-alerts {} or the server's scan limit)",
                    t.max_alerts
                )
            }
        } else {
            String::new()
        }
    );
    Ok(())
}

fn alerts(client: &Client, rule: Option<&str>, max: usize, as_json: bool) -> Result<()> {
    let mut input = json!({});
    if let Some(r) = rule {
        input["RuleName"] = json!(r);
    }
    let mut found: Vec<Value> = Vec::new();
    while found.len() < max {
        input["MaxResults"] = json!((max - found.len()).min(200));
        let page = client.call_cairn("ListAlerts", &input)?;
        if let Some(list) = page["Alerts"].as_array() {
            found.extend(list.iter().cloned());
        }
        match page["NextToken"].as_str() {
            Some(t) => input["NextToken"] = json!(t),
            None => break,
        }
    }
    found.truncate(max);
    if as_json {
        return print_json(&Value::Array(found));
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "Event time",
        "Severity",
        "Rule",
        "Summary",
        "Console link",
    ]);
    for a in &found {
        table.add_row([
            text(&a["eventTime"]),
            text(&a["rule"]["severity"]),
            text(&a["rule"]["name"]),
            text(&a["summary"]),
            text(&a["consoleUrl"]),
        ]);
    }
    out!("{table}");
    eprintln!("{} alerts", found.len());
    Ok(())
}

fn targets(client: &Client, as_json: bool) -> Result<()> {
    let out = client.call_cairn("GetAlertTargets", &json!({}))?;
    if as_json {
        return print_json(&out);
    }
    let list = out["Targets"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        out!(
            "No alert targets: start the server with --alert-target webhook=URL, slack=URL, file=PATH or stdout."
        );
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "Target",
            "Delivered",
            "Pending",
            "Failed attempts",
            "Dead-lettered",
            "Last delivery",
            "Last error",
        ]);
        for t in &list {
            table.add_row([
                text(&t["Target"]),
                text(&t["Delivered"]),
                text(&t["Pending"]),
                text(&t["FailedAttempts"]),
                text(&t["DeadLettered"]),
                t["LastDeliveryMs"]
                    .as_i64()
                    .map(cairn_event::format_event_time)
                    .unwrap_or_default(),
                text(&t["LastError"]),
            ]);
        }
        out!("{table}");
    }
    if let Some(p) = out["DeadLetterFile"].as_str() {
        out!("Dead-letter file: {p}");
    }
    Ok(())
}
