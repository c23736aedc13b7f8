//! CloudTrail Lake operations: event data stores (Create/Get/List/Update/Delete/Restore,
//! Start/StopEventDataStoreIngestion) and queries (StartQuery, DescribeQuery,
//! GetQueryResults, ListQueries, CancelQuery), answered from `cairn-lake`.

use serde_json::{Map, Value, json};

use cairn_lake::stores::{CreateRequest, UpdateRequest};
use cairn_lake::{LakeError, QueryInfo, QueryState, StartRequest};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::{Input, paging_token, parse_paging_token};

impl From<LakeError> for ApiError {
    fn from(e: LakeError) -> ApiError {
        match e {
            LakeError::Client {
                code,
                status,
                message,
            } => ApiError::new(code, status, message),
            LakeError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "lake error");
                ApiError::internal(other.to_string())
            }
        }
    }
}

fn lake(state: &AppState) -> Result<&cairn_lake::Lake, ApiError> {
    state.lake.as_deref().ok_or_else(|| {
        ApiError::bad(
            "UnsupportedOperationException",
            "CloudTrail Lake is not available on this server",
        )
    })
}

fn opt_string(input: &Input, name: &str) -> Result<Option<String>, ApiError> {
    Ok(input.opt_str(name)?.map(str::to_owned))
}

fn retention(input: &Input) -> Result<Option<i64>, ApiError> {
    match input.0.get("RetentionPeriod") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            ApiError::bad(
                "SerializationException",
                "RetentionPeriod must be an integer",
            )
        }),
    }
}

fn now() -> i64 {
    cairn_event::now_ms()
}

fn with_tags(mut v: Value, tags: &[Value]) -> Value {
    v["TagsList"] = Value::Array(tags.to_vec());
    v
}

pub async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    let lake = lake(state)?;
    let account = caller.account_id.as_str();
    let reg = &lake.registry;
    reg.ensure_default(account, now())?;
    match op {
        "CreateEventDataStore" => {
            let req = CreateRequest {
                name: input.req_str("Name")?.to_owned(),
                selectors: input.list("AdvancedEventSelectors")?.map(Value::Array),
                multi_region: input.opt_bool("MultiRegionEnabled")?,
                organization: input.opt_bool("OrganizationEnabled")?,
                retention_days: retention(input)?,
                termination_protection: input.opt_bool("TerminationProtectionEnabled")?,
                tags: input.list("TagsList")?.unwrap_or_default(),
                kms_key_id: opt_string(input, "KmsKeyId")?,
                start_ingestion: input.opt_bool("StartIngestion")?,
                billing_mode: opt_string(input, "BillingMode")?,
            };
            let s = reg.create(account, req, now())?;
            Ok(with_tags(s.to_wire(), &s.tags))
        }
        "GetEventDataStore" => {
            let s = reg.get(account, input.req_str("EventDataStore")?, now())?;
            let mut v = s.to_wire();
            v["FederationStatus"] = json!("DISABLED");
            Ok(v)
        }
        "ListEventDataStores" => {
            let max = input
                .int_in("MaxResults", 1, 1000, "InvalidMaxResultsException")?
                .unwrap_or(1000) as usize;
            let from = match input.opt_str("NextToken")? {
                Some(t) => parse_paging_token(t, "eds")?,
                None => 0,
            };
            let all = reg.list(account, now());
            let page: Vec<Value> = all
                .iter()
                .skip(from)
                .take(max)
                .map(|s| s.to_wire())
                .collect();
            let mut out = json!({ "EventDataStores": page });
            if from + max < all.len() {
                out["NextToken"] = json!(paging_token(from + max, "eds"));
            }
            Ok(out)
        }
        "UpdateEventDataStore" => {
            let req = UpdateRequest {
                name: opt_string(input, "Name")?,
                selectors: input.list("AdvancedEventSelectors")?.map(Value::Array),
                multi_region: input.opt_bool("MultiRegionEnabled")?,
                organization: input.opt_bool("OrganizationEnabled")?,
                retention_days: retention(input)?,
                termination_protection: input.opt_bool("TerminationProtectionEnabled")?,
                kms_key_id: opt_string(input, "KmsKeyId")?,
                billing_mode: opt_string(input, "BillingMode")?,
            };
            let s = reg.update(account, input.req_str("EventDataStore")?, req, now())?;
            Ok(s.to_wire())
        }
        "DeleteEventDataStore" => {
            reg.delete(account, input.req_str("EventDataStore")?, now())?;
            Ok(json!({}))
        }
        "RestoreEventDataStore" => {
            let s = reg.restore(account, input.req_str("EventDataStore")?, now())?;
            Ok(s.to_wire())
        }
        "StartEventDataStoreIngestion" => {
            reg.start_ingestion(account, input.req_str("EventDataStore")?, now())?;
            Ok(json!({}))
        }
        "StopEventDataStoreIngestion" => {
            reg.stop_ingestion(account, input.req_str("EventDataStore")?, now())?;
            Ok(json!({}))
        }
        "StartQuery" => start_query(lake, caller, input).await,
        "DescribeQuery" => {
            let id = query_id(input)?;
            let info = lake.queries.describe(account, id)?;
            Ok(describe(&info))
        }
        "GetQueryResults" => get_results(lake, caller, input),
        "ListQueries" => list_queries(lake, caller, input),
        _ => {
            let id = input.req_str("QueryId")?;
            let info = lake.queries.cancel(account, id)?;
            Ok(json!({"QueryId": info.id, "QueryStatus": info.state.as_str()}))
        }
    }
}

