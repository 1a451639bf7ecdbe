//! The configuration file as written by operators: serde structs, every field documented.
//!
//! These docs are the operator manual for `llm-pool.toml`. Nothing here is validated beyond
//! its type; `validate.rs` turns a [`RawConfig`] into a checked [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::defaults;
pub use super::ops::{RawRegistry, RawTracing, RawUsage};
pub use super::security::{RateLimitBackend, RawAuth, RawJwt, RawRateLimit, RawTenant, RawTls};

/// The whole `llm-pool.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listeners and process-wide settings. Changes take effect on restart only.
    #[serde(default)]
    pub server: RawServer,
    /// Request limits and deadline bounds (hot-reloadable).
    #[serde(default)]
    pub limits: RawLimits,
    /// Named providers: a model behind one or more endpoints.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// Named tasks callers ask for.
    #[serde(default)]
    pub tasks: BTreeMap<String, RawTask>,
    /// Extra names for the `model` field of OpenAI/Ollama requests: `alias = "provider"` or
    /// `alias = "task:NAME"`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Circuit breakers, retries, health checks and hedging budget.
    #[serde(default)]
    pub qos: RawQos,
    /// The answer cache (process-wide; changes take effect on restart).
    #[serde(default)]
    pub cache: RawCache,
    /// Authentication per route group.
    #[serde(default)]
    pub auth: RawAuth,
    /// Callers: credentials, rights and limits.
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenant>,
    /// Where tenants' rate limits are counted.
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    /// Tokens and cost per tenant and provider.
    #[serde(default)]
    pub usage: RawUsage,
    /// Learned accuracies and feedback.
    #[serde(default)]
    pub learning: super::ops::RawLearning,
    /// The operator console.
    #[serde(default)]
    pub console: super::ops::RawConsole,
    /// Announce the pool to an agent registry.
    #[serde(default)]
    pub registry: Option<RawRegistry>,
    /// OpenTelemetry traces.
    #[serde(default)]
    pub tracing: RawTracing,
}

/// `[cache]`: answers kept in process (moka) and/or in Redis (shared by replicas; Redis,
/// KeyDB and Valkey speak the same protocol). Per-task lifetimes are `cache_ttl_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    /// Turn the cache off entirely.
    pub enabled: bool,
    /// `memory` (in process), `redis`, or `two_level` (memory in front of Redis).
    pub backend: CacheBackend,
    /// Most answers kept in memory.
    pub max_entries: u64,
    /// Most bytes of answers kept in memory (text, Decision and key, approximately).
    pub max_bytes: u64,
    /// Redis URL, e.g. `redis://127.0.0.1:6379/0` (for `redis` and `two_level`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several pools or apps can share one Redis.
    pub key_prefix: String,
    /// Time allowed for one Redis command, in milliseconds; slower counts as an error and
    /// the request goes on without the cache.
    pub redis_timeout_ms: u64,
}

/// Where cached answers live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    Memory,
    Redis,
    TwoLevel,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: CacheBackend::Memory,
            max_entries: 100_000,
            max_bytes: 256 * 1024 * 1024,
            redis_url: None,
            key_prefix: "llm-pool:".to_owned(),
            // A local Redis answers in well under a millisecond; 50 ms means trouble.
            redis_timeout_ms: 50,
        }
    }
}

/// `[qos]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQos {
    /// Active health checks of every endpoint (`/api/tags` or `/v1/models`), in
    /// milliseconds between rounds; 0 turns them off.
    pub health_check_interval_ms: u64,
    /// Time allowed for one health check, in milliseconds.
    pub health_check_timeout_ms: u64,
    /// Hedged calls may add at most this percentage of calls (over a ten-second window) …
    pub hedge_budget_percent: f32,
    /// … plus this many per second, so a quiet pool can still hedge.
    pub hedge_budget_min_per_sec: u32,
    pub breaker: RawBreaker,
    pub retry: RawRetry,
    pub overload: RawOverload,
}

