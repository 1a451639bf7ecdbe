//! `[auth]`, `[tenants.NAME]`, `[rate_limit]` and `[server.tls]`: who may call, what each
//! caller may do and how much, and the listeners' certificates. The serde structs document
//! every key; [`check`] turns them into checked values. Secrets are read from the
//! environment or files here, once per load, and never echoed in errors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{SecretSlice, SecretString};
use serde::Deserialize;

use super::validate::{is_env_name, resolve};

/// `[auth]`: authentication per route group. Credentials name a tenant (`[tenants.NAME]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// Require credentials on the inference routes (`/v1/query`, `/v1/tasks`, the OpenAI-
    /// and Ollama-compatible routes, gRPC `llmpool.v1.LlmPool`). On by default.
    pub inference: bool,
    /// Require credentials on `/admin/...` and `/v1/usage`; the tenant must also have
    /// `admin = true`. On by default.
    pub admin: bool,
    /// Require credentials on `/health`, `/readyz`, `/info`, `/metrics` and gRPC health and
    /// reflection. Off by default: probes and scrapers usually carry none.
    pub operations: bool,
    /// Paths reachable without credentials whatever their group, e.g. `["/metrics"]`.
    pub allow_unauthenticated: Vec<String>,
    /// HMAC request signing: how far a request's timestamp may be from the pool's clock, in
    /// seconds. A signature is accepted once within this window.
    pub hmac_window_secs: u64,
    /// JSON Web Tokens (`Authorization: Bearer <jwt>`).
    pub jwt: Option<RawJwt>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            inference: true,
            admin: true,
            operations: false,
            allow_unauthenticated: Vec::new(),
            hmac_window_secs: 300,
            jwt: None,
        }
    }
}

/// `[auth.jwt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// Accepted algorithms: any of `HS256`, `RS256`, `ES256`.
    pub algorithms: Vec<String>,
    /// Environment variable holding the HS256 secret.
    #[serde(default)]
    pub hs256_secret_env: Option<String>,
    /// File holding the HS256 secret (e.g. a mounted Kubernetes Secret); trailing newline
    /// ignored.
    #[serde(default)]
    pub hs256_secret_file: Option<String>,
    /// PEM file with the RS256 or ES256 public key.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// JWKS file (`{"keys": [...]}`); tokens pick a key by `kid`.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` (one of).
    #[serde(default)]
    pub audience: Vec<String>,
    /// The claim naming the tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_tenant_claim() -> String {
    "tenant".to_owned()
}
fn default_leeway() -> u64 {
    30
}

/// `[tenants.NAME]`: one caller of the pool, its credentials, rights and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenant {
    /// SHA-256 (hex) of each API key of this tenant: `printf %s "$KEY" | sha256sum`.
    pub api_key_sha256: Vec<String>,
    /// Environment variables each holding an API key of this tenant.
    pub api_key_env: Vec<String>,
    /// Environment variable holding this tenant's HMAC signing secret.
    pub hmac_secret_env: Option<String>,
    /// File holding this tenant's HMAC signing secret (e.g. a mounted Kubernetes Secret);
    /// a trailing newline is ignored.
    pub hmac_secret_file: Option<String>,
    /// Tasks the tenant may use; `["*"]` (the default) allows all.
    pub tasks: Vec<String>,
    /// Providers the tenant may call directly (OpenAI/Ollama `model` naming a provider);
    /// `["*"]` (the default) allows all.
    pub providers: Vec<String>,
    /// May call `/admin/...` and `/v1/usage`.
    pub admin: bool,
    /// Requests admitted per minute (token bucket holding a minute's worth); 0 = no limit.
    pub requests_per_minute: u32,
    /// Prompt + completion tokens per minute: each request reserves its estimate on
    /// admission and settles to what it used on completion; 0 = no limit.
    pub tokens_per_minute: u64,
    /// Requests in flight at once; 0 = no limit.
    pub max_concurrent: u32,
    /// May choose another `strategy` or `n` per request (within the task's
    /// `allow_override` and `max_n`). Off by default: one request asking for `voting, n:
    /// 10` would make ten calls, possibly to priced providers. Without the right, a
    /// request's `strategy` and `n` that differ from the task's are ignored and the
    /// Decision says so (`override_refused:strategy`, `override_refused:n`).
    pub may_override: bool,
    /// The priority class of this tenant's requests (`[[qos.overload.classes]]`); the
    /// default is `qos.overload.default_class`.
    pub priority: Option<String>,
    /// The highest class a request of this tenant may ask for (`x-llm-pool-priority`,
    /// the native body's `priority`); the default is its `priority`: a tenant may only
    /// ask for lower classes than its own.
    pub max_priority: Option<String>,
    /// This tenant's share of its class, against other tenants' (1 each by default):
    /// a tenant of weight 2 gets twice the tokens of a tenant of weight 1 while both wait.
    pub queue_weight: f64,
}

