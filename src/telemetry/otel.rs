//! OpenTelemetry traces over OTLP (gRPC with tonic, or HTTP/protobuf), W3C trace context in
//! and out, a sampling ratio that respects a sampled parent. Off by default; when off no
//! span of ours is even created (they are DEBUG spans of target `llm_pool`, enabled only by
//! the OTLP layer's filter), so the request path pays one relaxed atomic load.
//!
//! The span tree of a request: `request` (server; child of the caller's `traceparent`) →
//! `strategy` (one per request: fastest, voting, …) → `upstream` (one per candidate call:
//! provider, model, hedge, sample, outcome, tokens) → `attempt` (one per HTTP attempt:
//! endpoint, attempt number, outcome), whose context goes upstream as `traceparent`.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::ops::{OtlpProtocol, TracingConfig};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported (spans and propagation are worth doing).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The span `make` builds when traces are exported, else a disabled one: the one place
/// that decides, so that without export no span is built (one atomic load per call).
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() {
        make()
    } else {
        tracing::Span::none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(error) = self.0.shutdown() {
            tracing::warn!(%error, "Trace exporter did not flush cleanly.");
        }
    }
}

/// Builds the tracer provider; call inside the Tokio runtime (the exporters use it).
pub(super) fn provider(cfg: &TracingConfig) -> Result<SdkTracerProvider, OtelError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let err = |e: opentelemetry_otlp::ExporterBuildError| OtelError::Exporter(e.to_string());
    let exporter = match cfg.protocol() {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(cfg.endpoint().to_owned())
            .build()
            .map_err(err)?,
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!(
                "{}/v1/traces",
                cfg.endpoint().trim_end_matches('/')
            ))
            .with_http_client(HttpClient::new())
            .build()
            .map_err(err)?,
    };
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sampling_ratio())));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.service_name().to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// The tracing layer exporting our spans, and the guard that flushes it.
pub(super) fn layer<S>(
    provider: SdkTracerProvider,
) -> (
    impl tracing_subscriber::Layer<S> + Send + Sync + 'static,
    Guard,
)
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use tracing_subscriber::Layer as _;
    let tracer = provider.tracer("llm-pool");
    ENABLED.store(true, Ordering::Relaxed);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.target().starts_with("llm_pool")
        }));
    (layer, Guard(provider))
}

/// Makes `span` a child of the caller's W3C `traceparent` (HTTP headers or gRPC metadata).
pub fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Adds the current span's `traceparent` to an upstream request.
pub fn inject_current(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new()
        .inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers));
}

/// The OTLP/HTTP exporter's client: our reqwest, driven on the Tokio runtime it was built
/// in (the SDK exports from its own thread).
#[derive(Debug, Clone)]
struct HttpClient {
    client: reqwest::Client,
    runtime: Option<tokio::runtime::Handle>,
}

impl HttpClient {
    fn new() -> Self {
        Self {
            client: reqwest::Client::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let req = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        let call = async move {
            let resp = req.send().await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) = match &self.runtime {
            Some(rt) => rt.spawn(call).await??,
            None => call.await?,
        };
        let mut response = http::Response::new(bytes);
        *response.status_mut() = status;
        Ok(response)
    }
}

/// The `request` span of both listeners: the route (or gRPC method), the request id, and
/// the caller's `traceparent` as parent. A no-op without trace export.
pub async fn trace_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let Some(span) = request_span(&req) else {
        return next.run(req).await;
    };
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// The `request` span of `req` (see [`trace_request`]); `None` without trace export. Record
/// `http.response.status_code` on it once the response is known.
pub fn request_span(req: &axum::extract::Request) -> Option<tracing::Span> {
    if !enabled() {
        return None;
    }
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::debug_span!(
        "request",
        otel.name = %format!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = %route,
        request_id = %request_id,
        http.response.status_code = tracing::field::Empty,
    );
    set_parent_from(&span, req.headers());
    Some(span)
}