impl Default for RawQos {
    fn default() -> Self {
        let d = crate::qos::QosConfig::default();
        Self {
            health_check_interval_ms: d.health_check_interval.as_millis() as u64,
            health_check_timeout_ms: d.health_check_timeout.as_millis() as u64,
            hedge_budget_percent: d.hedge_budget_percent,
            hedge_budget_min_per_sec: d.hedge_budget_min_per_sec,
            breaker: RawBreaker::default(),
            retry: RawRetry::default(),
            overload: RawOverload::default(),
        }
    }
}

/// `[qos.overload]`: what callers do when every slot of a provider's endpoints is taken
/// (`max_concurrency` each). They wait in one queue per provider, by priority class; inside
/// a class, tenants share by tokens; a caller that cannot be served in time is refused at
/// once (429, or 503 when every class's queue is full) with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOverload {
    /// The classes, highest priority first. Default: `interactive` (waits up to 10 s),
    /// `default` (30 s), `batch` (60 s), none with reserved slots, each promoted one class
    /// after waiting 5 s.
    pub classes: Vec<RawClass>,
    /// The class of requests whose tenant and request name none.
    pub default_class: String,
    /// `/readyz` answers 503 while any provider has this many callers queued, so a load
    /// balancer sends new work to other replicas; 0 = never.
    pub unready_queue_depth: usize,
}

impl Default for RawOverload {
    fn default() -> Self {
        let d = crate::qos::OverloadConfig::default();
        Self {
            classes: d
                .classes
                .iter()
                .map(|c| RawClass {
                    name: c.name.to_string(),
                    reserved: c.reserved,
                    max_queue: c.max_queue,
                    max_wait_ms: c.max_wait.as_millis() as u64,
                    promote_after_ms: c.promote_after.as_millis() as u64,
                })
                .collect(),
            default_class: d.classes[d.default_class].name.to_string(),
            unready_queue_depth: d.unready_queue_depth,
        }
    }
}

/// `[[qos.overload.classes]]`: one priority class.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    pub name: String,
    /// Share (0 ≤ r < 1) of each provider's slots kept for this class: other classes may
    /// not take the last `floor(reserved × slots)` free slots while this class does not
    /// use them. The shares of all classes add up to less than 1.
    #[serde(default)]
    pub reserved: f64,
    /// Most callers of this class queued per provider; the next is refused at once.
    #[serde(default = "default_max_queue")]
    pub max_queue: usize,
    /// Longest a caller of this class waits for a slot, in milliseconds (never past its
    /// deadline less the call's expected length).
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// A caller that has waited this long, in milliseconds, competes in the next higher
    /// class (once, as its tenant for a fair share there), so lower classes are not
    /// starved; 0 = never.
    #[serde(default = "default_promote_after_ms")]
    pub promote_after_ms: u64,
}

fn default_max_queue() -> usize {
    256
}

fn default_max_wait_ms() -> u64 {
    30_000
}

fn default_promote_after_ms() -> u64 {
    5_000
}

/// `[qos.breaker]`: one circuit breaker per endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBreaker {
    /// Trip after this many failures in a row (timeouts, connect errors, 5xx).
    pub consecutive_failures: u32,
    /// Trip when at least this share (0..=1) of the calls in the window failed …
    pub failure_rate: f64,
    /// … and the window holds at least this many calls.
    pub min_calls: u32,
    /// The sliding window for the failure rate, in milliseconds.
    pub window_ms: u64,
    /// First cool-down while open, in milliseconds; doubles on repeated trips.
    pub cooldown_ms: u64,
    /// Longest cool-down, in milliseconds.
    pub max_cooldown_ms: u64,
    /// Calls let through as probes when the cool-down ends.
    pub half_open_probes: u32,
}

impl Default for RawBreaker {
    fn default() -> Self {
        let d = crate::qos::BreakerConfig::default();
        Self {
            consecutive_failures: d.consecutive_failures,
            failure_rate: d.failure_rate,
            min_calls: d.min_calls,
            window_ms: d.window.as_millis() as u64,
            cooldown_ms: d.cooldown.as_millis() as u64,
            max_cooldown_ms: d.max_cooldown.as_millis() as u64,
            half_open_probes: d.half_open_probes,
        }
    }
}

