//! `cairn query`: a CloudTrail Lake query from the command line (StartQuery, then
//! DescribeQuery until it ends, then every page of GetQueryResults), printed as a table, CSV,
//! JSON, or written as Parquet.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Map, Value, json};

use cairn_client::{Client, ClientArgs};

#[derive(clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The SQL statement, as for CloudTrail Lake: `SELECT ... FROM <event data store ID>`.
    statement: String,
    /// table, csv, json (an array of objects), or parquet (needs --out).
    #[arg(long, default_value = "table")]
    output: String,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also deliver the results as CSV to s3://bucket/prefix.
    #[arg(long)]
    delivery_s3_uri: Option<String>,
    /// Print the query's statistics (events scanned and matched, bytes, time) on stderr.
    #[arg(long)]
    stats: bool,
}

pub fn run(args: QueryArgs) -> Result<()> {
    if !matches!(args.output.as_str(), "table" | "csv" | "json" | "parquet") {
        bail!("--output must be table, csv, json or parquet");
    }
    if args.output == "parquet" && args.out.is_none() {
        bail!("--output parquet needs --out FILE");
    }
    let client = Client::new(&args.client)?;
    let mut input = json!({ "QueryStatement": args.statement });
    if let Some(u) = &args.delivery_s3_uri {
        input["DeliveryS3Uri"] = json!(u);
    }
    let started = client.call("StartQuery", &input)?;
    let id = started
        .get("QueryId")
        .and_then(Value::as_str)
        .context("StartQuery answered without a QueryId")?
        .to_owned();
    let mut wait = Duration::from_millis(20);
    let described = loop {
        let d = client.call("DescribeQuery", &json!({ "QueryId": id }))?;
        match d.get("QueryStatus").and_then(Value::as_str) {
            Some("QUEUED") | Some("RUNNING") => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            _ => break d,
        }
    };
    let status = described
        .get("QueryStatus")
        .and_then(Value::as_str)
        .unwrap_or("");
    if status != "FINISHED" {
        let msg = described
            .get("ErrorMessage")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        bail!("query {id} {status}: {msg}");
    }
    let mut columns: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({ "QueryId": id, "MaxQueryResults": 1000 });
        if let Some(t) = &token {
            req["NextToken"] = json!(t);
        }
        let page = client.call("GetQueryResults", &req)?;
        for row in page
            .get("QueryResultRows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let cells = row.as_array().map(Vec::as_slice).unwrap_or(&[]);
            if columns.is_empty() {
                columns = cells
                    .iter()
                    .filter_map(|c| c.as_object().and_then(|m| m.keys().next().cloned()))
                    .collect();
            }
            rows.push(
                cells
                    .iter()
                    .map(|c| {
                        c.as_object()
                            .and_then(|m| m.values().next())
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect(),
            );
        }
        token = page
            .get("NextToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    if args.stats {
        let s = &described["QueryStatistics"];
        eprintln!(
            "{} rows; {} events scanned, {} matched, {} bytes read, {} ms",
            rows.len(),
            s["EventsScanned"],
            s["EventsMatched"],
            s["BytesScanned"],
            s["ExecutionTimeInMillis"]
        );
    }
    match args.output.as_str() {
        "parquet" => {
            let path = args.out.as_deref().context("--out is required")?;
            write_parquet(path, &columns, &rows)
        }
        other => {
            let text = match other {
                "csv" => csv(&columns, &rows),
                "json" => json_rows(&columns, &rows),
                _ => table(&columns, &rows),
            };
            match &args.out {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))
                }
                None => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    // A closed pipe (`| head`) ends the output quietly.
                    let _ = out.write_all(text.as_bytes());
                    Ok(())
                }
            }
        }
    }
}

fn table(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(columns);
    for r in rows {
        t.add_row(r.iter().map(|v| v.clone().unwrap_or_default()));
    }
    format!(
        "{t}\n{} row{}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )
}

fn csv(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    cairn_lake::queries::to_csv(&cairn_lake::sql::Answer {
        columns: columns.to_vec(),
        rows: rows.to_vec(),
        ..Default::default()
    })
}

fn json_rows(columns: &[String], rows: &[Vec<Option<String>>]) -> String {
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (c, v) in columns.iter().zip(r) {
                m.insert(c.clone(), v.as_ref().map_or(Value::Null, |s| json!(s)));
            }
            Value::Object(m)
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

/// The results as a Parquet file of text columns (CloudTrail Lake gives every value as text).
fn write_parquet(
    path: &std::path::Path,
    columns: &[String],
    rows: &[Vec<Option<String>>],
) -> Result<()> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.get(i).cloned().flatten())
                    .collect::<Vec<Option<String>>>(),
            )) as ArrayRef
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = arrow::array::RecordBatch::try_new(schema.clone(), arrays)?;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    w.write(&batch)?;
    w.close()?;
    Ok(())
}
