//! Operations: `/health` (liveness plus per-provider state; always 200 while the process
//! serves), `/readyz` (503 once shutdown began), `/info`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::state::AppState;

pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let status = state.config.status();
    let providers = crate::api::convert::provider_health(&state);
    let redis = state.cache.redis_status();
    let redis_down = redis.as_ref().is_some_and(|r| !r.connected && r.errors > 0);
    let overall = if status.last_error.is_some() || redis_down {
        "degraded"
    } else {
        "ok"
    };
    Json(serde_json::json!({
        "status": overall,
        "version": env!("CARGO_PKG_VERSION"),
        "config": status,
        "cache": { "enabled": state.cache.enabled(), "redis": redis },
        "providers": providers,
        "accuracy": state.config.load().accuracy.all(),
    }))
    .into_response()
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if !state.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false })),
        )
            .into_response();
    }
    // Queues over `qos.overload.unready_queue_depth`: new connections should go to other
    // replicas until they drain (the process keeps serving what it has).
    let depth = state
        .config
        .load()
        .config
        .qos()
        .overload
        .unready_queue_depth;
    let saturated = crate::api::convert::saturated(&state, depth);
    if saturated.is_empty() {
        Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        let queued: serde_json::Map<String, serde_json::Value> = saturated
            .into_iter()
            .map(|(name, n)| (name, n.into()))
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": "overloaded", "queued": queued })),
        )
            .into_response()
    }
}

pub(crate) async fn info(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let server = snapshot.config.server();
    Json(serde_json::json!({
        "name": "llm-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "grpc_addr": server.grpc_addr().to_string(),
        "http_addr": server.http_addr().to_string(),
        "config_path": state.config.path().map(|p| p.display().to_string()),
        "config_version": state.config.status().version,
        "providers": snapshot.config.providers().keys().collect::<Vec<_>>(),
        "tasks": snapshot.config.tasks().keys().collect::<Vec<_>>(),
        "strategies": ["fastest", "voting", "weighted", "consensus", "judge", "cascade"],
    }))
    .into_response()
}