/// `[qos.retry]`: retries of connect errors, 5xx and upstream timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// First backoff, in milliseconds; doubles per retry (full jitter).
    pub backoff_base_ms: u64,
    /// Longest backoff, in milliseconds.
    pub backoff_max_ms: u64,
    /// Retries may add at most this percentage of calls (over ten seconds) …
    pub budget_percent: f32,
    /// … plus this many per second.
    pub budget_min_per_sec: u32,
    /// Randomise backoffs (full jitter). Turn off only for deterministic tests.
    pub jitter: bool,
}

impl Default for RawRetry {
    fn default() -> Self {
        let d = crate::qos::RetryConfig::default();
        Self {
            max_attempts: d.max_attempts,
            backoff_base_ms: d.backoff_base.as_millis() as u64,
            backoff_max_ms: d.backoff_max.as_millis() as u64,
            budget_percent: d.budget_percent,
            budget_min_per_sec: d.budget_min_per_sec,
            jitter: d.jitter,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address of the gRPC listener (`llmpool.v1.LlmPool`, `grpc.health.v1`, reflection).
    pub grpc_addr: String,
    /// Address of the HTTP listener (native, OpenAI- and Ollama-compatible routes, operations).
    pub http_addr: String,
    /// Folder holding prompt templates; relative paths are relative to the config file.
    pub prompts_dir: String,
    /// Largest accepted request body, in bytes (HTTP and gRPC). Larger bodies get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests and streams may take to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Log format: `text` (human) or `json`. `RUST_LOG` sets the filter.
    pub log_format: LogFormat,
    /// Time a client has to send a request's headers (and, on a new connection, its first
    /// byte), in milliseconds; slower connections are closed (slow-loris).
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line and headers), in bytes; larger gets 431 on HTTP/1
    /// and a refused stream on HTTP/2.
    pub max_header_bytes: usize,
    /// TLS on both listeners.
    pub tls: Option<RawTls>,
    /// Most inference requests (and streams) in flight per listener; more are refused at
    /// once with 503 and `Retry-After` (gRPC `UNAVAILABLE`). Operations routes (`/health`,
    /// `/readyz`, `/metrics`) are never refused. 0 = no cap.
    pub max_in_flight: usize,
    /// Most open connections per listener. At the cap, an idle keep-alive connection is
    /// closed to make room; when none is idle, the new connection is refused (HTTP/1.1:
    /// a 503 with `Retry-After`, then closed). 0 = no cap.
    pub max_connections: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            grpc_addr: defaults::GRPC_ADDR.to_owned(),
            http_addr: defaults::HTTP_ADDR.to_owned(),
            prompts_dir: defaults::PROMPTS_DIR.to_owned(),
            max_body_bytes: defaults::MAX_BODY_BYTES,
            shutdown_grace_secs: defaults::SHUTDOWN_GRACE.as_secs(),
            log_format: LogFormat::Text,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            tls: None,
            max_in_flight: 0,
            max_connections: 0,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Longest accepted input (`input` plus every message's content), in characters.
    pub max_input_chars: usize,
    /// Most chat messages in one request.
    pub max_messages: usize,
    /// Ceiling for `max_tokens` on any request or task.
    pub max_tokens: u32,
    /// Deadline for requests that name none and whose task sets none, in milliseconds.
    pub default_deadline_ms: u64,
    /// Upper bound for any deadline, in milliseconds; longer requested deadlines are capped.
    pub max_deadline_ms: u64,
    /// Deepest nesting of arrays and objects accepted in a JSON body.
    pub max_json_depth: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_input_chars: defaults::MAX_INPUT_CHARS,
            max_messages: defaults::MAX_MESSAGES,
            max_tokens: defaults::MAX_TOKENS,
            default_deadline_ms: defaults::DEADLINE.as_millis() as u64,
            max_deadline_ms: defaults::MAX_DEADLINE.as_millis() as u64,
            max_json_depth: 64,
        }
    }
}

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Ollama's API: `/api/chat`, `/api/generate` (NDJSON streaming), `/api/tags`.
    Ollama,
    /// OpenAI's API: `/v1/chat/completions`, `/v1/completions` (SSE streaming), `/v1/models`.
    /// llama.cpp's llama-server, vLLM, LM Studio and cloud APIs speak it.
    Openai,
}

