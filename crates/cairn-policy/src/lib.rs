//! Identity policies for Cairn: IAM-style JSON policy documents parsed and validated with
//! errors that say what is wrong and where, evaluated against requests with AWS semantics
//! (an applicable `Deny` wins, then any `Allow`, else an implicit deny), and Cairn's
//! ready-made managed policies.
//!
//! The grammar is IAM's for identity policies: `Version`, `Id`, `Statement` (one or a list),
//! each statement with `Sid`, `Effect`, `Action`/`NotAction`, `Resource`/`NotResource` and
//! `Condition`; `Principal` is refused. Action patterns (`service:Name`, `*` and `?`
//! wildcards) match ignoring case; resource patterns match case-sensitively and, under
//! version 2012-10-17, substitute `${aws:username}`, `${aws:userid}` and
//! `${aws:PrincipalAccount}` (also in string and ARN condition values).
//!
//! Condition keys: `aws:SourceIp`, `aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime`,
//! `aws:username`, `aws:userid`, `aws:PrincipalArn`, `aws:PrincipalAccount`,
//! `aws:PrincipalType`, `aws:RequestedRegion`, `aws:UserAgent`, and Cairn's own
//! `aws:ViaConsole`, true for calls made from a console session. Each takes the operators of
//! its type (string, ARN, IP address, boolean, date, numeric) plus `Null`; a mismatch is a
//! parse error. A key the request lacks makes a condition false, except for negated
//! operators (`StringNotEquals`, `NotIpAddress`, ...), which then hold as in AWS, `...IfExists`
//! (true) and `Null`.

mod condition;
mod error;
mod eval;
mod glob;
mod json;
mod managed;
mod policy;

pub use error::PolicyError;
pub use eval::{Context, Decision, Request, evaluate, explain};
pub use managed::{Managed, managed, managed_by_arn_or_name};
pub use policy::{MAX_POLICY_CHARS, Policy};
