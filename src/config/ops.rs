//! `[usage]`, `[registry]` and `[tracing]`: what operators see of the pool and how it
//! announces itself. Process-wide: changes take effect on restart, except the registry's
//! advertised capabilities, which follow the live config.

use serde::Deserialize;

/// `[learning]`: the providers' learned accuracies and callers' feedback on answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLearning {
    /// Answered requests remembered for `POST /v1/feedback` (their graded answers, not their
    /// text beyond the normalised answers). 0 = no feedback.
    pub feedback_window: usize,
    /// Redis URL: when set, every replica adds the evidence it gathers to one Redis hash
    /// per task and reads the fleet's totals back, so that all replicas weigh votes alike.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
    /// Time allowed per Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// How often evidence is exchanged with Redis, in milliseconds.
    pub sync_interval_ms: u64,
}

impl Default for RawLearning {
    fn default() -> Self {
        Self {
            feedback_window: 10_000,
            redis_url: None,
            key_prefix: "llm-pool:accuracy:".to_owned(),
            redis_timeout_ms: 50,
            sync_interval_ms: 2_000,
        }
    }
}

/// `[console]`: the operator console (`/ui`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConsole {
    /// The most recent requests kept for the console (their Decisions, in memory only);
    /// nothing beyond them is stored. 0 = none.
    pub recent_requests: usize,
    /// How often the console's live view is sent when something changed, in milliseconds.
    pub push_interval_ms: u64,
}

impl Default for RawConsole {
    fn default() -> Self {
        Self {
            recent_requests: 128,
            push_interval_ms: 500,
        }
    }
}

/// `[console]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub(super) recent_requests: usize,
    pub(super) push_interval: std::time::Duration,
}

impl ConsoleConfig {
    pub fn recent_requests(&self) -> usize {
        self.recent_requests
    }

    pub fn push_interval(&self) -> std::time::Duration {
        self.push_interval
    }
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        check_console(&mut |_, _| {}, &RawConsole::default())
    }
}

pub(super) fn check_console(err: &mut dyn FnMut(String, String), c: &RawConsole) -> ConsoleConfig {
    if c.recent_requests > 100_000 {
        err(
            "console.recent_requests".into(),
            "must be at most 100000".into(),
        );
    }
    if !(100..=60_000).contains(&c.push_interval_ms) {
        err(
            "console.push_interval_ms".into(),
            "must be between 100 and 60000".into(),
        );
    }
    ConsoleConfig {
        recent_requests: c.recent_requests.min(100_000),
        push_interval: std::time::Duration::from_millis(c.push_interval_ms.clamp(100, 60_000)),
    }
}

/// `[usage]`: tokens and cost per tenant and provider, on `GET /v1/usage` and `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUsage {
    /// Price per 1,000 tokens of the hosted model the pool replaces; "cost saved" is what the
    /// tokens served would have cost at this price minus what they cost here (local providers
    /// cost 0; priced ones their `cost_per_1k_tokens`). 0 = do not compute it.
    pub reference_cost_per_1k_tokens: f64,
    /// Redis URL: when set, every replica adds its usage there and `/v1/usage` reports the
    /// sum over replicas (kept across restarts). Unset: this process only, since it started.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
    /// Time allowed per Redis call, in milliseconds.
    pub redis_timeout_ms: u64,
    /// Label the usage metrics (`llm_pool_tenant_*`, `llm_pool_cost*`) by tenant. Unset: only
    /// when `/metrics` itself requires credentials (`[auth] operations = true`), so that
    /// what each tenant spends is not readable by anyone who can reach `/metrics`. Without
    /// the label the metrics are summed over tenants; `/v1/usage` (admin) always has them
    /// per tenant.
    pub tenant_metrics: Option<bool>,
}

impl Default for RawUsage {
    fn default() -> Self {
        Self {
            reference_cost_per_1k_tokens: 0.0,
            redis_url: None,
            key_prefix: "llm-pool:usage:".to_owned(),
            redis_timeout_ms: 50,
            tenant_metrics: None,
        }
    }
}

/// `[registry]`: announce this pool to an HTTP agent registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    /// The registry's base URL; the pool calls `POST {url}/agents` (register, again on
    /// every config reload) and `DELETE {url}/agents/{id}` (on shutdown).
    pub url: String,
    /// This pool's agent id.
    #[serde(default = "default_agent_id")]
    pub agent_id: String,
    /// The HTTP URL other services reach this pool at (e.g. `http://llm-pool:7071`).
    pub endpoint: String,
    /// The gRPC URL other services reach this pool at, if different.
    #[serde(default)]
    pub grpc_endpoint: Option<String>,
    /// Environment variable holding a bearer token for the registry.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Time allowed per registry call, in milliseconds.
    #[serde(default = "default_registry_timeout")]
    pub timeout_ms: u64,
}

