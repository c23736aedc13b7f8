//! Rules for Cairn: deciding which audit events deserve attention. For now this is
//! EventBridge-compatible event patterns ([`pattern`]), parsed and validated once and then
//! matched against events; Sigma rules and alerting will join them here.

pub mod pattern;

pub use pattern::{Pattern, PatternError};