impl Default for RawTenant {
    fn default() -> Self {
        Self {
            api_key_sha256: Vec::new(),
            api_key_env: Vec::new(),
            hmac_secret_env: None,
            hmac_secret_file: None,
            tasks: vec!["*".to_owned()],
            providers: vec!["*".to_owned()],
            admin: false,
            requests_per_minute: 0,
            tokens_per_minute: 0,
            max_concurrent: 0,
            may_override: false,
            priority: None,
            max_priority: None,
            queue_weight: 1.0,
        }
    }
}

/// `[rate_limit]`: where tenants' limits are counted (process-wide; restart to change).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    /// `memory` (this process) or `redis` (shared by every replica on the same Redis).
    pub backend: RateLimitBackend,
    /// Redis URL for the `redis` backend.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
    /// Time allowed for one Redis call, in milliseconds. On timeout or error the request is
    /// admitted (fail open) and the error counted.
    pub redis_timeout_ms: u64,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            backend: RateLimitBackend::Memory,
            redis_url: None,
            key_prefix: "llm-pool:rl:".to_owned(),
            redis_timeout_ms: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    Memory,
    Redis,
}

/// `[server.tls]`: TLS on both listeners. The files are re-read when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA bundle; when set, gRPC clients must present a certificate it signed (mTLS).
    #[serde(default)]
    pub grpc_client_ca_file: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Checked forms.

/// Route groups, for [`AuthConfig::required`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteGroup {
    Inference,
    Admin,
    Operations,
}

/// `[auth]`, checked, with every credential resolved.
#[derive(Clone)]
pub struct AuthConfig {
    pub(super) inference: bool,
    pub(super) admin: bool,
    pub(super) operations: bool,
    pub(super) allow_unauthenticated: Vec<String>,
    pub(super) hmac_window: Duration,
    /// Each API key of each tenant, as configured: a SHA-256, or a key read from the
    /// environment. The authenticator indexes them (`auth::KeyIndex`) when a snapshot is
    /// prepared; the config neither hashes nor compares them.
    pub(super) api_keys: Vec<ApiKey>,
    /// Tenant → HMAC secret.
    pub(super) hmac_secrets: HashMap<Arc<str>, SecretSlice<u8>>,
    pub(super) jwt: Option<Arc<JwtConfig>>,
}

// === impl AuthConfig (getters) ===

impl AuthConfig {
    pub fn inference(&self) -> bool {
        self.inference
    }

    pub fn admin(&self) -> bool {
        self.admin
    }

    pub fn operations(&self) -> bool {
        self.operations
    }

    pub fn allow_unauthenticated(&self) -> &[String] {
        &self.allow_unauthenticated
    }

    pub fn hmac_window(&self) -> Duration {
        self.hmac_window
    }

    /// Each API key of each tenant, as configured: a SHA-256, or a key read from the
    /// environment. The authenticator indexes them (`auth::KeyIndex`) when a snapshot is
    /// prepared; the config neither hashes nor compares them.
    pub fn api_keys(&self) -> &[ApiKey] {
        &self.api_keys
    }

    /// Tenant → HMAC secret.
    pub fn hmac_secrets(&self) -> &HashMap<Arc<str>, SecretSlice<u8>> {
        &self.hmac_secrets
    }

