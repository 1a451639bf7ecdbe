//! The HTTP surface: native, OpenAI-compatible and Ollama-compatible routes, and operations.
//!
//! Layers, outer to inner: the front (`front.rs`: the request id, taken from `x-request-id` or
//! generated, and returned; a declared length over the body limit refused), the body limit,
//! the per-frame body timeout (slow bodies), then per route one layer (`metrics::edge`: the
//! route's metrics, its trace span, the auth check of its group) and the handler. Tenants'
//! rate limits apply in the orchestrator, once the request is planned and its token estimate
//! known.

mod admin;
pub(crate) mod auth;
mod body;
mod console;
mod front;
mod metrics;
pub(crate) mod native;
mod ollama;
mod openai;
mod ops;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use http::{HeaderMap, HeaderName, Method};

use crate::config::security::RouteGroup;
use tower::ServiceBuilder;

use crate::state::AppState;

pub(crate) use body::{BodyLimits, decode, parse_json};

/// The request decoders as pure functions (body bytes and headers in, [`PoolRequest`] out),
/// for the micro-benchmarks and fuzzing; the handlers use the same code.
///
/// [`PoolRequest`]: crate::orchestrator::PoolRequest
pub mod decode {
    use axum::body::Bytes;
    use http::HeaderMap;

    use crate::error::PoolError;
    use crate::orchestrator::PoolRequest;

    const LIMITS: super::BodyLimits = super::BodyLimits {
        bytes: usize::MAX,
        depth: 64,
    };

    /// `POST /v1/chat/completions`.
    pub fn openai_chat(body: Bytes, headers: &HeaderMap) -> Result<PoolRequest, PoolError> {
        super::openai::decode_chat(body, headers, LIMITS)
    }

    /// `POST /v1/query`.
    pub fn native_query(body: Bytes, headers: &HeaderMap) -> Result<PoolRequest, PoolError> {
        super::parse_json::<super::native::QueryBody>(Ok(body), LIMITS)
            .and_then(|b| b.into_request(headers))
            .map(|(req, _)| req)
    }
}

/// The request id header, set on every request and response.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Deadline header (milliseconds, or with a unit: `250ms`, `30s`).
pub static REQUEST_TIMEOUT: HeaderName = HeaderName::from_static("x-request-timeout");
/// The provider that answered.
pub static PROVIDER: HeaderName = HeaderName::from_static("x-llm-pool-provider");
/// A summary of the Decision (strategy, winner, agreement, confidence, fallbacks, degraded, each candidate's
/// provider, status, latency and group) as compact JSON. The whole Decision is in the body.
pub static DECISION: HeaderName = HeaderName::from_static("x-llm-pool-decision");

type Routes = Vec<(Method, &'static str, RouteGroup, MethodRouter<AppState>)>;

/// Every route: method, path, auth group and handler. The router is built from this list
/// alone, and each route gets the auth layer of its group, so no route can exist without
/// one; [`route_table`] lets tests enumerate it.
fn routes() -> Routes {
    use RouteGroup::{Admin, Inference, Operations};
    vec![
        // Native
        (Method::POST, "/v1/query", Inference, post(native::query)),
        (Method::GET, "/v1/tasks", Inference, get(native::tasks)),
        (
            Method::POST,
            "/v1/feedback",
            Inference,
            post(native::feedback),
        ),
        // OpenAI-compatible
        (
            Method::POST,
            "/v1/chat/completions",
            Inference,
            post(openai::chat_completions),
        ),
        (
            Method::POST,
            "/v1/completions",
            Inference,
            post(openai::completions),
        ),
        (Method::GET, "/v1/models", Inference, get(openai::models)),
        (
            Method::GET,
            "/v1/models/{id}",
            Inference,
            get(openai::model),
        ),
        (
            Method::POST,
            "/v1/embeddings",
            Inference,
            post(openai::embeddings),
        ),
        // Ollama-compatible
        (
            Method::POST,
            "/api/generate",
            Inference,
            post(ollama::generate),
        ),
        (Method::POST, "/api/chat", Inference, post(ollama::chat)),
        (Method::GET, "/api/tags", Inference, get(ollama::tags)),
        (Method::POST, "/api/show", Inference, post(ollama::show)),
        (Method::GET, "/api/version", Inference, get(ollama::version)),
        (Method::POST, "/api/embed", Inference, post(ollama::embed)),
        (Method::GET, "/api/ps", Inference, get(ollama::ps)),
        // Ollama clients probe the root (GET or HEAD) to see that a server is up.
        (Method::GET, "/", Operations, get(ollama::running)),
        (
            Method::POST,
            "/api/embeddings",
            Inference,
            post(ollama::embeddings),
        ),
        // Operations
        (Method::GET, "/health", Operations, get(ops::health)),
        (Method::GET, "/readyz", Operations, get(ops::readyz)),
        (Method::GET, "/info", Operations, get(ops::info)),
        (Method::GET, "/metrics", Operations, get(metrics::metrics)),
        // Admin
        (Method::GET, "/admin/config", Admin, get(admin::config)),
        (Method::GET, "/admin/cache", Admin, get(admin::cache_stats)),
        (Method::GET, "/admin/accuracy", Admin, get(admin::accuracy)),
        (
            Method::POST,
            "/admin/cache/clear",
            Admin,
            post(admin::cache_clear),
        ),
        (Method::GET, "/v1/usage", Admin, get(admin::usage)),
        // The operator console
        (Method::GET, "/ui", Admin, get(console::page)),
        (
            Method::GET,
            "/ui/assets/console.js",
            Admin,
            get(console::script),
        ),
        (
            Method::GET,
            "/ui/assets/console.css",
            Admin,
            get(console::style),
        ),
        (Method::GET, "/ui/events", Admin, get(console::events)),
        (Method::GET, "/ui/state", Admin, get(console::state)),
        (Method::GET, "/ui/requests/{id}", Admin, get(console::page)),
        (
            Method::GET,
            "/ui/requests/{id}/data",
            Admin,
            get(console::request),
        ),
    ]
}

/// Method, path and auth group of every HTTP route.
pub fn route_table() -> Vec<(Method, &'static str, RouteGroup)> {
    routes().into_iter().map(|(m, p, g, _)| (m, p, g)).collect()
}

/// Builds the HTTP app. Having a function that produces it lets tests call it in-process.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.load().config.server().max_body_bytes();
    let body_timeout = state.config.load().config.server().header_read_timeout();
    let mut router = Router::new();
    for (_, path, group, handler) in routes() {
        // Metrics, trace span and auth in one layer (`metrics::edge`).
        let edge = metrics::EdgeLayer {
            state: state.clone(),
            group,
        };
        router = router.route(path, handler.route_layer(edge));
    }
    router
        .fallback(native::not_found)
        .layer(
            ServiceBuilder::new()
                // <- outer: every response, errors included, carries the request id; a
                // declared length over the limit is refused before the body is read.
                .layer(front::FrontLayer { max_body })
                // Bodies over the limit are refused while being read (413).
                .layer(DefaultBodyLimit::max(max_body))
                // <- inner: a body that pauses longer than this is cut (slow-loris on bodies).
                .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                    body_timeout,
                )),
        )
        .with_state(state)
}

