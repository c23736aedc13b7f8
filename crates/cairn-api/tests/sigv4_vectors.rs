//! Interoperability tests for `cairn_api::sigv4`.
//!
//! * `aws_signing_test_suite`: every SigV4 case of the AWS signing test suite (taken from
//!   the CRT suite) that ships inside the `aws-sigv4` crate in the cargo registry,
//!   `~/.cargo/registry/src/*/aws-sigv4-*/aws-signing-test-suite/v4/<case>/`. Both the
//!   header-signed and the query-signed (presigned) request of each case must verify, and
//!   must stop verifying once the signature, the secret, the query or the body changes.
//! * `botocore_interop`: requests signed by botocore's `SigV4Auth` / `SigV4QueryAuth`
//!   (the signer behind the AWS CLI and boto3), when `python3 -c "import botocore"` works.
//!
//! Case handling: `normalize: false` cases run with `VerifyOptions::normalize_uri_path =
//! false`, `omit_session_token: true` with `allow_unsigned_session_token = true`.
//! Two legacy cases have no `context.json`: `double-encode-path` uses the aws-sigv4 test
//! credentials (`ANOTREAL`, as the crate's own test does), and `double-url-encode` has no
//! published secret, so only its canonical request is compared (it is reported, and not
//! counted as a verified case).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_api::sigv4::{
    AuthError, Claim, SignedRequest, VerifyOptions, canonical_request, parse_claim, verify_with,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An HTTP request read from a `*-signed-request.txt` file (or produced by botocore).
#[derive(Debug, Clone)]
struct RawRequest {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl RawRequest {
    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Parses a raw HTTP/1.1 request as written in the test suite: request line (the target may
/// contain raw spaces and UTF-8, the `HTTP/1.1` suffix may be missing), `Name:value` header
/// lines (duplicates kept in order, obsolete line folding joined with a space), an empty
/// line and the body.
fn parse_raw_request(text: &str) -> Result<RawRequest, String> {
    let text = text.replace("\r\n", "\n");
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text.trim_end_matches('\n'), ""),
    };
    let mut lines = head.split('\n');
    let request_line = lines.next().ok_or("empty request")?;
    let (method, target) = request_line
        .split_once(' ')
        .ok_or_else(|| format!("bad request line {request_line:?}"))?;
    let target = target
        .strip_suffix(" HTTP/1.1")
        .or_else(|| target.strip_suffix(" HTTP/1.0"))
        .unwrap_or(target);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    };

    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let (_, value) = fields
                .last_mut()
                .ok_or_else(|| format!("continuation line without a header: {line:?}"))?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        fields.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name:?}: {e}"))?,
            HeaderValue::from_str(&value).map_err(|e| format!("{value:?}: {e}"))?,
        );
    }
    Ok(RawRequest {
        method: method.to_owned(),
        path,
        query,
        headers,
        body: body.as_bytes().to_vec(),
    })
}

#[derive(Debug, Deserialize)]
struct ContextFile {
    credentials: Credentials,
    expiration_in_seconds: u64,
    normalize: bool,
    region: String,
    service: String,
    timestamp: String,
    #[serde(default)]
    omit_session_token: bool,
}

#[derive(Debug, Deserialize)]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

#[derive(Debug)]
struct Context {
    access_key_id: String,
    secret: String,
    token: Option<String>,
    region: String,
    service: String,
    now: OffsetDateTime,
    expires: Option<u64>,
    normalize: bool,
    omit_session_token: bool,
}

enum CaseKind {
    /// Full verification with this context.
    Verify(Context),
    /// Only the canonical request can be checked (no secret is published).
    CanonicalOnly,
}