    pub fn jwt(&self) -> Option<&Arc<JwtConfig>> {
        self.jwt.as_ref()
    }
}

/// One configured API key.
#[derive(Clone)]
pub struct ApiKey {
    pub(super) tenant: Arc<str>,
    /// Where it is configured (`tenants.NAME.api_key_env[0]`), for errors.
    pub(super) at: String,
    pub(super) key: KeySource,
}

// === impl ApiKey (getters) ===

impl ApiKey {
    pub fn tenant(&self) -> &Arc<str> {
        &self.tenant
    }

    /// Where it is configured (`tenants.NAME.api_key_env[0]`), for errors.
    pub fn at(&self) -> &str {
        &self.at
    }

    pub fn key(&self) -> &KeySource {
        &self.key
    }
}

/// How an API key is given.
#[derive(Clone)]
pub enum KeySource {
    /// Its SHA-256 (`api_key_sha256`).
    Sha256([u8; 32]),
    /// The key itself, from an environment variable (`api_key_env`).
    Secret(SecretString),
}

impl std::fmt::Debug for AuthConfig {
    // Hashes and secrets stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("inference", &self.inference)
            .field("admin", &self.admin)
            .field("operations", &self.operations)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("api_keys", &self.api_keys.len())
            .field("hmac_secrets", &self.hmac_secrets.len())
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl AuthConfig {
    /// Whether a route of `group` at `path` needs credentials.
    pub fn required(&self, group: RouteGroup, path: &str) -> bool {
        let by_group = match group {
            RouteGroup::Inference => self.inference,
            RouteGroup::Admin => self.admin,
            RouteGroup::Operations => self.operations,
        };
        by_group && !self.allow_unauthenticated.iter().any(|p| p == path)
    }
}

/// `[auth.jwt]`, checked.
pub struct JwtConfig {
    pub(super) algorithms: Vec<jsonwebtoken::Algorithm>,
    pub(super) hs256: Option<jsonwebtoken::DecodingKey>,
    /// The PEM public key and its algorithm family.
    pub(super) public_key: Option<(jsonwebtoken::DecodingKey, PublicKeyKind)>,
    pub(super) jwks: Option<jsonwebtoken::jwk::JwkSet>,
    pub(super) issuer: Option<String>,
    pub(super) audience: Vec<String>,
    pub(super) tenant_claim: String,
    pub(super) leeway: Duration,
}

// === impl JwtConfig (getters) ===

impl JwtConfig {
    pub fn algorithms(&self) -> &[jsonwebtoken::Algorithm] {
        &self.algorithms
    }

    pub fn hs256(&self) -> Option<&jsonwebtoken::DecodingKey> {
        self.hs256.as_ref()
    }

    /// The PEM public key and its algorithm family.
    pub fn public_key(&self) -> Option<&(jsonwebtoken::DecodingKey, PublicKeyKind)> {
        self.public_key.as_ref()
    }

