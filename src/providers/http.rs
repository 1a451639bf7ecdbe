//! The HTTP client side shared by both upstream dialects: endpoint choice, timeouts, error
//! classification, and turning a line-oriented body into [`StreamEvent`]s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::endpoint::{EndpointGuard, EndpointSet, QueueHealth, Unavailable};
use super::transport::{Failure, Response, Transport, read_bounded, read_prefix};
use super::{
    Completion, EmbedRequest, Embeddings, EndpointHealth, Prompt, Provider, ProviderError,
    ProviderRequest, Refusal, StartedStream, StreamEvent, ToolCall, Usage,
};
use crate::config::ProviderConfig;
use crate::qos::admission::Reason;
use crate::qos::{Budget, LatencyWindow};
use crate::telemetry::metrics as m;

/// Largest upstream error body read into an error message.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// Largest whole (non-streamed) answer accepted from an upstream: far above any real answer,
/// small enough that a broken upstream cannot make the pool buffer without bound.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Idle upstream connections are kept this long: long enough to span gaps between requests
/// of a busy service, short enough not to hold sockets a model server would rather close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// An upstream API: how to phrase a request and read its answer.
pub(crate) trait Dialect: Send + Sync + Clone + 'static {
    /// Path (below the endpoint's base URL) for this prompt.
    fn path(&self, prompt: &Prompt) -> &'static str;
    /// The JSON body.
    fn body(&self, model: &str, req: &ProviderRequest, stream: bool) -> Vec<u8>;
    /// Reads a whole (non-streamed) answer.
    fn parse_complete(&self, body: &[u8]) -> Result<Parsed, String>;
    /// Reads one line of a streamed answer.
    fn parse_line(&self, line: &[u8]) -> Result<LineInfo, String>;
    /// Path listing the models an endpoint serves (health checks).
    fn models_path(&self) -> &'static str;
    /// Reads that list.
    fn parse_models(&self, body: &[u8]) -> Result<Vec<String>, String>;
    /// Why this dialect cannot carry `req` to a server configured as `config`, if it cannot.
    fn refuse(&self, config: &ProviderConfig, req: &ProviderRequest) -> Result<(), Refusal>;
    /// Path of the embeddings API.
    fn embed_path(&self) -> &'static str;
    /// The embeddings request body.
    fn embed_body(&self, model: &str, req: &EmbedRequest) -> Vec<u8>;
    /// Reads the vectors (in input order) and the prompt tokens counted.
    fn parse_embed(&self, body: &[u8]) -> Result<Embedded, String>;
    /// Why this dialect cannot carry an embeddings request, if it cannot.
    fn refuse_embed(&self, req: &EmbedRequest) -> Result<(), Refusal>;
    /// Where the server describes its model: the path, and the body to POST (`None`: GET).
    fn describe_request(&self, model: &str) -> (&'static str, Option<Vec<u8>>);
    /// That description, in the shape of Ollama's `/api/show`.
    fn parse_describe(&self, body: &[u8]) -> Option<serde_json::Value>;
}

/// Reads an upstream's JSON (a whole answer or one stream line). Its UTF-8 is checked once,
/// for the whole text, rather than again for every string in it as `serde_json::from_slice`
/// does; strings the target type borrows are not copied.
pub(crate) fn json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// A whole answer, read.
pub(crate) struct Parsed {
    pub(crate) text: String,
    pub(crate) model: Option<String>,
    pub(crate) usage: Usage,
    pub(crate) finish_reason: Option<String>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) logprobs: Option<serde_json::Value>,
    pub(crate) timings: Option<super::Timings>,
    pub(crate) reasoning: Option<String>,
    /// The body may be handed on as this wire format (see [`super::Verbatim`]).
    pub(crate) verbatim: Option<super::Wire>,
}

/// An embeddings answer, read: one vector per input, the model, the prompt tokens.
pub(crate) struct Embedded {
    pub(crate) vectors: Vec<Vec<f32>>,
    pub(crate) model: Option<String>,
    pub(crate) prompt_tokens: u32,
}

/// A piece of a streamed tool call.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct ToolDelta {
    /// Which call it continues; `None` starts a new one (servers that send whole calls).
    pub(crate) index: Option<usize>,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) arguments: String,
}

/// What one stream line says.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct LineInfo {
    pub(crate) delta: Option<String>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) usage: Option<Usage>,
    /// The upstream said the stream is over.
    pub(crate) end: bool,
    /// The upstream reported an error inside the stream.
    pub(crate) error: Option<String>,
    pub(crate) tool_deltas: Vec<ToolDelta>,
    /// Log probability entries of this line's tokens (OpenAI's `logprobs.content`).
    pub(crate) logprobs: Vec<serde_json::Value>,
    pub(crate) timings: Option<super::Timings>,
    /// Reasoning to append.
    pub(crate) reasoning: Option<String>,
}

