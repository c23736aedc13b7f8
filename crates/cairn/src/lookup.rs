//! `cairn lookup`: LookupEvents from the command line, with filters that combine.

use anyhow::{Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use cairn_client::{Client, ClientArgs};

#[derive(clap::Args)]
pub struct LookupArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// User name (IAM user, `root`, or role session name). Repeat for any of several.
    #[arg(long)]
    username: Vec<String>,
    #[arg(long)]
    event_name: Vec<String>,
    #[arg(long)]
    event_source: Vec<String>,
    #[arg(long)]
    event_id: Vec<String>,
    #[arg(long)]
    resource_type: Vec<String>,
    #[arg(long)]
    resource_name: Vec<String>,
    #[arg(long)]
    access_key_id: Vec<String>,
    /// true for read-only calls, false for writes.
    #[arg(long)]
    read_only: Option<String>,
    /// Events at or after this time (2020-06-01, 2020-06-01T13:00:00Z or epoch seconds).
    #[arg(long)]
    start: Option<String>,
    /// Events at or before this time.
    #[arg(long)]
    end: Option<String>,
    /// Insights events instead of API activity.
    #[arg(long)]
    insights: bool,
    /// Stop after this many events.
    #[arg(long)]
    max_items: Option<usize>,
    /// table, or json (the records, as a JSON array).
    #[arg(long, default_value = "table")]
    output: String,
}

pub fn run(args: LookupArgs) -> Result<()> {
    if !matches!(args.output.as_str(), "table" | "json") {
        bail!("--output must be table or json");
    }
    let client = Client::new(&args.client)?;
    let mut attrs = Vec::new();
    let mut add = |key: &str, values: &[String]| {
        for v in values {
            attrs.push(json!({"AttributeKey": key, "AttributeValue": v}));
        }
    };
    add("Username", &args.username);
    add("EventName", &args.event_name);
    add("EventSource", &args.event_source);
    add("EventId", &args.event_id);
    add("ResourceType", &args.resource_type);
    add("ResourceName", &args.resource_name);
    add("AccessKeyId", &args.access_key_id);
    if let Some(r) = &args.read_only {
        add("ReadOnly", std::slice::from_ref(r));
    }
    let mut input = json!({ "LookupAttributes": attrs, "MaxResults": 50 });
    if let Some(s) = &args.start {
        input["StartTime"] = json!(s);
    }
    if let Some(e) = &args.end {
        input["EndTime"] = json!(e);
    }
    if args.insights {
        input["EventCategory"] = json!("insight");
    }
    let limit = args.max_items.unwrap_or(usize::MAX);
    let mut events: Vec<Value> = Vec::new();
    loop {
        let resp = client.call("LookupEvents", &input)?;
        if let Some(list) = resp["Events"].as_array() {
            events.extend(list.iter().cloned());
        }
        if events.len() >= limit {
            events.truncate(limit);
            break;
        }
        match resp["NextToken"].as_str() {
            Some(t) => input["NextToken"] = json!(t),
            None => break,
        }
    }
    if args.output == "json" {
        let records: Vec<Value> = events
            .iter()
            .map(|e| {
                e["CloudTrailEvent"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "Event time",
        "User name",
        "Event name",
        "Event source",
        "Resources",
        "Source IP",
        "Region",
        "Error code",
    ]);
    for e in &events {
        let record: Value = e["CloudTrailEvent"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let resources: Vec<String> = e["Resources"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| r["ResourceName"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        table.add_row([
            s(&record["eventTime"]),
            s(&e["Username"]),
            s(&e["EventName"]),
            s(&e["EventSource"]),
            resources.join(", "),
            s(&record["sourceIPAddress"]),
            s(&record["awsRegion"]),
            s(&record["errorCode"]),
        ]);
    }
    println!("{table}");
    eprintln!("{} events", events.len());
    Ok(())
}
