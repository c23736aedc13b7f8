//! Trails: their configuration and event selectors, delivery of CloudTrail log files and
//! signed hourly digests to a bucket (driven by a durable cursor into the journal), the RSA
//! signing keys, the validator of a trail's files, and the reader of CloudTrail log files
//! laid out as an AWS bucket (for import).

pub mod config;
pub mod delivery;
pub mod digest;
pub mod keys;
pub mod layout;
pub mod registry;
pub mod selectors;
pub mod status;
pub mod validate;