/// A provider reached over HTTP.
pub(crate) struct HttpProvider<D> {
    inner: Arc<Inner<D>>,
}

struct Inner<D> {
    config: Arc<ProviderConfig>,
    /// The provider's name, shared into metric labels without copying.
    label: Arc<str>,
    endpoints: EndpointSet,
    transport: Transport,
    dialect: D,
    retry_budget: Arc<Budget>,
    hedge_budget: Arc<Budget>,
    /// Whole-answer latency of successful calls.
    latency: Arc<LatencyWindow>,
    /// Time to the first streamed event.
    ttft: Arc<LatencyWindow>,
    /// Completion tokens of successful calls since the provider was created (the
    /// console's tokens/s).
    completion_tokens: Arc<std::sync::atomic::AtomicU64>,
}

fn client(config: &ProviderConfig) -> Transport {
    Transport::new(config, POOL_IDLE_TIMEOUT)
}

fn retry_budget(config: &ProviderConfig) -> Arc<Budget> {
    let retry = &config.qos().retry;
    Arc::new(Budget::new(retry.budget_percent, retry.budget_min_per_sec))
}

fn hedge_budget(config: &ProviderConfig) -> Arc<Budget> {
    Arc::new(Budget::new(
        config.qos().hedge_budget_percent,
        config.qos().hedge_budget_min_per_sec,
    ))
}

impl<D: Dialect> HttpProvider<D> {
    pub(crate) fn new(config: Arc<ProviderConfig>, dialect: D) -> Self {
        Self {
            inner: Arc::new(Inner {
                label: Arc::from(config.name()),
                endpoints: EndpointSet::new(&config),
                transport: client(&config),
                dialect,
                retry_budget: retry_budget(&config),
                hedge_budget: hedge_budget(&config),
                latency: Arc::default(),
                ttft: Arc::default(),
                completion_tokens: Arc::default(),
                config,
            }),
        }
    }

    /// This provider under a changed `config` that still names the same model on the same
    /// kind of server: the endpoints whose URL stayed keep their breakers, load, health and
    /// concurrency slots (resized to the new limit), and the provider keeps its latency
    /// windows and budgets unless their settings changed. `None` when the model, kind or
    /// key changed (then nothing the old state says applies).
    fn reconfigured(&self, config: Arc<ProviderConfig>) -> Option<Self> {
        use secrecy::ExposeSecret;
        let old = &self.inner;
        let key = |c: &ProviderConfig| c.api_key().as_ref().map(|k| k.expose_secret().to_owned());
        if old.config.kind() != config.kind()
            || old.config.model() != config.model()
            || key(&old.config) != key(&config)
        {
            return None;
        }
        let proxy = |c: &ProviderConfig| c.proxy().map(|p| p.expose_secret().to_owned());
        let same_client = old.config.connect_timeout() == config.connect_timeout()
            && old.config.max_concurrency() == config.max_concurrency()
            && proxy(&old.config) == proxy(&config);
        let same_retry = old.config.qos().retry.budget_percent == config.qos().retry.budget_percent
            && old.config.qos().retry.budget_min_per_sec == config.qos().retry.budget_min_per_sec;
        let same_hedge = old.config.qos().hedge_budget_percent == config.qos().hedge_budget_percent
            && old.config.qos().hedge_budget_min_per_sec == config.qos().hedge_budget_min_per_sec;
        Some(Self {
            inner: Arc::new(Inner {
                label: Arc::clone(&old.label),
                endpoints: old.endpoints.reconfigured(&config),
                transport: if same_client {
                    old.transport.clone()
                } else {
                    client(&config)
                },
                dialect: old.dialect.clone(),
                retry_budget: if same_retry {
                    Arc::clone(&old.retry_budget)
                } else {
                    retry_budget(&config)
                },
                hedge_budget: if same_hedge {
                    Arc::clone(&old.hedge_budget)
                } else {
                    hedge_budget(&config)
                },
                latency: Arc::clone(&old.latency),
                ttft: Arc::clone(&old.ttft),
                completion_tokens: Arc::clone(&old.completion_tokens),
                config,
            }),
        })
    }
}

