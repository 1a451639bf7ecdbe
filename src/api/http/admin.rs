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

/// The body of `POST /admin/cache/clear`; empty or `{}` clears everything.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearBody {
    /// Only answers of this task.
    #[serde(default)]
    task: Option<String>,
    /// Only keys (hex SHA-256) starting with this.
    #[serde(default)]
    prefix: Option<String>,
}

pub(crate) async fn cache_clear(
    State(state): State<AppState>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let limit = state.config.load().config.server().max_body_bytes;
    let clear = match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(ClearBody::default()),
        _ => super::parse_json::<ClearBody>(body, limit),
    };
    let clear = match clear {
        Ok(c) => c,
        Err(e) => return super::native::NativeError(e).into_response(),
    };
    if let Some(p) = &clear.prefix
        && !p.chars().all(|c| c.is_ascii_hexdigit())
    {
        let e = crate::error::PoolError::invalid("prefix", "must be hexadecimal");
        return super::native::NativeError(e).into_response();
    }
    match state
        .cache
        .clear(clear.task.as_deref(), clear.prefix.as_deref())
        .await
    {
        Ok(()) => Json(serde_json::json!({ "cleared": true })).into_response(),
        Err(e) => super::native::NativeError(crate::error::PoolError::Internal(e)).into_response(),
    }
}

pub(crate) async fn cache_stats(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({
        "enabled": state.cache.enabled(),
        "stats": state.cache.stats().await,
    }))
    .into_response()
}