fn case_kind(dir: &Path, name: &str) -> Result<CaseKind, String> {
    let context_path = dir.join("context.json");
    if context_path.is_file() {
        let text = fs::read_to_string(&context_path).map_err(|e| e.to_string())?;
        let ctx: ContextFile = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        return Ok(CaseKind::Verify(Context {
            access_key_id: ctx.credentials.access_key_id,
            secret: ctx.credentials.secret_access_key,
            token: ctx.credentials.token,
            region: ctx.region,
            service: ctx.service,
            now: OffsetDateTime::parse(&ctx.timestamp, &Rfc3339).map_err(|e| e.to_string())?,
            expires: Some(ctx.expiration_in_seconds),
            normalize: ctx.normalize,
            omit_session_token: ctx.omit_session_token,
        }));
    }
    // Legacy cases the aws-sigv4 crate migrated from its old suite without a context.json.
    match name {
        // aws-sigv4 signs it with `Credentials::for_tests()` at 20150830T123600Z.
        "double-encode-path" => Ok(CaseKind::Verify(Context {
            access_key_id: "ANOTREAL".into(),
            secret: "notrealrnrELgWzOk3IfjzDKtFBhDby".into(),
            token: None,
            region: "us-east-1".into(),
            service: "service".into(),
            now: time::macros::datetime!(2015-08-30 12:36:00 UTC),
            expires: None,
            normalize: true,
            omit_session_token: false,
        })),
        "double-url-encode" => Ok(CaseKind::CanonicalOnly),
        _ => Err(format!(
            "{name}: no context.json and no known legacy context"
        )),
    }
}

/// Locates `aws-signing-test-suite/v4` inside an `aws-sigv4-*` crate in the cargo registry.
fn suite_dir() -> PathBuf {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set; cannot locate the cargo registry");
    let registry_src = cargo_home.join("registry").join("src");
    let mut found = Vec::new();
    for index in fs::read_dir(&registry_src).into_iter().flatten().flatten() {
        for krate in fs::read_dir(index.path()).into_iter().flatten().flatten() {
            let name = krate.file_name();
            let suite = krate.path().join("aws-signing-test-suite").join("v4");
            if name.to_string_lossy().starts_with("aws-sigv4-") && suite.is_dir() {
                found.push(suite);
            }
        }
    }
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "the AWS SigV4 test suite was not found: no {}/*/aws-sigv4-*/aws-signing-test-suite/v4 \
             directory. Run `cargo fetch` in the workspace (aws-sigv4 is a dependency of cairn-api) \
             or set CARGO_HOME to the cargo home that holds the registry.",
            registry_src.display()
        )
    })
}

fn expect_invalid_signature(result: Result<(), AuthError>, what: &str) -> Result<(), String> {
    match result {
        Err(err) if err.code() == "InvalidSignatureException" => Ok(()),
        Err(err) => Err(format!(
            "{what}: expected InvalidSignatureException, got {}: {err}",
            err.code()
        )),
        Ok(()) => Err(format!(
            "{what}: expected InvalidSignatureException, request was accepted"
        )),
    }
}

/// Parse + verify, returning the claim.
fn parse_and_verify(
    raw: &RawRequest,
    secret: &str,
    now: OffsetDateTime,
    opts: &VerifyOptions,
) -> Result<Claim, AuthError> {
    let claim = parse_claim(&raw.signed())?;
    verify_with(&raw.signed(), &claim, secret, now, opts)?;
    Ok(claim)
}

fn flip_hex(c: char) -> char {
    if c == '0' { '1' } else { '0' }
}

