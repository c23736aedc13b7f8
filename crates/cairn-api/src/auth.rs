//! Who is calling, and may they: SigV4 signatures checked against the identity directory,
//! console sessions (cookie plus CSRF token), and the policy decision for each action.
//!
//! A failed signature says nothing about the key: an unknown key, an inactive one, a deleted
//! user's and a wrong secret all get the same answer after the same work, so that nobody can
//! learn which key ids exist (in their account or another).

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, Method, Uri};
use cairn_iam::{Directory, KeyEntry, KeyStatus, Principal};
use cairn_policy::Decision;

use crate::error::ApiError;
use crate::sigv4::{self, AuthError, Claim, SignedRequest, VerifyOptions};
use crate::tls::TlsInfo;

/// Where a request came from: the peer address, its user agent and TLS facts.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub source_ip: String,
    pub user_agent: String,
    pub tls: Option<TlsInfo>,
}

impl Origin {
    pub fn of(headers: &HeaderMap, extensions: &Extensions) -> Origin {
        let source_ip = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        let user_agent = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(1024).collect())
            .unwrap_or_default();
        let tls = extensions.get::<TlsInfo>().map(|t| t.with_host(headers));
        Origin {
            source_ip,
            user_agent,
            tls,
        }
    }
}

/// A console session's facts, for the events its calls make.
#[derive(Debug, Clone)]
pub struct ConsoleFacts {
    /// When the session began (`YYYY-MM-DDTHH:MM:SSZ`).
    pub creation_date: String,
}

/// Who made a request, as established by its signature or console session.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    /// The key that signed (for a console session, the session's own `ASIA...` id).
    pub access_key_id: String,
    /// The region of the credential scope (the console's: the server's region).
    pub region: String,
    pub service: String,
    pub principal: Arc<Principal>,
    pub origin: Origin,
    pub console: Option<ConsoleFacts>,
}

impl Caller {
    /// The caller behind a verified signature.
    pub fn signed(key: &KeyEntry, claim: Claim, origin: &Origin) -> Caller {
        Caller {
            account_id: key.principal.account_id.clone(),
            access_key_id: key.access_key_id.clone(),
            region: claim.region,
            service: claim.service,
            principal: key.principal.clone(),
            origin: origin.clone(),
            console: None,
        }
    }
}

/// A secret no key has, to check unknown keys against (so they take the same time).
static DUMMY_SECRET: LazyLock<String> = LazyLock::new(cairn_iam::new_secret);

/// Checks a SigV4 signature with `opts`; returns the active key that made it.
pub fn check_signature(
    iam: &Directory,
    req: &SignedRequest<'_>,
    claim: &Claim,
    opts: &VerifyOptions,
) -> Result<Arc<KeyEntry>, AuthError> {
    let key = iam
        .key(&claim.access_key_id)
        .filter(|k| k.status == KeyStatus::Active);
    let secret = key
        .as_ref()
        .map(|k| k.secret.as_str())
        .unwrap_or(DUMMY_SECRET.as_str());
    sigv4::verify_with(req, claim, secret, time::OffsetDateTime::now_utc(), opts)?;
    key.ok_or(AuthError::SignatureMismatch {
        canonical_request: String::new(),
        string_to_sign: String::new(),
    })
}

/// A region name such as `us-east-1` or `eu-central-2`.
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 5
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn auth_api_error(e: AuthError) -> ApiError {
    if let AuthError::SignatureMismatch {
        canonical_request, ..
    } = &e
        && !canonical_request.is_empty()
    {
        tracing::debug!(%canonical_request, "signature mismatch");
    }
    ApiError::new(e.code(), e.status(), e.to_string())
}

/// Authenticates a JSON-API request signed for `service`: by SigV4, else by a console
/// session cookie with its CSRF header (when `sessions` is given).
pub fn authenticate(
    state: &crate::AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    services: &[&str],
    origin: &Origin,
) -> Result<Caller, ApiError> {
    let req = SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query(),
        headers,
        body,
    };
    let claim = match sigv4::parse_claim(&req) {
        Ok(claim) => claim,
        Err(AuthError::MissingAuthenticationToken) => {
            if let Some(caller) = state.console.caller(headers, origin, &state.region)? {
                return Ok(caller);
            }
            return Err(auth_api_error(AuthError::MissingAuthenticationToken));
        }
        Err(e) => return Err(auth_api_error(e)),
    };
    if !services.contains(&claim.service.as_str()) {
        return Err(auth_api_error(AuthError::WrongScope(format!(
            "Credential should be scoped to correct service: '{}', not '{}'.",
            services.first().copied().unwrap_or_default(),
            claim.service
        ))));
    }
    if !valid_region(&claim.region) {
        return Err(auth_api_error(AuthError::WrongScope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            claim.region
        ))));
    }
    let key = check_signature(&state.iam, &req, &claim, &VerifyOptions::default())
        .map_err(auth_api_error)?;
    Ok(Caller::signed(&key, claim, origin))
}

/// The policy decision for `action` on `resource`; a refusal is `AccessDeniedException`
/// naming the user, the action and the resource.
pub fn authorize(caller: &Caller, action: &str, resource: &str) -> Result<(), ApiError> {
    match decide(caller, action, resource) {
        Decision::Allow => Ok(()),
        decision => Err(ApiError::new(
            "AccessDeniedException",
            403,
            denial(caller, action, resource, decision),
        )),
    }
}

pub fn decide(caller: &Caller, action: &str, resource: &str) -> Decision {
    let mut ctx = caller.principal.context();
    ctx.source_ip = caller.origin.source_ip.parse().ok();
    ctx.secure_transport = caller.origin.tls.is_some();
    ctx.now_epoch_seconds = cairn_event::now_ms() / 1000;
    ctx.requested_region = caller.region.clone();
    ctx.user_agent = caller.origin.user_agent.clone();
    ctx.via_console = caller.console.is_some();
    caller.principal.decide(&cairn_policy::Request {
        action,
        resource,
        context: &ctx,
    })
}

/// IAM's wording for a refusal.
pub fn denial(caller: &Caller, action: &str, resource: &str, decision: Decision) -> String {
    let why = match decision {
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_owned(),
        _ => format!("because no identity-based policy allows the {action} action"),
    };
    format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
        caller.principal.arn
    )
}
