//! Reading JSON bodies so that every failure (too large, not JSON, wrong type, missing field,
//! invalid UTF-8) becomes a [`PoolError`] naming the field, which each dialect then renders
//! in its own error shape. Content-Type is not required: clients that forget it still work.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use crate::error::PoolError;
use crate::live::Snapshot;
use crate::state::AppState;

/// What a JSON body may be: its size and nesting depth.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub(crate) bytes: usize,
    pub(crate) depth: usize,
}

impl BodyLimits {
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        Self {
            bytes: config.server().max_body_bytes(),
            depth: config.limits().max_json_depth(),
        }
    }
}

/// The prologue every handler with a JSON body shares: the snapshot the request keeps to its
/// end, the body parsed under that snapshot's limits, and `into` (the dialect's decoder)
/// applied to it; a failure anywhere is answered in the dialect's error shape `E`.
pub(crate) fn decode<T, R, E>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    into: impl FnOnce(T, &Snapshot) -> Result<R, PoolError>,
) -> Result<(Arc<Snapshot>, R), Box<Response>>
where
    T: DeserializeOwned,
    E: From<PoolError> + IntoResponse,
{
    let snapshot = state.config.load();
    let parsed =
        parse_json::<T>(body, BodyLimits::of(&snapshot.config)).and_then(|b| into(b, &snapshot));
    match parsed {
        Ok(r) => Ok((snapshot, r)),
        Err(e) => Err(Box::new(E::from(e).into_response())),
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: BodyLimits,
) -> Result<T, PoolError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
            PoolError::BodyTooLarge { limit: limit.bytes }
        } else if stalled(&rejection) {
            PoolError::BodyTimeout
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
    if let Some(at) = too_deep(&body, limit.depth) {
        return Err(PoolError::invalid(
            "body",
            format!(
                "JSON nested deeper than {} levels (at byte {at})",
                limit.depth
            ),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    // The plain decoder first; only a body it refuses is decoded again, tracking the path,
    // so that the error names the field (tracking costs every request a third more).
    let value = match T::deserialize(&mut *de) {
        Ok(value) => value,
        Err(_) => return Err(named_error::<T>(&body)),
    };
    // One JSON value and nothing after it but whitespace: `{...}garbage` is not accepted
    // as `{...}`.
    de.end().map_err(|e| {
        PoolError::invalid(
            "body",
            format!("trailing characters after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}

/// The error of a body `T` refuses, naming the field where decoding failed.
fn named_error<T: DeserializeOwned>(body: &[u8]) -> PoolError {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            PoolError::invalid(field, e.into_inner().to_string())
        }
        // Deterministic decoding fails the same way twice; should it not, say so plainly.
        Ok(_) => PoolError::invalid("body", "the JSON body could not be decoded"),
    }
}

/// Whether reading the body failed because it stalled (the body timeout layer cut it).
fn stalled(rejection: &BytesRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The offset where `json` first nests deeper than `max` arrays/objects, if it does. One
/// pass over the bytes, skipping strings; it runs before the parser so that deep input is
/// refused cheaply and with a clear message.
pub(crate) fn too_deep(json: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in json.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::too_deep;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(too_deep(br#"{"a":[1,{"b":2}]}"#, 3), None);
        assert_eq!(too_deep(br#"{"a":[1,{"b":2}]}"#, 2), Some(8));
        assert_eq!(too_deep(br#"{"a":"[[[[[[\"[[["}"#, 1), None);
        assert_eq!(too_deep(&[b'['; 100], 64), Some(64));
    }
}