fn query_id(input: &Input) -> Result<&str, ApiError> {
    if input.opt_str("QueryId")?.is_none() && input.opt_str("QueryAlias")?.is_some() {
        return Err(ApiError::bad(
            "UnsupportedOperationException",
            "QueryAlias names dashboard queries, which Cairn does not have; give QueryId",
        ));
    }
    input.req_str("QueryId")
}

fn check_owner(caller: &Caller, input: &Input) -> Result<(), ApiError> {
    if let Some(owner) = input.opt_str("EventDataStoreOwnerAccountId")?
        && owner != caller.account_id
    {
        return Err(ApiError::bad(
            "OperationNotPermittedException",
            "Queries run over your own account's event data stores only",
        ));
    }
    Ok(())
}

async fn start_query(
    lake: &cairn_lake::Lake,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    check_owner(caller, input)?;
    let Some(statement) = input.opt_str("QueryStatement")? else {
        if input.opt_str("QueryAlias")?.is_some() {
            return Err(ApiError::bad(
                "UnsupportedOperationException",
                "QueryAlias names dashboard queries, which Cairn does not have; give QueryStatement",
            ));
        }
        return Err(ApiError::bad(
            "InvalidParameterException",
            "QueryStatement is required",
        ));
    };
    let delivery_uri = opt_string(input, "DeliveryS3Uri")?;
    if let Some(u) = &delivery_uri
        && u.len() > 1024
    {
        return Err(ApiError::bad(
            "InvalidS3PrefixException",
            "DeliveryS3Uri can be at most 1024 characters",
        ));
    }
    let info = lake
        .queries
        .start(
            &caller.account_id,
            StartRequest {
                statement: statement.to_owned(),
                delivery_uri,
            },
        )
        .await?;
    Ok(json!({ "QueryId": info.id }))
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn describe(i: &QueryInfo) -> Value {
    let mut v = json!({
        "QueryId": i.id,
        "QueryString": i.statement,
        "QueryStatus": i.state.as_str(),
        "QueryStatistics": {
            "EventsMatched": i.events_matched,
            "EventsScanned": i.events_scanned,
            "BytesScanned": i.bytes_scanned,
            "ExecutionTimeInMillis": i.execution_ms,
            "CreationTime": secs(i.created_ms),
        },
    });
    if let Some(e) = &i.error {
        v["ErrorMessage"] = json!(e);
    }
    if let Some(u) = &i.delivery_uri {
        v["DeliveryS3Uri"] = json!(u);
    }
    if let Some(d) = &i.delivery_status {
        v["DeliveryStatus"] = json!(d);
    }
    v
}

fn get_results(lake: &cairn_lake::Lake, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
    check_owner(caller, input)?;
    let id = input.req_str("QueryId")?;
    let max = input
        .int_in("MaxQueryResults", 1, 1000, "InvalidMaxResultsException")?
        .unwrap_or(1000) as usize;
    let kind = format!("q{}", &id[..id.len().min(8)]);
    let from = match input.opt_str("NextToken")? {
        Some(t) => parse_paging_token(t, &kind)?,
        None => 0,
    };
    let page = lake.queries.results(&caller.account_id, id, from, max)?;
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            Value::Array(
                page.columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| {
                        let mut m = Map::new();
                        m.insert(c.clone(), v.as_ref().map_or(Value::Null, |s| json!(s)));
                        Value::Object(m)
                    })
                    .collect(),
            )
        })
        .collect();
    let mut out = json!({
        "QueryStatus": page.info.state.as_str(),
        "QueryStatistics": {
            "ResultsCount": rows.len(),
            "TotalResultsCount": page.info.results,
            "BytesScanned": page.info.bytes_scanned,
        },
        "QueryResultRows": rows,
    });
    if let Some(e) = &page.info.error {
        out["ErrorMessage"] = json!(e);
    }
    if let Some(n) = page.next {
        out["NextToken"] = json!(paging_token(n, &kind));
    }
    Ok(out)
}

