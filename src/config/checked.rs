//! The checked configuration. Fields are private behind getters where an invalid value could
//! otherwise be built; only `validate.rs` constructs these types.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::Template;
use super::raw::{
    AcceptRule, LogFormat, OnDisagreement, OnLowConfidence, OutputKind, ProviderKind, StrategyKind,
};
use super::security::{AuthConfig, RateLimitConfig, Tenant, TlsConfig};

/// A whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub(super) server: ServerConfig,
    pub(super) limits: Limits,
    pub(super) providers: BTreeMap<String, Arc<ProviderConfig>>,
    pub(super) tasks: BTreeMap<String, Arc<TaskConfig>>,
    pub(super) aliases: BTreeMap<String, Target>,
    pub(super) qos: Arc<crate::qos::QosConfig>,
    pub(super) cache: CacheConfig,
    pub(super) auth: Arc<AuthConfig>,
    pub(super) tenants: BTreeMap<String, Arc<Tenant>>,
    pub(super) rate_limit: RateLimitConfig,
    pub(super) usage: super::ops::UsageConfig,
    pub(super) learning: super::ops::LearningConfig,
    pub(super) console: super::ops::ConsoleConfig,
    pub(super) registry: Option<super::ops::RegistryConfig>,
    pub(super) tracing: super::ops::TracingConfig,
}

/// `[cache]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub(super) enabled: bool,
    pub(super) backend: super::raw::CacheBackend,
    pub(super) max_entries: u64,
    pub(super) max_bytes: u64,
    pub(super) redis_url: Option<String>,
    pub(super) key_prefix: String,
    pub(super) redis_timeout: Duration,
}

// === impl CacheConfig (getters) ===

impl CacheConfig {
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn backend(&self) -> super::raw::CacheBackend {
        self.backend
    }

    pub fn max_entries(&self) -> u64 {
        self.max_entries
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }
}

impl Config {
    pub fn server(&self) -> &ServerConfig {
        &self.server
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    pub fn providers(&self) -> &BTreeMap<String, Arc<ProviderConfig>> {
        &self.providers
    }
    pub fn tasks(&self) -> &BTreeMap<String, Arc<TaskConfig>> {
        &self.tasks
    }
    pub fn aliases(&self) -> &BTreeMap<String, Target> {
        &self.aliases
    }
    pub fn qos(&self) -> &Arc<crate::qos::QosConfig> {
        &self.qos
    }
    pub fn cache(&self) -> &CacheConfig {
        &self.cache
    }
    pub fn auth(&self) -> &Arc<AuthConfig> {
        &self.auth
    }
    pub fn tenants(&self) -> &BTreeMap<String, Arc<Tenant>> {
        &self.tenants
    }
    pub fn rate_limit(&self) -> &RateLimitConfig {
        &self.rate_limit
    }
    pub fn usage(&self) -> &super::ops::UsageConfig {
        &self.usage
    }

    /// `[learning]`.
    pub fn learning(&self) -> &super::ops::LearningConfig {
        &self.learning
    }

    /// `[console]`.
    pub fn console(&self) -> &super::ops::ConsoleConfig {
        &self.console
    }
    pub fn registry(&self) -> Option<&super::ops::RegistryConfig> {
        self.registry.as_ref()
    }
    pub fn tracing(&self) -> &super::ops::TracingConfig {
        &self.tracing
    }

    /// Resolves the `model` field of an OpenAI/Ollama/native request: `task:NAME`, an alias,
    /// a provider name, or a provider's upstream model name.
    pub fn resolve_model(&self, model: &str) -> Option<Target> {
        if let Some(task) = model.strip_prefix("task:") {
            return self
                .tasks
                .contains_key(task)
                .then(|| Target::Task(task.to_owned()));
        }
        if let Some(target) = self.aliases.get(model) {
            return Some(target.clone());
        }
        if self.providers.contains_key(model) {
            return Some(Target::Provider(model.to_owned()));
        }
        self.providers
            .iter()
            .find(|(_, p)| p.model == model)
            .map(|(name, _)| Target::Provider(name.clone()))
    }
}

/// What a `model` name or alias points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A configured task.
    Task(String),
    /// One provider, called directly with the caller's messages.
    Provider(String),
}

