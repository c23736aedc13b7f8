//! Console sign-in: a user name and password form, session cookies (HttpOnly, SameSite
//! Strict, Secure over TLS), CSRF tokens, sign-out, and throttling after repeated failures.
//! Every attempt is a `ConsoleLogin` event from `signin.amazonaws.com` in the account signed
//! in to. A signed-in browser calls the JSON API with its session cookie and the session's
//! CSRF token in the `X-Cairn-CSRF` header; those calls are checked against the user's
//! policies and recorded like any other.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use cairn_iam::{Directory, Principal, SignIn};

use crate::AppState;
use crate::audit::{Record, TlsDetails, UserIdentity};
use crate::auth::{Caller, ConsoleFacts, Origin};
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "cairn_session";
const CSRF_COOKIE: &str = "cairn_signin_csrf";
pub const CSRF_HEADER: &str = "x-cairn-csrf";
/// A session ends after this long without use.
const IDLE_MS: i64 = 60 * 60 * 1000;
/// ... and after this long in any case (the AWS console's 12 hours).
const MAX_MS: i64 = 12 * 60 * 60 * 1000;
/// Failures (per user, and per source address) allowed before sign-in slows down.
const FREE_FAILURES: usize = 5;
/// Failures older than this are forgotten.
const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;

struct Session {
    account: String,
    user: String,
    /// The user's unique id: a new user of the same name is someone else.
    user_id: String,
    created_ms: i64,
    last_ms: i64,
    csrf: String,
    key_id: String,
}

pub struct Console {
    iam: Arc<Directory>,
    /// Sessions by the SHA-256 of their token (the token itself is only in the cookie).
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    /// Times of recent failed sign-ins, by `user:<account>/<name>` and `ip:<address>`.
    failures: Mutex<HashMap<String, Vec<i64>>>,
    /// Cookies get `Secure` (the server speaks TLS).
    secure: bool,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &[u8]| {
        let plus: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&plus)
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

impl Console {
    pub fn new(iam: Arc<Directory>, secure: bool) -> Console {
        Console {
            iam,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            secure,
        }
    }

    fn cookie_attributes(&self, path: &str, max_age_s: i64) -> String {
        format!(
            "Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The session a request's cookie names, if it is live; refreshes its idle timer.
    fn session(
        &self,
        headers: &HeaderMap,
    ) -> Option<(Arc<Principal>, ConsoleFacts, String, String)> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let now = cairn_event::now_ms();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| now - s.last_ms < IDLE_MS && now - s.created_ms < MAX_MS);
        let s = sessions.get_mut(&token_hash(&token))?;
        // A deleted user's session ends with the user, even if the name is reused.
        let principal = self
            .iam
            .principal(&s.account, &s.user)
            .filter(|p| p.user_id == s.user_id)?;
        s.last_ms = now;
        Some((
            principal,
            ConsoleFacts {
                creation_date: cairn_event::format_event_time(s.created_ms),
            },
            s.csrf.clone(),
            s.key_id.clone(),
        ))
    }

    /// The caller behind a session cookie, for JSON API calls: None without a cookie; an
    /// error for an ended session or a missing or wrong CSRF token.
    pub fn caller(
        &self,
        headers: &HeaderMap,
        origin: &Origin,
        region: &str,
    ) -> Result<Option<Caller>, ApiError> {
        if cookie(headers, SESSION_COOKIE).is_none() {
            return Ok(None);
        }
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        self.caller_with_token(headers, given, origin, region)
            .map(Some)
    }

    /// The caller behind a session cookie whose CSRF token is given another way (the query
    /// string of a download link or an event stream): an error without a live session or
    /// with a wrong token.
    pub fn caller_with_token(
        &self,
        headers: &HeaderMap,
        token: &str,
        origin: &Origin,
        region: &str,
    ) -> Result<Caller, ApiError> {
        let Some((principal, facts, csrf, key_id)) = self.session(headers) else {
            return Err(ApiError::new(
                "UnrecognizedClientException",
                403,
                "The console session has ended or is not valid: sign in again.",
            ));
        };
        if !same(token, &csrf) {
            return Err(ApiError::new(
                "AccessDeniedException",
                403,
                "Calls from a console session need the session's CSRF token in the X-Cairn-CSRF header (GET /v1/session gives it).",
            ));
        }
        Ok(session_caller(principal, facts, key_id, origin, region))
    }