/// An error answered before any handler ran (auth), in the shape of the route's protocol.
pub(crate) fn error_for_path(path: &str, e: crate::error::PoolError) -> axum::response::Response {
    use axum::response::IntoResponse;
    if path.starts_with("/api/") {
        ollama::OllamaError(e).into_response()
    } else if path == "/ui" || path.starts_with("/ui/") {
        console::challenge(native::NativeError(e).into_response())
    } else if matches!(
        path,
        "/v1/chat/completions" | "/v1/completions" | "/v1/models" | "/v1/embeddings"
    ) || path.starts_with("/v1/models/")
    {
        openai::error::OpenAiError(e).into_response()
    } else {
        native::NativeError(e).into_response()
    }
}

/// A slot of the listener's cap on inference requests in flight (`server.max_in_flight`),
/// `None` when no cap applies; a full listener refuses at once: 503 (`UNAVAILABLE`) with
/// `Retry-After`.
pub(crate) fn listener_slot(
    state: &AppState,
    group: RouteGroup,
    cap: Option<&std::sync::Arc<tokio::sync::Semaphore>>,
    listener: &'static str,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, crate::error::PoolError> {
    let Some(cap) = cap.filter(|_| group == RouteGroup::Inference) else {
        return Ok(None);
    };
    match std::sync::Arc::clone(cap).try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => {
            ::metrics::counter!(
                crate::telemetry::metrics::LISTENER_REFUSED,
                "listener" => listener,
                "limit" => "in_flight"
            )
            .increment(1);
            Err(crate::error::PoolError::Overloaded {
                summary: format!(
                    "the listener has {} requests in flight (server.max_in_flight)",
                    state.in_flight.limit
                ),
                retry_after: std::time::Duration::from_secs(1),
                saturated: true,
                decision: None,
            })
        }
    }
}

/// Sets `x-llm-pool-provider` on a response.
pub(crate) fn provider_header(headers: &mut HeaderMap, provider: &str) {
    if let Ok(v) = http::HeaderValue::from_str(provider) {
        headers.insert(PROVIDER.clone(), v);
    }
}

/// Sets `x-llm-pool-provider` and `x-llm-pool-decision` on a response.
pub(crate) fn answer_headers(
    headers: &mut HeaderMap,
    provider: &str,
    decision: &crate::types::Decision,
) {
    provider_header(headers, provider);
    // Serialised straight from the Decision's fields, without an intermediate JSON tree.
    #[derive(serde::Serialize)]
    struct Candidate<'a> {
        provider: &'a str,
        status: crate::types::CandidateStatus,
        latency_ms: u64,
        group: Option<usize>,
    }
    #[derive(serde::Serialize)]
    struct Summary<'a> {
        strategy: &'a str,
        winner: &'a Option<String>,
        agreement: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
        fallbacks: &'a [String],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        degraded: &'a [std::borrow::Cow<'static, str>],
        candidates: Vec<Candidate<'a>>,
    }
    let summary = Summary {
        strategy: &decision.strategy,
        winner: &decision.winner,
        agreement: decision.agreement,
        confidence: decision.confidence,
        fallbacks: &decision.fallbacks,
        degraded: &decision.degraded,
        candidates: decision
            .candidates
            .iter()
            .map(|c| Candidate {
                provider: &c.provider,
                status: c.status,
                latency_ms: c.latency_ms,
                group: c.group,
            })
            .collect(),
    };
    // Header values must be visible ASCII; provider names from config are.
    if let Ok(v) = serde_json::to_vec(&summary).map(bytes::Bytes::from)
        && let Ok(v) = http::HeaderValue::from_maybe_shared(v)
    {
        headers.insert(DECISION.clone(), v);
    }
}

/// The request id set by the outer layer.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(crate::types::new_request_id, str::to_owned)
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
) -> Result<crate::types::CacheMode, crate::error::PoolError> {
    let Some(v) = headers.get(&CACHE_MODE) else {
        return Ok(crate::types::CacheMode::Default);
    };
    v.to_str()
        .ok()
        .and_then(crate::types::CacheMode::parse)
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
