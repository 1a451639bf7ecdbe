//! Prometheus metrics: the names (with units), their HELP text, and the recorder.
//!
//! Labels come from config or from a small fixed set (route template, task, strategy,
//! provider, endpoint URL as configured, outcome); never from free text in requests. The
//! recorder is the process's one global (STYLE.md), installed on first use.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "llm_pool_requests_total";
pub const REQUEST_SECONDS: &str = "llm_pool_request_duration_seconds";
pub const IN_FLIGHT: &str = "llm_pool_in_flight_requests";
pub const REQUESTS_CANCELLED: &str = "llm_pool_requests_cancelled_total";
pub const UPSTREAM_CALLS: &str = "llm_pool_upstream_calls_total";
pub const UPSTREAM_SECONDS: &str = "llm_pool_upstream_duration_seconds";
pub const UPSTREAM_TTFT_SECONDS: &str = "llm_pool_upstream_time_to_first_token_seconds";
pub const TOKENS: &str = "llm_pool_tokens_total";
pub const RETRIES: &str = "llm_pool_retries_total";
pub const HEDGES: &str = "llm_pool_hedges_total";
pub const EMBEDDINGS: &str = "llm_pool_embeddings_total";
pub const BREAKER_STATE: &str = "llm_pool_breaker_state";
pub const BREAKER_TRIPS: &str = "llm_pool_breaker_trips_total";
pub const CACHE_HITS: &str = "llm_pool_cache_hits_total";
pub const CACHE_MISSES: &str = "llm_pool_cache_misses_total";
pub const CACHE_STORES: &str = "llm_pool_cache_stores_total";
pub const CACHE_EVICTIONS: &str = "llm_pool_cache_evictions_total";
pub const CACHE_JOINS: &str = "llm_pool_cache_single_flight_joins_total";
pub const CACHE_BACKEND_ERRORS: &str = "llm_pool_cache_backend_errors_total";
pub const CACHE_ENTRIES: &str = "llm_pool_cache_entries";
pub const CONFIG_RELOADS: &str = "llm_pool_config_reloads_total";
pub const AGREEMENT: &str = "llm_pool_ensemble_agreement_ratio";
pub const ANSWERS: &str = "llm_pool_answers_total";
pub const ANSWER_SECONDS: &str = "llm_pool_answer_duration_seconds";
pub const VOTES: &str = "llm_pool_ensemble_votes_total";
pub const STREAM_TOKENS_PER_SECOND: &str = "llm_pool_stream_tokens_per_second";
pub const TENANT_TOKENS: &str = "llm_pool_tenant_tokens_total";
pub const TENANT_CACHED_TOKENS: &str = "llm_pool_tenant_cached_tokens_total";
pub const COST: &str = "llm_pool_usage_cost";
pub const COST_SAVED: &str = "llm_pool_usage_cost_saved";
pub const REGISTRY_CALLS: &str = "llm_pool_registry_calls_total";
pub const AUTH_FAILURES: &str = "llm_pool_auth_failures_total";
pub const RATE_LIMITED: &str = "llm_pool_rate_limited_total";
pub const RATE_LIMIT_BACKEND_ERRORS: &str = "llm_pool_rate_limit_backend_errors_total";
pub const QUEUE_DEPTH: &str = "llm_pool_queue_depth";
pub const QUEUE_WAIT_SECONDS: &str = "llm_pool_queue_wait_seconds";
pub const ADMISSION_REFUSED: &str = "llm_pool_admission_refused_total";
pub const LISTENER_REFUSED: &str = "llm_pool_listener_refused_total";
pub const ACCURACY: &str = "llm_pool_provider_accuracy";
pub const ACCURACY_EVIDENCE: &str = "llm_pool_provider_accuracy_evidence";
pub const FEEDBACK: &str = "llm_pool_feedback_total";
pub const ENSEMBLE_CALLS: &str = "llm_pool_ensemble_calls";
pub const CONFIDENCE: &str = "llm_pool_ensemble_confidence_ratio";
pub const ROUTES: &str = "llm_pool_routes_total";

