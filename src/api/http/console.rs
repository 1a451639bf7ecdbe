//! The operator console, behind admin auth (a browser sends the admin key by HTTP Basic:
//! any user name, the key as the password):
//! - `GET /ui`: the overview, live from `GET /ui/events` (Server-Sent Events: one `state`
//!   event whenever the view changed, checked every `[console] push_interval_ms`, and at
//!   least every 5 s; the browser reconnects by itself);
//! - `GET /ui/requests/{id}`: one recent request's Decision (from `crate::recent`), its data
//!   at `GET /ui/requests/{id}/data`;
//! - `GET /ui/state`: the overview's data once, as JSON.
//!
//! The page, script and style are compiled into the binary (no CDN; works offline).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use http::{HeaderValue, StatusCode, header};

use crate::state::AppState;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");
/// Only the pool's own files; no inline script; connections back to the pool only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";
/// Recent requests in the overview.
const OVERVIEW_RECENT: usize = 50;
/// The view is sent at least this often, so relative times stay true.
const HEARTBEAT: Duration = Duration::from_secs(5);

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui` and `GET /ui/requests/{id}`: the page (the script reads the path).
pub(crate) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /ui/state`.
pub(crate) async fn state(State(state): State<AppState>) -> Response {
    let usage = usage(&state).await;
    Json(view(&state, &usage).await).into_response()
}

/// `GET /ui/requests/{id}/data`: the request as recorded, Decision included.
pub(crate) async fn request(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.recent.get(&id) {
        Some(r) => Json(&*r).into_response(),
        None => super::native::NativeError(crate::error::PoolError::UnknownRequest(format!(
            "request `{id}` is not among the {} most recent kept ([console] recent_requests)",
            state.config.load().config.console().recent_requests()
        )))
        .into_response(),
    }
}

/// `GET /ui/events`: the overview whenever it changed. Ends when the pool shuts down, so an
/// open console does not hold up a graceful shutdown.
pub(crate) async fn events(State(state): State<AppState>) -> Response {
    let stream = updates(state);
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // Proxies must not buffer the stream.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn updates(state: AppState) -> impl Stream<Item = Result<Event, Infallible>> {
    async_stream::stream! {
        let push = state.config.load().config.console().push_interval();
        let mut tick = tokio::time::interval(push);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last = String::new();
        let mut sent = tokio::time::Instant::now();
        let mut usage_at: Option<tokio::time::Instant> = None;
        let mut usage_view = serde_json::Value::Null;
        let mut first = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.shutdown.cancelled() => break,
            }
            // Usage may come from Redis: read it every couple of seconds, not every tick.
            if usage_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                usage_view = usage(&state).await;
                usage_at = Some(tokio::time::Instant::now());
            }
            let mut v = view(&state, &usage_view).await;
            let changed = v.to_string();
            if changed == last && sent.elapsed() < HEARTBEAT {
                continue;
            }
            last = changed;
            sent = tokio::time::Instant::now();
            v["now_ms"] = unix_ms().into();
            let mut event = Event::default().event("state").data(v.to_string());
            if first {
                // How long the browser waits before it reconnects.
                event = event.retry(Duration::from_secs(1));
                first = false;
            }
            yield Ok(event);
        }
    }
}

async fn usage(state: &AppState) -> serde_json::Value {
    let (report, source) = state.usage.report(None).await;
    serde_json::json!({ "source": source, "tenants": super::admin::usage_tenants(report) })
}

/// The overview's data (without `now_ms`, which the caller adds).
async fn view(state: &AppState, usage: &serde_json::Value) -> serde_json::Value {
    let snapshot = state.config.load();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let mut providers: Vec<serde_json::Value> = snapshot
        .providers
        .iter()
        .map(|(config, p)| {
            serde_json::json!({
                "name": config.name(),
                "kind": config.kind(),
                "model": config.model(),
                "p50_ms": ms(p.latency_percentile(50.0, false)),
                "p95_ms": ms(p.latency_percentile(95.0, false)),
                "completion_tokens": p.completion_tokens(),
                "queue": p.queue(),
                "endpoints": p.health(),
            })
        })
        .collect();
    providers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let tasks: Vec<serde_json::Value> = snapshot
        .config
        .tasks()
        .values()
        .map(|t| {
            serde_json::json!({
                "name": t.name(),
                "strategy": t.strategy(),
                "output": t.output(),
                "providers": t.providers(),
                "routed": t.routing().is_some(),
            })
        })
        .collect();
    let cache = state.cache.stats().await;
    let lookups = cache.hits + cache.redis_hits + cache.misses;
    let hit_rate = (lookups > 0).then(|| (cache.hits + cache.redis_hits) as f64 / lookups as f64);
    let (diff_version, diff) = state.config.last_diff().unzip();
    let mut config = super::admin::reload_status(state);
    config["diff"] = diff.into();
    config["diff_version"] = diff_version.into();
    let console = snapshot.config.console();
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": config,
        "providers": providers,
        "tasks": tasks,
        "cache": {
            "enabled": state.cache.enabled(),
            "hits": cache.hits + cache.redis_hits,
            "misses": cache.misses,
            "entries": cache.entries,
            "bytes": cache.bytes,
            "single_flight_joins": cache.single_flight_joins,
            "hit_rate": hit_rate,
        },
        "usage": usage,
        "recent_capacity": console.recent_requests(),
        "recent": state.recent.latest(OVERVIEW_RECENT).iter().map(|r| summary(r)).collect::<Vec<_>>(),
    })
}

/// A recent request as the overview lists it: the Decision's outcome, not every candidate.
fn summary(r: &crate::recent::RecentRequest) -> serde_json::Value {
    let d = r.decision.as_ref();
    serde_json::json!({
        "request_id": r.request_id,
        "at_ms": r.at_ms,
        "task": r.task,
        "tenant": r.tenant,
        "status": r.status,
        "error": r.error,
        "latency_ms": r.latency_ms,
        "cache_hit": r.cache_hit,
        "strategy": d.map(|d| &d.strategy),
        "winner": d.and_then(|d| d.winner.as_ref()),
        "confidence": d.and_then(|d| d.confidence),
        "agreement": d.and_then(|d| d.agreement),
        "calls": d.map_or(0, |d| d.candidates.len()),
        "groups": d.map(|d| d.groups.iter().map(|g| serde_json::json!({
            "answer": g.answer, "votes": g.votes, "probability": g.probability,
        })).collect::<Vec<_>>()),
        "weights": d.map(|d| d.candidates.iter().filter_map(|c| c.weight.map(|w| serde_json::json!({
            "provider": c.provider, "weight": w,
        }))).collect::<Vec<_>>()),
        "rationale": d.and_then(|d| d.rationale.as_ref()),
    })
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 401 from a console route asks the browser for the admin key (HTTP Basic).
pub(crate) fn challenge(mut resp: Response) -> Response {
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"llm-pool console\", charset=\"UTF-8\""),
        );
    }
    resp
}
