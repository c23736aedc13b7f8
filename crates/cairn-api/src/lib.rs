//! Cairn's HTTP API: the CloudTrail AWS JSON 1.1 API on `POST /` (dispatch by `X-Amz-Target`),
//! `cloudtrail-data` PutAuditEvents (REST-JSON), the native ingest route `POST /v1/events`,
//! SigV4 verification against the access keys Cairn manages, account scoping, and AWS-style
//! errors. `serve` runs it all on one listener.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod console;
pub mod count;
pub mod error;
pub mod ingest;
pub mod input;
pub mod insights;
pub mod lake;
pub mod lookup;
pub mod public_keys;
pub mod rules;
pub mod s3;
pub mod sigv4;
pub mod tls;
pub mod trails;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use cairn_iam::Directory;
use cairn_store::Store;

use crate::audit::{Auditor, Call};
use crate::auth::{Caller, Origin, authorize};
use crate::channels::Channels;
use crate::console::Console;
use crate::error::ApiError;
use crate::input::Input;

const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";

/// Operations of the CloudTrail model that this version does not serve yet.
const LATER: [&str; 23] = [
    "CreateDashboard",
    "DeleteDashboard",
    "DeleteResourcePolicy",
    "DeregisterOrganizationDelegatedAdmin",
    "DisableFederation",
    "EnableFederation",
    "GenerateQuery",
    "GetDashboard",
    "GetEventConfiguration",
    "GetImport",
    "GetResourcePolicy",
    "ListDashboards",
    "ListImportFailures",
    "ListImports",
    "ListInsightsData",
    "PutEventConfiguration",
    "PutResourcePolicy",
    "RegisterOrganizationDelegatedAdmin",
    "SearchSampleQueries",
    "StartDashboardRefresh",
    "StartImport",
    "StopImport",
    "UpdateChannel",
];

pub struct AppState {
    pub store: Arc<Store>,
    /// Accounts, users, keys and policies.
    pub iam: Arc<Directory>,
    /// Console sessions.
    pub console: Console,
    /// Where the records of Cairn's own API calls go.
    pub auditor: Auditor,
    /// The server's region (console calls, sign-in events).
    pub region: String,
    pub channels: Channels,
    /// Every account's trails.
    pub trails: Arc<cairn_trail::registry::Trails>,
    /// Delivery status per trail, written by the delivery worker.
    pub status: Arc<cairn_trail::status::StatusBoard>,
    /// Where trail buckets live (folders under the data directory, or an S3 service).
    pub buckets: cairn_bucket::Backend,
    /// The keys that sign digests.
    pub keys: Arc<cairn_trail::keys::Keyring>,
    /// CloudTrail Lake: event data stores, segments and queries (`None` serves no Lake
    /// operation).
    pub lake: Option<Arc<cairn_lake::Lake>>,
    /// Rules and alerts (None: started with --no-rules).
    pub alerting: Option<Arc<rules::Alerting>>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/", post(json_api).get(console::home))
        .route("/signin", get(console::signin_form).post(console::signin))
        .route("/signout", post(console::signout))
        .route("/v1/session", get(console::session_info))
        .route("/PutAuditEvents", post(put_audit_events))
        .route("/v1/events", post(native_ingest))
        .route("/health", get(health))
        .merge(ui::routes())
        .route("/{bucket}", any(s3::handle))
        .route("/{bucket}/", any(s3::handle))
        .route("/{bucket}/{*key}", any(s3::handle))
        .with_state(state.clone());
    // Requests signed for S3 go to the S3 façade whatever their path (a bucket may be called
    // `signin` or `health`).
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state, s3_first))
        .layer(DefaultBodyLimit::disable())
}

async fn s3_first(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // (A CloudTrail call names its operation in X-Amz-Target; signed for s3 by mistake, it is
    // still answered as a CloudTrail call, with the JSON error that names the wrong scope.)
    if s3::is_s3_request(req.headers(), req.uri()) && !req.headers().contains_key("x-amz-target") {
        let (parts, body) = req.into_parts();
        return s3::Facade::of(&state)
            .respond(
                &parts.method,
                &parts.uri,
                &parts.headers,
                &parts.extensions,
                body,
            )
            .await;
    }
    next.run(req).await
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn respond(result: Result<Value, ApiError>, content_type: &'static str, id: &str) -> Response {
    let mut resp = match result {
        Ok(v) => {
            let mut r = v.to_string().into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static(content_type));
            r
        }
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(code = e.code, message = %e.message, "request failed");
            } else {
                tracing::debug!(code = e.code, message = %e.message, "request refused");
            }
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

async fn health() -> &'static str {
    "ok"
}