/// `[server]`, checked.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(super) grpc_addr: SocketAddr,
    pub(super) http_addr: SocketAddr,
    pub(super) prompts_dir: PathBuf,
    pub(super) max_body_bytes: usize,
    pub(super) shutdown_grace: Duration,
    pub(super) log_format: LogFormat,
    pub(super) header_read_timeout: Duration,
    pub(super) max_header_bytes: usize,
    pub(super) tls: Option<TlsConfig>,
    pub(super) max_in_flight: usize,
    pub(super) max_connections: usize,
}

// === impl ServerConfig (getters) ===

impl ServerConfig {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn prompts_dir(&self) -> &std::path::Path {
        &self.prompts_dir
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// Most inference requests in flight per listener (0: no cap).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Most open connections per listener (0: no cap).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }
}

/// `[limits]`, checked.
#[derive(Debug, Clone)]
pub struct Limits {
    pub(super) max_input_chars: usize,
    pub(super) max_messages: usize,
    pub(super) max_tokens: u32,
    pub(super) default_deadline: Duration,
    pub(super) max_deadline: Duration,
    pub(super) max_json_depth: usize,
}

// === impl Limits (getters) ===

impl Limits {
    pub fn max_input_chars(&self) -> usize {
        self.max_input_chars
    }

    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    pub fn default_deadline(&self) -> Duration {
        self.default_deadline
    }

    pub fn max_deadline(&self) -> Duration {
        self.max_deadline
    }

    pub fn max_json_depth(&self) -> usize {
        self.max_json_depth
    }
}

/// A provider, checked. Equality is used on reload: a provider whose config is unchanged
/// keeps its runtime state (connections, load, health).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub(super) name: String,
    pub(super) kind: ProviderKind,
    pub(super) model: String,
    pub(super) endpoints: Vec<url_like::BaseUrl>,
    pub(super) weight: f64,
    pub(super) cost_per_1k_tokens: f64,
    pub(super) max_concurrency: u32,
    pub(super) connect_timeout: Duration,
    /// Until the answer starts (a whole answer, or a stream's first event).
    pub(super) first_byte_timeout: Duration,
    /// Between two pieces of an answer that started.
    pub(super) idle_timeout: Duration,
    pub(super) api_key_env: Option<String>,
    pub(super) api_key: Option<SecretString>,
    pub(super) capabilities: Vec<String>,
    pub(super) forward_unknown_fields: bool,
    /// `Some("")`: no proxy; `None`: the environment's.
    pub(super) proxy: Option<SecretString>,
    /// `[qos]`: part of the provider's config (a change reconfigures it, keeping endpoint state).
    pub(super) qos: Arc<crate::qos::QosConfig>,
}

// === impl ProviderConfig (getters) ===

impl ProviderConfig {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn endpoints(&self) -> &[url_like::BaseUrl] {
        &self.endpoints
    }

    pub fn weight(&self) -> f64 {
        self.weight
    }

    pub fn cost_per_1k_tokens(&self) -> f64 {
        self.cost_per_1k_tokens
    }

    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Until the answer starts (a whole answer, or a stream's first event).
    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    /// Between two pieces of an answer that started.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    pub fn api_key_env(&self) -> Option<&str> {
        self.api_key_env.as_deref()
    }

    pub fn api_key(&self) -> Option<&SecretString> {
        self.api_key.as_ref()
    }

    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// Carry request fields the pool does not know upstream verbatim.
    pub fn forward_unknown_fields(&self) -> bool {
        self.forward_unknown_fields
    }