fn list_queries(
    lake: &cairn_lake::Lake,
    caller: &Caller,
    input: &Input,
) -> Result<Value, ApiError> {
    let store = lake
        .registry
        .get(&caller.account_id, input.req_str("EventDataStore")?, now())?;
    let max = input
        .int_in("MaxResults", 1, 1000, "InvalidMaxResultsException")?
        .unwrap_or(1000) as usize;
    let start = input.timestamp_ms("StartTime")?;
    let end = input.timestamp_ms("EndTime")?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::bad(
            "InvalidDateRangeException",
            "StartTime must not be after EndTime",
        ));
    }
    let status = match input.opt_str("QueryStatus")? {
        Some(s) => Some(QueryState::parse(s).ok_or_else(|| {
            ApiError::bad(
                "InvalidQueryStatusException",
                format!("'{s}' is not a query status (QUEUED, RUNNING, FINISHED, FAILED, CANCELLED or TIMED_OUT)"),
            )
        })?),
        None => None,
    };
    let from = match input.opt_str("NextToken")? {
        Some(t) => parse_paging_token(t, "queries")?,
        None => 0,
    };
    let all: Vec<QueryInfo> = lake
        .queries
        .list(&caller.account_id, &store.id)
        .into_iter()
        .filter(|q| {
            start.is_none_or(|s| q.created_ms >= s) && end.is_none_or(|e| q.created_ms <= e)
        })
        .filter(|q| status.is_none_or(|s| q.state == s))
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(from)
        .take(max)
        .map(|q| json!({"QueryId": q.id, "QueryStatus": q.state.as_str(), "CreationTime": secs(q.created_ms)}))
        .collect();
    let mut out = json!({ "Queries": page });
    if from + max < all.len() {
        out["NextToken"] = json!(paging_token(from + max, "queries"));
    }
    Ok(out)
}

/// The event data store ARNs an operation acts on, for the policy check.
pub fn resources(state: &AppState, caller: &Caller, op: &str, input: &Input) -> Vec<String> {
    let arn = |id: &str| {
        if id.starts_with("arn:") {
            id.to_owned()
        } else {
            format!(
                "arn:aws:cloudtrail:{}:{}:eventdatastore/{id}",
                caller.region, caller.account_id
            )
        }
    };
    let member = |name: &str| input.opt_str(name).ok().flatten();
    let ids: Vec<String> = match op {
        "CreateEventDataStore" | "ListEventDataStores" => Vec::new(),
        "StartQuery" => member("QueryStatement")
            .map(|s| cairn_lake::sql::rewrite_ids(s).1)
            .unwrap_or_default(),
        "DescribeQuery" | "GetQueryResults" | "CancelQuery" => {
            match (state.lake.as_deref(), member("QueryId")) {
                (Some(l), Some(q)) => l
                    .queries
                    .describe(&caller.account_id, q)
                    .map(|i| i.store_ids)
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        }
        _ => member("EventDataStore")
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default(),
    };
    if ids.is_empty() {
        vec!["*".into()]
    } else {
        ids.iter().map(|i| arn(i)).collect()
    }
}

pub const OPERATIONS: [&str; 13] = [
    "CreateEventDataStore",
    "GetEventDataStore",
    "ListEventDataStores",
    "UpdateEventDataStore",
    "DeleteEventDataStore",
    "RestoreEventDataStore",
    "StartEventDataStoreIngestion",
    "StopEventDataStoreIngestion",
    "StartQuery",
    "DescribeQuery",
    "GetQueryResults",
    "ListQueries",
    "CancelQuery",
];