impl<D: Dialect> Inner<D> {
    /// Sends the request and returns the successful response, retrying connect errors,
    /// 5xx and per-call timeouts on another endpoint when the retry policy, the budget and
    /// the deadline allow (see `qos::retry`). Nothing has reached the caller yet at this
    /// point, so streamed requests are retried the same way.
    async fn send(
        &self,
        req: &ProviderRequest,
        stream: bool,
        deadline: Instant,
    ) -> Result<(EndpointGuard, Response, Instant, u32), ProviderError> {
        let body = Bytes::from(self.dialect.body(self.config.model(), req, stream));
        let service = self.expected_service(stream);
        self.send_body(
            self.dialect.path(&req.prompt),
            body,
            &req.ticket,
            service,
            deadline,
        )
        .await
    }

    /// [`Self::send`] for a body already made.
    async fn send_body(
        &self,
        path: &'static str,
        body: Bytes,
        ticket: &crate::qos::Ticket,
        service: Duration,
        deadline: Instant,
    ) -> Result<(EndpointGuard, Response, Instant, u32), ProviderError> {
        let policy = &self.config.qos().retry;
        self.retry_budget.deposit();
        self.hedge_budget.deposit();
        let mut failed: Option<Arc<str>> = None;
        let mut attempt = 1;
        // What the call had when it began; a retry must leave the next provider as much.
        let budget = deadline.saturating_duration_since(Instant::now());
        loop {
            let until = deadline.min(Instant::now() + self.config.first_byte_timeout());
            let guard = match self
                .endpoints
                .acquire(ticket, failed.as_deref(), until, service)
                .await
            {
                Ok(g) => g,
                Err(why) => return Err(self.unavailable(why)),
            };
            let span = crate::telemetry::otel::span(|| {
                tracing::debug_span!(
                    "attempt",
                    otel.name = "attempt",
                    otel.kind = "client",
                    endpoint = %guard.url(),
                    attempt,
                    outcome = tracing::field::Empty,
                )
            });
            let e = match self
                .send_once(&guard, path, body.clone(), until, deadline)
                .instrument(span.clone())
                .await
            {
                Ok(resp) => {
                    span.record("outcome", "ok");
                    // Retries: the attempts before this one (on other endpoints).
                    return Ok((guard, resp, until, attempt - 1));
                }
                Err(e) => {
                    span.record("outcome", e.metric_label());
                    e
                }
            };
            guard.record(Err(&e));
            self.observe(guard.url(), Err(&e), Duration::ZERO, false);
            // A failed call hands over to the next provider at once; a retry goes only to
            // another endpoint of this provider, and only while more than half of the
            // call's time is left (so the next provider still has as much).
            let retryable = e.is_retryable() && e.is_endpoint_failure();
            if !retryable
                || attempt >= policy.max_attempts
                || !self.endpoints.has_other(guard.url())
            {
                return Err(e);
            }
            let wait = policy.backoff(attempt);
            let left = deadline.saturating_duration_since(Instant::now() + wait);
            if left * 2 <= budget || !self.retry_budget.withdraw() {
                return Err(e);
            }
            tracing::debug!(provider = %self.config.name(), attempt, error = %e, "Retrying.");
            metrics::counter!(m::RETRIES, "provider" => Arc::clone(&self.label)).increment(1);
            tokio::time::sleep(wait).await;
            failed = Some(Arc::clone(guard.url()));
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        guard: &EndpointGuard,
        path: &'static str,
        body: Bytes,
        until: Instant,
        deadline: Instant,
    ) -> Result<Response, ProviderError> {
        let endpoint = guard.url();
        let Some(target) = guard.target() else {
            return Err(ProviderError::Connect {
                endpoint: Arc::clone(endpoint),
                message: "the endpoint URL cannot be used".into(),
            });
        };
        // An empty map does not allocate: most calls carry only the provider's headers.
        let mut headers = http::HeaderMap::new();
        if crate::telemetry::otel::enabled() {
            // W3C trace context of this attempt, so the model server's spans join the trace.
            crate::telemetry::otel::inject_current(&mut headers);
        }
        let req = self
            .transport
            .request(target.uri(path), Some(body), headers);
        match tokio::time::timeout_at(until, self.transport.send(req)).await {
            Err(_) => Err(expired(endpoint, until, deadline)),
            Ok(Err(e)) => Err(classify(endpoint, e)),
            Ok(Ok(resp)) if resp.status().is_success() => Ok(resp),
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let body = tokio::time::timeout_at(until, read_prefix(resp, MAX_ERROR_BODY))
                    .await
                    .unwrap_or_default();
                Err(ProviderError::Status {
                    endpoint: Arc::clone(endpoint),
                    status,
                    message: upstream_message(&body),
                })
            }
        }
    }