    /// The proxy set for this provider (`Some("")`: none, `None`: the environment's).
    pub fn proxy(&self) -> Option<&SecretString> {
        self.proxy.as_ref()
    }

    /// `[qos]`: part of the provider's config (a change reconfigures it, keeping endpoint state).
    pub fn qos(&self) -> &Arc<crate::qos::QosConfig> {
        &self.qos
    }
}

impl PartialEq for ProviderConfig {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        self.name == other.name
            && self.kind == other.kind
            && self.model == other.model
            && self.endpoints == other.endpoints
            && self.weight == other.weight
            && self.cost_per_1k_tokens == other.cost_per_1k_tokens
            && self.max_concurrency == other.max_concurrency
            && self.connect_timeout == other.connect_timeout
            && self.first_byte_timeout == other.first_byte_timeout
            && self.idle_timeout == other.idle_timeout
            && self.capabilities == other.capabilities
            && self.forward_unknown_fields == other.forward_unknown_fields
            && self.proxy.as_ref().map(|p| p.expose_secret().to_owned())
                == other.proxy.as_ref().map(|p| p.expose_secret().to_owned())
            && self.qos == other.qos
            && self.api_key.as_ref().map(|k| k.expose_secret().to_owned())
                == other.api_key.as_ref().map(|k| k.expose_secret().to_owned())
    }
}

/// A task, checked.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    pub(super) name: String,
    pub(super) description: String,
    /// `None` for chat-style tasks that pass the caller's messages through.
    pub(super) template: Option<Template>,
    pub(super) system: Option<String>,
    pub(super) variables: Vec<String>,
    pub(super) output: OutputKind,
    pub(super) labels: Vec<String>,
    pub(super) strategy: StrategyKind,
    pub(super) providers: Vec<String>,
    pub(super) max_tokens: Option<u32>,
    pub(super) temperature: Option<f32>,
    pub(super) top_p: Option<f32>,
    pub(super) deadline: Duration,
    pub(super) max_deadline: Duration,
    pub(super) cache_ttl: Duration,
    pub(super) hedge_delay: Option<Duration>,
    pub(super) fanout: usize,
    pub(super) hedge_percentile: Option<f64>,
    pub(super) hedge_calls: bool,
    /// Providers asked only after every one in `providers` failed.
    pub(super) fallback: Vec<String>,
    /// For `json` output: the schema answers must satisfy, and its source (for the cache
    /// key).
    pub(super) schema: Option<Arc<jsonschema::Validator>>,
    pub(super) schema_source: Option<serde_json::Value>,
    /// Cache answers sampled with temperature > 0 too.
    pub(super) cache_sampled: bool,
    pub(super) ensemble: Ensemble,
    pub(super) routing: Option<Routing>,
}

/// A task routed by classification (`router`, `routes`, `route_confidence`, `safe_route`).
#[derive(Debug, Clone)]
pub struct Routing {
    pub router: String,
    pub routes: BTreeMap<String, String>,
    pub confidence: Option<f64>,
    pub safe: String,
}

// === impl TaskConfig ===

