//! ListPublicKeys: the keys that sign digest files, for every period they signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use cairn_trail::keys::Keyring;

use crate::error::ApiError;
use crate::input::Input;

pub fn list_public_keys(keys: &Keyring, input: &Input) -> Result<Value, ApiError> {
    let now = cairn_event::now_ms();
    let start = input.timestamp_ms("StartTime")?.unwrap_or(now);
    let end = input.timestamp_ms("EndTime")?.unwrap_or(now);
    if start > end {
        return Err(ApiError::bad(
            "InvalidTimeRangeException",
            "StartTime must not be after EndTime",
        ));
    }
    if input.opt_str("NextToken")?.is_some() {
        return Err(ApiError::bad(
            "InvalidTokenException",
            "ListPublicKeys returns every key in one page; NextToken is not used",
        ));
    }
    let list: Vec<Value> = keys
        .public_keys(start, end)
        .into_iter()
        .map(|k| {
            json!({
                "Value": STANDARD.encode(&k.der),
                "ValidityStartTime": k.valid_from_ms as f64 / 1000.0,
                "ValidityEndTime": k.valid_to_ms as f64 / 1000.0,
                "Fingerprint": k.fingerprint,
            })
        })
        .collect();
    Ok(json!({ "PublicKeyList": list }))
}
