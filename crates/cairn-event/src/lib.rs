//! The CloudTrail record: parsing records out of request bodies and log files, validating them,
//! normalising them (filling `eventID`, `eventTime`, `recipientAccountId`, `eventCategory`,
//! `managementEvent` and `readOnly` where absent, and nothing else), and deriving what
//! LookupEvents needs from a record (the 8 lookup attributes, with the Username and resource
//! name rules of CloudTrail's event history). No I/O lives here.

mod body;
mod json;
mod record;
mod timefmt;

pub use body::{BodyError, split_records};
pub use json::minify;
pub use record::{
    Category, EventMeta, LookupView, MAX_RECORD_BYTES, Normalised, RecordError, ResourceRef,
    arn_aliases, arn_display_name, lookup_view, normalise,
};
pub use timefmt::{format_event_time, now_ms, parse_event_time};