/// Runs every check for one signed request file. `presigned` tells which form it is.
fn run_form(text: &str, ctx: &Context, presigned: bool) -> Result<(), String> {
    let raw = parse_raw_request(text)?;
    let opts = VerifyOptions {
        normalize_uri_path: ctx.normalize,
        allow_unsigned_session_token: ctx.omit_session_token,
        ..VerifyOptions::default()
    };

    // 1. The request as signed verifies.
    let claim = parse_and_verify(&raw, &ctx.secret, ctx.now, &opts).map_err(|err| {
        let canonical = parse_claim(&raw.signed())
            .and_then(|claim| canonical_request(&raw.signed(), &claim, &opts))
            .unwrap_or_else(|e| format!("<{e}>"));
        format!(
            "valid request rejected: {}: {err}\n--- our canonical request ---\n{canonical}\n---",
            err.code()
        )
    })?;
    if claim.presigned != presigned
        || claim.access_key_id != ctx.access_key_id
        || claim.region != ctx.region
        || claim.service != ctx.service
        || claim.amz_date != ctx.now
    {
        return Err(format!("claim does not match the context: {claim:?}"));
    }
    if presigned && claim.expires_secs != ctx.expires {
        return Err(format!("X-Amz-Expires not read: {claim:?}"));
    }
    if let Some(token) = &ctx.token
        && (presigned || text.to_ascii_lowercase().contains("x-amz-security-token"))
        && claim.session_token.as_deref() != Some(token.as_str())
    {
        return Err(format!("session token not read: {:?}", claim.session_token));
    }

    // 2. One character of the signature changed.
    let position = text
        .find(&claim.signature)
        .ok_or("signature text not found in the request")?;
    let mut tampered = text.to_owned();
    let original = tampered[position..].chars().next().unwrap_or('0');
    tampered.replace_range(position..position + 1, &flip_hex(original).to_string());
    let tampered = parse_raw_request(&tampered)?;
    let tampered_claim = parse_claim(&tampered.signed()).map_err(|e| e.to_string())?;
    expect_invalid_signature(
        verify_with(
            &tampered.signed(),
            &tampered_claim,
            &ctx.secret,
            ctx.now,
            &opts,
        ),
        "signature with one character changed",
    )?;

    // 3. Wrong secret.
    expect_invalid_signature(
        verify_with(
            &raw.signed(),
            &claim,
            &format!("{}x", ctx.secret),
            ctx.now,
            &opts,
        ),
        "wrong secret",
    )?;

    // 4. Query: an extra parameter is rejected; reordering the parameters is harmless.
    if let Some(query) = raw.query.as_deref().filter(|q| !q.is_empty()) {
        let mut extra = raw.clone();
        extra.query = Some(format!("{query}&cairn-tamper=1"));
        expect_invalid_signature(
            parse_claim(&extra.signed())
                .and_then(|c| verify_with(&extra.signed(), &c, &ctx.secret, ctx.now, &opts)),
            "query with an added parameter",
        )?;
        let mut reordered = raw.clone();
        let mut pairs: Vec<&str> = query.split('&').collect();
        pairs.reverse();
        reordered.query = Some(pairs.join("&"));
        parse_and_verify(&reordered, &ctx.secret, ctx.now, &opts)
            .map_err(|e| format!("reordered query rejected: {e}"))?;
    }

    // 5. Body: for header-signed requests the body is always covered; presigned requests
    //    here cover it only when they were signed over a non-empty body.
    if !presigned || !raw.body.is_empty() {
        let mut altered = raw.clone();
        match altered.body.first_mut() {
            Some(first) => *first ^= 0x01,
            None => altered.body = b"x".to_vec(),
        }
        expect_invalid_signature(
            verify_with(&altered.signed(), &claim, &ctx.secret, ctx.now, &opts),
            "altered body",
        )?;
    }

    // 6. Too late: two hours after a header signature, one second after a presigned expiry.
    let late = match (presigned, claim.expires_secs) {
        (true, Some(expires)) => ctx.now + time::Duration::seconds(expires as i64 + 1),
        _ => ctx.now + time::Duration::hours(2),
    };
    expect_invalid_signature(
        verify_with(&raw.signed(), &claim, &ctx.secret, late, &opts),
        "expired request",
    )?;

    // 7. A token the signature does not cover needs the opt-in.
    if ctx.omit_session_token && claim.session_token.is_some() {
        let strict = VerifyOptions {
            allow_unsigned_session_token: false,
            ..opts
        };
        if verify_with(&raw.signed(), &claim, &ctx.secret, ctx.now, &strict).is_ok() {
            return Err("unsigned session token accepted without the opt-in".into());
        }
    }
    Ok(())
}

