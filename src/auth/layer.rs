//! The auth middleware of both listeners. It runs after routing (so the route's group is
//! known), reads the body only for HMAC-signed requests, and sets [`Caller`] on the request
//! or answers 401/403 in the caller's protocol.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Caller, Presented};
use crate::config::security::RouteGroup;
use crate::error::PoolError;
use crate::state::AppState;

/// HTTP: each route is layered with its group (`api::http::routes`).
pub(crate) async fn http(
    State((state, group)): State<(AppState, RouteGroup)>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, group, req).await {
        Ok(req) => next.run(req).await,
        Err((path, e)) => crate::api::http::error_for_path(&path, e),
    }
}

/// gRPC: health and reflection are operations; everything else is inference.
pub(crate) async fn grpc(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let group = grpc_group(req.uri().path());
    match check(&state, group, req).await {
        Ok(req) => next.run(req).await,
        Err((_, e)) => crate::api::grpc::status(e)
            .into_http::<Body>()
            .into_response(),
    }
}

/// The group of a gRPC method path (`/package.Service/Method`).
pub(crate) fn grpc_group(path: &str) -> RouteGroup {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        RouteGroup::Operations
    } else {
        RouteGroup::Inference
    }
}

async fn check(
    state: &AppState,
    group: RouteGroup,
    req: Request,
) -> Result<Request, (String, PoolError)> {
    let snapshot = state.config.load();
    let config = &snapshot.config;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let fail = |e| (parts.uri.path().to_owned(), e);
    let (bytes, body) = if Presented::is_signed(&parts.headers) {
        let limit = config.server().max_body_bytes;
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
        .map_or(path.as_str(), http::uri::PathAndQuery::as_str);
    let tenant = state
        .auth
        .authenticate(
            config,
            group,
            &path,
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
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(Caller(tenant));
    Ok(req)
}
