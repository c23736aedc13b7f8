//! A read-only S3 REST façade over folder buckets, on the same listener as the CloudTrail
//! API, so that stock S3 tools (`aws cloudtrail validate-logs`, `aws s3 ls`, boto3) can read
//! the log files and digests Cairn delivers.
//!
//! * Addressing: path style only (`/<bucket>/<key>`); botocore uses it for every custom
//!   endpoint (`AWS_ENDPOINT_URL_S3`, `--endpoint-url`) unless `addressing_style = virtual`.
//! * Authentication: SigV4 with signing service `s3` (S3 canonicalisation: the path is
//!   neither normalised nor encoded twice), against Cairn's access keys; header-signed or
//!   presigned. Errors are S3 XML (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, ...).
//! * Served: ListBuckets (`GET /` when signed for `s3`; browsers still get the home page),
//!   CreateBucket, HeadBucket, GetBucketLocation, ListObjects (v1) and ListObjectsV2 with
//!   prefix, delimiter, markers, continuation tokens and `encoding-type=url`, GetObject and
//!   HeadObject with user metadata as `x-amz-meta-*`, single byte ranges and conditional
//!   headers.
//! * Ownership: CreateBucket records the creating account; only that account may read or
//!   list the bucket. A bucket folder made by hand has no owner and every account may read it.
//! * Writes (PutObject, DeleteObject, bucket configuration, ...) are refused with
//!   `AccessDenied`: trail files are written only by Cairn. Other reads S3 has (ACLs,
//!   tagging, versions, ...) answer `NotImplemented`.
//! * With buckets on a real S3 service (`Backend::S3`) the façade answers `NotImplemented`
//!   and names that service: point the tools at it directly.
//!
//! ETags are not MD5 digests: they are derived from an object's size and modification time
//! (stable while the file is unchanged; trail files never change once written).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use cairn_bucket::{Backend, Bucket, BucketError, Listed};

use crate::AppState;
use crate::audit::{Auditor, Call};
use crate::auth::{Caller, Origin};
use crate::error::ApiError;
use crate::sigv4::{self, AuthError, SignedRequest, VerifyOptions};
use cairn_iam::Directory;
use serde_json::Value;

/// The S3 XML namespace.
pub const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// The region folder buckets report (an empty `LocationConstraint` means us-east-1).
pub const BUCKET_REGION: &str = "us-east-1";
/// The largest page of a listing, as S3.
pub const MAX_KEYS: usize = 1000;
/// The largest body read from a request that is not refused outright.
const MAX_BODY: usize = 1 << 20;
/// The most of a refused write's body that is read (and dropped) so that the client sees
/// the answer instead of a reset connection.
const MAX_DRAIN: usize = 8 << 20;

const ISO_MILLIS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// What `encoding-type=url` leaves as it is: RFC 3986 unreserved characters and `/`.
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Query parameters that name a bucket sub-resource Cairn does not serve.
const BUCKET_SUBRESOURCES: [&str; 27] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "lifecycle",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "session",
    "tagging",
    "uploads",
    "versioning",
    "versions",
    "website",
    "abac",
];

/// Query parameters that name an object sub-resource Cairn does not serve.
const OBJECT_SUBRESOURCES: [&str; 10] = [
    "acl",
    "attributes",
    "legal-hold",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// An S3 error: `<Error><Code/><Message/>...<RequestId/></Error>` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
    /// Further elements after `Message`, e.g. `BucketName` or `Key`.
    pub details: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> S3Error {
        S3Error {
            code,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.details.push((name, value.into()));
        self
    }

    pub fn no_such_bucket(bucket: &str) -> S3Error {
        S3Error::new("NoSuchBucket", 404, "The specified bucket does not exist")
            .with("BucketName", bucket)
    }

    pub fn no_such_key(key: &str) -> S3Error {
        S3Error::new("NoSuchKey", 404, "The specified key does not exist.").with("Key", key)
    }

    pub fn invalid_bucket_name(bucket: &str) -> S3Error {
        S3Error::new(
            "InvalidBucketName",
            400,
            "The specified bucket is not valid: use 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit.",
        )
        .with("BucketName", bucket)
    }

    pub fn access_denied(message: impl Into<String>) -> S3Error {
        S3Error::new("AccessDenied", 403, message)
    }

    fn invalid_argument(message: impl Into<String>, name: &str, value: &str) -> S3Error {
        S3Error::new("InvalidArgument", 400, message)
            .with("ArgumentName", name)
            .with("ArgumentValue", value)
    }

    fn internal() -> S3Error {
        S3Error::new(
            "InternalError",
            500,
            "We encountered an internal error. Please try again.",
        )
    }

    /// The XML document of this error.
    pub fn to_xml(&self, request_id: &str) -> String {
        let mut x = Xml::new();
        x.start("Error");
        x.text("Code", self.code);
        x.text("Message", &self.message);
        for (name, value) in &self.details {
            x.text(name, value);
        }
        x.text("RequestId", request_id);
        x.text("HostId", request_id);
        x.end("Error");
        x.finish()
    }

    fn into_response(self, request_id: &str, head: bool) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = self.code, message = %self.message, "S3 request failed");
        } else {
            tracing::debug!(code = self.code, message = %self.message, "S3 request refused");
        }
        let body = if head {
            Body::empty()
        } else {
            Body::from(self.to_xml(request_id))
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        if !head {
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml"),
            );
        }
        resp
    }
}

impl From<BucketError> for S3Error {
    fn from(e: BucketError) -> S3Error {
        match e {
            BucketError::NoSuchBucket(b) => S3Error::no_such_bucket(&b),
            BucketError::NoSuchKey(k) | BucketError::InvalidKey(k) => S3Error::no_such_key(&k),
            BucketError::InvalidBucketName(b) => S3Error::invalid_bucket_name(&b),
            other => {
                tracing::error!(error = %other, "bucket error");
                S3Error::internal()
            }
        }
    }
}

/// The S3 error for a request whose signature did not verify.
pub fn auth_error(e: AuthError, presigned: bool, access_key_id: Option<&str>) -> S3Error {
    match e {
        AuthError::MissingAuthenticationToken => S3Error::access_denied(
            "Anonymous access is not allowed: sign the request with SigV4 for service s3 with a Cairn access key.",
        ),
        AuthError::IncompleteSignature(m) | AuthError::WrongScope(m) => {
            if presigned {
                S3Error::new("AuthorizationQueryParametersError", 400, m)
            } else {
                S3Error::new("AuthorizationHeaderMalformed", 400, m)
            }
        }
        e @ AuthError::SignatureMismatch { .. } => {
            let message = e.to_string();
            let AuthError::SignatureMismatch {
                canonical_request,
                string_to_sign,
            } = e
            else {
                return S3Error::new("SignatureDoesNotMatch", 403, message);
            };
            S3Error::new("SignatureDoesNotMatch", 403, message)
                .with("AWSAccessKeyId", access_key_id.unwrap_or_default())
                .with("StringToSign", string_to_sign)
                .with("CanonicalRequest", canonical_request)
        }
        AuthError::SignatureExpired(m) if presigned => {
            S3Error::access_denied(format!("Request has expired: {m}"))
        }
        AuthError::SignatureExpired(m) | AuthError::SignatureNotYetCurrent(m) => {
            S3Error::new("RequestTimeTooSkewed", 403, m)
        }
        AuthError::PayloadHashMismatch(m) => S3Error::new("XAmzContentSHA256Mismatch", 400, m),
        AuthError::UnknownAccessKey => S3Error::new(
            "InvalidAccessKeyId",
            403,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
        .with("AWSAccessKeyId", access_key_id.unwrap_or_default()),
    }
}

// ---------------------------------------------------------------------------------------
// XML
// ---------------------------------------------------------------------------------------

/// A minimal XML writer for S3 responses.
struct Xml {
    out: String,
}

impl Xml {
    fn new() -> Xml {
        Xml {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    /// Opens the document element with the S3 namespace.
    fn root(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str(" xmlns=\"");
        self.out.push_str(XMLNS);
        self.out.push_str("\">");
    }

    fn start(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    fn end(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    fn text(&mut self, tag: &str, value: &str) {
        self.start(tag);
        escape_into(&mut self.out, value);
        self.end(tag);
    }

    fn finish(self) -> String {
        self.out
    }
}

/// XML character data: `& < > "` as entities, control characters as character references.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 => out.push_str(&format!("&#{};", c as u32)),
            c => out.push(c),
        }
    }
}

/// `encoding-type=url`: percent-encodes all but unreserved characters and `/`.
pub fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, URL_ENCODE).to_string()
}