    /// Asks every endpoint which models it serves (`GET /v1/models` or `/api/tags`).
    async fn check_health(&self) {
        let timeout = self.config.qos().health_check_timeout;
        let targets = self.endpoints.targets();
        let checks = targets.iter().map(|(url, target)| {
            let req = target.as_ref().map(|t| {
                self.transport.request(
                    t.uri(self.dialect.models_path()),
                    None,
                    http::HeaderMap::new(),
                )
            });
            async move {
                let Some(req) = req else {
                    return (
                        Arc::clone(url),
                        Err("the endpoint URL cannot be used".to_owned()),
                    );
                };
                let result = match tokio::time::timeout(timeout, self.transport.send(req)).await {
                    Err(_) => Err("timed out".to_owned()),
                    Ok(Err(e)) => Err(error_chain(e.error())),
                    Ok(Ok(resp)) if !resp.status().is_success() => {
                        Err(format!("status {}", resp.status().as_u16()))
                    }
                    Ok(Ok(resp)) => {
                        match tokio::time::timeout(timeout, read_bounded(resp, MAX_BODY)).await {
                            Err(_) => Err("timed out".to_owned()),
                            Ok(Err(e)) => Err(e),
                            Ok(Ok(body)) => self.dialect.parse_models(&body),
                        }
                    }
                };
                (Arc::clone(url), result)
            }
        });
        for (url, result) in futures::future::join_all(checks).await {
            self.endpoints
                .record_check(&url, result, self.config.model());
        }
    }
}

impl<D: Dialect> Inner<D> {
    /// Asks the first endpoint that answers how the server describes its model.
    async fn describe(&self) -> Option<serde_json::Value> {
        let timeout = self.config.qos().health_check_timeout;
        let (path, body) = self.dialect.describe_request(self.config.model());
        let body = body.map(Bytes::from);
        for (_, target) in self.endpoints.targets() {
            let Some(target) = target.as_ref() else {
                continue;
            };
            let req =
                self.transport
                    .request(target.uri(path), body.clone(), http::HeaderMap::new());
            let answer = async {
                let resp = self.transport.send(req).await.ok()?;
                if !resp.status().is_success() {
                    return None;
                }
                let body = read_bounded(resp, MAX_BODY).await.ok()?;
                self.dialect.parse_describe(&body)
            };
            if let Ok(Some(found)) = tokio::time::timeout(timeout, answer).await {
                return Some(found);
            }
        }
        None
    }
}

impl<D> Inner<D> {
    /// Why no slot could be had, as the provider's error.
    fn unavailable(&self, why: Unavailable) -> ProviderError {
        let provider = self.config.name().to_owned();
        let reason = match why {
            Unavailable::CircuitOpen => "every endpoint's circuit is open",
            Unavailable::Unhealthy => "no endpoint serves the model (health check)",
            Unavailable::Overloaded(refused) => {
                return ProviderError::Overloaded {
                    provider,
                    reason: match refused.reason {
                        Reason::QueueFull => "every slot is taken and the queue is full",
                        Reason::TooLate => {
                            "every slot is taken and the wait would outlast the request"
                        }
                        Reason::Waited => {
                            "every slot stayed taken as long as the request could wait"
                        }
                    },
                    retry_after: refused.retry_after,
                    saturated: refused.saturated,
                };
            }
        };
        ProviderError::NoEndpoint { provider, reason }
    }

    /// How long a call is expected to hold its slot: the median of recent whole answers
    /// (zero until there are enough); a queued caller must have that much of its deadline
    /// left when it would be served.
    fn expected_service(&self, _stream: bool) -> Duration {
        self.latency
            .percentile(crate::qos::latency::MEDIAN)
            .unwrap_or(Duration::ZERO)
    }

    /// Records one finished call in the metrics.
    fn observe(
        &self,
        endpoint: &Arc<str>,
        outcome: Result<Usage, &ProviderError>,
        elapsed: Duration,
        streamed: bool,
    ) {
        let label = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.metric_label(),
        };
        CALL_HANDLES.with(
            [&self.label, endpoint, label],
            || {
                metrics::counter!(
                    m::UPSTREAM_CALLS,
                    "provider" => Arc::clone(&self.label),
                    "endpoint" => Arc::clone(endpoint),
                    "outcome" => label
                )
            },
            |calls| calls.increment(1),
        );
        if let Ok(usage) = outcome {
            self.completion_tokens.fetch_add(
                u64::from(usage.completion_tokens),
                std::sync::atomic::Ordering::Relaxed,
            );
            provider_handles(&self.label, |h| {
                if !streamed {
                    h.seconds.record(elapsed.as_secs_f64());
                }
                h.prompt.increment(u64::from(usage.prompt_tokens));
                h.completion.increment(u64::from(usage.completion_tokens));
            });
        }
    }
}