/// Reads a request body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                "RequestEntityTooLargeException",
                413,
                format!("the request body is larger than {limit} bytes; send smaller batches"),
            )
        } else {
            ApiError::bad(
                "SerializationException",
                format!("cannot read the request body: {e}"),
            )
        }
    })
}

/// The facts of one request that authentication needs.
struct Incoming<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    origin: Origin,
}

impl<'a> Incoming<'a> {
    fn new(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        extensions: &Extensions,
    ) -> Incoming<'a> {
        Incoming {
            method,
            uri,
            headers,
            origin: Origin::of(headers, extensions),
        }
    }
}

/// Reads the body and checks the request's signature (or console session) over it.
async fn signed(
    state: &AppState,
    incoming: &Incoming<'_>,
    body: Body,
    limit: usize,
    services: &[&str],
) -> Result<(Caller, Bytes), ApiError> {
    let body = read_body(body, limit).await?;
    let caller = auth::authenticate(
        state,
        incoming.method,
        incoming.uri,
        incoming.headers,
        &body,
        services,
        &incoming.origin,
    )?;
    Ok((caller, body))
}

/// The largest body of a CloudTrail API call.
const MAX_API_BODY: usize = 1 << 20;

/// The APIs on `POST /`.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    CloudTrail,
    Admin,
    /// Cairn's own read operations (CountEvents).
    Cairn,
}

async fn json_api(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let id = request_id();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (api, op) = if let Some(op) = target.strip_prefix(TARGET_PREFIX) {
        (Api::CloudTrail, op)
    } else if let Some(op) = target.strip_prefix(admin::TARGET_PREFIX) {
        (Api::Admin, op)
    } else if let Some(op) = target.strip_prefix(count::TARGET_PREFIX) {
        (Api::Cairn, op)
    } else {
        let e = ApiError::bad(
            "UnknownOperationException",
            format!(
                "X-Amz-Target {target:?} is not an operation of CloudTrail_20131101 or {}",
                admin::TARGET_PREFIX.trim_end_matches('.')
            ),
        );
        return respond(Err(e), "application/x-amz-json-1.1", &id);
    };
    let op: String = op.chars().take(128).collect();
    let incoming = Incoming::new(&method, &uri, &headers, &extensions);
    let services: &[&str] = match api {
        Api::CloudTrail | Api::Cairn => &["cloudtrail"],
        Api::Admin => &["iam"],
    };
    let (caller, body) = match signed(&state, &incoming, body, MAX_API_BODY, services).await {
        Ok(x) => x,
        Err(e) => return respond(Err(e), "application/x-amz-json-1.1", &id),
    };
    let input = Input::parse(&body);
    let result = match &input {
        Ok(input) => match api {
            Api::CloudTrail => dispatch(&state, &caller, &op, input).await,
            Api::Admin => admin::dispatch(&state, &caller, &op, input).await,
            Api::Cairn => count::dispatch(&state, &caller, &op, input).await,
        },
        Err(e) => Err(e.clone()),
    };
    let event_source = match api {
        Api::CloudTrail | Api::Cairn => "cloudtrail.amazonaws.com",
        Api::Admin => match admin::service_of(&op) {
            Some("organizations") => "organizations.amazonaws.com",
            _ => "iam.amazonaws.com",
        },
    };
    let request_parameters = match &input {
        Ok(i) if !i.0.is_empty() => audit::elements(&Value::Object(i.0.clone())),
        _ => Value::Null,
    };
    // CloudTrail records what a call changed, not what a read returned.
    let response_elements = match &result {
        Ok(v) if !audit::read_only(&op) && v.as_object().is_some_and(|m| !m.is_empty()) => {
            audit::elements(v)
        }
        _ => Value::Null,
    };
    let call = Call {
        caller: &caller,
        event_source,
        event_name: &op,
        request_id: &id,
        request_parameters,
        response_elements,
        error: result.as_ref().err(),
        additional: None,
        data_event: false,
    };
    audit::audit(&state.auditor, call, !audit::read_only(&op)).await;
    respond(result, "application/x-amz-json-1.1", &id)
}

/// The ARN of a trail named by name or ARN.
fn trail_arn(caller: &Caller, name: &str) -> String {
    if name.starts_with("arn:") {
        name.to_owned()
    } else {
        format!(
            "arn:aws:cloudtrail:{}:{}:trail/{name}",
            caller.region, caller.account_id
        )
    }
}