// ---------------------------------------------------------------------------------------
// Requests: target, query, operation
// ---------------------------------------------------------------------------------------

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`: the service (ListBuckets).
    Service,
    Bucket(String),
    Object(String, String),
}

/// Splits a raw (still percent-encoded) path into bucket and key, path style.
pub fn parse_target(raw_path: &str) -> Result<Target, S3Error> {
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                S3Error::new(
                    "InvalidURI",
                    400,
                    "Couldn't parse the specified URI: the path is not UTF-8 once percent-decoded.",
                )
            })
    };
    let rest = raw_path.strip_prefix('/').unwrap_or(raw_path);
    if rest.is_empty() {
        return Ok(Target::Service);
    }
    match rest.split_once('/') {
        None => Ok(Target::Bucket(decode(rest)?)),
        Some((bucket, "")) => Ok(Target::Bucket(decode(bucket)?)),
        Some((bucket, key)) => Ok(Target::Object(decode(bucket)?, decode(key)?)),
    }
}

/// The decoded query parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            raw.unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    fn first_of(&self, names: &[&str]) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
    }
}

/// The S3 operation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    GetBucketLocation,
    ListObjects,
    ListObjectsV2,
    GetObject,
    HeadObject,
    /// Anything that would write: refused, Cairn's buckets are read-only.
    Write(String),
    /// A read S3 has that Cairn does not serve.
    Unsupported(String),
    MethodNotAllowed,
}

fn sub_name(sub: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in sub.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Which operation `method` on `target` with `query` is (S3's REST mapping).
pub fn classify(method: &Method, target: &Target, query: &Query, headers: &HeaderMap) -> Op {
    match target {
        Target::Service => match *method {
            Method::GET | Method::HEAD => Op::ListBuckets,
            _ => Op::MethodNotAllowed,
        },
        Target::Bucket(_) => {
            let sub = query.first_of(&BUCKET_SUBRESOURCES);
            match *method {
                Method::GET if query.has("location") => Op::GetBucketLocation,
                Method::GET => match sub {
                    Some(s) => Op::Unsupported(format!("GetBucket{}", sub_name(&s))),
                    None if query.get("list-type") == Some("2") => Op::ListObjectsV2,
                    None => Op::ListObjects,
                },
                Method::HEAD => Op::HeadBucket,
                Method::PUT => match sub {
                    Some(s) => Op::Write(format!("PutBucket{}", sub_name(&s))),
                    None => Op::CreateBucket,
                },
                Method::DELETE => Op::Write(match sub {
                    Some(s) => format!("DeleteBucket{}", sub_name(&s)),
                    None => "DeleteBucket".into(),
                }),
                Method::POST if query.has("delete") => Op::Write("DeleteObjects".into()),
                Method::POST => Op::Write("PostObject".into()),
                _ => Op::MethodNotAllowed,
            }
        }
        Target::Object(..) => {
            let sub = query.first_of(&OBJECT_SUBRESOURCES);
            match *method {
                Method::GET => match sub {
                    Some(s) if s == "uploadId" => Op::Unsupported("ListParts".into()),
                    Some(s) => Op::Unsupported(format!("GetObject{}", sub_name(&s))),
                    None => Op::GetObject,
                },
                Method::HEAD => Op::HeadObject,
                Method::PUT if query.has("uploadId") => Op::Write("UploadPart".into()),
                Method::PUT => match sub {
                    Some(s) => Op::Write(format!("PutObject{}", sub_name(&s))),
                    None if headers.contains_key("x-amz-copy-source") => {
                        Op::Write("CopyObject".into())
                    }
                    None => Op::Write("PutObject".into()),
                },
                Method::POST if query.has("uploads") => Op::Write("CreateMultipartUpload".into()),
                Method::POST if query.has("uploadId") => {
                    Op::Write("CompleteMultipartUpload".into())
                }
                Method::POST => Op::Write("PostObject".into()),
                Method::DELETE if query.has("uploadId") => Op::Write("AbortMultipartUpload".into()),
                Method::DELETE => Op::Write("DeleteObject".into()),
                _ => Op::MethodNotAllowed,
            }
        }
    }
}

/// The signing service a request claims (the fourth field of its SigV4 credential), if it
/// carries one; used to tell S3 requests on `/` from browsers and the CloudTrail API.
pub fn signing_service(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let credential_service = |cred: &str| cred.split('/').nth(3).map(str::to_owned);
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (_, after) = auth.split_once("Credential=")?;
        let cred = after.split([',', ' ']).next()?;
        return credential_service(cred);
    }
    query?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("X-Amz-Credential=")?;
        credential_service(&percent_decode_str(value).decode_utf8_lossy())
    })
}

/// Whether a request is signed with Signature Version 2 (`Authorization: AWS key:sig`, or a
/// presigned URL with `AWSAccessKeyId` and `Signature`), which Cairn does not accept.
pub fn is_sigv2(headers: &HeaderMap, query: &Query) -> bool {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    header || (query.has("AWSAccessKeyId") && query.has("Signature"))
}

pub fn is_s3_request(headers: &HeaderMap, uri: &Uri) -> bool {
    signing_service(headers, uri.query()).as_deref() == Some("s3")
}

// ---------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------

/// One entry of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Object(Listed),
    CommonPrefix(String),
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Object(l) => &l.key,
            Entry::CommonPrefix(p) => p,
        }
    }
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub truncated: bool,
}

impl Page {
    /// Where the next page starts (after this), when truncated.
    pub fn next_marker(&self) -> Option<&str> {
        if self.truncated {
            self.entries.last().map(Entry::name)
        } else {
            None
        }
    }
}

/// Cuts one page out of `listed` (sorted by key): keys under `prefix` after `after`, keys
/// that contain `delimiter` past the prefix rolled up into common prefixes (a common prefix
/// counts once, and not at all when it sorts at or before `after`), at most `max_keys`.
pub fn paginate(
    listed: Vec<Listed>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max_keys: usize,
) -> Page {
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    let mut last_prefix: Option<String> = None;
    for l in listed {
        if !l.key.starts_with(prefix) || after.is_some_and(|a| l.key.as_str() <= a) {
            continue;
        }
        let rolled = delimiter.and_then(|d| {
            l.key[prefix.len()..]
                .find(d)
                .map(|i| l.key[..prefix.len() + i + d.len()].to_owned())
        });
        let entry = match rolled {
            Some(cp) => {
                if after.is_some_and(|a| cp.as_str() <= a) || last_prefix.as_ref() == Some(&cp) {
                    continue;
                }
                last_prefix = Some(cp.clone());
                Entry::CommonPrefix(cp)
            }
            None => Entry::Object(l),
        };
        if entries.len() >= max_keys {
            truncated = true;
            break;
        }
        entries.push(entry);
    }
    Page { entries, truncated }
}

/// A v2 continuation token: the last name of the page, base64url.
pub fn continuation_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

pub fn decode_continuation_token(token: &str) -> Option<String> {
    if token.is_empty() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
    String::from_utf8(bytes).ok()
}

fn etag(size: u64, last_modified_ms: i64) -> String {
    let mut seed = [0u8; 16];
    seed[..8].copy_from_slice(&size.to_le_bytes());
    seed[8..].copy_from_slice(&last_modified_ms.to_le_bytes());
    format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&seed))
}

fn to_datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2024-01-02T03:04:05.678Z`.
pub fn iso_millis(ms: i64) -> String {
    to_datetime(ms).format(ISO_MILLIS).unwrap_or_default()
}

/// `Tue, 02 Jan 2024 03:04:05 GMT`.
pub fn http_date(ms: i64) -> String {
    to_datetime(ms).format(HTTP_DATE).unwrap_or_default()
}

fn parse_http_date(text: &str) -> Option<i64> {
    let parsed = time::PrimitiveDateTime::parse(text.trim(), HTTP_DATE).ok()?;
    Some(parsed.assume_utc().unix_timestamp())
}

/// How a listing names keys in its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Url,
}

impl Encoding {
    fn parse(query: &Query) -> Result<Encoding, S3Error> {
        match query.get("encoding-type") {
            None => Ok(Encoding::Plain),
            Some(v) if v.eq_ignore_ascii_case("url") => Ok(Encoding::Url),
            Some(v) => Err(S3Error::invalid_argument(
                "Invalid Encoding Method specified in Request",
                "encoding-type",
                v,
            )),
        }
    }

    fn apply(self, text: &str) -> String {
        match self {
            Encoding::Plain => text.to_owned(),
            Encoding::Url => url_encode(text),
        }
    }
}

/// The owner shown in listings.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: String,
}

/// What a ListObjects / ListObjectsV2 answer says besides its entries.
#[derive(Debug, Clone)]
pub struct ListingHeader<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    pub max_keys: usize,
    pub encoding: Encoding,
    /// v1: the `marker` asked for.
    pub marker: Option<&'a str>,
    /// v2: the `continuation-token` and `start-after` asked for.
    pub continuation_token: Option<&'a str>,
    pub start_after: Option<&'a str>,
    /// Whether `<Owner>` goes into each `<Contents>` (always in v1, `fetch-owner` in v2).
    pub owner: Option<Owner>,
}