/// Upstream calls by provider, endpoint and outcome.
static CALL_HANDLES: std::sync::LazyLock<m::Resolved<3, metrics::Counter>> =
    std::sync::LazyLock::new(m::Resolved::default);

/// A provider's answer latency and tokens.
#[derive(Clone)]
struct ProviderHandles {
    seconds: metrics::Histogram,
    prompt: metrics::Counter,
    completion: metrics::Counter,
}

static PROVIDER_HANDLES: std::sync::LazyLock<m::Resolved<1, ProviderHandles>> =
    std::sync::LazyLock::new(m::Resolved::default);

/// The provider's handles, registered on first use rather than on every call.
fn provider_handles(label: &Arc<str>, f: impl FnOnce(&ProviderHandles)) {
    let handles = || ProviderHandles {
        seconds: metrics::histogram!(m::UPSTREAM_SECONDS, "provider" => Arc::clone(label)),
        prompt: metrics::counter!(m::TOKENS, "provider" => Arc::clone(label), "kind" => "prompt"),
        completion: metrics::counter!(m::TOKENS, "provider" => Arc::clone(label), "kind" => "completion"),
    };
    PROVIDER_HANDLES.with([label], handles, f);
}

/// A provider's streams: the time to their first token and their speed after it (registered
/// with its first stream, so a provider that never streams shows neither).
#[derive(Clone)]
struct StreamHandles {
    ttft: metrics::Histogram,
    tokens_per_second: metrics::Histogram,
}

static STREAM_HANDLES: std::sync::LazyLock<m::Resolved<1, StreamHandles>> =
    std::sync::LazyLock::new(m::Resolved::default);

fn stream_handles(label: &Arc<str>, f: impl FnOnce(&StreamHandles)) {
    let handles = || StreamHandles {
        ttft: metrics::histogram!(m::UPSTREAM_TTFT_SECONDS, "provider" => Arc::clone(label)),
        tokens_per_second: metrics::histogram!(m::STREAM_TOKENS_PER_SECOND, "provider" => Arc::clone(label)),
    };
    STREAM_HANDLES.with([label], handles, f);
}

/// A timeout: the request's own deadline (nothing wrong with the endpoint) or the
/// provider's per-call timeout.
fn expired(endpoint: &Arc<str>, until: Instant, deadline: Instant) -> ProviderError {
    let endpoint = Arc::clone(endpoint);
    if until >= deadline {
        ProviderError::DeadlineExceeded { endpoint }
    } else {
        ProviderError::Timeout { endpoint }
    }
}

impl<D: Dialect> Provider for HttpProvider<D> {
    fn name(&self) -> &str {
        self.inner.config.name()
    }

    fn model(&self) -> &str {
        self.inner.config.model()
    }

    fn complete(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<Completion, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        async move {
            let t0 = Instant::now();
            let (guard, resp, until, retries) = inner.send(&req, false, deadline).await?;
            let endpoint = Arc::clone(guard.url());
            let label = Arc::clone(guard.label());
            let result = match tokio::time::timeout_at(until, read_bounded(resp, MAX_BODY)).await {
                Err(_) => Err(expired(&endpoint, until, deadline)),
                Ok(Err(message)) => Err(ProviderError::Broken {
                    endpoint: Arc::clone(&endpoint),
                    message,
                }),
                Ok(Ok(body)) => match inner.dialect.parse_complete(&body) {
                    Ok(parsed) => Ok((parsed, body)),
                    Err(message) => Err(ProviderError::Decode {
                        endpoint: Arc::clone(&endpoint),
                        message,
                    }),
                },
            };
            guard.record(result.as_ref().map(|_| ()));
            inner.observe(
                &endpoint,
                result.as_ref().map(|(p, _)| p.usage),
                t0.elapsed(),
                false,
            );
            let (parsed, body) = result?;
            inner.latency.record(t0.elapsed());
            let finish_reason = tool_finish(parsed.finish_reason.clone(), &parsed.tool_calls);
            // Handed on as it came only when the pool would not change its finish reason.
            let verbatim = parsed
                .verbatim
                .filter(|_| finish_reason == parsed.finish_reason)
                .map(|wire| super::Verbatim { wire, body });
            Ok(Completion {
                text: parsed.text,
                model: parsed
                    .model
                    .unwrap_or_else(|| inner.config.model().to_owned()),
                usage: parsed.usage,
                finish_reason,
                endpoint: label,
                tool_calls: parsed.tool_calls,
                logprobs: parsed.logprobs,
                timings: parsed.timings,
                reasoning: parsed.reasoning.filter(|r| !r.is_empty()),
                retries,
                verbatim,
            })
        }
        .boxed()
    }