/// The ARN of a channel named by id or ARN: the channel's own when the caller's account has
/// it (whatever region the call is signed for), else the ARN the reference implies.
fn channel_resource(state: &AppState, caller: &Caller, reference: &str) -> String {
    match state.channels.resolve(
        &caller.account_id,
        reference,
        "InvalidChannelARN",
        "ChannelNotFound",
    ) {
        Ok(channel) => channel.arn,
        Err(_) if reference.starts_with("arn:") => reference.to_owned(),
        Err(_) => format!(
            "arn:aws:cloudtrail:{}:{}:channel/{reference}",
            caller.region, caller.account_id
        ),
    }
}

/// The resources a CloudTrail operation acts on, for the policy check (`*` when it names
/// none). A trail named by name is the caller's region's (as the operations find it).
fn cloudtrail_resources(state: &AppState, caller: &Caller, op: &str, input: &Input) -> Vec<String> {
    let member = |name: &str| input.opt_str(name).ok().flatten();
    let one = |r: Option<String>| vec![r.unwrap_or_else(|| "*".into())];
    match op {
        "CreateTrail" | "UpdateTrail" | "DeleteTrail" | "GetTrail" | "GetTrailStatus"
        | "StartLogging" | "StopLogging" => one(member("Name").map(|n| trail_arn(caller, n))),
        "PutEventSelectors"
        | "GetEventSelectors"
        | "PutInsightSelectors"
        | "GetInsightSelectors" => one(member("TrailName").map(|n| trail_arn(caller, n))),
        "GetChannel" | "DeleteChannel" => {
            one(member("Channel").map(|c| channel_resource(state, caller, c)))
        }
        "AddTags" | "RemoveTags" => one(member("ResourceId").map(str::to_owned)),
        "ListTags" => {
            let ids: Vec<String> = input
                .list("ResourceIdList")
                .ok()
                .flatten()
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if ids.is_empty() {
                vec!["*".into()]
            } else {
                ids
            }
        }
        _ => vec!["*".into()],
    }
}

async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    if LATER.contains(&op) {
        return Err(ApiError::bad(
            "UnsupportedOperationException",
            format!("{op} is not supported by this version of Cairn yet"),
        ));
    }
    if lake::OPERATIONS.contains(&op) {
        let action = format!("cloudtrail:{op}");
        for resource in lake::resources(state, caller, op, input) {
            authorize(caller, &action, &resource)?;
        }
        return lake::dispatch(state, caller, op, input).await;
    }
    let known = matches!(
        op,
        "LookupEvents"
            | "ListPublicKeys"
            | "CreateChannel"
            | "GetChannel"
            | "ListChannels"
            | "DeleteChannel"
            | "CreateTrail"
            | "UpdateTrail"
            | "DeleteTrail"
            | "GetTrail"
            | "DescribeTrails"
            | "ListTrails"
            | "GetTrailStatus"
            | "StartLogging"
            | "StopLogging"
            | "PutEventSelectors"
            | "GetEventSelectors"
            | "PutInsightSelectors"
            | "GetInsightSelectors"
            | "ListInsightsMetricData"
            | "AddTags"
            | "RemoveTags"
            | "ListTags"
    );
    if !known {
        return Err(ApiError::bad(
            "UnknownOperationException",
            format!("{op} is not an operation of CloudTrail_20131101"),
        ));
    }
    // ListInsightsMetricData is allowed by cloudtrail:LookupEvents, as in CloudTrail.
    let action = match op {
        "ListInsightsMetricData" => "cloudtrail:LookupEvents".to_owned(),
        _ => format!("cloudtrail:{op}"),
    };
    for resource in cloudtrail_resources(state, caller, op, input) {
        authorize(caller, &action, &resource)?;
    }
    match op {
        "LookupEvents" => {
            let lookup = lookup::Lookup::parse(&caller.account_id, input)?;
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || lookup.run(&store))
                .await
                .map_err(|e| ApiError::internal(format!("lookup failed: {e}")))?
        }
        "ListInsightsMetricData" => {
            let (store, caller) = (state.store.clone(), caller.clone());
            let input = Input(input.0.clone());
            tokio::task::spawn_blocking(move || {
                insights::list_insights_metric_data(&store, &caller, &input)
            })
            .await
            .map_err(|e| ApiError::internal(format!("the metrics did not finish: {e}")))?
        }
        "ListPublicKeys" => public_keys::list_public_keys(&state.keys, input),
        "CreateChannel" => state.channels.create(caller, input),
        "GetChannel" => state.channels.get(caller, input),
        "ListChannels" => state.channels.list(caller, input),
        "DeleteChannel" => state.channels.delete(caller, input),
        "CreateTrail" => trails::create_trail(state, caller, input).await,
        "UpdateTrail" => trails::update_trail(state, caller, input).await,
        "DeleteTrail" => trails::delete_trail(state, caller, input).await,
        "GetTrail" => trails::get_trail(state, caller, input),
        "DescribeTrails" => trails::describe_trails(state, caller, input),
        "ListTrails" => trails::list_trails(state, caller, input),
        "GetTrailStatus" => trails::get_trail_status(state, caller, input),
        "StartLogging" => trails::set_logging(state, caller, input, true).await,
        "StopLogging" => trails::set_logging(state, caller, input, false).await,
        "PutEventSelectors" => trails::put_event_selectors(state, caller, input).await,
        "GetEventSelectors" => trails::get_event_selectors(state, caller, input),
        "PutInsightSelectors" => trails::put_insight_selectors(state, caller, input).await,
        "GetInsightSelectors" => trails::get_insight_selectors(state, caller, input),
        "AddTags" => trails::add_tags(state, caller, input).await,
        "RemoveTags" => trails::remove_tags(state, caller, input).await,
        _ => trails::list_tags(state, caller, input),
    }
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Records an ingest call without waiting: the events it carried are durable already, and
/// its record follows in the next group commit.
async fn audit_ingest(
    state: &AppState,
    caller: &Caller,
    event_name: &str,
    id: &str,
    request_parameters: Value,
    result: &Result<Value, ApiError>,
) {
    let additional = result.as_ref().ok().map(|v| {
        let count = |k: &str| v.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        match event_name {
            "PutAuditEvents" => json!({
                "successfulCount": count("successful"), "failedCount": count("failed"),
            }),
            _ => json!({
                "received": v.get("received"), "stored": v.get("stored"),
                "duplicates": v.get("duplicates"), "rejected": count("rejected"),
            }),
        }
    });
    let call = Call {
        caller,
        event_source: "cloudtrail-data.amazonaws.com",
        event_name,
        request_id: id,
        request_parameters,
        response_elements: Value::Null,
        error: result.as_ref().err(),
        additional,
        data_event: false,
    };
    audit::audit(&state.auditor, call, false).await;
}

