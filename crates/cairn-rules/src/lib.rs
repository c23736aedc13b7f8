//! Rules for Cairn: deciding which audit events deserve attention. Two kinds of rule are
//! parsed and validated once and then matched against events: EventBridge-compatible event
//! patterns ([`pattern`]) and Sigma detection rules for the `aws`/`cloudtrail` log source
//! ([`sigma`]). Alerting will join them here.

pub mod pattern;
pub mod sigma;

pub use pattern::{Pattern, PatternError};
pub use sigma::{SigmaError, SigmaRule, load_dir as load_sigma_dir};
