//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorKind, PoolError};

pub(crate) struct OpenAiError(pub(crate) PoolError);

impl From<PoolError> for OpenAiError {
    fn from(e: PoolError) -> Self {
        Self(e)
    }
}

pub(super) fn body(e: &PoolError) -> serde_json::Value {
    let kind = e.kind();
    let error_type = match kind {
        ErrorKind::InvalidArgument
        | ErrorKind::NotFound
        | ErrorKind::PayloadTooLarge
        | ErrorKind::RequestTimeout => "invalid_request_error",
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::RateLimited | ErrorKind::Overloaded => "rate_limit_error",
        ErrorKind::NoConsensus => "no_consensus",
        ErrorKind::LowConfidence => "low_confidence",
        ErrorKind::InvalidAnswer => "invalid_answer",
        ErrorKind::DeadlineExceeded => "timeout",
        ErrorKind::Unavailable | ErrorKind::Internal => "server_error",
    };
    let code = match e {
        PoolError::UnknownModel(_) | PoolError::UnknownTask(_) => "model_not_found",
        _ => kind.as_str(),
    };
    serde_json::json!({
        "error": {
            "message": e.to_string(),
            "type": error_type,
            "param": e.field(),
            "code": code,
        }
    })
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.0.kind().http_status(), Json(body(&self.0))).into_response();
        self.0.http_headers(response.headers_mut());
        response
    }
}