/// `[providers.NAME]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `ollama` or `openai`.
    pub kind: ProviderKind,
    /// The model name sent upstream (`phi3:mini`, `gpt-4o-mini`, the llama-server alias).
    pub model: String,
    /// Base URLs of the endpoints serving this model (replicas), e.g.
    /// `http://localhost:11434`. For `openai` give the base without `/v1`.
    pub endpoints: Vec<String>,
    /// Relative weight of this provider's votes (ensembles) and preference. Default 1.0.
    #[serde(default = "defaults::weight")]
    pub weight: f64,
    /// Price per 1,000 tokens (prompt + completion); 0 for local models.
    #[serde(default)]
    pub cost_per_1k_tokens: f64,
    /// Most requests in flight per endpoint.
    #[serde(default = "defaults::max_concurrency")]
    pub max_concurrency: u32,
    /// Time allowed to open a connection, in milliseconds.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed from sending one upstream call until its answer starts, in
    /// milliseconds: the whole answer for a call that is not streamed, the first event of a
    /// stream. A call past it hands over to the next provider. (`request_timeout_ms` is the
    /// old name of this key and is still read.) The request deadline may cut it shorter.
    #[serde(
        default = "defaults::first_byte_timeout_ms",
        alias = "request_timeout_ms"
    )]
    pub first_byte_timeout_ms: u64,
    /// Longest silence allowed between two pieces of an answer that has started, in
    /// milliseconds. A healthy stream may run as long as the request deadline allows.
    #[serde(default = "defaults::idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Name of the environment variable that holds the API key (sent as a bearer token).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Free tags describing what the model is good at (`reasoning`, `classification` …).
    /// Two are read by the pool: `vision` (the model takes images) and `audio` (it takes
    /// audio); a request carrying images or audio to a provider without them is refused.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Carry request fields the pool does not know to this provider verbatim (OpenAI-kind
    /// only). With `false` such a field is refused with a 400 naming it. Default true.
    #[serde(default = "defaults::yes")]
    pub forward_unknown_fields: bool,
    /// The proxy this provider's endpoints are reached through: `http://[user:pass@]host:port`
    /// (HTTPS endpoints through a CONNECT tunnel, HTTP ones in absolute form). Unset: the
    /// environment's `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, as curl reads
    /// them; `""`: directly, whatever the environment says. Credentials are kept as secrets.
    #[serde(default)]
    pub proxy: Option<String>,
}

/// What a task's answer must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Any non-empty text.
    Text,
    /// A JSON value (code fences around it are tolerated).
    Json,
    /// One of the task's `labels`.
    Label,
    /// A call of one of the request's tools; candidates agree when they call the same
    /// function with the same arguments (compared as canonical JSON).
    #[serde(rename = "tool_call")]
    ToolCall,
}

/// How one answer is made from one or more provider calls (shared/DESIGN.md, "Strategies").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Call the best provider; hedge or fan out; the first valid answer wins.
    Fastest,
    /// Ask `n` candidates; equivalent answers form groups; the largest group wins.
    Voting,
    /// VOTING where each vote counts `weight × reliability` of its provider.
    Weighted,
    /// VOTING that needs `min_agreement` and `min_votes`; else `on_disagreement`.
    Consensus,
    /// Gather `n` candidates; the `judge` provider picks the winner.
    Judge,
    /// Cheapest provider first; escalate until an answer passes `accept`.
    Cascade,
}

impl StrategyKind {
    /// A strategy named by a request: `fastest`, `FASTEST`, `STRATEGY_FASTEST` (gRPC's
    /// enum names).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix("STRATEGY_").unwrap_or(s);
        match s.to_ascii_lowercase().as_str() {
            "fastest" => Some(Self::Fastest),
            "voting" => Some(Self::Voting),
            "weighted" => Some(Self::Weighted),
            "consensus" => Some(Self::Consensus),
            "judge" => Some(Self::Judge),
            "cascade" => Some(Self::Cascade),
            _ => None,
        }
    }

    /// The lower-case name, as in the config file and the Decision.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fastest => "fastest",
            Self::Voting => "voting",
            Self::Weighted => "weighted",
            Self::Consensus => "consensus",
            Self::Judge => "judge",
            Self::Cascade => "cascade",
        }
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str().to_ascii_uppercase())
    }
}