async fn put_audit_events(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let id = request_id();
    let incoming = Incoming::new(&method, &uri, &headers, &extensions);
    // A little over the 1 MB limit, so that the limit itself answers ValidationException.
    let limit = ingest::MAX_PUT_AUDIT_BODY + 64 * 1024;
    let (caller, body) = match signed(&state, &incoming, body, limit, &["cloudtrail-data"]).await {
        Ok(x) => x,
        Err(e) => return respond(Err(e), "application/json", &id),
    };
    let channel_ref = query_param(&uri, "channelArn");
    let external_id = query_param(&uri, "externalId");
    let result = async {
        let channel_ref = channel_ref.clone().ok_or_else(|| {
            ApiError::bad(
                "InvalidChannelARN",
                "channelArn is required in the query string",
            )
        })?;
        let resource = channel_resource(&state, &caller, &channel_ref);
        authorize(&caller, "cloudtrail-data:PutAuditEvents", &resource)?;
        if let Some(ext) = &external_id {
            let ok = (2..=1224).contains(&ext.len())
                && ext
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_+=,.@:/-".contains(c));
            if !ok {
                return Err(ApiError::bad(
                    "ValidationException",
                    "externalId must be 2 to 1224 characters of letters, digits and _+=,.@:/-",
                ));
            }
        }
        let channel = state.channels.resolve(
            &caller.account_id,
            &channel_ref,
            "InvalidChannelARN",
            "ChannelNotFound",
        )?;
        ingest::put_audit_events(state.store.clone(), channel, caller.region.clone(), &body).await
    }
    .await;
    let params = json!({ "channelArn": channel_ref, "externalId": external_id });
    audit_ingest(&state, &caller, "PutAuditEvents", &id, params, &result).await;
    respond(result, "application/json", &id)
}

async fn native_ingest(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let id = request_id();
    let incoming = Incoming::new(&method, &uri, &headers, &extensions);
    let limit = ingest::MAX_NATIVE_BODY;
    let (caller, body) = match signed(
        &state,
        &incoming,
        body,
        limit,
        &["cloudtrail-data", "cloudtrail"],
    )
    .await
    {
        Ok(x) => x,
        Err(e) => return respond(Err(e), "application/json", &id),
    };
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let result = match authorize(&caller, "cairn:PutEvents", "*") {
        Ok(()) => {
            ingest::native(
                state.store.clone(),
                caller.account_id.clone(),
                body.to_vec(),
                gzip,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let params = json!({ "bytes": body.len(), "gzip": gzip });
    audit_ingest(&state, &caller, "PutEvents", &id, params, &result).await;
    respond(result, "application/json", &id)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
