//! `GET /metrics` (Prometheus text format) and the middleware that counts requests by route
//! template (axum's `MatchedPath`, never the raw path) and status.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request, State};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use http::{HeaderValue, StatusCode};
use tower::{Layer, Service, ServiceExt};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use tokio::time::Instant;

use tracing::Instrument;

use crate::config::security::RouteGroup;
use crate::state::AppState;
use crate::telemetry::metrics as m;

/// The one route layer: counts the request by route template and status (and as in flight
/// while it runs), opens its trace span when traces are exported, and authenticates it for
/// the route's group. One layer rather than three, and a service of its own rather than
/// `from_fn`'s, which on every request also boxed the inner service and its future.
#[derive(Clone)]
pub(crate) struct EdgeLayer {
    pub(crate) state: AppState,
    pub(crate) group: RouteGroup,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            state: self.state.clone(),
            group: self.group,
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    state: AppState,
    group: RouteGroup,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service made ready goes with the request; a clone stays for the next one.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(edge(self.state.clone(), self.group, req, inner).map(Ok))
    }
}

async fn edge<S>(state: AppState, group: RouteGroup, req: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let route = req
        .extensions()
        .get::<MatchedPath>()
        // Only route templates from the router: a bounded set, safe as labels.
        .map_or("unmatched", |p| static_route(p.as_str()));
    let mut tracked = InFlight::start(route);
    let span = crate::telemetry::otel::request_span(&req);
    let handled = async move {
        let permit =
            match super::listener_slot(&state, group, state.in_flight.http.as_ref(), "http") {
                Ok(permit) => permit,
                Err(e) => return super::error_for_path(req.uri().path(), e),
            };
        let resp = match super::auth::check(&state, group, req).await {
            Ok(req) => match inner.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            },
            Err((path, e)) => super::error_for_path(&path, e),
        };
        match permit {
            Some(permit) => crate::listen::holding(resp, permit),
            None => resp,
        }
    };
    let resp = match &span {
        Some(span) => handled.instrument(span.clone()).await,
        None => handled.await,
    };
    if let Some(span) = span {
        span.record("http.response.status_code", resp.status().as_u16());
    }
    tracked.answered = true;
    let status = resp.status();
    let seconds = tracked.t0.elapsed().as_secs_f64();
    ROUTE_HANDLES.with(
        [route, status.as_str()],
        || {
            (
                counter!(m::REQUESTS, "route" => route, "status" => status.as_str().to_owned()),
                histogram!(m::REQUEST_SECONDS, "route" => route),
            )
        },
        |(count, latency)| {
            count.increment(1);
            latency.record(seconds);
        },
    );
    resp
}

/// Per route template and status: the request count and the route's latency.
static ROUTE_HANDLES: LazyLock<m::Resolved<2, (Counter, Histogram)>> =
    LazyLock::new(m::Resolved::default);
static IN_FLIGHT_GAUGE: LazyLock<m::Resolved<0, Gauge>> = LazyLock::new(m::Resolved::default);

fn in_flight(f: impl FnOnce(&Gauge)) {
    IN_FLIGHT_GAUGE.with([], || gauge!(m::IN_FLIGHT), f);
}

/// One request in flight: the gauge goes back down when this is dropped, also when the
/// caller disconnects and the handler's future is dropped mid-`.await`; such a request is
/// counted as cancelled.
struct InFlight {
    route: &'static str,
    t0: Instant,
    answered: bool,
}

impl InFlight {
    fn start(route: &'static str) -> Self {
        in_flight(|g| g.increment(1.0));
        Self {
            route,
            t0: Instant::now(),
            answered: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight(|g| g.decrement(1.0));
        if !self.answered {
            counter!(m::REQUESTS_CANCELLED, "route" => self.route).increment(1);
        }
    }
}

/// Route templates as `&'static str`: matched against the router's fixed list.
fn static_route(s: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/v1/query",
        "/v1/tasks",
        "/v1/feedback",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/models/{id}",
        "/v1/embeddings",
        "/api/generate",
        "/api/chat",
        "/api/tags",
        "/api/show",
        "/api/version",
        "/api/embed",
        "/api/embeddings",
        "/api/ps",
        "/",
        "/health",
        "/readyz",
        "/info",
        "/metrics",
        "/admin/config",
        "/admin/cache",
        "/admin/cache/clear",
        "/admin/accuracy",
        "/v1/usage",
        "/ui",
        "/ui/assets/console.js",
        "/ui/assets/console.css",
        "/ui/events",
        "/ui/state",
        "/ui/requests/{id}",
        "/ui/requests/{id}/data",
    ];
    ROUTES.iter().copied().find(|r| *r == s).unwrap_or("other")
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = m::handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response();
    };
    // State that is cheaper to read at scrape time than to push on every change.
    let snapshot = state.config.load();
    for (config, provider) in snapshot.providers.iter() {
        for e in provider.health() {
            let value = match e.breaker {
                crate::qos::BreakerState::Closed => 0.0,
                crate::qos::BreakerState::HalfOpen => 1.0,
                crate::qos::BreakerState::Open => 2.0,
            };
            gauge!(m::BREAKER_STATE, "provider" => config.name().to_owned(), "endpoint" => e.url.clone())
                .set(value);
            counter!(m::BREAKER_TRIPS, "provider" => config.name().to_owned(), "endpoint" => e.url)
                .absolute(e.trips);
        }
    }
    let stats = state.cache.stats().await;
    counter!(m::CACHE_HITS).absolute(stats.hits);
    counter!(m::CACHE_MISSES).absolute(stats.misses);
    counter!(m::CACHE_STORES).absolute(stats.stores);
    counter!(m::CACHE_EVICTIONS).absolute(stats.evictions);
    counter!(m::CACHE_JOINS).absolute(stats.single_flight_joins);
    counter!(m::CACHE_BACKEND_ERRORS).absolute(stats.redis.as_ref().map_or(0, |r| r.errors));
    gauge!(m::CACHE_ENTRIES).set(stats.entries as f64);
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_its_own_metric_label() {
        for (_, path, _) in super::super::route_table() {
            assert_eq!(
                super::static_route(path),
                path,
                "{path} is labelled \"other\""
            );
        }
    }
}