fn default_agent_id() -> String {
    "llm-pool".to_owned()
}
fn default_registry_timeout() -> u64 {
    2000
}

/// `[tracing]`: OpenTelemetry traces over OTLP. Off by default; unset keys fall back to the
/// standard `OTEL_*` environment variables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTracing {
    /// Export traces. Also on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and this is unset.
    pub enabled: Option<bool>,
    /// Collector URL (`OTEL_EXPORTER_OTLP_ENDPOINT`), e.g. `http://127.0.0.1:4317` for gRPC
    /// or `http://127.0.0.1:4318` for HTTP.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf` (`OTEL_EXPORTER_OTLP_PROTOCOL`; default `grpc`).
    pub protocol: Option<String>,
    /// Share of new traces sampled, 0..=1 (`OTEL_TRACES_SAMPLER_ARG`; default 1). A request
    /// with a sampled incoming `traceparent` is always traced.
    pub sampling_ratio: Option<f64>,
    /// `service.name` (`OTEL_SERVICE_NAME`; default `llm-pool`).
    pub service_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Checked forms.

/// `[learning]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningConfig {
    pub(super) feedback_window: usize,
    pub(super) redis_url: Option<String>,
    pub(super) key_prefix: String,
    pub(super) redis_timeout: std::time::Duration,
    pub(super) sync_interval: std::time::Duration,
}

// === impl LearningConfig (getters) ===

impl LearningConfig {
    pub fn feedback_window(&self) -> usize {
        self.feedback_window
    }

    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    pub fn redis_timeout(&self) -> std::time::Duration {
        self.redis_timeout
    }

    pub fn sync_interval(&self) -> std::time::Duration {
        self.sync_interval
    }
}

impl Default for LearningConfig {
    fn default() -> Self {
        check_learning(&mut |_, _| {}, &RawLearning::default())
    }
}

/// A section's Redis link: a URL that parses and a timeout above 0.
fn check_redis(
    err: &mut dyn FnMut(String, String),
    section: &str,
    url: Option<&str>,
    timeout_ms: u64,
) {
    if url.is_some_and(|u| redis::Client::open(u).is_err()) {
        // Not echoed: the URL may hold a password.
        err(
            format!("{section}.redis_url"),
            "not a valid redis:// URL".into(),
        );
    }
    if timeout_ms == 0 {
        err(
            format!("{section}.redis_timeout_ms"),
            "must be greater than 0".into(),
        );
    }
}

pub(super) fn check_learning(
    err: &mut dyn FnMut(String, String),
    l: &RawLearning,
) -> LearningConfig {
    if l.feedback_window > 10_000_000 {
        err(
            "learning.feedback_window".into(),
            "must be at most 10000000".into(),
        );
    }
    check_redis(err, "learning", l.redis_url.as_deref(), l.redis_timeout_ms);
    if l.sync_interval_ms < 10 {
        err(
            "learning.sync_interval_ms".into(),
            "must be at least 10".into(),
        );
    }
    LearningConfig {
        feedback_window: l.feedback_window,
        redis_url: l.redis_url.clone(),
        key_prefix: l.key_prefix.clone(),
        redis_timeout: std::time::Duration::from_millis(l.redis_timeout_ms),
        sync_interval: std::time::Duration::from_millis(l.sync_interval_ms.max(10)),
    }
}

/// `[usage]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageConfig {
    pub(super) reference_cost_per_1k_tokens: f64,
    /// `None`: label by tenant only when `/metrics` requires credentials.
    pub(super) tenant_metrics: Option<bool>,
    pub(super) redis_url: Option<String>,
    pub(super) key_prefix: String,
    pub(super) redis_timeout: std::time::Duration,
}

// === impl UsageConfig (getters) ===

impl UsageConfig {
    pub fn reference_cost_per_1k_tokens(&self) -> f64 {
        self.reference_cost_per_1k_tokens
    }

    /// `None`: label by tenant only when `/metrics` requires credentials.
    pub fn tenant_metrics(&self) -> Option<bool> {
        self.tenant_metrics
    }

    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    pub fn redis_timeout(&self) -> std::time::Duration {
        self.redis_timeout
    }
}

