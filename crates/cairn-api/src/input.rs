//! Reading AWS JSON 1.1 request members with the errors a client can act on.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::error::ApiError;

pub struct Input(pub Map<String, Value>);

fn type_error(name: &str, expected: &str) -> ApiError {
    ApiError::bad(
        "SerializationException",
        format!("{name} must be {expected}"),
    )
}

impl Input {
    /// Parses a request body; an empty body is an empty object.
    pub fn parse(body: &[u8]) -> Result<Input, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Input(m)),
            Ok(_) => Err(ApiError::bad(
                "SerializationException",
                "the request body must be a JSON object",
            )),
            Err(e) => Err(ApiError::bad(
                "SerializationException",
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(name, "a string")),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(type_error(name, "true or false")),
        }
    }

    pub fn req_str(&self, name: &str) -> Result<&str, ApiError> {
        self.opt_str(name)?.ok_or_else(|| {
            ApiError::bad("InvalidParameterException", format!("{name} is required"))
        })
    }

    pub fn list(&self, name: &str) -> Result<Option<Vec<Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.clone())),
            Some(_) => Err(type_error(name, "a list")),
        }
    }

    /// An optional integer that must lie in `min..=max`, else `code`.
    pub fn int_in(
        &self,
        name: &str,
        min: i64,
        max: i64,
        code: &'static str,
    ) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n = v.as_i64().ok_or_else(|| type_error(name, "an integer"))?;
        if n < min || n > max {
            return Err(ApiError::bad(
                code,
                format!("{name} must be between {min} and {max}; got {n}"),
            ));
        }
        Ok(Some(n))
    }

    /// A timestamp member: epoch seconds (what SDKs send) or an ISO-8601 string.
    pub fn timestamp_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e14)
                .map(|f| Some((f * 1000.0).round() as i64))
                .ok_or_else(|| type_error(name, "a timestamp")),
            Some(Value::String(s)) => {
                if let Ok(f) = s.parse::<f64>()
                    && f.is_finite()
                    && f.abs() < 1e14
                {
                    return Ok(Some((f * 1000.0).round() as i64));
                }
                cairn_event::parse_event_time(s)
                    .or_else(|| {
                        // ISO dates without a zone are UTC; date-only means midnight.
                        let with_zone = if s.len() == 10 {
                            format!("{s}T00:00:00Z")
                        } else {
                            format!("{s}Z")
                        };
                        cairn_event::parse_event_time(&with_zone)
                    })
                    .map(Some)
                    .ok_or_else(|| type_error(name, "a timestamp (epoch seconds or ISO 8601)"))
            }
            Some(_) => Err(type_error(name, "a timestamp")),
        }
    }
}

/// An opaque token for offset paging of small lists.
pub fn paging_token(offset: usize, kind: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{offset}"))
}

pub fn parse_paging_token(token: &str, kind: &str) -> Result<usize, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.strip_prefix(kind)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|n| n.parse().ok())
        })
        .ok_or_else(|| {
            ApiError::bad(
                "InvalidNextTokenException",
                "NextToken is not valid: pass the token from the previous response unchanged",
            )
        })
}