fn write_entries(x: &mut Xml, page: &Page, h: &ListingHeader<'_>) {
    for entry in &page.entries {
        if let Entry::Object(l) = entry {
            x.start("Contents");
            x.text("Key", &h.encoding.apply(&l.key));
            x.text("LastModified", &iso_millis(l.last_modified_ms));
            x.text("ETag", &etag(l.size, l.last_modified_ms));
            x.text("Size", &l.size.to_string());
            if let Some(owner) = &h.owner {
                x.start("Owner");
                x.text("ID", &owner.id);
                x.text("DisplayName", &owner.id);
                x.end("Owner");
            }
            x.text("StorageClass", "STANDARD");
            x.end("Contents");
        }
    }
    for entry in &page.entries {
        if let Entry::CommonPrefix(p) = entry {
            x.start("CommonPrefixes");
            x.text("Prefix", &h.encoding.apply(p));
            x.end("CommonPrefixes");
        }
    }
}

/// The ListObjects (v1) answer.
pub fn list_objects_xml(page: &Page, h: &ListingHeader<'_>) -> String {
    let enc = |s: &str| h.encoding.apply(s);
    let mut x = Xml::new();
    x.root("ListBucketResult");
    x.text("Name", h.bucket);
    x.text("Prefix", &enc(h.prefix));
    x.text("Marker", &enc(h.marker.unwrap_or_default()));
    // As S3: NextMarker only with a delimiter; clients otherwise go on from the last key.
    if h.delimiter.is_some_and(|d| !d.is_empty())
        && let Some(next) = page.next_marker()
    {
        x.text("NextMarker", &enc(next));
    }
    x.text("MaxKeys", &h.max_keys.to_string());
    if let Some(d) = h.delimiter {
        x.text("Delimiter", &enc(d));
    }
    x.text("IsTruncated", if page.truncated { "true" } else { "false" });
    if h.encoding == Encoding::Url {
        x.text("EncodingType", "url");
    }
    write_entries(&mut x, page, h);
    x.end("ListBucketResult");
    x.finish()
}

/// The ListObjectsV2 answer.
pub fn list_objects_v2_xml(page: &Page, h: &ListingHeader<'_>) -> String {
    let enc = |s: &str| h.encoding.apply(s);
    let mut x = Xml::new();
    x.root("ListBucketResult");
    x.text("Name", h.bucket);
    x.text("Prefix", &enc(h.prefix));
    if let Some(d) = h.delimiter {
        x.text("Delimiter", &enc(d));
    }
    x.text("MaxKeys", &h.max_keys.to_string());
    x.text("KeyCount", &page.entries.len().to_string());
    x.text("IsTruncated", if page.truncated { "true" } else { "false" });
    if h.encoding == Encoding::Url {
        x.text("EncodingType", "url");
    }
    if let Some(t) = h.continuation_token {
        x.text("ContinuationToken", t);
    }
    if let Some(next) = page.next_marker() {
        x.text("NextContinuationToken", &continuation_token(next));
    }
    if let Some(s) = h.start_after {
        x.text("StartAfter", &enc(s));
    }
    write_entries(&mut x, page, h);
    x.end("ListBucketResult");
    x.finish()
}

/// A bucket in a ListBuckets answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    pub created_ms: i64,
}

/// The ListBuckets answer.
pub fn list_buckets_xml(
    owner: &str,
    buckets: &[BucketEntry],
    next: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let mut x = Xml::new();
    x.root("ListAllMyBucketsResult");
    x.start("Owner");
    x.text("ID", owner);
    x.text("DisplayName", owner);
    x.end("Owner");
    x.start("Buckets");
    for b in buckets {
        x.start("Bucket");
        x.text("Name", &b.name);
        x.text("CreationDate", &iso_millis(b.created_ms));
        x.text("BucketRegion", BUCKET_REGION);
        x.end("Bucket");
    }
    x.end("Buckets");
    if let Some(next) = next {
        x.text("ContinuationToken", &continuation_token(next));
    }
    if let Some(p) = prefix {
        x.text("Prefix", p);
    }
    x.end("ListAllMyBucketsResult");
    x.finish()
}

/// The GetBucketLocation answer (empty: us-east-1).
pub fn location_xml() -> String {
    let mut x = Xml::new();
    x.out.push_str("<LocationConstraint xmlns=\"");
    x.out.push_str(XMLNS);
    x.out.push_str("\"/>");
    x.finish()
}

// ---------------------------------------------------------------------------------------
// Ranges and conditions
// ---------------------------------------------------------------------------------------

/// What a `Range` header asks of an object of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No range, or one S3 ignores (malformed, several ranges): the whole object.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    Unsatisfiable,
}

pub fn parse_range(value: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => RangeAsk::Whole,
        (true, false) => match num(last) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(len.saturating_sub(n), len - 1),
            None => RangeAsk::Whole,
        },
        (false, true) => match num(first) {
            Some(a) if a >= len => RangeAsk::Unsatisfiable,
            Some(a) => RangeAsk::Part(a, len - 1),
            None => RangeAsk::Whole,
        },
        (false, false) => match (num(first), num(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= len {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Part(a, b.min(len - 1))
                }
            }
            _ => RangeAsk::Whole,
        },
    }
}

/// What the conditional headers decide for an object with `etag` and `last_modified_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Proceed,
    NotModified,
    PreconditionFailed,
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.trim_matches('"') == bare
    })
}

pub fn check_conditions(headers: &HeaderMap, etag: &str, last_modified_ms: i64) -> Condition {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let modified_s = last_modified_ms.div_euclid(1000);
    if let Some(m) = get("if-match") {
        if !etag_matches(m, etag) {
            return Condition::PreconditionFailed;
        }
    } else if let Some(t) = get("if-unmodified-since").and_then(parse_http_date)
        && modified_s > t
    {
        return Condition::PreconditionFailed;
    }
    if let Some(m) = get("if-none-match") {
        if etag_matches(m, etag) {
            return Condition::NotModified;
        }
    } else if let Some(t) = get("if-modified-since").and_then(parse_http_date)
        && modified_s <= t
    {
        return Condition::NotModified;
    }
    Condition::Proceed
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase()
}

/// What the façade needs of the server: the identities, where buckets live, and where
/// the records of its calls go (none in unit tests).
#[derive(Clone, Copy)]
pub struct Facade<'a> {
    pub iam: &'a Directory,
    pub buckets: &'a Backend,
    pub auditor: Option<&'a Auditor>,
}

/// What the record of an S3 call needs, once its caller is known.
struct Audited {
    caller: Caller,
    event_name: String,
    parameters: Value,
    /// Object-level calls are data events, as in CloudTrail.
    data: bool,
}

impl<'a> Facade<'a> {
    pub fn of(state: &'a AppState) -> Facade<'a> {
        Facade {
            iam: &state.iam,
            buckets: &state.buckets,
            auditor: Some(&state.auditor),
        }
    }

    /// Answers one S3 request.
    pub async fn respond(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &Extensions,
        body: Body,
    ) -> Response {
        let request_id = new_request_id();
        let head = method == Method::HEAD;
        let origin = Origin::of(headers, extensions);
        let mut audited = None;
        let result = serve(self, method, uri, headers, &origin, body, &mut audited).await;
        if let (Some(auditor), Some(a)) = (self.auditor, &audited) {
            let error = result
                .as_ref()
                .err()
                .map(|e| ApiError::new(e.code, e.status.as_u16(), e.message.clone()));
            let call = Call {
                caller: &a.caller,
                event_source: "s3.amazonaws.com",
                event_name: &a.event_name,
                request_id: &request_id,
                request_parameters: a.parameters.clone(),
                response_elements: Value::Null,
                error: error.as_ref(),
                additional: None,
                data_event: a.data,
            };
            crate::audit::audit(auditor, call, a.event_name == "CreateBucket").await;
        }
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => e.into_response(&request_id, head),
        };
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-amz-request-id", v.clone());
            h.insert("x-amz-id-2", v);
        }
        h.insert(header::SERVER, HeaderValue::from_static("Cairn"));
        resp
    }
}

/// Every S3 request: `/<bucket>` and `/<bucket>/<key>` (and any path once known to be S3).
pub async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    Facade::of(&state)
        .respond(&method, &uri, &headers, &extensions, body)
        .await
}

fn s3_backend_message(backend: &Backend) -> String {
    format!(
        "Cairn keeps its buckets on {}, not in folders it serves: point S3 tools at that service directly (for the AWS CLI and SDKs, set AWS_ENDPOINT_URL_S3 to its endpoint, or leave it unset for AWS S3).",
        backend.describe()
    )
}

fn read_only(op: &str) -> S3Error {
    S3Error::access_denied(format!(
        "Cairn's buckets are read-only: trail log files and digest files are written only by Cairn itself ({op} refused)."
    ))
}