/// Histogram buckets for request and upstream latency: 1 ms to 2 minutes (local models).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
const RATIO_BUCKETS: &[f64] = &[0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// Confidence targets are usually 0.9–0.99: the buckets are fine up there.
const CONFIDENCE_BUCKETS: &[f64] = &[0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0];
/// Calls per ensemble answer, up to the largest `max_n`s.
const CALLS_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];
/// Generation speed: small local models on CPU do 5–150 tokens/s, GPUs far more.
const RATE_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The recorder's handle (installed on first call; `None` if another recorder was
/// installed first, e.g. by an embedding program).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(AGREEMENT.to_owned()),
                        RATIO_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(CONFIDENCE.to_owned()),
                        CONFIDENCE_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(ENSEMBLE_CALLS.to_owned()),
                        CALLS_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            STREAM_TOKENS_PER_SECOND.to_owned(),
                        ),
                        RATE_BUCKETS,
                    )
                })
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        REQUESTS,
        "Requests answered, by route template and HTTP status."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Request latency, by route template."
    );
    describe_gauge!(IN_FLIGHT, "Requests being answered now.");
    describe_counter!(
        REQUESTS_CANCELLED,
        "Requests whose caller went away before the answer, by route template."
    );
    describe_counter!(
        UPSTREAM_CALLS,
        "Upstream calls, by provider, endpoint and outcome."
    );
    describe_histogram!(
        UPSTREAM_SECONDS,
        Unit::Seconds,
        "Upstream call latency (whole answers), by provider."
    );
    describe_histogram!(
        UPSTREAM_TTFT_SECONDS,
        Unit::Seconds,
        "Upstream time to first token (streams), by provider."
    );
    describe_counter!(
        TOKENS,
        "Tokens reported by upstreams, by provider and kind (prompt, completion)."
    );
    describe_counter!(RETRIES, "Upstream retries, by provider.");
    describe_counter!(HEDGES, "Hedged calls, by provider and event (sent, won).");
    describe_counter!(
        EMBEDDINGS,
        "Embeddings requests answered, by provider and outcome (ok, cache_hit)."
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(BREAKER_TRIPS, "Circuit breaker trips per endpoint.");
    describe_counter!(CACHE_HITS, "Cache hits.");
    describe_counter!(CACHE_MISSES, "Cache misses.");
    describe_counter!(CACHE_STORES, "Answers stored in the cache.");
    describe_counter!(
        CACHE_EVICTIONS,
        "Answers evicted from the in-process cache for room."
    );
    describe_counter!(
        CACHE_JOINS,
        "Requests that joined an identical request's upstream call."
    );
    describe_counter!(
        CACHE_BACKEND_ERRORS,
        "Errors talking to the Redis cache backend."
    );
    describe_gauge!(CACHE_ENTRIES, "Answers in the in-process cache.");
    describe_counter!(
        CONFIG_RELOADS,
        "Configuration reloads, by result (ok, rejected)."
    );
    describe_counter!(
        ANSWERS,
        "Requests answered by the orchestrator, by task, strategy and outcome (ok or the error kind)."
    );
    describe_histogram!(
        ANSWER_SECONDS,
        Unit::Seconds,
        "Time to a whole answer (or the end of a stream), by task, strategy and outcome."
    );
    describe_counter!(
        VOTES,
        "Ensemble candidates by strategy, provider and vote (winner: in the winning group; other: in another group; invalid)."
    );
    describe_histogram!(
        STREAM_TOKENS_PER_SECOND,
        "Streamed completion tokens per second after the first token, by provider."
    );
    describe_counter!(
        TENANT_TOKENS,
        "Prompt + completion tokens spent upstream, by tenant and provider."
    );
    describe_counter!(
        TENANT_CACHED_TOKENS,
        "Tokens answered from the cache, by tenant and the provider that first answered."
    );
    describe_gauge!(
        COST,
        "Cost since start at providers' cost_per_1k_tokens, by tenant and provider (only grows)."
    );
    describe_gauge!(
        COST_SAVED,
        "Cost saved since start against [usage] reference_cost_per_1k_tokens, by tenant and provider."
    );
    describe_counter!(
        REGISTRY_CALLS,
        "Calls to the agent registry, by call (register) and outcome (ok, error)."
    );
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused by authentication or authorisation, by kind (unauthenticated, permission_denied)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a tenant limit, by tenant and limit (requests, tokens, concurrent)."
    );
    describe_counter!(
        RATE_LIMIT_BACKEND_ERRORS,
        "Errors talking to the Redis rate-limit backend (the request was admitted)."
    );
    describe_gauge!(
        ACCURACY,
        "A provider's learned accuracy on a task (posterior mean), by task and provider."
    );
    describe_gauge!(
        ACCURACY_EVIDENCE,
        "Graded answers behind a provider's learned accuracy, by task and provider."
    );
    describe_counter!(
        FEEDBACK,
        "Feedback on answers (POST /v1/feedback, Feedback RPC), by task and verdict."
    );
    describe_histogram!(
        ENSEMBLE_CALLS,
        "Calls made per VOTING/WEIGHTED/CONSENSUS answer, by task, strategy and why it stopped."
    );
    describe_counter!(
        ROUTES,
        "Requests of routed tasks, by task, route taken and why (confident, unsure, router_failed)."
    );
    describe_histogram!(
        CONFIDENCE,
        "Posterior probability of the ensemble's answer, by task and strategy."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Callers waiting for a provider's slot, by provider and priority class."
    );
    describe_histogram!(
        QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time callers that queued waited for a slot, by provider, class and tenant."
    );
    describe_counter!(
        ADMISSION_REFUSED,
        "Callers refused a provider's slot, by provider, class, tenant and reason (queue_full, too_late, waited)."
    );
    describe_counter!(
        LISTENER_REFUSED,
        "Requests or connections refused by a listener's cap, by listener (http, grpc) and limit (in_flight, connections)."
    );
    describe_histogram!(
        AGREEMENT,
        "Share of valid answers in the winning group, by strategy."
    );
}