    fn stream(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<StartedStream, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        async move {
            let t0 = Instant::now();
            let (guard, resp, until, retries) = inner.send(&req, true, deadline).await?;
            let endpoint = Arc::clone(guard.label());
            let model = inner.config.model().to_owned();
            let events = events(inner, guard, resp, until, deadline, t0);
            Ok(StartedStream {
                endpoint,
                model,
                events: events.boxed(),
                retries,
            })
        }
        .boxed()
    }

    fn refuse(&self, req: &ProviderRequest) -> Result<(), Refusal> {
        super::request::check_media(self.inner.config.capabilities(), req)?;
        self.inner.dialect.refuse(&self.inner.config, req)
    }

    fn refuse_embed(&self, req: &EmbedRequest) -> Result<(), Refusal> {
        self.inner.dialect.refuse_embed(req)
    }

    fn embed(
        &self,
        req: Arc<EmbedRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<Embeddings, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        async move {
            let t0 = Instant::now();
            let body = Bytes::from(inner.dialect.embed_body(inner.config.model(), &req));
            let (guard, resp, until, _) = inner
                .send_body(
                    inner.dialect.embed_path(),
                    body,
                    &req.ticket,
                    Duration::ZERO,
                    deadline,
                )
                .await?;
            let endpoint = Arc::clone(guard.url());
            let result = match tokio::time::timeout_at(until, read_bounded(resp, MAX_BODY)).await {
                Err(_) => Err(expired(&endpoint, until, deadline)),
                Ok(Err(message)) => Err(ProviderError::Broken {
                    endpoint: Arc::clone(&endpoint),
                    message,
                }),
                Ok(Ok(body)) => inner
                    .dialect
                    .parse_embed(&body)
                    .and_then(|parsed| {
                        if parsed.vectors.len() == req.input.len() {
                            Ok(parsed)
                        } else {
                            Err(format!(
                                "{} vectors for {} inputs",
                                parsed.vectors.len(),
                                req.input.len()
                            ))
                        }
                    })
                    .map_err(|message| ProviderError::Decode {
                        endpoint: Arc::clone(&endpoint),
                        message,
                    }),
            };
            guard.record(result.as_ref().map(|_| ()));
            inner.observe(
                &endpoint,
                result.as_ref().map(|e| Usage {
                    prompt_tokens: e.prompt_tokens,
                    completion_tokens: 0,
                }),
                t0.elapsed(),
                false,
            );
            // Not in the completion latency windows: embeddings take another time.
            let Embedded {
                vectors,
                model,
                prompt_tokens,
            } = result?;
            Ok(Embeddings {
                vectors,
                model: model.unwrap_or_else(|| inner.config.model().to_owned()),
                prompt_tokens,
                endpoint: Arc::clone(guard.label()),
            })
        }
        .boxed()
    }

    fn health(&self) -> Vec<EndpointHealth> {
        self.inner.endpoints.health()
    }

    fn queue(&self) -> Option<QueueHealth> {
        Some(self.inner.endpoints.queue())
    }

    fn endpoints(&self) -> usize {
        self.inner.endpoints.len()
    }

    fn completion_tokens(&self) -> u64 {
        self.inner
            .completion_tokens
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn latency_percentile(&self, p: f64, streaming: bool) -> Option<Duration> {
        if streaming {
            self.inner.ttft.percentile(p)
        } else {
            self.inner.latency.percentile(p)
        }
    }

    fn try_hedge(&self) -> bool {
        self.inner.hedge_budget.withdraw()
    }

    fn reserve(
        &self,
        ticket: &crate::qos::Ticket,
        n: usize,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<Vec<super::Slot>, ProviderError>> {
        let inner = Arc::clone(&self.inner);
        let ticket = ticket.clone();
        async move {
            let until = deadline.min(Instant::now() + inner.config.first_byte_timeout());
            let service = inner.expected_service(false);
            match inner
                .endpoints
                .acquire_many(&ticket, n, None, until, service)
                .await
            {
                Ok(guards) => Ok(guards
                    .into_iter()
                    .map(|g| Box::new(g) as super::Slot)
                    .collect()),
                Err(why) => Err(inner.unavailable(why)),
            }
        }
        .boxed()
    }

    fn try_reserve(&self, ticket: &crate::qos::Ticket, n: usize) -> Option<Vec<super::Slot>> {
        self.inner
            .endpoints
            .try_acquire_many(ticket, n)
            .map(|guards| {
                guards
                    .into_iter()
                    .map(|g| Box::new(g) as super::Slot)
                    .collect()
            })
    }

    fn check_health(&self) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        async move { inner.check_health().await }.boxed()
    }

    fn describe(&self) -> BoxFuture<'static, Option<serde_json::Value>> {
        let inner = Arc::clone(&self.inner);
        async move { inner.describe().await }.boxed()
    }