/// Read access to a checked task; only `config/` builds one (`validate.rs`, or
/// [`TaskConfig::direct`]), so a task that skipped validation cannot exist.
impl TaskConfig {
    /// The implicit task of a provider called directly (OpenAI/Ollama `model` naming a
    /// provider): the caller's messages pass through to that provider alone, FASTEST, no
    /// cache, the pool's default deadlines.
    pub fn direct(provider: &str, limits: &Limits) -> Self {
        Self {
            name: provider.to_owned(),
            description: format!("provider {provider}, called directly"),
            template: None,
            system: None,
            variables: Vec::new(),
            output: OutputKind::Text,
            labels: Vec::new(),
            strategy: StrategyKind::Fastest,
            providers: vec![provider.to_owned()],
            max_tokens: None,
            temperature: None,
            top_p: None,
            deadline: limits.default_deadline,
            max_deadline: limits.max_deadline,
            cache_ttl: Duration::ZERO,
            hedge_delay: None,
            fanout: 1,
            hedge_percentile: None,
            hedge_calls: false,
            fallback: Vec::new(),
            schema: None,
            schema_source: None,
            cache_sampled: false,
            ensemble: Ensemble::single(),
            routing: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    /// `None` for chat-style tasks that pass the caller's messages through.
    pub fn template(&self) -> Option<&Template> {
        self.template.as_ref()
    }
    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }
    pub fn variables(&self) -> &[String] {
        &self.variables
    }
    pub fn output(&self) -> OutputKind {
        self.output
    }
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
    pub fn strategy(&self) -> StrategyKind {
        self.strategy
    }
    pub fn providers(&self) -> &[String] {
        &self.providers
    }
    pub fn max_tokens(&self) -> Option<u32> {
        self.max_tokens
    }
    pub fn temperature(&self) -> Option<f32> {
        self.temperature
    }
    pub fn top_p(&self) -> Option<f32> {
        self.top_p
    }
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    pub fn max_deadline(&self) -> Duration {
        self.max_deadline
    }
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }
    pub fn hedge_delay(&self) -> Option<Duration> {
        self.hedge_delay
    }
    pub fn fanout(&self) -> usize {
        self.fanout
    }
    pub fn hedge_percentile(&self) -> Option<f64> {
        self.hedge_percentile
    }
    pub fn hedge_calls(&self) -> bool {
        self.hedge_calls
    }
    /// Providers asked only after every one in `providers` failed.
    pub fn fallback(&self) -> &[String] {
        &self.fallback
    }
    /// For `json` output: the schema answers must satisfy.
    pub fn schema(&self) -> Option<&jsonschema::Validator> {
        self.schema.as_deref()
    }
    /// The schema's source (for the cache key).
    pub fn schema_source(&self) -> Option<&serde_json::Value> {
        self.schema_source.as_ref()
    }
    /// Cache answers sampled with temperature > 0 too.
    pub fn cache_sampled(&self) -> bool {
        self.cache_sampled
    }
    pub fn ensemble(&self) -> &Ensemble {
        &self.ensemble
    }
    /// Routing by classification, when the task has a router.
    pub fn routing(&self) -> Option<&Routing> {
        self.routing.as_ref()
    }
}

/// Ensemble settings of a task (see `raw::RawTask` for each field's meaning).
#[derive(Debug, Clone)]
pub struct Ensemble {
    pub(super) n: usize,
    pub(super) max_n: usize,
    pub(super) sample_temperature: f32,
    pub(super) similarity: Option<f64>,
    pub(super) early_stop: bool,
    /// `None`: a strict majority (see [`Ensemble::agrees`]).
    pub(super) min_agreement: Option<f64>,
    pub(super) min_votes: usize,
    pub(super) on_disagreement: OnDisagreement,
    pub(super) confidence: Option<f64>,
    pub(super) min_confidence: Option<f64>,
    pub(super) on_low_confidence: OnLowConfidence,
    pub(super) answer_space: Option<u32>,
    pub(super) judge: Option<String>,
    pub(super) judge_template: Option<Template>,
    pub(super) accept: AcceptRule,
    pub(super) accept_threshold: f64,
    pub(super) allow_override: bool,
}

// === impl Ensemble (getters) ===

impl Ensemble {
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn max_n(&self) -> usize {
        self.max_n
    }

    pub fn sample_temperature(&self) -> f32 {
        self.sample_temperature
    }

    pub fn similarity(&self) -> Option<f64> {
        self.similarity
    }

    pub fn early_stop(&self) -> bool {
        self.early_stop
    }

    /// `None`: a strict majority (see [`Ensemble::agrees`]).
    pub fn min_agreement(&self) -> Option<f64> {
        self.min_agreement
    }

    pub fn min_votes(&self) -> usize {
        self.min_votes
    }

