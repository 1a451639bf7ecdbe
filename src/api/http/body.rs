//! Reading JSON bodies so that every failure (too large, not JSON, wrong type, missing field,
//! invalid UTF-8) becomes a [`PoolError`] naming the field, which each dialect then renders
//! in its own error shape. Content-Type is not required: clients that forget it still work.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

use crate::error::PoolError;

pub(crate) fn parse_json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, PoolError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            PoolError::BodyTooLarge { limit }
        } else {
            PoolError::invalid("body", rejection.body_text())
        }
    })?;
    if body.is_empty() {
        return Err(PoolError::invalid(
            "body",
            "expected a JSON object, got an empty body",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        PoolError::invalid(field, e.into_inner().to_string())
    })
}