    fn reconfigure(&self, config: Arc<ProviderConfig>) -> Option<Arc<dyn Provider>> {
        self.reconfigured(config)
            .map(|p| Arc::new(p) as Arc<dyn Provider>)
    }
}

/// Turns the upstream body into events; the endpoint slot is held until the stream ends or
/// is dropped.
fn events<D: Dialect>(
    inner: Arc<Inner<D>>,
    guard: EndpointGuard,
    resp: Response,
    until: Instant,
    deadline: Instant,
    t0: Instant,
) -> impl futures::Stream<Item = Result<StreamEvent, ProviderError>> + Send + 'static {
    async_stream::stream! {
        let endpoint = Arc::clone(guard.url());
        let lines = super::lines::lines(http_body_util::BodyExt::into_data_stream(resp.into_body()));
        futures::pin_mut!(lines);
        let mut usage: Option<Usage> = None;
        let mut finish: Option<String> = None;
        let mut deltas: u32 = 0;
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut logprobs: Vec<serde_json::Value> = Vec::new();
        let mut timings = None;
        let mut first_at: Option<Duration> = None;
        let idle = inner.config.idle_timeout();
        loop {
            // Until the first piece of text: the first-byte timeout; after it, the longest
            // silence allowed between pieces. The request deadline bounds both.
            let started = deltas > 0 || !calls.is_empty();
            let timer = if started { deadline.min(Instant::now() + idle) } else { until };
            let next = match tokio::time::timeout_at(timer, lines.next()).await {
                Ok(next) => next,
                Err(_) => {
                    let e = expired(&endpoint, timer, deadline);
                    yield Err(failed(&inner, &guard, t0, e));
                    return;
                }
            };
            let line: Bytes = match next {
                Some(Ok(line)) => line,
                Some(Err(message)) => {
                    let e = ProviderError::Broken { endpoint: Arc::clone(&endpoint), message };
                    yield Err(failed(&inner, &guard, t0, e));
                    return;
                }
                None if finish.is_some() => break,
                None => {
                    let e = ProviderError::Broken {
                        endpoint: Arc::clone(&endpoint),
                        message: "stream ended before the answer was complete".into(),
                    };
                    yield Err(failed(&inner, &guard, t0, e));
                    return;
                }
            };
            let info = match inner.dialect.parse_line(&line) {
                Ok(info) => info,
                Err(message) => {
                    let e = ProviderError::Decode { endpoint: Arc::clone(&endpoint), message };
                    yield Err(failed(&inner, &guard, t0, e));
                    return;
                }
            };
            if let Some(message) = info.error {
                // An error event inside a 200 stream (vLLM and others): the call failed.
                let e = ProviderError::InBand { endpoint: Arc::clone(&endpoint), message };
                yield Err(failed(&inner, &guard, t0, e));
                return;
            }
            let thought = info.reasoning.filter(|r| !r.is_empty());
            let progress = !info.tool_deltas.is_empty()
                || thought.is_some()
                || info.delta.as_deref().is_some_and(|d| !d.is_empty());
            if progress && deltas == 0 && calls.is_empty() {
                first_at = Some(t0.elapsed());
                inner.ttft.record(t0.elapsed());
                stream_handles(&inner.label, |h| h.ttft.record(t0.elapsed().as_secs_f64()));
            }
            assemble(&mut calls, info.tool_deltas);
            if let Some(r) = thought {
                // Reasoning is progress: the first-byte timer gives way to the idle one.
                deltas += 1;
                yield Ok(StreamEvent::Reasoning(r));
            }
            logprobs.extend(info.logprobs);
            if let Some(delta) = info.delta
                && !delta.is_empty()
            {
                deltas += 1;
                yield Ok(StreamEvent::Delta(delta));
            }
            if info.finish_reason.is_some() {
                finish = info.finish_reason;
            }
            if info.usage.is_some() {
                usage = info.usage;
            }
            if info.timings.is_some() {
                timings = info.timings;
            }
            if info.end && finish.is_none() {
                // `[DONE]` without a finish reason: the answer was not completed.
                let e = ProviderError::Broken {
                    endpoint: Arc::clone(&endpoint),
                    message: "stream ended without a finish reason".into(),
                };
                yield Err(failed(&inner, &guard, t0, e));
                return;
            }
            if info.end {
                break;
            }
        }
        guard.record(Ok(()));
        // Servers that report no usage in streams: one content event is one token.
        let usage = usage.unwrap_or(Usage {
            prompt_tokens: 0,
            completion_tokens: deltas + calls.len() as u32,
        });
        let finish = tool_finish(finish, &calls);
        for (i, mut call) in calls.into_iter().enumerate() {
            if call.id.is_empty() {
                call.id = ToolCall::from_text(i, &call.name, &call.arguments).id;
            }
            yield Ok(StreamEvent::ToolCall(call));
        }
        let logprobs = merge_logprobs(logprobs);
        // Generation speed after the first token (what a reader of the stream sees).
        if let Some(first) = first_at
            && let Some(secs) = t0.elapsed().checked_sub(first).map(|d| d.as_secs_f64())
            && secs > 0.0
            && usage.completion_tokens > 1
        {
            let speed = f64::from(usage.completion_tokens - 1) / secs;
            stream_handles(&inner.label, |h| h.tokens_per_second.record(speed));
        }
        inner.observe(&endpoint, Ok(usage), t0.elapsed(), true);
        yield Ok(StreamEvent::Done { usage, finish_reason: finish, logprobs, timings });
    }
}