/// The policy action and resource of an S3 operation.
fn s3_action(op: &Op, target: &Target) -> (&'static str, String) {
    let bucket_arn = |b: &str| format!("arn:aws:s3:::{b}");
    match (op, target) {
        (Op::CreateBucket, Target::Bucket(b)) => ("s3:CreateBucket", bucket_arn(b)),
        (Op::GetBucketLocation, Target::Bucket(b)) => ("s3:GetBucketLocation", bucket_arn(b)),
        (Op::HeadBucket | Op::ListObjects | Op::ListObjectsV2, Target::Bucket(b)) => {
            ("s3:ListBucket", bucket_arn(b))
        }
        (Op::GetObject | Op::HeadObject, Target::Object(b, k)) => {
            ("s3:GetObject", format!("arn:aws:s3:::{b}/{k}"))
        }
        _ => ("s3:ListAllMyBuckets", "*".into()),
    }
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Write(n) | Op::Unsupported(n) => n.clone(),
        Op::MethodNotAllowed => "Unknown".into(),
        other => format!("{other:?}"),
    }
}

async fn serve(
    facade: &Facade<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    origin: &Origin,
    body: Body,
    audited: &mut Option<Audited>,
) -> Result<Response, S3Error> {
    let target = parse_target(uri.path())?;
    let query = Query::parse(uri.query());
    let op = classify(method, &target, &query, headers);
    match &op {
        Op::Write(name) => {
            drain(headers, body).await;
            return Err(match facade.buckets {
                Backend::S3(_) => {
                    S3Error::new("NotImplemented", 501, s3_backend_message(facade.buckets))
                }
                Backend::Folder { .. } => read_only(name),
            });
        }
        Op::MethodNotAllowed => {
            return Err(S3Error::new(
                "MethodNotAllowed",
                405,
                format!("The specified method ({method}) is not allowed against this resource."),
            ));
        }
        _ => {}
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        S3Error::new(
            "MaxMessageLengthExceeded",
            400,
            format!("Your request was too big: at most {MAX_BODY} bytes."),
        )
    })?;
    let caller = authenticate(facade, method, uri, headers, &body, origin)?;
    let (action, resource) = s3_action(&op, &target);
    let mut parameters = serde_json::Map::new();
    match &target {
        Target::Bucket(b) => {
            parameters.insert("bucketName".into(), Value::String(b.clone()));
        }
        Target::Object(b, k) => {
            parameters.insert("bucketName".into(), Value::String(b.clone()));
            parameters.insert("key".into(), Value::String(k.clone()));
        }
        Target::Service => {}
    }
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        parameters.insert("Host".into(), Value::String(host.to_owned()));
    }
    *audited = Some(Audited {
        caller: caller.clone(),
        event_name: op_name(&op),
        parameters: Value::Object(parameters),
        data: matches!(
            op,
            Op::GetObject | Op::HeadObject | Op::ListObjects | Op::ListObjectsV2
        ),
    });
    let decision = crate::auth::decide(&caller, action, &resource);
    if !decision.is_allowed() {
        return Err(S3Error::access_denied(crate::auth::denial(
            &caller, action, &resource, decision,
        )));
    }
    if matches!(facade.buckets, Backend::S3(_)) {
        return Err(S3Error::new(
            "NotImplemented",
            501,
            s3_backend_message(facade.buckets),
        ));
    }
    let backend = facade.buckets;
    match (op, target) {
        (Op::ListBuckets, _) => list_buckets(backend, &caller, &query, method),
        (Op::CreateBucket, Target::Bucket(name)) => create_bucket(backend, &caller, &name).await,
        (Op::HeadBucket, Target::Bucket(name)) => {
            open_bucket(backend, &caller, &name)?;
            let mut resp = Response::new(Body::empty());
            resp.headers_mut().insert(
                "x-amz-bucket-region",
                HeaderValue::from_static(BUCKET_REGION),
            );
            Ok(resp)
        }
        (Op::GetBucketLocation, Target::Bucket(name)) => {
            open_bucket(backend, &caller, &name)?;
            Ok(xml_response(location_xml()))
        }
        (op @ (Op::ListObjects | Op::ListObjectsV2), Target::Bucket(name)) => {
            let bucket = open_bucket(backend, &caller, &name)?;
            let owner = backend
                .folder_bucket_owner(&name)
                .ok()
                .flatten()
                .unwrap_or_else(|| caller.account_id.clone());
            list_objects(&bucket, &query, op == Op::ListObjectsV2, owner).await
        }
        (op @ (Op::GetObject | Op::HeadObject), Target::Object(name, key)) => {
            let bucket = open_bucket(backend, &caller, &name)?;
            get_object(&bucket, &key, &query, headers, op == Op::HeadObject).await
        }
        (Op::Unsupported(name), _) => Err(S3Error::new(
            "NotImplemented",
            501,
            format!(
                "{name} is not served by Cairn's S3 façade: it serves ListBuckets, CreateBucket, HeadBucket, GetBucketLocation, ListObjects, ListObjectsV2, GetObject and HeadObject."
            ),
        )),
        (op, target) => {
            tracing::error!(?op, ?target, "S3 operation and target do not fit together");
            Err(S3Error::internal())
        }
    }
}

/// Reads (and drops) a refused request's body so that the client gets to read the answer,
/// unless the client waits for `100 Continue` (it then sends nothing more).
async fn drain(headers: &HeaderMap, body: Body) {
    let expects_continue = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if !expects_continue {
        let _ = axum::body::to_bytes(body, MAX_DRAIN).await;
    }
}

fn authenticate(
    facade: &Facade<'_>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    origin: &Origin,
) -> Result<Caller, S3Error> {
    let req = SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers,
        body,
    };
    let presigned = uri
        .query()
        .is_some_and(|q| q.contains("X-Amz-Signature") || q.contains("X-Amz-Credential"));
    if is_sigv2(headers, &Query::parse(uri.query())) {
        return Err(S3Error::new(
            "InvalidRequest",
            400,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256 (Signature Version 4; for presigned URLs from boto3 configure signature_version='s3v4').",
        ));
    }
    let claim = sigv4::parse_claim(&req).map_err(|e| auth_error(e, presigned, None))?;
    let key_id = Some(claim.access_key_id.as_str());
    if claim.service != "s3" {
        return Err(auth_error(
            AuthError::WrongScope(format!(
                "Credential should be scoped to correct service: 's3', not '{}'.",
                claim.service
            )),
            claim.presigned,
            key_id,
        ));
    }
    let key = crate::auth::check_signature(facade.iam, &req, &claim, &VerifyOptions::s3())
        .map_err(|e| auth_error(e, claim.presigned, key_id))?;
    Ok(Caller::signed(&key, claim, origin))
}

/// Whether `account` may read a bucket owned by `owner` (`None`: made by hand, anyone may).
pub fn may_read(owner: Option<&str>, account: &str) -> bool {
    owner.is_none_or(|o| o == account)
}

/// The bucket, once it exists and the caller may read it.
fn open_bucket(backend: &Backend, caller: &Caller, name: &str) -> Result<Bucket, S3Error> {
    if !cairn_bucket::valid_bucket_name(name) {
        return Err(S3Error::invalid_bucket_name(name));
    }
    let bucket = backend.bucket(name)?;
    if !bucket.folder().is_some_and(|f| f.is_dir()) {
        return Err(S3Error::no_such_bucket(name));
    }
    let owner = backend.folder_bucket_owner(name)?;
    if !may_read(owner.as_deref(), &caller.account_id) {
        return Err(S3Error::access_denied(format!(
            "Access Denied: bucket {name} belongs to another account."
        ))
        .with("BucketName", name));
    }
    Ok(bucket)
}

fn xml_response(xml: String) -> Response {
    let mut resp = Response::new(Body::from(xml));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

fn parse_max(query: &Query, name: &str, cap: usize) -> Result<usize, S3Error> {
    match query.get(name) {
        None => Ok(cap),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(cap).min(cap)),
            Ok(_) => Err(S3Error::invalid_argument(
                format!("Argument {name} must be an integer between 0 and 2147483647"),
                name,
                v,
            )),
            Err(_) => Err(S3Error::invalid_argument(
                format!("Provided {name} not an integer or within integer range"),
                name,
                v,
            )),
        },
    }
}

fn list_buckets(
    backend: &Backend,
    caller: &Caller,
    query: &Query,
    method: &Method,
) -> Result<Response, S3Error> {
    let prefix = query.get("prefix").filter(|p| !p.is_empty());
    let max = parse_max(query, "max-buckets", 10_000)?.max(1);
    let after = match query.get("continuation-token").filter(|t| !t.is_empty()) {
        Some(t) => Some(decode_continuation_token(t).ok_or_else(|| {
            S3Error::invalid_argument(
                "The continuation token provided is incorrect",
                "continuation-token",
                t,
            )
        })?),
        None => None,
    };
    let mut visible: Vec<BucketEntry> = Vec::new();
    let mut next = None;
    for name in backend.folder_buckets() {
        if prefix.is_some_and(|p| !name.starts_with(p))
            || after.as_deref().is_some_and(|a| name.as_str() <= a)
        {
            continue;
        }
        let owner = match backend.folder_bucket_owner(&name) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(bucket = %name, error = %e, "unreadable bucket owner record");
                continue;
            }
        };
        if !may_read(owner.as_deref(), &caller.account_id) {
            continue;
        }
        if visible.len() >= max {
            next = visible.last().map(|b| b.name.clone());
            break;
        }
        let created_ms = backend.folder_bucket_created_ms(&name).unwrap_or(0);
        visible.push(BucketEntry { name, created_ms });
    }
    let xml = list_buckets_xml(&caller.account_id, &visible, next.as_deref(), prefix);
    if method == Method::HEAD {
        return Ok(Response::new(Body::empty()));
    }
    Ok(xml_response(xml))
}