    /// The signed-in caller of a console page (a GET that changes nothing, so no CSRF
    /// token), with the session's CSRF token for the page to use.
    pub fn page_caller(
        &self,
        headers: &HeaderMap,
        origin: &Origin,
        region: &str,
    ) -> Option<(Caller, String)> {
        let (principal, facts, csrf, key_id) = self.session(headers)?;
        Some((
            session_caller(principal, facts, key_id, origin, region),
            csrf,
        ))
    }

    /// Whether the session a request's cookie names is still live, without counting the
    /// check as use (an open event stream does not keep an idle session alive).
    pub fn session_alive(&self, headers: &HeaderMap) -> bool {
        let Some(token) = cookie(headers, SESSION_COOKIE) else {
            return false;
        };
        let now = cairn_event::now_ms();
        let sessions = self.sessions.lock();
        sessions.get(&token_hash(&token)).is_some_and(|s| {
            now - s.last_ms < IDLE_MS
                && now - s.created_ms < MAX_MS
                && self
                    .iam
                    .principal(&s.account, &s.user)
                    .is_some_and(|p| p.user_id == s.user_id)
        })
    }

    fn failures_of(&self, keys: &[String], now: i64) -> usize {
        let mut failures = self.failures.lock();
        keys.iter()
            .map(|k| {
                let list = failures.entry(k.clone()).or_default();
                list.retain(|t| now - t < FAILURE_WINDOW_MS);
                list.len()
            })
            .max()
            .unwrap_or(0)
    }

    /// How long sign-in stays shut for these keys, in ms (0: open). After
    /// [`FREE_FAILURES`] failures, each further one doubles the wait from 30 s (at most 15
    /// minutes) counted from the last failure.
    fn locked_for(&self, keys: &[String], now: i64) -> i64 {
        let count = self.failures_of(keys, now);
        if count < FREE_FAILURES {
            return 0;
        }
        let failures = self.failures.lock();
        let last = keys
            .iter()
            .filter_map(|k| failures.get(k).and_then(|l| l.last().copied()))
            .max()
            .unwrap_or(now);
        let shift = (count - FREE_FAILURES).min(5) as u32;
        let wait = (30_000i64 << shift).min(FAILURE_WINDOW_MS);
        (last + wait - now).max(0)
    }

    fn fail(&self, keys: &[String], now: i64) {
        let mut failures = self.failures.lock();
        for k in keys {
            failures.entry(k.clone()).or_default().push(now);
        }
        // Bound the map: forget stale entries.
        if failures.len() > 100_000 {
            failures.retain(|_, l| l.last().is_some_and(|t| now - t < FAILURE_WINDOW_MS));
        }
    }

    fn start_session(&self, principal: &Principal) -> (String, String) {
        let token = random_token();
        let csrf = random_token();
        let now = cairn_event::now_ms();
        self.sessions.lock().insert(
            token_hash(&token),
            Session {
                account: principal.account_id.clone(),
                user: principal.user_name.clone(),
                user_id: principal.user_id.clone(),
                created_ms: now,
                last_ms: now,
                csrf: csrf.clone(),
                key_id: cairn_iam::new_session_key_id(),
            },
        );
        (token, csrf)
    }

    fn end_session(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().remove(&token_hash(&token));
        }
    }
}

fn session_caller(
    principal: Arc<Principal>,
    facts: ConsoleFacts,
    key_id: String,
    origin: &Origin,
    region: &str,
) -> Caller {
    Caller {
        account_id: principal.account_id.clone(),
        access_key_id: key_id,
        region: region.to_owned(),
        service: "cloudtrail".into(),
        principal,
        origin: origin.clone(),
        console: Some(facts),
    }
}

/// Where sign-in may send the browser afterwards: a path of this site (`/...`, not `//...`,
/// no backslash or control character), else `/`.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && !next.chars().any(|c| c == '\\' || c.is_control());
    if ok { next } else { "/" }
}

