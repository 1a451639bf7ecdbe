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
    let permit =
        match crate::api::http::listener_slot(&state, group, state.in_flight.grpc.as_ref(), "grpc")
        {
            Ok(permit) => permit,
            Err(e) => return super::status(e).into_http::<Body>().into_response(),
        };
    let resp = match crate::api::http::auth::check(&state, group, req).await {
        Ok(req) => next.run(req).await,
        Err((_, e)) => super::status(e).into_http::<Body>().into_response(),
    };
    match permit {
        Some(permit) => crate::listen::holding(resp, permit),
        None => resp,
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