#[test]
fn aws_signing_test_suite() {
    let suite = suite_dir();
    println!("AWS SigV4 test suite: {}", suite.display());
    let mut cases: Vec<PathBuf> = fs::read_dir(&suite)
        .expect("read suite directory")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();

    let mut verified_cases = 0usize;
    let mut verified_forms = 0usize;
    let mut canonical_only = Vec::new();
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = match case_kind(dir, &name) {
            Ok(kind) => kind,
            Err(err) => {
                failures.push(err);
                continue;
            }
        };
        match kind {
            CaseKind::Verify(ctx) => {
                let mut forms = 0;
                for (file, presigned) in [
                    ("header-signed-request.txt", false),
                    ("query-signed-request.txt", true),
                ] {
                    let Ok(text) = fs::read_to_string(dir.join(file)) else {
                        continue;
                    };
                    match run_form(&text, &ctx, presigned) {
                        Ok(()) => forms += 1,
                        Err(err) => failures.push(format!("{name}/{file}: {err}")),
                    }
                }
                if forms == 0 {
                    failures.push(format!("{name}: no signed request could be verified"));
                } else {
                    verified_cases += 1;
                    verified_forms += forms;
                }
            }
            CaseKind::CanonicalOnly => {
                let check = || -> Result<(), String> {
                    let text = fs::read_to_string(dir.join("header-signed-request.txt"))
                        .map_err(|e| e.to_string())?;
                    let expected = fs::read_to_string(dir.join("header-canonical-request.txt"))
                        .map_err(|e| e.to_string())?;
                    let raw = parse_raw_request(&text)?;
                    let claim = parse_claim(&raw.signed()).map_err(|e| e.to_string())?;
                    let ours = canonical_request(&raw.signed(), &claim, &VerifyOptions::default())
                        .map_err(|e| e.to_string())?;
                    if ours.trim_end() != expected.trim_end() {
                        return Err(format!(
                            "canonical request differs\n--- expected ---\n{expected}\n--- ours ---\n{ours}"
                        ));
                    }
                    Ok(())
                };
                match check() {
                    Ok(()) => canonical_only.push(name),
                    Err(err) => failures.push(format!("{name}: {err}")),
                }
            }
        }
    }

    println!(
        "verified {verified_cases} cases ({verified_forms} signed requests); canonical request only: {canonical_only:?}"
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        verified_cases > 20,
        "only {verified_cases} test-suite cases ran (expected more than 20) in {}",
        suite.display()
    );
}

#[test]
fn raw_request_parser_handles_suite_quirks() {
    let raw = parse_raw_request(
        "GET /example space/?a=b HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\n  value2\n     value3\nMy-Header1:again\n\nbody",
    )
    .unwrap();
    assert_eq!(raw.method, "GET");
    assert_eq!(raw.path, "/example space/");
    assert_eq!(raw.query.as_deref(), Some("a=b"));
    let values: Vec<_> = raw.headers.get_all("my-header1").iter().collect();
    assert_eq!(values, ["value1 value2 value3", "again"]);
    assert_eq!(raw.body, b"body");
    let raw = parse_raw_request("POST /p\nHost:h").unwrap();
    assert_eq!(raw.path, "/p");
    assert!(raw.body.is_empty());
}

const BOTOCORE_SCRIPT: &str = r#"
import json
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

plain = Credentials("AKIDCAIRNTEST", "cairn/secret+key=1")
temp = Credentials("ASIACAIRNTEST", "temp/secret", "FQoGZXIvYXdzE//token+with/odd=chars")
base = "http://127.0.0.1:8080"
out = []

def emit(name, request, creds, service, presign=None, s3=False):
    if presign is None:
        signer = S3SigV4Auth if s3 else SigV4Auth
        signer(creds, service, "us-east-1").add_auth(request)
    else:
        signer = S3SigV4QueryAuth if s3 else SigV4QueryAuth
        signer(creds, service, "us-east-1", expires=presign).add_auth(request)
    prepared = request.prepare()
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    out.append({
        "name": name,
        "service": service,
        "s3": s3,
        "access_key": creds.access_key,
        "secret": creds.secret_key,
        "method": prepared.method,
        "url": prepared.url,
        "headers": [[k, v] for k, v in prepared.headers.items()],
        "body": body.hex(),
    })

emit("json-lookup-events", AWSRequest(method="POST", url=base + "/",
     data=b'{"MaxResults": 5, "LookupAttributes": []}',
     headers={"Content-Type": "application/x-amz-json-1.1",
              "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"}),
     plain, "cloudtrail")
emit("rest-json-put-audit-events", AWSRequest(method="POST",
     url=base + "/PutAuditEvents?channelArn=arn%3Aaws%3Acloudtrail%3Aus-east-1%3A123456789012%3Achannel%2Fabc",
     data=b'{"auditEvents":[{"id":"1","eventData":"{}"}]}',
     headers={"Content-Type": "application/json"}), plain, "cloudtrail-data")
emit("params-put-audit-events", AWSRequest(method="POST", url=base + "/PutAuditEvents",
     params={"channelArn": "arn:aws:cloudtrail:us-east-1:123456789012:channel/abc",
             "externalId": "ext id+plus/slash~tilde \u1234"},
     data=b'{"auditEvents":[]}', headers={"Content-Type": "application/json"}),
     plain, "cloudtrail-data")
emit("double-encoded-path", AWSRequest(method="POST",
     url=base + "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123%3Afunction%3Afoo/invocations",
     data=b"{}"), plain, "lambda")