/// A request refused by authentication or authorisation.
pub fn auth_failure(kind: &'static str) {
    metrics::counter!(AUTH_FAILURES, "kind" => kind).increment(1);
}

/// One orchestrated request: count and latency by task, strategy and outcome.
pub fn answer(task: &str, strategy: &str, outcome: &'static str, elapsed: std::time::Duration) {
    ANSWER_HANDLES.with(
        [task, strategy, outcome],
        || {
            let labels = [
                ("task", task.to_owned()),
                ("strategy", strategy.to_owned()),
                ("outcome", outcome.to_owned()),
            ];
            (
                metrics::counter!(ANSWERS, &labels),
                metrics::histogram!(ANSWER_SECONDS, &labels),
            )
        },
        |(count, seconds)| {
            count.increment(1);
            seconds.record(elapsed.as_secs_f64());
        },
    );
}

/// The tenant label of a fair-share key (callers without credentials share one).
fn tenant_label(tenant: &str) -> &str {
    if tenant.is_empty() {
        "anonymous"
    } else {
        tenant
    }
}

/// `llm_pool_provider_accuracy{task, provider}` and its evidence.
pub fn accuracy(task: &str, provider: &str, accuracy: f64, evidence: f64) {
    ACCURACY_HANDLES.with(
        [task, provider],
        || {
            let labels = [("task", task.to_owned()), ("provider", provider.to_owned())];
            (
                metrics::gauge!(ACCURACY, &labels),
                metrics::gauge!(ACCURACY_EVIDENCE, &labels),
            )
        },
        |(a, e)| {
            a.set(accuracy);
            e.set(evidence);
        },
    );
}

/// An ensemble's answer: the calls it made and why it stopped, and its confidence.
pub fn ensemble(task: &str, strategy: &str, stopped: &str, calls: usize, confidence: Option<f64>) {
    ENSEMBLE_HANDLES.with(
        [task, strategy, stopped],
        || {
            (
                metrics::histogram!(ENSEMBLE_CALLS, "task" => task.to_owned(), "strategy" => strategy.to_owned(), "stopped" => stopped.to_owned()),
                metrics::histogram!(CONFIDENCE, "task" => task.to_owned(), "strategy" => strategy.to_owned()),
            )
        },
        |(c, h)| {
            c.record(calls as f64);
            if let Some(p) = confidence {
                h.record(p.clamp(0.0, 1.0));
            }
        },
    );
}

/// One routed request: the routing task, the route taken and why.
pub fn route(task: &str, route: &str, reason: &'static str) {
    metrics::counter!(ROUTES, "task" => task.to_owned(), "route" => route.to_owned(), "reason" => reason)
        .increment(1);
}

/// One feedback on an answer.
pub fn feedback(task: &str, verdict: &'static str) {
    metrics::counter!(FEEDBACK, "task" => task.to_owned(), "verdict" => verdict).increment(1);
}

static ACCURACY_HANDLES: std::sync::LazyLock<Resolved<2, (metrics::Gauge, metrics::Gauge)>> =
    std::sync::LazyLock::new(Resolved::default);