/// The headers of every HTML page: its type, a content security policy, no framing, no
/// sniffing, no referrer, no caching.
pub fn html_headers(h: &mut HeaderMap, csp: &'static str) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert("content-security-policy", HeaderValue::from_static(csp));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    html_headers(
        resp.headers_mut(),
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    resp
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}main{max-width:22rem;margin:10vh auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;background:#1d4ed8;color:#fff;border:0;border-radius:4px;cursor:pointer}button:focus,input:focus{outline:3px solid #f59e0b;outline-offset:1px}.error{background:#fee2e2;color:#991b1b;padding:.6rem;border-radius:4px}";

fn signin_page(
    console: &Console,
    (account, user, next): (&str, &str, &str),
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = random_token();
    let error_html = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Sign in - Cairn</title><style>{STYLE}</style></head><body><main><h1>Sign in to Cairn</h1>{error_html}<form method=\"post\" action=\"/signin\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"next\" value=\"{}\"><label for=\"account\">Account ID</label><input id=\"account\" name=\"account\" inputmode=\"numeric\" autocomplete=\"organization\" value=\"{}\" placeholder=\"the first account if empty\"><label for=\"username\">User name</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{}\" autofocus><label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required><button type=\"submit\">Sign in</button></form></main></body></html>",
        escape(safe_next(next)),
        escape(account),
        escape(user),
    );
    let mut resp = html(status, body);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={csrf}; {}",
        console.cookie_attributes("/signin", 3600)
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /signin` (`?next=/path` names where to go once signed in).
pub async fn signin_form(State(state): State<Arc<AppState>>, uri: axum::http::Uri) -> Response {
    let next = uri
        .query()
        .map(|q| parse_form(q.as_bytes()))
        .and_then(|mut f| f.remove("next"))
        .unwrap_or_default();
    signin_page(
        &state.console,
        ("", "", safe_next(&next)),
        None,
        StatusCode::OK,
    )
}

/// The record of a sign-in attempt.
fn console_login_record(
    account: &str,
    region: &str,
    origin: &Origin,
    principal: Option<&Principal>,
    user_name: &str,
    error: Option<&str>,
    login_to: &str,
) -> Vec<u8> {
    let identity = match principal {
        Some(p) => UserIdentity {
            kind: "IAMUser",
            principal_id: Some(&p.user_id),
            arn: Some(&p.arn),
            account_id: &p.account_id,
            access_key_id: "",
            user_name: &p.user_name,
            session_context: None,
        },
        // A mistyped user name is not recorded (it may be a password typed in the wrong box).
        None => UserIdentity {
            kind: "IAMUser",
            principal_id: None,
            arn: None,
            account_id: account,
            access_key_id: "",
            user_name: if user_name.is_empty() {
                ""
            } else {
                "HIDDEN_DUE_TO_SECURITY_REASONS"
            },
            session_context: None,
        },
    };
    let response = json!({"ConsoleLogin": if error.is_some() { "Failure" } else { "Success" }});
    let additional = json!({"LoginTo": login_to, "MobileVersion": "No", "MFAUsed": "No"});
    Record {
        event_version: "1.11",
        user_identity: identity,
        event_time: cairn_event::format_event_time(cairn_event::now_ms()),
        event_source: "signin.amazonaws.com",
        event_name: "ConsoleLogin",
        aws_region: region,
        source_ip_address: &origin.source_ip,
        user_agent: &origin.user_agent,
        error_code: None,
        error_message: error.map(str::to_owned),
        request_parameters: &Value::Null,
        response_elements: &response,
        additional_event_data: Some(&additional),
        request_id: None,
        event_id: uuid::Uuid::new_v4().to_string(),
        read_only: false,
        event_type: "AwsConsoleSignIn",
        management_event: true,
        recipient_account_id: account,
        event_category: "Management",
        session_credential_from_console: None,
        tls_details: TlsDetails::of(origin),
    }
    .to_bytes()
}

async fn record_login(state: &AppState, account: &str, record: Vec<u8>) {
    let done = state.auditor.record(account, record).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), done).await;
}

/// `POST /signin`.
pub async fn signin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let console = &state.console;
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024).await else {
        return signin_page(
            console,
            ("", "", "/"),
            Some("The form is too large."),
            StatusCode::PAYLOAD_TOO_LARGE,
        );
    };
    let form = parse_form(&body);
    let field = |k: &str| form.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let (account_field, user) = (field("account"), field("username"));
    let next = safe_next(&field("next")).to_owned();
    let password = form.get("password").cloned().unwrap_or_default();
    // Double-submit CSRF check: the form's token must match the cookie set with the form.
    let csrf_ok = cookie(&headers, CSRF_COOKIE).is_some_and(|c| same(&c, &field("csrf")));
    if !csrf_ok {
        return signin_page(
            console,
            (&account_field, &user, &next),
            Some("The sign-in form expired or did not come from this site; try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let account = if account_field.is_empty() {
        state.iam.management_account().unwrap_or_default()
    } else {
        account_field.clone()
    };
    let origin = Origin::of(&headers, &extensions);
    let login_to = format!(
        "{}://{}/",
        if origin.tls.is_some() {
            "https"
        } else {
            "http"
        },
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
    );
    let now = cairn_event::now_ms();
    let keys = vec![
        format!("user:{account}/{user}"),
        format!("ip:{}", origin.source_ip),
    ];
    let wait_ms = console.locked_for(&keys, now);
    if wait_ms > 0 {
        if state.iam.account_exists(&account) {
            let principal = state.iam.principal(&account, &user);
            let record = console_login_record(
                &account,
                &state.region,
                &origin,
                principal.as_deref(),
                &user,
                Some("Too many failed sign-in attempts"),
                &login_to,
            );
            record_login(&state, &account, record).await;
        }
        let mut resp = signin_page(
            console,
            (&account_field, &user, &next),
            Some(&format!(
                "Too many failed sign-in attempts. Try again in {} seconds.",
                (wait_ms + 999) / 1000
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let Ok(v) = HeaderValue::from_str(&((wait_ms + 999) / 1000).to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let iam = state.iam.clone();
    let (a, u, p) = (account.clone(), user.clone(), password);
    let outcome = tokio::task::spawn_blocking(move || iam.sign_in(&a, &u, &p)).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "sign-in check failed");
            return signin_page(
                console,
                (&account_field, &user, &next),
                Some("Sign-in failed on the server; try again."),
                StatusCode::INTERNAL_SERVER_ERROR,
            );
        }
    };
    let failed = || {
        signin_page(
            console,
            (&account_field, &user, &next),
            Some("Your account ID, user name or password is wrong."),
            StatusCode::UNAUTHORIZED,
        )
    };
    match outcome {
        SignIn::Ok(principal) => {
            console.failures.lock().remove(&keys[0]);
            let record = console_login_record(
                &account,
                &state.region,
                &origin,
                Some(&principal),
                &user,
                None,
                &login_to,
            );
            record_login(&state, &account, record).await;
            let (token, _csrf) = console.start_session(&principal);
            let mut resp = Redirect::to(&next).into_response();
            *resp.status_mut() = StatusCode::SEE_OTHER;
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={token}; {}",
                console.cookie_attributes("/", MAX_MS / 1000)
            )) {
                h.append(header::SET_COOKIE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}=; {}",
                console.cookie_attributes("/signin", 0)
            )) {
                h.append(header::SET_COOKIE, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        SignIn::NoAccount => {
            console.fail(&keys, now);
            failed()
        }
        SignIn::Failed { known_user } => {
            console.fail(&keys, now);
            let record = console_login_record(
                &account,
                &state.region,
                &origin,
                known_user.as_deref(),
                &user,
                Some("Failed authentication"),
                &login_to,
            );
            record_login(&state, &account, record).await;
            failed()
        }
    }
}

/// `POST /signout`: needs the session's CSRF token (form field `csrf` or the header).
pub async fn signout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let console = &state.console;
    let body = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let form = parse_form(&body);
    let given = form
        .get("csrf")
        .cloned()
        .or_else(|| {
            headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match console.session(&headers) {
        Some((_, _, csrf, _)) if same(&given, &csrf) => {}
        Some(_) => {
            return html(
                StatusCode::FORBIDDEN,
                "<!doctype html><title>Cairn</title><p>Sign-out needs the session's CSRF token.</p>".into(),
            );
        }
        None => {}
    }
    console.end_session(&headers);
    let mut resp = Redirect::to("/signin").into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; {}",
        console.cookie_attributes("/", 0)
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /v1/session`: who is signed in, and the CSRF token for API calls.
pub async fn session_info(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match state.console.session(&headers) {
        Some((p, facts, csrf, key_id)) => {
            let body: Value = json!({
                "AccountId": p.account_id,
                "UserName": p.user_name,
                "Arn": p.arn,
                "AccessKeyId": key_id,
                "SignedInAt": facts.creation_date,
                "CsrfToken": csrf,
            });
            let mut resp = body.to_string().into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        None => ApiError::new(
            "UnrecognizedClientException",
            401,
            "Not signed in: POST /signin first.",
        )
        .into_response(),
    }
}

/// `GET /` in a browser: the console when signed in, else the sign-in form.
pub async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let to = if state.console.session(&headers).is_some() {
        "/console/events"
    } else {
        "/signin"
    };
    let mut resp = Redirect::to(to).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_cookies_decode() {
        let f = parse_form(b"username=al+ice&password=p%26ss%3D&csrf=");
        assert_eq!(f["username"], "al ice");
        assert_eq!(f["password"], "p&ss=");
        assert_eq!(f["csrf"], "");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cairn_session=tok; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn sign_in_only_goes_on_to_this_site() {
        assert_eq!(
            safe_next("/console/events?f=Username:alana&start=now-7d"),
            "/console/events?f=Username:alana&start=now-7d"
        );
        assert_eq!(safe_next("/"), "/");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/x\r\nSet-Cookie: a=b",
            "console/events",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn comparison_and_escaping() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
