//! Admin routes: `GET /admin/config` (the serving version, the last reload error, and what
//! is configured, without secrets).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub(crate) async fn config(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let status = state.config.status();
    let providers: Vec<_> = snapshot
        .config
        .providers()
        .values()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "kind": p.kind,
                "model": p.model,
                "endpoints": p.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
                // The variable's name only; never its value.
                "api_key_env": p.api_key_env,
            })
        })
        .collect();
    Json(serde_json::json!({
        "version": status.version,
        "path": state.config.path().map(|p| p.display().to_string()),
        "loaded_at": status.loaded_at,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
        "reloads_ok": status.reloads_ok,
        "reloads_rejected": status.reloads_rejected,
        "providers": providers,
        "tasks": snapshot.config.tasks().keys().collect::<Vec<_>>(),
        "aliases": snapshot.config.aliases().keys().collect::<Vec<_>>(),
    }))
    .into_response()
}