/// What CONSENSUS does when the winning group is too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDisagreement {
    /// Fail with 409 / ABORTED, carrying the candidates.
    Error,
    /// Hand the candidates to the task's judge.
    Judge,
    /// Answer with the largest group anyway, flagged in the Decision.
    Best,
}

/// What an ensemble does when its winner's posterior is below `min_confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLowConfidence {
    /// Fail with 409 / ABORTED (`low_confidence`), carrying the candidates.
    Abstain,
    /// Hand the candidates to the task's judge.
    Escalate,
    /// Answer with the leading group anyway, flagged in the Decision.
    Best,
}

/// When CASCADE accepts a tier's answer instead of escalating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptRule {
    /// Any answer valid for the output kind.
    Valid,
    /// Two samples from the tier agree (same group).
    Agree,
    /// The judge scores the answer at least `accept_threshold` (0..=10).
    Judge,
    /// The answer's posterior, under the tier's learned accuracy, is at least
    /// `min_confidence`: one sample, and a second only when one is not enough (they must
    /// then agree).
    Confidence,
}

/// `[tasks.NAME]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// One line for `/v1/tasks`.
    #[serde(default)]
    pub description: String,
    /// Prompt template file inside `server.prompts_dir`. `{{name}}` is replaced by the
    /// variable `name`; `{{input}}` is the request's input. Omit both `prompt` and `template`
    /// for chat-style tasks that pass the caller's messages through.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Inline template, instead of `prompt`.
    #[serde(default)]
    pub template: Option<String>,
    /// System message sent before the rendered prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Variables callers must supply besides `input`; the config check refuses a template
    /// that uses a variable listed neither here nor as `input`.
    #[serde(default)]
    pub variables: Vec<String>,
    /// `text`, `json` or `label`.
    #[serde(default = "defaults::output")]
    pub output: OutputKind,
    /// The label set, for `output = "label"`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Strategy (only `fastest` so far).
    #[serde(default = "defaults::strategy")]
    pub strategy: StrategyKind,
    /// Candidate providers, best first (required unless the task has a `router`).
    #[serde(default)]
    pub providers: Vec<String>,
    /// Default `max_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Default sampling temperature (0..=2).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Default nucleus sampling (0 < top_p <= 1).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Default deadline, in milliseconds (else `limits.default_deadline_ms`).
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// Upper bound for requested deadlines, in milliseconds (else `limits.max_deadline_ms`).
    #[serde(default)]
    pub max_deadline_ms: Option<u64>,
    /// How long answers may be cached, in seconds (0 = never).
    #[serde(default)]
    pub cache_ttl_secs: u64,
    /// Cache answers sampled with temperature > 0 too (by default only deterministic
    /// answers are cached: a sampled answer is one of many).
    #[serde(default)]
    pub cache_sampled: bool,
    /// FASTEST: after this many milliseconds without an answer, also ask the next provider.
    /// Omit to ask the next provider only when one fails.
    #[serde(default)]
    pub hedge_delay_ms: Option<u64>,
    /// FASTEST: ask this many providers at once (1 = one at a time).
    #[serde(default = "defaults::fanout")]
    pub fanout: u32,
    /// Adaptive hedging: the hedge delay is this percentile (e.g. 95) of the provider's
    /// recent latency; `hedge_delay_ms`, if set, is used until enough calls were seen.
    #[serde(default)]
    pub hedge_percentile: Option<f64>,
    /// Hedge every call of an ensemble too: a call slower than the hedge delay is sent
    /// again to another endpoint of the same provider; the first answer counts.
    #[serde(default)]
    pub hedge_calls: bool,
    /// Providers asked only when every provider in `providers` failed or is unavailable
    /// (e.g. a priced cloud model behind local ones). Never hedged to.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// For `output = "json"`: a JSON Schema (as a TOML table) answers must satisfy.
    #[serde(default)]
    pub schema: Option<toml::Table>,
    /// Routing by classification: every request first goes to this label task (any
    /// strategy), and its answer picks the task that answers (`routes`). The task's own
    /// `providers` may then be left out.
    #[serde(default)]
    pub router: Option<String>,
    /// The task each of the router's labels routes to (every label needs one).
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// Below this confidence of the router's answer (0..1), the request takes `safe_route`.
    #[serde(default)]
    pub route_confidence: Option<f64>,
    /// The router's label whose route is taken when the router is unsure or fails.
    #[serde(default)]
    pub safe_route: Option<String>,

    // --- ensembles (VOTING, WEIGHTED, CONSENSUS, JUDGE, CASCADE) ---
    /// Candidates per request. Providers are asked in turn; once each was asked, the list
    /// starts over with new samples (another seed, `sample_temperature`). Default: one per
    /// provider.
    #[serde(default)]
    pub n: Option<u32>,
    /// Largest `n` a request may ask for.
    #[serde(default = "defaults::max_n")]
    pub max_n: u32,
    /// Sampling temperature for repeated samples of one provider (its first sample keeps
    /// the task's temperature), so that repeats can differ.
    #[serde(default = "defaults::sample_temperature")]
    pub sample_temperature: f32,
    /// `text` answers: group answers whose similarity is at least this (0..=1). Similarity
    /// is the Jaccard index of the answers' sets of lower-cased words. Omit to group only
    /// answers that are equal after normalisation (case, spacing, trailing punctuation).
    #[serde(default)]
    pub similarity: Option<f64>,
    /// Stop VOTING/WEIGHTED/CONSENSUS as soon as no other group can win, cancelling the
    /// calls still running.
    #[serde(default = "defaults::early_stop")]
    pub early_stop: bool,
    /// CONSENSUS: least share of the valid answers the winning group must hold (0..=1,
    /// compared with `>=`). Unset: a strict majority, more than half, so an even split
    /// (2–2) is no consensus.
    #[serde(default)]
    pub min_agreement: Option<f64>,
    /// CONSENSUS: least number of answers in the winning group.
    #[serde(default = "defaults::min_votes")]
    pub min_votes: u32,
    /// CONSENSUS: `error`, `judge` or `best`.
    #[serde(default = "defaults::on_disagreement")]
    pub on_disagreement: OnDisagreement,
    /// VOTING/WEIGHTED/CONSENSUS: draw candidates in waves and stop as soon as the leading
    /// answer's posterior probability (under the providers' learned accuracies) reaches this
    /// (0..1); `n` is then the most calls made. Unset: all `n` calls at once.
    #[serde(default)]
    pub confidence: Option<f64>,
    /// VOTING/WEIGHTED/CONSENSUS: the least posterior probability of the winning answer
    /// (0..1); below it, `on_low_confidence` decides. Unset: no such requirement.
    #[serde(default)]
    pub min_confidence: Option<f64>,
    /// Below `min_confidence`: `abstain` (fail with `low_confidence`, carrying the
    /// candidates), `escalate` (hand the candidates to the judge) or `best` (answer, flagged
    /// `low_confidence`).
    #[serde(default = "defaults::on_low_confidence")]
    pub on_low_confidence: OnLowConfidence,
    /// How many answers a wrong provider chooses among, for the posterior: the task's labels
    /// by default, else 10.
    #[serde(default)]
    pub answer_space: Option<u32>,
    /// JUDGE (and CONSENSUS with `on_disagreement = "judge"`, CASCADE with `accept =
    /// "judge"`): the provider that judges.
    #[serde(default)]
    pub judge: Option<String>,
    /// The judge's prompt file in `prompts_dir`; it sees `{{input}}` (the question) and
    /// `{{candidates}}` (numbered answers) and must answer
    /// `{"winner": N, "scores": {"N": 0-10}, "rationale": "..."}`.
    #[serde(default = "defaults::judge_prompt")]
    pub judge_prompt: String,
    /// CASCADE: `valid`, `agree` or `judge`.
    #[serde(default = "defaults::accept")]
    pub accept: AcceptRule,
    /// CASCADE with `accept = "judge"`: least judge score (0..=10) to accept.
    #[serde(default = "defaults::accept_threshold")]
    pub accept_threshold: f64,
    /// Whether requests may name another strategy or `n` (within `max_n`).
    #[serde(default = "defaults::allow_override")]
    pub allow_override: bool,
}