/// Adds streamed tool-call pieces to the calls so far.
fn assemble(calls: &mut Vec<ToolCall>, deltas: Vec<ToolDelta>) {
    for d in deltas {
        let i = d.index.unwrap_or(calls.len());
        if i >= calls.len() {
            calls.resize_with(i + 1, ToolCall::default);
        }
        let call = &mut calls[i];
        if let Some(id) = d.id {
            call.id = id;
        }
        if let Some(name) = d.name {
            call.name.push_str(&name);
        }
        call.arguments.push_str(&d.arguments);
    }
}

/// A stream's log probabilities as one answer's: chat entries under `content`; text
/// completion pieces (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`) joined
/// list by list.
fn merge_logprobs(entries: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    if entries.is_empty() {
        return None;
    }
    if !entries.iter().all(|e| e.get("tokens").is_some()) {
        return Some(serde_json::json!({ "content": entries }));
    }
    let mut out = serde_json::Map::new();
    for e in entries {
        let serde_json::Value::Object(fields) = e else {
            continue;
        };
        for (k, v) in fields {
            let serde_json::Value::Array(items) = v else {
                continue;
            };
            if let serde_json::Value::Array(all) = out
                .entry(k)
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            {
                all.extend(items);
            }
        }
    }
    Some(serde_json::Value::Object(out))
}

/// An answer that calls tools ends with `tool_calls` (Ollama says `stop`).
fn tool_finish(finish: Option<String>, calls: &[ToolCall]) -> Option<String> {
    if !calls.is_empty() && finish.as_deref().is_none_or(|r| r == "stop") {
        return Some("tool_calls".to_owned());
    }
    finish
}

/// Records a stream that failed against its endpoint and in the metrics; returns the error
/// to hand on.
fn failed<D>(
    inner: &Inner<D>,
    guard: &EndpointGuard,
    t0: Instant,
    e: ProviderError,
) -> ProviderError {
    guard.record(Err(&e));
    inner.observe(guard.url(), Err(&e), t0.elapsed(), true);
    e
}

/// A call that got no answer: the connect timeout, a connection that could not be made,
/// or one that broke.
fn classify(endpoint: &Arc<str>, e: Failure) -> ProviderError {
    let endpoint = Arc::clone(endpoint);
    if e.is_timeout() {
        ProviderError::Timeout { endpoint }
    } else if e.is_connect() {
        ProviderError::Connect {
            endpoint,
            message: error_chain(e.error()),
        }
    } else {
        ProviderError::Broken {
            endpoint,
            message: error_chain(e.error()),
        }
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The message of an upstream error body: OpenAI's `{"error":{"message"}}`, Ollama's
/// `{"error":"..."}`, or the text itself.
fn upstream_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Text(String),
        Object { message: String },
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: ErrorField,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: ErrorField::Text(m) | ErrorField::Object { message: m },
        }) => m,
        Err(_) => String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(512)
            .collect(),
    }
}