/// `[registry]`, checked.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub(super) url: String,
    pub(super) agent_id: String,
    pub(super) endpoint: String,
    pub(super) grpc_endpoint: Option<String>,
    pub(super) token: Option<secrecy::SecretString>,
    pub(super) timeout: std::time::Duration,
}

// === impl RegistryConfig (getters) ===

impl RegistryConfig {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn grpc_endpoint(&self) -> Option<&str> {
        self.grpc_endpoint.as_deref()
    }

    pub fn token(&self) -> Option<&secrecy::SecretString> {
        self.token.as_ref()
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// `[tracing]`, checked, with the `OTEL_*` fallbacks applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    pub(super) enabled: bool,
    pub(super) endpoint: String,
    pub(super) protocol: OtlpProtocol,
    pub(super) sampling_ratio: f64,
    pub(super) service_name: String,
}

// === impl TracingConfig (getters) ===

impl TracingConfig {
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    pub fn sampling_ratio(&self) -> f64 {
        self.sampling_ratio
    }

    pub fn service_name(&self) -> &str {
        &self.service_name
    }
}

pub(super) fn check_usage(err: &mut dyn FnMut(String, String), u: &RawUsage) -> UsageConfig {
    if !(u.reference_cost_per_1k_tokens.is_finite() && u.reference_cost_per_1k_tokens >= 0.0) {
        err(
            "usage.reference_cost_per_1k_tokens".into(),
            "must be 0 or more".into(),
        );
    }
    check_redis(err, "usage", u.redis_url.as_deref(), u.redis_timeout_ms);
    UsageConfig {
        reference_cost_per_1k_tokens: u.reference_cost_per_1k_tokens,
        tenant_metrics: u.tenant_metrics,
        redis_url: u.redis_url.clone(),
        key_prefix: u.key_prefix.clone(),
        redis_timeout: std::time::Duration::from_millis(u.redis_timeout_ms),
    }
}

pub(super) fn check_registry(
    err: &mut dyn FnMut(String, String),
    r: &RawRegistry,
) -> Option<RegistryConfig> {
    let before_ok = std::cell::Cell::new(true);
    let mut bad = |path: &str, m: &str| {
        before_ok.set(false);
        err(format!("registry.{path}"), m.to_owned());
    };
    for (key, value) in [("url", &r.url), ("endpoint", &r.endpoint)] {
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            bad(key, "must be an http:// or https:// URL");
        }
    }
    if r.agent_id.is_empty() || r.agent_id.contains('/') {
        bad("agent_id", "must be non-empty and contain no `/`");
    }
    let token = match &r.token_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(secrecy::SecretString::from(v)),
            _ => {
                bad("token_env", "names an environment variable that is not set");
                None
            }
        },
    };
    if r.timeout_ms == 0 {
        bad("timeout_ms", "must be greater than 0");
    }
    before_ok.get().then(|| RegistryConfig {
        url: r.url.trim_end_matches('/').to_owned(),
        agent_id: r.agent_id.clone(),
        endpoint: r.endpoint.clone(),
        grpc_endpoint: r.grpc_endpoint.clone(),
        token,
        timeout: std::time::Duration::from_millis(r.timeout_ms),
    })
}

pub(super) fn check_tracing(err: &mut dyn FnMut(String, String), t: &RawTracing) -> TracingConfig {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let endpoint_env = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    let enabled = t.enabled.unwrap_or(endpoint_env.is_some());
    let protocol = match t
        .protocol
        .clone()
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .as_deref()
    {
        None | Some("grpc") => OtlpProtocol::Grpc,
        Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
        Some(_) => {
            err(
                "tracing.protocol".into(),
                "must be `grpc` or `http/protobuf`".into(),
            );
            OtlpProtocol::Grpc
        }
    };
    let endpoint = t
        .otlp_endpoint
        .clone()
        .or(endpoint_env)
        .unwrap_or_else(|| match protocol {
            OtlpProtocol::Grpc => "http://127.0.0.1:4317".to_owned(),
            OtlpProtocol::HttpProtobuf => "http://127.0.0.1:4318".to_owned(),
        });
    let sampling_ratio = t
        .sampling_ratio
        .or_else(|| env("OTEL_TRACES_SAMPLER_ARG").and_then(|v| v.parse().ok()))
        .unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sampling_ratio) {
        err(
            "tracing.sampling_ratio".into(),
            "must be between 0 and 1".into(),
        );
    }
    TracingConfig {
        enabled,
        endpoint,
        protocol,
        sampling_ratio,
        service_name: t
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "llm-pool".to_owned()),
    }
}
