//! Deciding a request against a set of policies.

use std::net::IpAddr;

use crate::Policy;
use crate::policy::Effect;

/// What is known about the caller and the call, for conditions and policy variables. An empty
/// string means the request has no such value: a condition on that key is then evaluated as
/// for a missing key, and a pattern using it as a policy variable matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// `aws:username` and `${aws:username}`: the IAM user's name.
    pub username: String,
    /// `aws:userid` and `${aws:userid}`: the principal's unique ID.
    pub userid: String,
    /// `aws:PrincipalArn`.
    pub principal_arn: String,
    /// `aws:PrincipalAccount` and `${aws:PrincipalAccount}`.
    pub principal_account: String,
    /// `aws:PrincipalType`: `User`, `AssumedRole`, `Account` (root), ...
    pub principal_type: String,
    /// `aws:SourceIp`; `None` when unknown.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`: the call came over TLS.
    pub secure_transport: bool,
    /// `aws:CurrentTime` and `aws:EpochTime`.
    pub now_epoch_seconds: i64,
    /// `aws:RequestedRegion`.
    pub requested_region: String,
    /// `aws:UserAgent`.
    pub user_agent: String,
    /// `aws:ViaConsole` (Cairn's own key): the call comes from a Cairn console session, as
    /// opposed to an SDK, the CLI or an ingest client signing its own requests.
    pub via_console: bool,
}

/// One authorisation question: may the caller described by `context` do `action`
/// (`service:Name`, matched ignoring case) on `resource` (an ARN or `*`, matched
/// case-sensitively)?
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a Context,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some statement allows the request and none denies it.
    Allow,
    /// No statement applies: denied by default.
    ImplicitDeny,
    /// A `Deny` statement applies; nothing can override it.
    ExplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// The statement that decided, as (policy index, policy, statement index).
type Decider<'p> = (usize, &'p Policy, usize);

fn decide<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    req: &Request,
) -> (Decision, Option<Decider<'p>>, usize) {
    let mut allowed_by = None;
    let mut count = 0;
    for (pi, policy) in policies.into_iter().enumerate() {
        count += 1;
        for (si, s) in policy.statements.iter().enumerate() {
            if s.effect == Effect::Allow && allowed_by.is_some() {
                continue;
            }
            if !s.applies(req.action, req.resource, req.context) {
                continue;
            }
            match s.effect {
                Effect::Deny => return (Decision::ExplicitDeny, Some((pi, policy, si)), count),
                Effect::Allow => allowed_by = Some((pi, policy, si)),
            }
        }
    }
    match allowed_by {
        Some(by) => (Decision::Allow, Some(by), count),
        None => (Decision::ImplicitDeny, None, count),
    }
}

/// Decides `req` against all `policies` as AWS does: any applicable `Deny` statement is an
/// explicit deny; otherwise any applicable `Allow` statement allows; otherwise the request is
/// implicitly denied. A statement applies when the action matches its `Action` (or none of its
/// `NotAction`), the resource matches its `Resource` (or none of its `NotResource`), and every
/// condition holds. Does not allocate.
pub fn evaluate<'p>(policies: impl IntoIterator<Item = &'p Policy>, req: &Request) -> Decision {
    decide(policies, req).0
}

/// Why `req` is denied, for logs: the statement (index and Sid) and policy (index in
/// `policies` and Id) of an explicit deny, or that nothing allows it. `None` when allowed.
pub fn explain<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    req: &Request,
) -> Option<String> {
    let (decision, by, count) = decide(policies, req);
    let what = format!("{} on {}", req.action, req.resource);
    match (decision, by) {
        (Decision::Allow, _) => None,
        (Decision::ExplicitDeny, Some((pi, policy, si))) => {
            let sid = policy.statements[si]
                .sid
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| format!(" (Sid {s:?})"))
                .unwrap_or_default();
            let id = policy
                .id()
                .map(|s| format!(" (Id {s:?})"))
                .unwrap_or_default();
            Some(format!(
                "{what}: explicitly denied by Statement[{si}]{sid} of policy {pi}{id}"
            ))
        }
        _ => Some(match count {
            0 => format!("{what}: implicitly denied: no policy applies to the caller"),
            1 => format!("{what}: implicitly denied: no statement of the policy allows it"),
            n => format!("{what}: implicitly denied: no statement of the {n} policies allows it"),
        }),
    }
}
