//! The auth check of the HTTP listener, run by the route layer (`metrics::edge`). It runs after routing (so the route's group is
//! known), reads the body only for HMAC-signed requests, and sets [`Caller`] on the request
//! or answers 401/403 in the route's protocol. The gRPC listener uses the same check
//! (`api::grpc::auth`). The credentials logic itself, which knows nothing of the wire, is
//! `crate::auth`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;

use crate::auth::{Caller, Presented};
use crate::config::security::RouteGroup;
use crate::error::PoolError;
use crate::state::AppState;

/// Read from every request: parsed once (a lookup by `&str` parses the name first).
static PRIORITY: http::HeaderName = http::HeaderName::from_static(crate::auth::PRIORITY);

/// Authenticates the request for `group`: the request with its [`Caller`], or the path and
/// the error to answer with.
pub(crate) async fn check(
    state: &AppState,
    group: RouteGroup,
    req: Request,
) -> Result<Request, (String, PoolError)> {
    let snapshot = state.config.load();
    let config = &snapshot.config;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let fail = |e| (parts.uri.path().to_owned(), e);
    let (bytes, body) = if Presented::is_signed(&parts.headers) {
        let limit = config.server().max_body_bytes();
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| fail(PoolError::BodyTooLarge { limit }))?;
        (Some(bytes.clone()), Body::from(bytes))
    } else {
        (None, body)
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path, http::uri::PathAndQuery::as_str);
    let tenant = state
        .auth
        .authenticate(
            config,
            &snapshot.keys,
            group,
            path,
            Presented {
                method: parts.method.as_str(),
                path_and_query,
                headers: &parts.headers,
                body: bytes.as_deref(),
            },
        )
        .await
        .map_err(|e| {
            crate::telemetry::metrics::auth_failure(e.kind().as_str());
            fail(e)
        })?;
    // Not UTF-8: kept (lossily) so that it is refused by name, not ignored.
    let priority = parts
        .headers
        .get(&PRIORITY)
        .map(|v| Arc::from(String::from_utf8_lossy(v.as_bytes())));
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(Caller { tenant, priority });
    Ok(req)
}