static ENSEMBLE_HANDLES: std::sync::LazyLock<
    Resolved<3, (metrics::Histogram, metrics::Histogram)>,
> = std::sync::LazyLock::new(Resolved::default);

/// `llm_pool_queue_depth{provider, class}`.
pub fn queue_depth(provider: &str, class: &str, depth: usize) {
    QUEUE_DEPTH_HANDLES.with(
        [provider, class],
        || {
            metrics::gauge!(QUEUE_DEPTH, "provider" => provider.to_owned(), "class" => class.to_owned())
        },
        |g| g.set(depth as f64),
    );
}

/// `llm_pool_queue_wait_seconds{provider, class, tenant}`.
pub fn queue_wait(provider: &str, class: &str, tenant: &str, waited: std::time::Duration) {
    let tenant = tenant_label(tenant);
    QUEUE_WAIT_HANDLES.with(
        [provider, class, tenant],
        || {
            metrics::histogram!(
                QUEUE_WAIT_SECONDS,
                "provider" => provider.to_owned(),
                "class" => class.to_owned(),
                "tenant" => tenant.to_owned()
            )
        },
        |h| h.record(waited.as_secs_f64()),
    );
}

/// `llm_pool_admission_refused_total{provider, class, tenant, reason}`.
pub fn admission_refused(provider: &str, class: &str, tenant: &str, reason: &'static str) {
    metrics::counter!(
        ADMISSION_REFUSED,
        "provider" => provider.to_owned(),
        "class" => class.to_owned(),
        "tenant" => tenant_label(tenant).to_owned(),
        "reason" => reason
    )
    .increment(1);
}

static QUEUE_DEPTH_HANDLES: std::sync::LazyLock<Resolved<2, metrics::Gauge>> =
    std::sync::LazyLock::new(Resolved::default);
static QUEUE_WAIT_HANDLES: std::sync::LazyLock<Resolved<3, metrics::Histogram>> =
    std::sync::LazyLock::new(Resolved::default);

/// Metric handles by label values, each distinct set resolved in the recorder once: after
/// that, recording costs a hash of the values and a lock-free read, with no registry lookup
/// and no allocation. Label values are bounded (STYLE.md: config names, route templates,
/// fixed outcomes), so the map stays small.
pub struct Resolved<const N: usize, V> {
    /// Label values come from config and fixed lists, not from callers, so a fast hasher
    /// without per-process keys is safe here.
    hasher: foldhash::fast::FixedState,
    map: arc_swap::ArcSwap<ByHash<N, V>>,
}

/// Handles by the hash of their label values (entries with equal hashes share the list).
type ByHash<const N: usize, V> = std::collections::HashMap<u64, Vec<([Box<str>; N], V)>>;

impl<const N: usize, V: Clone> Default for Resolved<N, V> {
    fn default() -> Self {
        Self {
            hasher: foldhash::fast::FixedState::default(),
            map: arc_swap::ArcSwap::default(),
        }
    }
}

impl<const N: usize, V: Clone> Resolved<N, V> {
    /// Calls `f` with the handles of `labels`, made by `make` the first time.
    pub fn with<R>(
        &self,
        labels: [&str; N],
        make: impl FnOnce() -> V,
        f: impl FnOnce(&V) -> R,
    ) -> R {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(labels);
        let same = |k: &[Box<str>; N]| k.iter().zip(labels).all(|(a, b)| **a == *b);
        if let Some((_, v)) = self
            .map
            .load()
            .get(&h)
            .and_then(|entries| entries.iter().find(|(k, _)| same(k)))
        {
            return f(v);
        }
        // The recorder must be in place before a handle is taken from it.
        handle();
        let v = make();
        let r = f(&v);
        self.map.rcu(|m| {
            let mut m = std::collections::HashMap::clone(m);
            let entries = m.entry(h).or_default();
            if !entries.iter().any(|(k, _)| same(k)) {
                entries.push((labels.map(Box::from), v.clone()));
            }
            m
        });
        r
    }
}

/// Handles of one orchestrated request's outcome: count and latency.
type AnswerHandles = (metrics::Counter, metrics::Histogram);

static ANSWER_HANDLES: std::sync::LazyLock<Resolved<3, AnswerHandles>> =
    std::sync::LazyLock::new(Resolved::default);