emit("encoded-path-chars", AWSRequest(method="GET", url=base + "/a%20b/~c/%E1%88%B4"),
     plain, "cloudtrail")
emit("session-token", AWSRequest(method="POST", url=base + "/", data=b"{}",
     headers={"Content-Type": "application/x-amz-json-1.1",
              "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListTrails"}),
     temp, "cloudtrail")
emit("presigned", AWSRequest(method="GET", url=base + "/",
     params={"Action": "LookupEvents", "name": "\u1234 value+plus/slash", "empty": ""}),
     plain, "cloudtrail", presign=300)
emit("presigned-session-token", AWSRequest(method="GET", url=base + "/x"),
     temp, "cloudtrail", presign=900)
# S3 rules (no normalisation, single encoding, x-amz-content-sha256 / UNSIGNED-PAYLOAD).
emit("s3-put-object", AWSRequest(method="PUT", url=base + "/bucket/some%20key/a%2Bb//x",
     data=b"hello"), plain, "s3", s3=True)
emit("s3-presigned-get", AWSRequest(method="GET", url=base + "/bucket/some%20key/./x"),
     plain, "s3", presign=60, s3=True)
print(json.dumps(out))
"#;

#[derive(Debug, Deserialize)]
struct BotocoreRequest {
    name: String,
    service: String,
    s3: bool,
    access_key: String,
    secret: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A Python interpreter that can import botocore: `$CAIRN_PYTHON`, the workspace's
/// `.venv` (the one the acceptance tests use), then `python3` from `PATH`.
fn python_with_botocore() -> Option<PathBuf> {
    let workspace_venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    env::var_os("CAIRN_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_venv, PathBuf::from("python3")])
        .find(|python| {
            Command::new(python)
                .args(["-c", "import botocore"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
}

#[test]
fn botocore_interop() {
    let Some(python) = python_with_botocore() else {
        println!(
            "NOTICE: no python3 that can `import botocore` was found; skipping the botocore interop test"
        );
        return;
    };
    let version = Command::new(&python)
        .args(["-c", "import botocore; print(botocore.__version__)"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("botocore {version} via {}", python.display());
    let output = Command::new(&python)
        .args(["-c", BOTOCORE_SCRIPT])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "botocore signing script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let now = OffsetDateTime::now_utc();
    let requests: Vec<BotocoreRequest> =
        serde_json::from_slice(&output.stdout).expect("botocore script output is JSON");
    assert_eq!(requests.len(), 10);

    for signed in &requests {
        let rest = signed
            .url
            .strip_prefix("http://")
            .expect("botocore URL uses http");
        let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (target.to_owned(), None),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &signed.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        // botocore signs the host of the URL; the HTTP client (urllib3) sends it.
        if !headers.contains_key("host") {
            headers.insert("host", HeaderValue::from_str(authority).unwrap());
        }
        let raw = RawRequest {
            method: signed.method.clone(),
            path,
            query,
            headers,
            body: hex::decode(&signed.body).unwrap(),
        };
        let claim = parse_claim(&raw.signed())
            .unwrap_or_else(|e| panic!("{}: claim rejected: {e}", signed.name));
        assert_eq!(claim.access_key_id, signed.access_key, "{}", signed.name);
        assert_eq!(claim.service, signed.service, "{}", signed.name);
        let opts = if signed.s3 {
            VerifyOptions::s3()
        } else {
            VerifyOptions::default()
        };
        if let Err(err) = verify_with(&raw.signed(), &claim, &signed.secret, now, &opts) {
            let canonical = canonical_request(&raw.signed(), &claim, &opts).unwrap_or_default();
            panic!(
                "{}: botocore-signed request rejected: {err}\n{signed:?}\n--- our canonical request ---\n{canonical}",
                signed.name
            );
        }
        expect_invalid_signature(
            verify_with(&raw.signed(), &claim, "wrong-secret", now, &opts),
            &signed.name,
        )
        .unwrap();
        if !claim.presigned {
            let mut altered = raw.clone();
            altered.body.push(b' ');
            expect_invalid_signature(
                verify_with(&altered.signed(), &claim, &signed.secret, now, &opts),
                &signed.name,
            )
            .unwrap();
        }
    }
    println!("verified {} botocore-signed requests", requests.len());
}
