//! Cairn's HTTP API: the CloudTrail AWS JSON 1.1 API on `POST /` (dispatch by `X-Amz-Target`),
//! `cloudtrail-data` PutAuditEvents (REST-JSON), the native ingest route `POST /v1/events`,
//! SigV4 verification against the access keys Cairn manages, account scoping, and AWS-style
//! errors. `serve` runs it all on one listener.

pub mod channels;
pub mod error;
pub mod identity;
pub mod ingest;
pub mod input;
pub mod lookup;
pub mod public_keys;
pub mod s3;
pub mod sigv4;
pub mod tls;
pub mod trails;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::Value;

use cairn_store::Store;

use crate::channels::Channels;
use crate::error::ApiError;
use crate::identity::{Caller, Identity};
use crate::input::Input;

const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";

/// Operations of the CloudTrail model that this version does not serve yet.
const LATER: [&str; 36] = [
    "CancelQuery",
    "CreateDashboard",
    "CreateEventDataStore",
    "DeleteDashboard",
    "DeleteEventDataStore",
    "DeleteResourcePolicy",
    "DeregisterOrganizationDelegatedAdmin",
    "DescribeQuery",
    "DisableFederation",
    "EnableFederation",
    "GenerateQuery",
    "GetDashboard",
    "GetEventConfiguration",
    "GetEventDataStore",
    "GetImport",
    "GetQueryResults",
    "GetResourcePolicy",
    "ListDashboards",
    "ListEventDataStores",
    "ListImportFailures",
    "ListImports",
    "ListInsightsData",
    "ListInsightsMetricData",
    "ListQueries",
    "PutEventConfiguration",
    "PutResourcePolicy",
    "RegisterOrganizationDelegatedAdmin",
    "RestoreEventDataStore",
    "SearchSampleQueries",
    "StartDashboardRefresh",
    "StartEventDataStoreIngestion",
    "StartImport",
    "StartQuery",
    "StopEventDataStoreIngestion",
    "StopImport",
    "UpdateChannel",
];

pub struct AppState {
    pub store: Arc<Store>,
    pub identity: Identity,
    pub channels: Channels,
    /// Every account's trails.
    pub trails: Arc<cairn_trail::registry::Trails>,
    /// Delivery status per trail, written by the delivery worker.
    pub status: Arc<cairn_trail::status::StatusBoard>,
    /// Where trail buckets live (folders under the data directory, or an S3 service).
    pub buckets: cairn_bucket::Backend,
    /// The keys that sign digests.
    pub keys: Arc<cairn_trail::keys::Keyring>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(cloudtrail).get(s3::root))
        .route("/PutAuditEvents", post(put_audit_events))
        .route("/v1/events", post(native_ingest))
        .route("/health", get(s3::health).fallback(s3::handle))
        .route("/{bucket}", any(s3::handle))
        .route("/{bucket}/", any(s3::handle))
        .route("/{bucket}/{*key}", any(s3::handle))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn respond(result: Result<Value, ApiError>, content_type: &'static str) -> Response {
    let id = request_id();
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
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

fn authenticate(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Caller, ApiError> {
    let req = sigv4::SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers,
        body,
    };
    state.identity.authenticate(&req)
}

async fn health() -> &'static str {
    "ok"
}

async fn home() -> impl IntoResponse {
    (
        [("content-type", "text/plain; charset=utf-8")],
        "Cairn: a CloudTrail-compatible audit trail.\nPoint the AWS CLI or an SDK here with --endpoint-url.\n",
    )
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

/// Reads the body and checks the request's signature over it.
async fn signed(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(Caller, Bytes), ApiError> {
    let body = read_body(body, limit).await?;
    let caller = authenticate(state, method, uri, headers, &body)?;
    Ok((caller, body))
}

/// The largest body of a CloudTrail API call.
const MAX_API_BODY: usize = 1 << 20;

async fn cloudtrail(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (caller, body) = signed(&state, &method, &uri, &headers, body, MAX_API_BODY).await?;
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
            return Err(ApiError::bad(
                "UnknownOperationException",
                format!("X-Amz-Target {target:?} is not an operation of CloudTrail_20131101"),
            ));
        };
        let input = Input::parse(&body)?;
        dispatch(&state, &caller, op, &input).await
    }
    .await;
    respond(result, "application/x-amz-json-1.1")
}

async fn dispatch(
    state: &AppState,
    caller: &Caller,
    op: &str,
    input: &Input,
) -> Result<Value, ApiError> {
    match op {
        "LookupEvents" => {
            let lookup = lookup::Lookup::parse(&caller.account_id, input)?;
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || lookup.run(&store))
                .await
                .map_err(|e| ApiError::internal(format!("lookup failed: {e}")))?
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
        "ListTags" => trails::list_tags(state, caller, input),
        other if LATER.contains(&other) => Err(ApiError::bad(
            "UnsupportedOperationException",
            format!("{other} is not supported by this version of Cairn yet"),
        )),
        other => Err(ApiError::bad(
            "UnknownOperationException",
            format!("{other} is not an operation of CloudTrail_20131101"),
        )),
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

async fn put_audit_events(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        // A little over the 1 MB limit, so that the limit itself answers ValidationException.
        let limit = ingest::MAX_PUT_AUDIT_BODY + 64 * 1024;
        let (caller, body) = signed(&state, &method, &uri, &headers, body, limit).await?;
        let channel_ref = query_param(&uri, "channelArn").ok_or_else(|| {
            ApiError::bad(
                "InvalidChannelARN",
                "channelArn is required in the query string",
            )
        })?;
        if let Some(ext) = query_param(&uri, "externalId") {
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
    respond(result, "application/json")
}

async fn native_ingest(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let limit = ingest::MAX_NATIVE_BODY;
        let (caller, body) = signed(&state, &method, &uri, &headers, body, limit).await?;
        let gzip = headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        ingest::native(state.store.clone(), caller.account_id, body.to_vec(), gzip).await
    }
    .await;
    respond(result, "application/json")
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
