//! The HTTP surface: native, OpenAI-compatible and Ollama-compatible routes, and operations.
//!
//! Layers, outer to inner: request id (taken from `x-request-id` or generated, and returned),
//! trace span, body limit, handler. Auth and rate limits will sit between the body limit and
//! the handler.

mod admin;
mod body;
mod metrics;
pub(crate) mod native;
mod ollama;
mod openai;
mod ops;

pub(crate) use ops::providers as provider_health;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderName};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub(crate) use body::parse_json;

/// The request id header, set on every request and response.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Deadline header (milliseconds, or with a unit: `250ms`, `30s`).
pub static REQUEST_TIMEOUT: HeaderName = HeaderName::from_static("x-request-timeout");
/// The provider that answered.
pub static PROVIDER: HeaderName = HeaderName::from_static("x-llm-pool-provider");
/// A summary of the Decision (strategy, winner, agreement, fallbacks, each candidate's
/// provider, status, latency and group) as compact JSON. The whole Decision is in the body.
pub static DECISION: HeaderName = HeaderName::from_static("x-llm-pool-decision");

/// Builds the HTTP app. Having a function that produces it lets tests call it in-process.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.load().config.server().max_body_bytes;
    Router::new()
        // Native
        .route("/v1/query", post(native::query))
        .route("/v1/tasks", get(native::tasks))
        // OpenAI-compatible
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        // Ollama-compatible
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/version", get(ollama::version))
        // Operations
        .route("/health", get(ops::health))
        .route("/readyz", get(ops::readyz))
        .route("/info", get(ops::info))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/config", get(admin::config))
        .route("/admin/cache", get(admin::cache_stats))
        .route("/admin/cache/clear", post(admin::cache_clear))
        .fallback(native::not_found)
        // Counts requests by route template; inside the router so the template is known.
        .route_layer(axum::middleware::from_fn(metrics::track))
        .layer(
            ServiceBuilder::new()
                // <- outer: every response, errors included, carries the request id.
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(TraceLayer::new_for_http())
                // <- inner: bodies over the limit are refused while being read (413).
                .layer(DefaultBodyLimit::max(max_body)),
        )
        .with_state(state)
}

/// Sets `x-llm-pool-provider` and `x-llm-pool-decision` on a response.
pub(crate) fn answer_headers(
    headers: &mut HeaderMap,
    provider: &str,
    decision: &crate::orchestrator::Decision,
) {
    if let Ok(v) = http::HeaderValue::from_str(provider) {
        headers.insert(PROVIDER.clone(), v);
    }
    let candidates: Vec<_> = decision
        .candidates
        .iter()
        .map(|c| {
            serde_json::json!({
                "provider": c.provider, "status": c.status, "latency_ms": c.latency_ms,
                "group": c.group,
            })
        })
        .collect();
    let summary = serde_json::json!({
        "strategy": decision.strategy,
        "winner": decision.winner,
        "agreement": decision.agreement,
        "fallbacks": decision.fallbacks,
        "candidates": candidates,
    });
    // Header values must be visible ASCII; provider names from config are.
    if let Ok(v) = http::HeaderValue::from_str(&summary.to_string()) {
        headers.insert(DECISION.clone(), v);
    }
}

/// The request id set by the outer layer.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Reads `x-request-timeout`: `1500` (milliseconds), `1500ms`, `2s`.
pub(crate) fn header_timeout(
    headers: &HeaderMap,
) -> Result<Option<Duration>, crate::error::PoolError> {
    let Some(v) = headers.get(&REQUEST_TIMEOUT) else {
        return Ok(None);
    };
    let bad = || {
        crate::error::PoolError::invalid(
            "x-request-timeout",
            "must be milliseconds (`1500`) or have a unit (`1500ms`, `2s`)",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1)
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    Ok(Some(Duration::from_millis(n.saturating_mul(scale))))
}

/// Cache mode header for the OpenAI and Ollama routes (and `/v1/query` without `cache`).
pub static CACHE_MODE: HeaderName = HeaderName::from_static("x-llm-pool-cache");

/// Reads `x-llm-pool-cache`: `default`, `bypass`, `refresh` or `only`.
pub(crate) fn header_cache_mode(
    headers: &HeaderMap,
) -> Result<crate::orchestrator::CacheMode, crate::error::PoolError> {
    let Some(v) = headers.get(&CACHE_MODE) else {
        return Ok(crate::orchestrator::CacheMode::Default);
    };
    v.to_str()
        .ok()
        .and_then(crate::orchestrator::CacheMode::parse)
        .ok_or_else(|| {
            crate::error::PoolError::invalid(
                "x-llm-pool-cache",
                "must be one of default, bypass, refresh, only",
            )
        })
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
