//! AWS-style errors: `{"__type": "<Code>", "message": "..."}` with the modelled HTTP status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub status: StatusCode,
}

impl ApiError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    /// A 400 client error with the given code.
    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(code, 400, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new("InternalFailure", 500, message)
    }

    pub fn throttled() -> ApiError {
        ApiError::new(
            "ThrottlingException",
            429,
            "Rate exceeded: Cairn is over capacity right now; retry with backoff",
        )
    }
}

impl From<cairn_store::StoreError> for ApiError {
    fn from(e: cairn_store::StoreError) -> ApiError {
        match e {
            cairn_store::StoreError::Throttled => ApiError::throttled(),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal(format!("storage error: {other}"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "message": self.message, "Message": self.message });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        if let Ok(v) = HeaderValue::from_str(self.code) {
            headers.insert("x-amzn-errortype", v);
        }
        resp
    }
}
