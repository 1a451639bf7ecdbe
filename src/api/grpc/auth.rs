//! The auth middleware of the gRPC listener: the HTTP listener's check
//! (`api::http::auth`), with the method's group and errors as gRPC statuses.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::security::RouteGroup;
use crate::state::AppState;

/// gRPC: health and reflection are operations; everything else is inference.
pub(crate) async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let group = group(req.uri().path());
    match crate::api::http::auth::check(&state, group, req).await {
        Ok(req) => next.run(req).await,
        Err((_, e)) => super::status(e).into_http::<Body>().into_response(),
    }
}

/// The group of a gRPC method path (`/package.Service/Method`).
pub(crate) fn group(path: &str) -> RouteGroup {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        RouteGroup::Operations
    } else {
        RouteGroup::Inference
    }
}