    pub fn jwks(&self) -> Option<&jsonwebtoken::jwk::JwkSet> {
        self.jwks.as_ref()
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    pub fn tenant_claim(&self) -> &str {
        &self.tenant_claim
    }

    pub fn leeway(&self) -> Duration {
        self.leeway
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKeyKind {
    Rsa,
    Ec,
}

/// One tenant, checked.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub(super) name: Arc<str>,
    pub(super) tasks: Allow,
    pub(super) providers: Allow,
    pub(super) admin: bool,
    pub(super) requests_per_minute: u32,
    pub(super) tokens_per_minute: u64,
    pub(super) max_concurrent: u32,
    /// May choose the strategy and `n` per request.
    pub(super) may_override: bool,
    /// Priority class by name (checked against `[qos.overload]`).
    pub(super) priority: Option<Arc<str>>,
    pub(super) max_priority: Option<Arc<str>>,
    pub(super) queue_weight: f64,
}

// === impl Tenant (getters) ===

impl Tenant {
    /// A tenant with every right but admin and overrides, and these limits (0 = none).
    pub fn with_limits(
        name: &str,
        requests_per_minute: u32,
        tokens_per_minute: u64,
        max_concurrent: u32,
    ) -> Self {
        Self {
            name: Arc::from(name),
            tasks: Allow::All,
            providers: Allow::All,
            admin: false,
            requests_per_minute,
            tokens_per_minute,
            max_concurrent,
            may_override: false,
            priority: None,
            max_priority: None,
            queue_weight: 1.0,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn tasks(&self) -> &Allow {
        &self.tasks
    }

    pub fn providers(&self) -> &Allow {
        &self.providers
    }

    pub fn admin(&self) -> bool {
        self.admin
    }

    pub fn requests_per_minute(&self) -> u32 {
        self.requests_per_minute
    }

    pub fn tokens_per_minute(&self) -> u64 {
        self.tokens_per_minute
    }

    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    /// May choose the strategy and `n` per request.
    pub fn may_override(&self) -> bool {
        self.may_override
    }

    /// The tenant's priority class, by name (`None`: the default class).
    pub fn priority(&self) -> Option<&str> {
        self.priority.as_deref()
    }

    /// The highest class its requests may ask for (`None`: its own).
    pub fn max_priority(&self) -> Option<&str> {
        self.max_priority.as_deref().or(self.priority.as_deref())
    }

    /// Its share of its class against other tenants'.
    pub fn queue_weight(&self) -> f64 {
        self.queue_weight
    }
}

impl Tenant {
    /// Whether any limit applies.
    pub fn limited(&self) -> bool {
        self.requests_per_minute > 0 || self.tokens_per_minute > 0 || self.max_concurrent > 0
    }
}

/// An allow-list: everything, or the names given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    All,
    Only(Vec<String>),
}

impl Allow {
    fn from(list: &[String]) -> Self {
        if list.iter().any(|s| s == "*") {
            Self::All
        } else {
            Self::Only(list.to_vec())
        }
    }

    pub fn permits(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// `[rate_limit]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub(super) backend: RateLimitBackend,
    pub(super) redis_url: Option<String>,
    pub(super) key_prefix: String,
    pub(super) redis_timeout: Duration,
}

// === impl RateLimitConfig (getters) ===

impl RateLimitConfig {
    /// Limits counted in this process.
    pub fn in_memory() -> Self {
        Self {
            backend: RateLimitBackend::Memory,
            redis_url: None,
            key_prefix: String::new(),
            redis_timeout: Duration::from_millis(50),
        }
    }

    pub fn backend(&self) -> RateLimitBackend {
        self.backend
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

/// `[server.tls]`, checked (paths resolved; contents are loaded by the listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
    pub(super) grpc_client_ca_file: Option<PathBuf>,
}

// === impl TlsConfig (getters) ===

impl TlsConfig {
    /// A certificate chain and key (and, for mTLS on gRPC, a client CA), by path.
    pub fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        grpc_client_ca_file: Option<PathBuf>,
    ) -> Self {
        Self {
            cert_file,
            key_file,
            grpc_client_ca_file,
        }
    }

    pub fn cert_file(&self) -> &std::path::Path {
        &self.cert_file
    }

    pub fn key_file(&self) -> &std::path::Path {
        &self.key_file
    }

    pub fn grpc_client_ca_file(&self) -> Option<&std::path::Path> {
        self.grpc_client_ca_file.as_deref()
    }
}

/// Longest accepted HMAC window: an hour.
const MAX_HMAC_WINDOW_SECS: u64 = 3600;

pub(super) struct Checked {
    pub auth: AuthConfig,
    pub tenants: BTreeMap<String, Arc<Tenant>>,
    pub rate_limit: RateLimitConfig,
}

pub(super) fn check(
    err: &mut dyn FnMut(String, String),
    auth: &RawAuth,
    tenants: &BTreeMap<String, RawTenant>,
    rate_limit: &RawRateLimit,
    known_tasks: &dyn Fn(&str) -> bool,
    known_providers: &dyn Fn(&str) -> bool,
    base: &Path,
) -> Checked {
    let mut api_keys = Vec::new();
    let mut hmac_secrets = HashMap::new();
    let mut checked_tenants = BTreeMap::new();
    for (name, t) in tenants {
        let tenant = check_tenant(
            err,
            name,
            t,
            (known_tasks, known_providers),
            base,
            &mut api_keys,
            &mut hmac_secrets,
        );
        checked_tenants.insert(name.clone(), tenant);
    }

    for (i, p) in auth.allow_unauthenticated.iter().enumerate() {
        if !p.starts_with('/') {
            err(
                format!("auth.allow_unauthenticated[{i}]"),
                "must be a path starting with `/`".to_owned(),
            );
        }
    }
    if auth.hmac_window_secs == 0 || auth.hmac_window_secs > MAX_HMAC_WINDOW_SECS {
        err(
            "auth.hmac_window_secs".to_owned(),
            format!("must be between 1 and {MAX_HMAC_WINDOW_SECS}"),
        );
    }
    let jwt = auth
        .jwt
        .as_ref()
        .and_then(|j| check_jwt(err, j, base))
        .map(Arc::new);

    Checked {
        auth: AuthConfig {
            inference: auth.inference,
            admin: auth.admin,
            operations: auth.operations,
            allow_unauthenticated: auth.allow_unauthenticated.clone(),
            hmac_window: Duration::from_secs(auth.hmac_window_secs),
            api_keys,
            hmac_secrets,
            jwt,
        },
        tenants: checked_tenants,
        rate_limit: check_rate_limit(err, rate_limit),
    }
}

/// Whether a task (or a provider) of that name is configured.
type Known<'a> = &'a dyn Fn(&str) -> bool;

/// One tenant: its API keys and HMAC secret go to the authenticator's lists, its rights
/// are checked against the configured tasks and providers.
fn check_tenant(
    err: &mut dyn FnMut(String, String),
    name: &str,
    t: &RawTenant,
    (known_tasks, known_providers): (Known<'_>, Known<'_>),
    base: &Path,
    api_keys: &mut Vec<ApiKey>,
    hmac_secrets: &mut HashMap<Arc<str>, SecretSlice<u8>>,
) -> Arc<Tenant> {
    let path = format!("tenants.{name}");
    let tenant_name: Arc<str> = Arc::from(name);
    for (i, hash) in t.api_key_sha256.iter().enumerate() {
        let at = format!("{path}.api_key_sha256[{i}]");
        match hex::decode(hash.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(digest) => api_keys.push(ApiKey {
                tenant: Arc::clone(&tenant_name),
                at,
                key: KeySource::Sha256(digest),
            }),
            None => err(at, "must be 64 hex digits (a SHA-256)".to_owned()),
        }
    }
    for (i, var) in t.api_key_env.iter().enumerate() {
        let at = format!("{path}.api_key_env[{i}]");
        if let Some(key) = env_secret(err, &at, var, Unset::Warn) {
            api_keys.push(ApiKey {
                tenant: Arc::clone(&tenant_name),
                at,
                key: KeySource::Secret(SecretString::from(key)),
            });
        }
    }
    let hmac = match (&t.hmac_secret_env, &t.hmac_secret_file) {
        (Some(_), Some(_)) => {
            err(
                format!("{path}.hmac_secret_file"),
                "give hmac_secret_env or hmac_secret_file, not both".to_owned(),
            );
            None
        }
        (Some(var), None) => env_secret(err, &format!("{path}.hmac_secret_env"), var, Unset::Warn),
        (None, Some(file)) => file_secret(err, &format!("{path}.hmac_secret_file"), base, file),
        (None, None) => None,
    };
    if let Some(secret) = hmac {
        hmac_secrets.insert(
            Arc::clone(&tenant_name),
            SecretSlice::from(secret.into_bytes()),
        );
    }
    for (i, task) in t.tasks.iter().enumerate() {
        if task != "*" && !known_tasks(task) {
            err(
                format!("{path}.tasks[{i}]"),
                format!("unknown task `{task}`"),
            );
        }
    }
    for (i, p) in t.providers.iter().enumerate() {
        if p != "*" && !known_providers(p) {
            err(
                format!("{path}.providers[{i}]"),
                format!("unknown provider `{p}`"),
            );
        }
    }
    Arc::new(Tenant {
        name: tenant_name,
        tasks: Allow::from(&t.tasks),
        providers: Allow::from(&t.providers),
        admin: t.admin,
        requests_per_minute: t.requests_per_minute,
        tokens_per_minute: t.tokens_per_minute,
        max_concurrent: t.max_concurrent,
        may_override: t.may_override,
        priority: t.priority.as_deref().map(Arc::from),
        max_priority: t.max_priority.as_deref().map(Arc::from),
        queue_weight: t.queue_weight,
    })
}

/// `[rate_limit]`: where tenants' limits are counted.
fn check_rate_limit(
    err: &mut dyn FnMut(String, String),
    rate_limit: &RawRateLimit,
) -> RateLimitConfig {
    if rate_limit.backend == RateLimitBackend::Redis && rate_limit.redis_url.is_none() {
        err(
            "rate_limit.redis_url".to_owned(),
            "is required with backend = \"redis\"".to_owned(),
        );
    }
    if let Some(url) = &rate_limit.redis_url
        && redis::Client::open(url.as_str()).is_err()
    {
        // Not echoed: the URL may hold a password.
        err(
            "rate_limit.redis_url".to_owned(),
            "not a valid redis:// URL".to_owned(),
        );
    }
    if rate_limit.redis_timeout_ms == 0 {
        err(
            "rate_limit.redis_timeout_ms".to_owned(),
            "must be greater than 0".to_owned(),
        );
    }
    RateLimitConfig {
        backend: rate_limit.backend,
        redis_url: rate_limit.redis_url.clone(),
        key_prefix: rate_limit.key_prefix.clone(),
        redis_timeout: Duration::from_millis(rate_limit.redis_timeout_ms),
    }
}

/// What an unset variable means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unset {
    /// A tenant credential: that credential is off (nobody can use it), with a warning;
    /// failing closed is safe, and one unset key must not take the pool down.
    Warn,
    /// Needed for the pool to work at all.
    Error,
}

/// Reads a secret from the environment variable `var`; errors never contain the value.
fn env_secret(
    err: &mut dyn FnMut(String, String),
    at: &str,
    var: &str,
    unset: Unset,
) -> Option<String> {
    if !is_env_name(var) {
        // Not echoed: a value that is not a variable name may be a pasted secret.
        err(
            at.to_owned(),
            "must name an environment variable (A-Z, 0-9, _), not hold the secret itself"
                .to_owned(),
        );
        return None;
    }
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if unset == Unset::Warn => {
            tracing::warn!(
                at,
                var,
                "Environment variable not set: this credential is disabled."
            );
            None
        }
        _ => {
            err(
                at.to_owned(),
                format!("environment variable `{var}` is not set"),
            );
            None
        }
    }
}

/// Reads a secret from a file (relative to the config's folder); errors name the file only.
fn file_secret(
    err: &mut dyn FnMut(String, String),
    at: &str,
    base: &Path,
    file: &str,
) -> Option<String> {
    let path = resolve(base, file);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim_end_matches(['\r', '\n']).is_empty() => {
            Some(s.trim_end_matches(['\r', '\n']).to_owned())
        }
        Ok(_) => {
            err(at.to_owned(), format!("{} is empty", path.display()));
            None
        }
        Err(e) => {
            err(
                at.to_owned(),
                format!("cannot read {}: {e}", path.display()),
            );
            None
        }
    }
}

fn check_jwt(err: &mut dyn FnMut(String, String), j: &RawJwt, base: &Path) -> Option<JwtConfig> {
    use jsonwebtoken::{Algorithm, DecodingKey};
    let mut ok = true;
    let mut algorithms = Vec::new();
    for (i, a) in j.algorithms.iter().enumerate() {
        match a.as_str() {
            "HS256" => algorithms.push(Algorithm::HS256),
            "RS256" => algorithms.push(Algorithm::RS256),
            "ES256" => algorithms.push(Algorithm::ES256),
            _ => {
                ok = false;
                err(
                    format!("auth.jwt.algorithms[{i}]"),
                    "must be HS256, RS256 or ES256".to_owned(),
                );
            }
        }
    }
    if algorithms.is_empty() && ok {
        ok = false;
        err(
            "auth.jwt.algorithms".to_owned(),
            "must name at least one algorithm".to_owned(),
        );
    }
    let secret = match (&j.hs256_secret_env, &j.hs256_secret_file) {
        (Some(var), None) => env_secret(err, "auth.jwt.hs256_secret_env", var, Unset::Error),
        (None, Some(file)) => file_secret(err, "auth.jwt.hs256_secret_file", base, file),
        (Some(_), Some(_)) => {
            err(
                "auth.jwt.hs256_secret_file".to_owned(),
                "give hs256_secret_env or hs256_secret_file, not both".to_owned(),
            );
            None
        }
        (None, None) => None,
    };
    let configured = j.hs256_secret_env.is_some() || j.hs256_secret_file.is_some();
    if configured && secret.is_none() {
        ok = false;
    }
    let hs256 = secret.map(|s| DecodingKey::from_secret(s.as_bytes()));
    if algorithms.contains(&Algorithm::HS256) && !configured {
        ok = false;
        err(
            "auth.jwt.hs256_secret_env".to_owned(),
            "hs256_secret_env or hs256_secret_file is required when algorithms include HS256"
                .to_owned(),
        );
    }
    let public_key = match &j.public_key_file {
        Some(file) => {
            let at = "auth.jwt.public_key_file".to_owned();
            let path = resolve(base, file);
            match std::fs::read(&path) {
                Ok(pem) => match DecodingKey::from_rsa_pem(&pem) {
                    Ok(k) => Some((k, PublicKeyKind::Rsa)),
                    Err(_) => match DecodingKey::from_ec_pem(&pem) {
                        Ok(k) => Some((k, PublicKeyKind::Ec)),
                        Err(_) => {
                            ok = false;
                            err(
                                at,
                                "is neither an RSA nor an EC public key in PEM".to_owned(),
                            );
                            None
                        }
                    },
                },
                Err(e) => {
                    ok = false;
                    err(at, format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        }
        None => None,
    };
    let jwks = match &j.jwks_file {
        Some(file) => {
            let at = "auth.jwt.jwks_file".to_owned();
            let path = resolve(base, file);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(set) => Some(set),
                Err(e) => {
                    ok = false;
                    err(at, format!("cannot read JWKS {}: {e}", path.display()));
                    None
                }
            }
        }
        None => None,
    };
    let asymmetric = algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::RS256 | Algorithm::ES256));
    if asymmetric && public_key.is_none() && jwks.is_none() && ok {
        ok = false;
        err(
            "auth.jwt".to_owned(),
            "RS256/ES256 need `public_key_file` or `jwks_file`".to_owned(),
        );
    }
    if j.leeway_secs > 600 {
        ok = false;
        err(
            "auth.jwt.leeway_secs".to_owned(),
            "must be at most 600".to_owned(),
        );
    }
    ok.then(|| JwtConfig {
        algorithms,
        hs256,
        public_key,
        jwks,
        issuer: j.issuer.clone(),
        audience: j.audience.clone(),
        tenant_claim: j.tenant_claim.clone(),
        leeway: Duration::from_secs(j.leeway_secs),
    })
}

/// The TLS files' paths, resolved; their contents are loaded (and checked) by the TLS
/// loader when a snapshot is prepared (`live::check`) and by the listeners.
pub(super) fn check_tls(tls: &RawTls, base: &Path) -> TlsConfig {
    TlsConfig {
        cert_file: resolve(base, &tls.cert_file),
        key_file: resolve(base, &tls.key_file),
        grpc_client_ca_file: tls.grpc_client_ca_file.as_deref().map(|f| resolve(base, f)),
    }
}