async fn create_bucket(
    backend: &Backend,
    caller: &Caller,
    name: &str,
) -> Result<Response, S3Error> {
    if !cairn_bucket::valid_bucket_name(name) {
        return Err(S3Error::invalid_bucket_name(name));
    }
    let conflict = |owner: Option<String>| {
        match owner {
        Some(o) if o == caller.account_id => S3Error::new(
            "BucketAlreadyOwnedByYou",
            409,
            "Your previous request to create the named bucket succeeded and you already own it.",
        )
        .with("BucketName", name),
        Some(_) => S3Error::new(
            "BucketAlreadyExists",
            409,
            "The requested bucket name is not available: another account owns it. Select a different name and try again.",
        )
        .with("BucketName", name),
        None => S3Error::new(
            "BucketAlreadyExists",
            409,
            "The requested bucket name is not available: a folder of that name was made outside Cairn (every account may read it). Select a different name and try again.",
        )
        .with("BucketName", name),
    }
    };
    if backend.bucket(name)?.exists().await? {
        return Err(conflict(backend.folder_bucket_owner(name)?));
    }
    backend.create_folder_bucket(name)?;
    let owner = backend.record_folder_bucket_owner(name, &caller.account_id)?;
    if owner != caller.account_id {
        return Err(conflict(Some(owner)));
    }
    tracing::info!(bucket = %name, account = %caller.account_id, "bucket created");
    let mut resp = Response::new(Body::empty());
    if let Ok(v) = HeaderValue::from_str(&format!("/{name}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn list_objects(
    bucket: &Bucket,
    query: &Query,
    v2: bool,
    owner: String,
) -> Result<Response, S3Error> {
    let encoding = Encoding::parse(query)?;
    let prefix = query.get("prefix").unwrap_or_default();
    let delimiter = query.get("delimiter").filter(|d| !d.is_empty());
    let max_keys = parse_max(query, "max-keys", MAX_KEYS)?;
    let marker = query.get("marker");
    let token = query.get("continuation-token");
    let start_after = query.get("start-after");
    let after: Option<String> = if v2 {
        match token {
            Some(t) => Some(decode_continuation_token(t).ok_or_else(|| {
                S3Error::invalid_argument(
                    "The continuation token provided is incorrect",
                    "continuation-token",
                    t,
                )
            })?),
            None => start_after.filter(|s| !s.is_empty()).map(str::to_owned),
        }
    } else {
        marker.filter(|m| !m.is_empty()).map(str::to_owned)
    };
    let listed = bucket.list(prefix, after.as_deref()).await?;
    let page = paginate(listed, prefix, delimiter, after.as_deref(), max_keys);
    let fetch_owner = query
        .get("fetch-owner")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let header = ListingHeader {
        bucket: bucket.name(),
        prefix,
        delimiter,
        max_keys,
        encoding,
        marker,
        continuation_token: token,
        start_after,
        owner: (!v2 || fetch_owner).then_some(Owner { id: owner }),
    };
    Ok(xml_response(if v2 {
        list_objects_v2_xml(&page, &header)
    } else {
        list_objects_xml(&page, &header)
    }))
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

async fn get_object(
    bucket: &Bucket,
    key: &str,
    query: &Query,
    req_headers: &HeaderMap,
    head: bool,
) -> Result<Response, S3Error> {
    let object = bucket.get(key).await.map_err(|e| match e {
        BucketError::NoSuchKey(_) | BucketError::InvalidKey(_) => S3Error::no_such_key(key),
        other => other.into(),
    })?;
    let len = object.bytes.len() as u64;
    let tag = etag(len, object.last_modified_ms);
    let last_modified = http_date(object.last_modified_ms);
    let mut resp = Response::new(Body::empty());
    {
        let h = resp.headers_mut();
        insert(h, header::ETAG, &tag);
        insert(h, header::LAST_MODIFIED, &last_modified);
    }
    match check_conditions(req_headers, &tag, object.last_modified_ms) {
        Condition::Proceed => {}
        Condition::NotModified => {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(resp);
        }
        Condition::PreconditionFailed => {
            return Err(S3Error::new(
                "PreconditionFailed",
                412,
                "At least one of the pre-conditions you specified did not hold",
            )
            .with("Condition", "If-Match or If-Unmodified-Since"));
        }
    }
    let range = parse_range(
        req_headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (status, bytes): (StatusCode, Bytes) = match range {
        RangeAsk::Whole => (StatusCode::OK, object.bytes.clone()),
        RangeAsk::Part(a, b) => {
            let (Ok(start), Ok(end)) = (usize::try_from(a), usize::try_from(b)) else {
                return Err(S3Error::internal());
            };
            (StatusCode::PARTIAL_CONTENT, object.bytes.slice(start..=end))
        }
        RangeAsk::Unsatisfiable => {
            return Err(S3Error::new(
                "InvalidRange",
                416,
                "The requested range is not satisfiable",
            )
            .with("RangeRequested", {
                req_headers
                    .get(header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
            })
            .with("ActualObjectSize", len.to_string()));
        }
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    insert(h, header::ACCEPT_RANGES, "bytes");
    insert(h, header::CONTENT_LENGTH, &bytes.len().to_string());
    if let RangeAsk::Part(a, b) = range {
        insert(h, header::CONTENT_RANGE, &format!("bytes {a}-{b}/{len}"));
    }
    insert(h, header::CONTENT_TYPE, "binary/octet-stream");
    let overrides: [(&str, HeaderName); 6] = [
        ("response-content-type", header::CONTENT_TYPE),
        ("response-content-language", header::CONTENT_LANGUAGE),
        ("response-expires", header::EXPIRES),
        ("response-cache-control", header::CACHE_CONTROL),
        ("response-content-disposition", header::CONTENT_DISPOSITION),
        ("response-content-encoding", header::CONTENT_ENCODING),
    ];
    for (param, name) in overrides {
        if let Some(v) = query.get(param) {
            insert(h, name, v);
        }
    }
    let missing = metadata_headers(h, &object.metadata);
    if missing > 0 {
        insert(
            h,
            HeaderName::from_static("x-amz-missing-meta"),
            &missing.to_string(),
        );
    }
    if !head {
        *resp.body_mut() = Body::from(bytes);
    }
    Ok(resp)
}

/// Adds `x-amz-meta-<name>` for each metadata entry; returns how many could not be sent as
/// HTTP headers.
pub fn metadata_headers(h: &mut HeaderMap, metadata: &BTreeMap<String, String>) -> usize {
    let mut missing = 0;
    for (k, v) in metadata {
        let name =
            HeaderName::from_bytes(format!("x-amz-meta-{}", k.to_ascii_lowercase()).as_bytes());
        match (name, HeaderValue::from_str(v)) {
            (Ok(name), Ok(value)) if v.is_ascii() => {
                h.insert(name, value);
            }
            _ => missing += 1,
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
        SigningSettings, UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    use super::*;

    const ACCOUNT: &str = "111122223333";
    const OTHER: &str = "444455556666";
    const AKID: &str = "AKIAFACADETEST000001";
    const SECRET: &str = "facadeTestSecretKey/0123456789abcdefghij";
    const OTHER_AKID: &str = "AKIAFACADETEST000002";
    const OTHER_SECRET: &str = "facadeTestSecretKey/other/0123456789abcd";

    fn listed(key: &str) -> Listed {
        Listed {
            key: key.to_owned(),
            size: key.len() as u64,
            last_modified_ms: 1_700_000_000_000,
        }
    }

    fn names(page: &Page) -> Vec<&str> {
        page.entries.iter().map(Entry::name).collect()
    }

    fn query(raw: &str) -> Query {
        Query::parse(Some(raw))
    }

    #[test]
    fn targets_are_path_style_and_decoded() {
        assert_eq!(parse_target("/"), Ok(Target::Service));
        assert_eq!(parse_target(""), Ok(Target::Service));
        assert_eq!(parse_target("/logs"), Ok(Target::Bucket("logs".into())));
        assert_eq!(parse_target("/logs/"), Ok(Target::Bucket("logs".into())));
        assert_eq!(
            parse_target("/logs/a%20b/c%2Bd+e/%E2%9C%93"),
            Ok(Target::Object("logs".into(), "a b/c+d+e/✓".into()))
        );
        assert_eq!(
            parse_target("/logs/dir/"),
            Ok(Target::Object("logs".into(), "dir/".into()))
        );
        let err = parse_target("/logs/%FF").unwrap_err();
        assert_eq!((err.code, err.status.as_u16()), ("InvalidURI", 400));
    }

    #[test]
    fn query_parameters_are_decoded() {
        let q = query("prefix=a%20b%2F&marker=x+y&location&list-type=2");
        assert_eq!(q.get("prefix"), Some("a b/"));
        assert_eq!(q.get("marker"), Some("x y"));
        assert_eq!(q.get("location"), Some(""));
        assert!(q.has("location"));
        assert!(!q.has("delimiter"));
        assert_eq!(Query::parse(None).get("x"), None);
    }

    #[test]
    fn operations_follow_the_s3_rest_mapping() {
        let none = HeaderMap::new();
        let bucket = Target::Bucket("logs".into());
        let object = Target::Object("logs".into(), "k".into());
        let op = |m: Method, t: &Target, q: &str| classify(&m, t, &query(q), &none);
        assert_eq!(op(Method::GET, &Target::Service, ""), Op::ListBuckets);
        assert_eq!(op(Method::HEAD, &Target::Service, ""), Op::ListBuckets);
        assert_eq!(op(Method::PUT, &Target::Service, ""), Op::MethodNotAllowed);
        assert_eq!(op(Method::GET, &bucket, "location"), Op::GetBucketLocation);
        assert_eq!(op(Method::GET, &bucket, "prefix=a"), Op::ListObjects);
        assert_eq!(op(Method::GET, &bucket, "list-type=2"), Op::ListObjectsV2);
        assert_eq!(op(Method::HEAD, &bucket, ""), Op::HeadBucket);
        assert_eq!(op(Method::PUT, &bucket, ""), Op::CreateBucket);
        assert_eq!(
            op(Method::GET, &bucket, "acl"),
            Op::Unsupported("GetBucketAcl".into())
        );
        assert_eq!(
            op(Method::GET, &bucket, "object-lock"),
            Op::Unsupported("GetBucketObjectLock".into())
        );
        assert_eq!(
            op(Method::PUT, &bucket, "policy"),
            Op::Write("PutBucketPolicy".into())
        );
        assert_eq!(
            op(Method::DELETE, &bucket, ""),
            Op::Write("DeleteBucket".into())
        );
        assert_eq!(
            op(Method::POST, &bucket, "delete"),
            Op::Write("DeleteObjects".into())
        );
        assert_eq!(op(Method::GET, &object, ""), Op::GetObject);
        assert_eq!(
            op(Method::GET, &object, "response-content-type=text/plain"),
            Op::GetObject
        );
        assert_eq!(op(Method::HEAD, &object, ""), Op::HeadObject);
        assert_eq!(
            op(Method::GET, &object, "tagging"),
            Op::Unsupported("GetObjectTagging".into())
        );
        assert_eq!(
            op(Method::GET, &object, "uploadId=1"),
            Op::Unsupported("ListParts".into())
        );
        assert_eq!(op(Method::PUT, &object, ""), Op::Write("PutObject".into()));
        assert_eq!(
            op(Method::PUT, &object, "partNumber=1&uploadId=x"),
            Op::Write("UploadPart".into())
        );
        assert_eq!(
            op(Method::POST, &object, "uploads"),
            Op::Write("CreateMultipartUpload".into())
        );
        assert_eq!(
            op(Method::DELETE, &object, ""),
            Op::Write("DeleteObject".into())
        );
        let mut copy = HeaderMap::new();
        copy.insert("x-amz-copy-source", HeaderValue::from_static("/a/b"));
        assert_eq!(
            classify(&Method::PUT, &object, &Query::default(), &copy),
            Op::Write("CopyObject".into())
        );
        assert_eq!(op(Method::PATCH, &object, ""), Op::MethodNotAllowed);
    }

    #[test]
    fn signing_service_tells_s3_requests_apart() {
        let mut h = HeaderMap::new();
        assert_eq!(signing_service(&h, None), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
            ),
        );
        assert_eq!(signing_service(&h, None).as_deref(), Some("s3"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/cloudtrail/aws4_request,SignedHeaders=host,Signature=00",
            ),
        );
        assert_eq!(signing_service(&h, None).as_deref(), Some("cloudtrail"));
        assert!(!is_sigv2(&h, &Query::default()));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS AKIA:sig"),
        );
        assert_eq!(signing_service(&h, None), None);
        assert!(is_sigv2(&h, &Query::default()));
        assert!(is_sigv2(
            &HeaderMap::new(),
            &query("AWSAccessKeyId=AKIA&Signature=abc%3D&Expires=1")
        ));
        let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1%2Fs3%2Faws4_request";
        assert_eq!(
            signing_service(&HeaderMap::new(), Some(presigned)).as_deref(),
            Some("s3")
        );
    }

    #[test]
    fn pages_roll_up_common_prefixes_and_resume_after_the_marker() {
        let keys = ["a/1", "a/2", "b", "c/x/1", "c/x/2", "c/y", "d", "e/", "e/f"];
        let all: Vec<Listed> = keys.iter().map(|k| listed(k)).collect();
        let page = paginate(all.clone(), "", Some("/"), None, 1000);
        assert_eq!(names(&page), ["a/", "b", "c/", "d", "e/"]);
        assert!(!page.truncated);
        assert_eq!(page.next_marker(), None);

        let page = paginate(all.clone(), "c/", Some("/"), None, 1000);
        assert_eq!(names(&page), ["c/x/", "c/y"]);

        let page = paginate(all.clone(), "", None, Some("c/x/1"), 2);
        assert_eq!(names(&page), ["c/x/2", "c/y"]);
        assert!(page.truncated);
        assert_eq!(page.next_marker(), Some("c/y"));

        // A common prefix handed out as the marker is not handed out again.
        let page = paginate(all.clone(), "", Some("/"), Some("a/"), 1000);
        assert_eq!(names(&page), ["b", "c/", "d", "e/"]);

        // Following the pages, with any page size, yields every entry exactly once.
        for delimiter in [None, Some("/")] {
            let whole = names(&paginate(all.clone(), "", delimiter, None, 1000))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            for size in 1..=4 {
                let mut got: Vec<String> = Vec::new();
                let mut after: Option<String> = None;
                for _ in 0..20 {
                    let page = paginate(all.clone(), "", delimiter, after.as_deref(), size);
                    got.extend(names(&page).into_iter().map(str::to_owned));
                    match page.next_marker() {
                        Some(m) => after = Some(m.to_owned()),
                        None => break,
                    }
                }
                assert_eq!(got, whole, "delimiter {delimiter:?}, page size {size}");
            }
        }
        let none = paginate(all, "", None, None, 0);
        assert!(none.entries.is_empty());
        assert!(none.truncated);
    }

    fn header<'a>(bucket: &'a str, encoding: Encoding) -> ListingHeader<'a> {
        ListingHeader {
            bucket,
            prefix: "",
            delimiter: None,
            max_keys: 2,
            encoding,
            marker: None,
            continuation_token: None,
            start_after: None,
            owner: Some(Owner { id: ACCOUNT.into() }),
        }
    }

    #[test]
    fn list_objects_v1_xml() {
        let page = Page {
            entries: vec![
                Entry::Object(listed("a b+c&<d>")),
                Entry::CommonPrefix("p/".into()),
            ],
            truncated: true,
        };
        let mut h = header("logs", Encoding::Url);
        h.marker = Some("m k");
        let xml = list_objects_xml(&page, &h);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"), "{xml}");
        assert!(xml.contains("<Name>logs</Name><Prefix></Prefix><Marker>m%20k</Marker><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>"), "{xml}");
        assert!(xml.contains("<Key>a%20b%2Bc%26%3Cd%3E</Key><LastModified>2023-11-14T22:13:20.000Z</LastModified><ETag>&quot;"), "{xml}");
        assert!(xml.contains("<Size>9</Size><Owner><ID>111122223333</ID><DisplayName>111122223333</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>"), "{xml}");
        assert!(
            !xml.contains("NextMarker"),
            "no NextMarker without a delimiter: {xml}"
        );

        let mut h = header("logs", Encoding::Plain);
        h.delimiter = Some("/");
        let xml = list_objects_xml(&page, &h);
        assert!(xml.contains("<Key>a b+c&amp;&lt;d&gt;</Key>"), "{xml}");
        assert!(xml.contains("<NextMarker>p/</NextMarker>"), "{xml}");
        assert!(xml.contains("<Delimiter>/</Delimiter>"), "{xml}");
        assert!(!xml.contains("EncodingType"), "{xml}");
    }

    #[test]
    fn list_objects_v2_xml_and_tokens() {
        let page = Page {
            entries: vec![Entry::Object(listed("k1")), Entry::Object(listed("k2"))],
            truncated: true,
        };
        let mut h = header("logs", Encoding::Url);
        h.owner = None;
        h.continuation_token = Some("abc");
        h.start_after = Some("k0");
        let xml = list_objects_v2_xml(&page, &h);
        let token = continuation_token("k2");
        assert!(xml.contains(&format!("<MaxKeys>2</MaxKeys><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType><ContinuationToken>abc</ContinuationToken><NextContinuationToken>{token}</NextContinuationToken><StartAfter>k0</StartAfter>")), "{xml}");
        assert!(!xml.contains("<Owner>"), "{xml}");
        assert_eq!(decode_continuation_token(&token).as_deref(), Some("k2"));
        assert_eq!(
            decode_continuation_token(&continuation_token("a/✓ b")).as_deref(),
            Some("a/✓ b")
        );
        assert_eq!(decode_continuation_token(""), None);
        assert_eq!(decode_continuation_token("***"), None);
    }

    #[test]
    fn bucket_list_location_and_error_xml() {
        let xml = list_buckets_xml(
            ACCOUNT,
            &[BucketEntry {
                name: "logs".into(),
                created_ms: 0,
            }],
            None,
            None,
        );
        assert!(xml.contains("<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>111122223333</ID><DisplayName>111122223333</DisplayName></Owner><Buckets><Bucket><Name>logs</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate><BucketRegion>us-east-1</BucketRegion></Bucket></Buckets></ListAllMyBucketsResult>"), "{xml}");
        assert_eq!(
            location_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>"
        );
        let e = S3Error::no_such_key("a<b>&\"c\"\n");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.to_xml("RID"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a&lt;b&gt;&amp;&quot;c&quot;&#10;</Key><RequestId>RID</RequestId><HostId>RID</HostId></Error>"
        );
        let e = S3Error::no_such_bucket("b");
        assert!(e.to_xml("R").contains("<Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName>"));
        assert_eq!(
            http_date(1_700_000_000_000),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(url_encode("a b/c~d+e%"), "a%20b/c~d%2Be%25");
    }

    #[test]
    fn auth_errors_map_to_s3_codes() {
        let code = |e: AuthError, presigned: bool| {
            let e = auth_error(e, presigned, Some("AKIA"));
            (e.code, e.status.as_u16())
        };
        assert_eq!(
            code(AuthError::MissingAuthenticationToken, false),
            ("AccessDenied", 403)
        );
        assert_eq!(
            code(AuthError::UnknownAccessKey, false),
            ("InvalidAccessKeyId", 403)
        );
        assert_eq!(
            code(
                AuthError::SignatureMismatch {
                    canonical_request: "c".into(),
                    string_to_sign: "s".into()
                },
                false
            ),
            ("SignatureDoesNotMatch", 403)
        );
        assert_eq!(
            code(AuthError::IncompleteSignature("x".into()), false),
            ("AuthorizationHeaderMalformed", 400)
        );
        assert_eq!(
            code(AuthError::IncompleteSignature("x".into()), true),
            ("AuthorizationQueryParametersError", 400)
        );
        assert_eq!(
            code(AuthError::SignatureExpired("x".into()), false),
            ("RequestTimeTooSkewed", 403)
        );
        assert_eq!(
            code(AuthError::SignatureExpired("x".into()), true),
            ("AccessDenied", 403)
        );
        assert_eq!(
            code(AuthError::PayloadHashMismatch("x".into()), false),
            ("XAmzContentSHA256Mismatch", 400)
        );
        let e = auth_error(
            AuthError::SignatureMismatch {
                canonical_request: "GET\n/".into(),
                string_to_sign: "AWS4".into(),
            },
            false,
            Some("AKIA"),
        );
        let xml = e.to_xml("R");
        assert!(xml.contains("<AWSAccessKeyId>AKIA</AWSAccessKeyId><StringToSign>AWS4</StringToSign><CanonicalRequest>GET&#10;/</CanonicalRequest>"), "{xml}");
    }

    #[test]
    fn ranges() {
        let r = |v: &str, len| parse_range(Some(v), len);
        assert_eq!(parse_range(None, 10), RangeAsk::Whole);
        assert_eq!(r("bytes=0-3", 10), RangeAsk::Part(0, 3));
        assert_eq!(r("bytes=5-100", 10), RangeAsk::Part(5, 9));
        assert_eq!(r("bytes=7-", 10), RangeAsk::Part(7, 9));
        assert_eq!(r("bytes=-3", 10), RangeAsk::Part(7, 9));
        assert_eq!(r("bytes=-30", 10), RangeAsk::Part(0, 9));
        assert_eq!(r("bytes=10-", 10), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=10-20", 10), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=-1", 0), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=0-0", 0), RangeAsk::Unsatisfiable);
        assert_eq!(r("bytes=3-1", 10), RangeAsk::Whole);
        assert_eq!(r("bytes=0-1,3-4", 10), RangeAsk::Whole);
        assert_eq!(r("items=0-1", 10), RangeAsk::Whole);
        assert_eq!(r("bytes=x-1", 10), RangeAsk::Whole);
        assert_eq!(r("bytes=-", 10), RangeAsk::Whole);
    }

    #[test]
    fn conditional_headers() {
        let tag = etag(3, 1_700_000_000_000);
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_str(v).expect("header"));
            }
            check_conditions(&m, &tag, 1_700_000_000_000)
        };
        assert_eq!(h(&[]), Condition::Proceed);
        assert_eq!(h(&[("if-match", &tag)]), Condition::Proceed);
        assert_eq!(h(&[("if-match", "*")]), Condition::Proceed);
        assert_eq!(
            h(&[("if-match", "\"other\"")]),
            Condition::PreconditionFailed
        );
        assert_eq!(h(&[("if-none-match", &tag)]), Condition::NotModified);
        assert_eq!(h(&[("if-none-match", "\"other\"")]), Condition::Proceed);
        let at = "Tue, 14 Nov 2023 22:13:20 GMT";
        let before = "Tue, 14 Nov 2023 22:13:19 GMT";
        assert_eq!(h(&[("if-modified-since", at)]), Condition::NotModified);
        assert_eq!(h(&[("if-modified-since", before)]), Condition::Proceed);
        assert_eq!(h(&[("if-unmodified-since", at)]), Condition::Proceed);
        assert_eq!(
            h(&[("if-unmodified-since", before)]),
            Condition::PreconditionFailed
        );
        assert_eq!(h(&[("if-modified-since", "garbage")]), Condition::Proceed);
        assert_ne!(etag(3, 1), etag(4, 1));
        assert_ne!(etag(3, 1), etag(3, 2));
    }

    #[test]
    fn metadata_becomes_headers() {
        let mut h = HeaderMap::new();
        let meta: BTreeMap<String, String> = [
            ("signature", "abcd"),
            ("Signature-Algorithm", "SHA256withRSA"),
            ("bad name", "x"),
            ("unicode", "✓"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(metadata_headers(&mut h, &meta), 2);
        assert_eq!(h["x-amz-meta-signature"], "abcd");
        assert_eq!(h["x-amz-meta-signature-algorithm"], "SHA256withRSA");
        assert!(may_read(None, ACCOUNT));
        assert!(may_read(Some(ACCOUNT), ACCOUNT));
        assert!(!may_read(Some(OTHER), ACCOUNT));
    }

    // ---- whole requests through the façade, signed by aws-sigv4 as the AWS SDKs sign S3

    struct Setup {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        iam: cairn_iam::Directory,
        folders: Backend,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = std::sync::Arc::new(cairn_vault::MasterKey::ephemeral().expect("master key"));
        let iam = cairn_iam::Directory::open(dir.path(), master).expect("identity");
        iam.bootstrap(Some(OTHER), Some((OTHER_AKID.into(), OTHER_SECRET.into())))
            .expect("identity");
        iam.bootstrap(Some(ACCOUNT), Some((AKID.into(), SECRET.into())))
            .expect("identity");
        let folders = Backend::folder(dir.path());
        Setup {
            root: dir.path().join("buckets"),
            _dir: dir,
            iam,
            folders,
        }
    }

    fn signed(
        method: &str,
        path_and_query: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        key: (&str, &str),
        presign: bool,
    ) -> (Method, Uri, HeaderMap) {
        let url = format!("http://127.0.0.1:8517{path_and_query}");
        let identity = Credentials::new(key.0, key.1, None, None, "test").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        if presign {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(std::time::Duration::from_secs(300));
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let mut headers: Vec<(&str, &str)> = vec![("host", "127.0.0.1:8517")];
        headers.extend_from_slice(extra);
        let signable = SignableRequest::new(
            method,
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (name, value) in &headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(()).expect("request");
        instructions.apply_to_request_http1x(&mut request);
        let uri: Uri = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .parse()
            .expect("uri");
        (request.method().clone(), uri, request.headers().clone())
    }

    async fn call(
        facade: &Facade<'_>,
        method: &str,
        path_and_query: &str,
        extra: &[(&str, &str)],
        key: (&str, &str),
    ) -> (StatusCode, HeaderMap, String) {
        let (m, uri, headers) = signed(method, path_and_query, extra, b"", key, false);
        let resp = facade
            .respond(&m, &uri, &headers, &Extensions::new(), Body::empty())
            .await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn code_of(xml: &str) -> &str {
        xml.split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn folder_buckets_through_the_facade() {
        let s = setup();
        let facade = Facade {
            iam: &s.iam,
            auditor: None,
            buckets: &s.folders,
        };
        let me = (AKID, SECRET);
        let other = (OTHER_AKID, OTHER_SECRET);

        let (status, headers, _) = call(&facade, "PUT", "/trail-logs", &[], me).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["location"], "/trail-logs");
        let (status, _, body) = call(&facade, "PUT", "/trail-logs", &[], me).await;
        assert_eq!(
            (status.as_u16(), code_of(&body)),
            (409, "BucketAlreadyOwnedByYou")
        );
        let (status, _, body) = call(&facade, "PUT", "/trail-logs", &[], other).await;
        assert_eq!(
            (status.as_u16(), code_of(&body)),
            (409, "BucketAlreadyExists")
        );
        let (status, _, body) = call(&facade, "PUT", "/Bad_Name", &[], me).await;
        assert_eq!(
            (status.as_u16(), code_of(&body)),
            (400, "InvalidBucketName")
        );

        // Trail files, as delivery writes them: a file and a metadata sidecar.
        let bucket = s.folders.bucket("trail-logs").expect("bucket");
        for key in [
            "AWSLogs/1/a.json.gz",
            "AWSLogs/1/b c+d.json.gz",
            "AWSLogs/2/e",
        ] {
            bucket
                .put(
                    key,
                    Bytes::from_static(b"0123456789"),
                    &[("signature", "ab12")],
                )
                .await
                .expect("put");
        }
        std::fs::create_dir_all(s.root.join("by-hand/x")).expect("mkdir");
        std::fs::write(s.root.join("by-hand/x/y"), b"hand").expect("write");

        let (status, _, body) = call(&facade, "GET", "/", &[], me).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("<Name>by-hand</Name>") && body.contains("<Name>trail-logs</Name>"),
            "{body}"
        );
        let (_, _, body) = call(&facade, "GET", "/", &[], other).await;
        assert!(
            body.contains("<Name>by-hand</Name>") && !body.contains("trail-logs"),
            "{body}"
        );

        let (status, _, body) = call(
            &facade,
            "GET",
            "/trail-logs?delimiter=%2F&prefix=AWSLogs%2F&encoding-type=url",
            &[],
            me,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<CommonPrefixes><Prefix>AWSLogs/1/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>AWSLogs/2/</Prefix></CommonPrefixes>"), "{body}");
        let (_, _, body) = call(
            &facade,
            "GET",
            "/trail-logs?list-type=2&max-keys=1&start-after=AWSLogs%2F1%2Fa.json.gz",
            &[],
            me,
        )
        .await;
        assert!(
            body.contains("<Key>AWSLogs/1/b c+d.json.gz</Key>")
                && body.contains("<IsTruncated>true</IsTruncated>"),
            "{body}"
        );
        let (status, _, body) = call(
            &facade,
            "GET",
            "/trail-logs?list-type=2&continuation-token=%2A%2A",
            &[],
            me,
        )
        .await;
        assert_eq!((status.as_u16(), code_of(&body)), (400, "InvalidArgument"));
        let (status, _, body) = call(&facade, "GET", "/trail-logs?max-keys=x", &[], me).await;
        assert_eq!((status.as_u16(), code_of(&body)), (400, "InvalidArgument"));

        let (status, headers, body) = call(
            &facade,
            "GET",
            "/trail-logs/AWSLogs/1/b%20c%2Bd.json.gz",
            &[],
            me,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "0123456789");
        assert_eq!(headers["x-amz-meta-signature"], "ab12");
        assert_eq!(headers["content-length"], "10");
        let (status, headers, body) = call(
            &facade,
            "GET",
            "/trail-logs/AWSLogs/1/a.json.gz",
            &[("range", "bytes=2-4")],
            me,
        )
        .await;
        assert_eq!((status.as_u16(), body.as_str()), (206, "234"));
        assert_eq!(headers["content-range"], "bytes 2-4/10");
        let (status, _, body) = call(
            &facade,
            "GET",
            "/trail-logs/AWSLogs/1/a.json.gz",
            &[("range", "bytes=20-")],
            me,
        )
        .await;
        assert_eq!((status.as_u16(), code_of(&body)), (416, "InvalidRange"));
        let (status, headers, body) =
            call(&facade, "HEAD", "/trail-logs/AWSLogs/1/a.json.gz", &[], me).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        assert_eq!(headers["content-length"], "10");
        let tag = headers["etag"].to_str().expect("etag").to_owned();
        let (status, _, _) = call(
            &facade,
            "GET",
            "/trail-logs/AWSLogs/1/a.json.gz",
            &[("if-none-match", &tag)],
            me,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);

        let (status, _, body) = call(&facade, "GET", "/trail-logs/AWSLogs/none", &[], me).await;
        assert_eq!((status.as_u16(), code_of(&body)), (404, "NoSuchKey"));
        let (status, _, body) = call(&facade, "GET", "/trail-logs/AWSLogs/1/", &[], me).await;
        assert_eq!((status.as_u16(), code_of(&body)), (404, "NoSuchKey"));
        let (status, _, body) = call(&facade, "GET", "/no-bucket/k", &[], me).await;
        assert_eq!((status.as_u16(), code_of(&body)), (404, "NoSuchBucket"));
        let (status, _, body) = call(&facade, "HEAD", "/no-bucket", &[], me).await;
        assert_eq!((status.as_u16(), body.as_str()), (404, ""));
        let (status, _, body) = call(&facade, "GET", "/trail-logs?location", &[], me).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.ends_with(
                "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>"
            ),
            "{body}"
        );

        // Another account: not its bucket; but the hand-made one is everyone's.
        for path in [
            "/trail-logs/AWSLogs/1/a.json.gz",
            "/trail-logs",
            "/trail-logs?location",
        ] {
            let (status, _, body) = call(&facade, "GET", path, &[], other).await;
            assert_eq!(
                (status.as_u16(), code_of(&body)),
                (403, "AccessDenied"),
                "{path}"
            );
        }
        let (status, _, body) = call(&facade, "GET", "/by-hand/x/y", &[], other).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hand"));
        let (status, _, body) = call(&facade, "PUT", "/by-hand", &[], other).await;
        assert_eq!(
            (status.as_u16(), code_of(&body)),
            (409, "BucketAlreadyExists")
        );

        // Writes are refused; so are reads the façade does not serve.
        let (status, _, body) = call(&facade, "PUT", "/trail-logs/new", &[], me).await;
        assert_eq!((status.as_u16(), code_of(&body)), (403, "AccessDenied"));
        assert!(body.contains("read-only"), "{body}");
        let (status, _, body) = call(
            &facade,
            "DELETE",
            "/trail-logs/AWSLogs/1/a.json.gz",
            &[],
            me,
        )
        .await;
        assert_eq!((status.as_u16(), code_of(&body)), (403, "AccessDenied"));
        assert!(bucket.get("AWSLogs/1/a.json.gz").await.is_ok());
        let (status, _, body) = call(&facade, "GET", "/trail-logs?versioning", &[], me).await;
        assert_eq!((status.as_u16(), code_of(&body)), (501, "NotImplemented"));

        // Authentication.
        let (status, _, body) = call(
            &facade,
            "GET",
            "/trail-logs",
            &[],
            ("AKIAUNKNOWN000000000", SECRET),
        )
        .await;
        // An unknown key gets the answer a wrong secret gets: nothing tells whether a key
        // exists.
        assert_eq!(
            (status.as_u16(), code_of(&body)),
            (403, "SignatureDoesNotMatch")
        );
        let (status, _, body) =
            call(&facade, "GET", "/trail-logs", &[], (AKID, OTHER_SECRET)).await;
        assert_eq!(
            (status.as_u16(), code_of(&body)),
            (403, "SignatureDoesNotMatch")
        );
        let uri: Uri = "/trail-logs".parse().expect("uri");
        let resp = facade
            .respond(
                &Method::GET,
                &uri,
                &HeaderMap::new(),
                &Extensions::new(),
                Body::empty(),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let (m, uri, headers) =
            signed("GET", "/trail-logs/AWSLogs/1/a.json.gz", &[], b"", me, true);
        assert!(uri.query().is_some_and(|q| q.contains("X-Amz-Signature")));
        let resp = facade
            .respond(&m, &uri, &headers, &Extensions::new(), Body::empty())
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "presigned GET");
    }

    #[tokio::test]
    async fn an_s3_backend_sends_tools_to_that_service() {
        let s = setup();
        let backend = Backend::S3(cairn_bucket::S3Config {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..Default::default()
        });
        let facade = Facade {
            iam: &s.iam,
            auditor: None,
            buckets: &backend,
        };
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/logs?location"),
            ("GET", "/logs/k"),
            ("PUT", "/logs"),
            ("PUT", "/logs/k"),
        ] {
            let (status, _, body) = call(&facade, method, path, &[], (AKID, SECRET)).await;
            assert_eq!(
                (status.as_u16(), code_of(&body)),
                (501, "NotImplemented"),
                "{method} {path}"
            );
            assert!(body.contains("http://127.0.0.1:9000"), "{body}");
        }
    }
}