    pub fn on_disagreement(&self) -> OnDisagreement {
        self.on_disagreement
    }

    pub fn judge(&self) -> Option<&str> {
        self.judge.as_deref()
    }

    /// The posterior at which VOTING/WEIGHTED/CONSENSUS stop drawing candidates.
    pub fn confidence(&self) -> Option<f64> {
        self.confidence
    }

    /// The least posterior of the winning answer.
    pub fn min_confidence(&self) -> Option<f64> {
        self.min_confidence
    }

    pub fn on_low_confidence(&self) -> OnLowConfidence {
        self.on_low_confidence
    }

    /// `answer_space` as set (see `strategies::posterior::answer_space`).
    pub fn answer_space(&self) -> Option<u32> {
        self.answer_space
    }

    pub fn judge_template(&self) -> Option<&Template> {
        self.judge_template.as_ref()
    }

    pub fn accept(&self) -> AcceptRule {
        self.accept
    }

    pub fn accept_threshold(&self) -> f64 {
        self.accept_threshold
    }

    pub fn allow_override(&self) -> bool {
        self.allow_override
    }
}

impl Ensemble {
    /// Whether a group holding `share` of the valid answers has consensus: at least
    /// `min_agreement` when the task sets it, else a strict majority (more than half, so
    /// that an even split is refused).
    pub fn agrees(&self, share: f64) -> bool {
        match self.min_agreement {
            Some(min) => share >= min,
            None => share > 0.5,
        }
    }

    /// The threshold as shown in errors: `min_agreement`, or one half for the strict
    /// majority (which must be exceeded).
    pub fn agreement_threshold(&self) -> f64 {
        self.min_agreement.unwrap_or(0.5)
    }

    /// One candidate, no judge: for providers called directly.
    pub fn single() -> Self {
        Self {
            n: 1,
            max_n: super::defaults::max_n() as usize,
            sample_temperature: super::defaults::sample_temperature(),
            similarity: None,
            early_stop: true,
            min_agreement: None,
            min_votes: 1,
            on_disagreement: OnDisagreement::Best,
            confidence: None,
            min_confidence: None,
            on_low_confidence: OnLowConfidence::Best,
            answer_space: None,
            judge: None,
            judge_template: None,
            accept: AcceptRule::Valid,
            accept_threshold: super::defaults::accept_threshold(),
            allow_override: true,
        }
    }
}

pub(crate) mod url_like {
    //! An endpoint base URL: scheme `http` or `https`, no trailing slash.

    /// A checked endpoint base URL, e.g. `http://localhost:11434`.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub struct BaseUrl(String);

    impl BaseUrl {
        pub fn parse(s: &str) -> Result<Self, String> {
            let s = s.trim().trim_end_matches('/');
            let rest = s
                .strip_prefix("http://")
                .or_else(|| s.strip_prefix("https://"))
                .ok_or_else(|| format!("`{s}` must start with http:// or https://"))?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err(format!("`{s}` has no host"));
            }
            // Endpoints are shown on /health, in Decisions and in errors: credentials in
            // them would leak. Keys belong in `api_key_env`.
            if rest
                .split('/')
                .next()
                .is_some_and(|authority| authority.contains('@'))
            {
                return Err("credentials in endpoint URLs are refused; use api_key_env".into());
            }
            let trimmed = s.strip_suffix("/v1").unwrap_or(s);
            reqwest::Url::parse(trimmed).map_err(|e| format!("`{s}`: {e}"))?;
            // The client takes the URL apart once, with `http`'s parser: what it refuses
            // (a host that is not ASCII, say) is refused here rather than on every call.
            trimmed
                .parse::<http::Uri>()
                .map_err(|e| format!("`{s}`: {e}"))?;
            Ok(Self(trimmed.to_owned()))
        }
        pub fn as_str(&self) -> &str {
            &self.0
        }
    }

    impl std::fmt::Display for BaseUrl {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
}
