//! Who is calling: API keys, HMAC request signatures and JWTs, each naming a tenant
//! (`[tenants.NAME]`). One [`Authenticator`] serves both listeners; their middleware
//! (`api::http::auth`, `api::grpc::auth`) calls it with the request's method, path, headers
//! and (for HMAC) body. Nothing here knows the wire. May import config and error only.
//!
//! Credentials, in the order they are looked for:
//! - `x-llm-pool-signature` (HMAC-SHA256), with `x-llm-pool-tenant`,
//!   `x-llm-pool-timestamp` and optionally `x-llm-pool-nonce`: see [`signing_string`];
//! - `authorization: Bearer <token>`: a JWT when `[auth.jwt]` is set and the token has the
//!   JWT shape, else an API key;
//! - `x-api-key: <key>`;
//! - `authorization: Basic base64(user:key)`, as a browser sends it (an API key).
//!
//! On routes that require credentials, wrong ones get 401. On open routes, valid credentials
//! still name the tenant (its rights, limits and usage apply) and wrong ones are ignored:
//! clients such as OpenAI's SDK always send a key, even to a pool without auth.

mod jwt;
use std::collections::HashMap;
pub(crate) use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use http::header::{AsHeaderName, HeaderName};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::config::security::{AuthConfig, KeySource, RouteGroup, Tenant};
use crate::error::PoolError;

/// Header carrying an API key (alternative to `authorization: Bearer`).
pub const API_KEY: &str = "x-api-key";
/// HMAC: the signing tenant.
pub const HMAC_TENANT: &str = "x-llm-pool-tenant";
/// HMAC: Unix seconds when the request was signed.
pub const HMAC_TIMESTAMP: &str = "x-llm-pool-timestamp";
/// HMAC: hex HMAC-SHA256 of [`signing_string`] under the tenant's secret.
pub const HMAC_SIGNATURE: &str = "x-llm-pool-signature";
/// HMAC, optional: a value unique to this request (signed too), so two identical requests
/// in the same second have different signatures and neither is taken for a replay.
pub const HMAC_NONCE: &str = "x-llm-pool-nonce";

// The names looked up on every request, parsed once (a lookup by `&str` parses the name first).
static API_KEY_NAME: HeaderName = HeaderName::from_static(API_KEY);
static HMAC_SIGNATURE_NAME: HeaderName = HeaderName::from_static(HMAC_SIGNATURE);

/// The authenticated caller of a request, set by the auth layer on every request it passes
/// (`None`: no credentials, on a route that needs none).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub tenant: Option<Arc<Tenant>>,
    /// The priority class the request asks for (`x-llm-pool-priority`), not yet checked
    /// against the classes and the tenant's rights.
    pub priority: Option<Arc<str>>,
}

/// Header naming the priority class a request asks for (on HTTP and as gRPC metadata).
pub const PRIORITY: &str = "x-llm-pool-priority";

impl Caller {
    pub fn tenant(&self) -> Option<&Arc<Tenant>> {
        self.tenant.as_ref()
    }
}

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What an HMAC signature covers, and the signature a client makes of it: the client
/// crate's, so that the pool and its clients cannot drift apart (`tests/auth.rs` and
/// `tests/client.rs` check them against the pool).
pub use llm_pool_client::{sign, signing_string};

/// The HMAC over [`signing_string`], ready to finalise or verify (HMAC takes keys of any
/// length, so `None` does not happen in practice).
fn mac(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    nonce: Option<&str>,
    body: &[u8],
) -> Option<hmac::Hmac<Sha256>> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(signing_string(method, path_and_query, timestamp, nonce, body).as_bytes());
    Some(mac)
}

/// Process-wide authentication state: the HMAC replay memory (it outlives config reloads).
pub struct Authenticator {
    /// Signatures seen within the replay window.
    seen: moka::future::Cache<[u8; 32], ()>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

/// How a request presents itself to [`Authenticator::authenticate`].
pub struct Presented<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    /// The body, when the request is HMAC-signed (the layer reads it only then).
    pub body: Option<&'a [u8]>,
}

impl Presented<'_> {
    /// Whether the request is HMAC-signed, so the layer must read the body first.
    pub fn is_signed(headers: &HeaderMap) -> bool {
        headers.contains_key(&HMAC_SIGNATURE_NAME)
    }
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            seen: moka::future::Cache::builder()
                // A signature is valid from `ts - window` to `ts + window`, so it must be
                // remembered for twice the longest window the config accepts.
                .time_to_live(Duration::from_secs(2 * 3600 + 60))
                .max_capacity(1_000_000)
                .build(),
        }
    }

    /// Checks the request's credentials against `config` (and its API keys, `keys`);
    /// `Ok(None)` when it has none and the route needs none.
    pub async fn authenticate(
        &self,
        config: &Config,
        keys: &KeyIndex,
        group: RouteGroup,
        path: &str,
        req: Presented<'_>,
    ) -> Result<Option<Arc<Tenant>>, PoolError> {
        let auth = config.auth();
        let required = auth.required(group, path);
        match self.identify(config, keys, &req).await {
            Ok(Some(t)) if required && group == RouteGroup::Admin && !t.admin() => {
                Err(PoolError::PermissionDenied(format!(
                    "tenant `{}` may not call admin routes",
                    t.name()
                )))
            }
            Ok(Some(t)) => Ok(Some(t)),
            Ok(None) if required => Err(PoolError::Unauthenticated(
                "credentials required: `authorization: Bearer <key or JWT>`, `x-api-key`, \
                 or an HMAC signature"
                    .into(),
            )),
            Ok(None) => Ok(None),
            Err(e) if required => Err(e),
            // A route open to anyone: credentials that do not check out (clients such as
            // OpenAI's SDK always send some) leave the caller anonymous, as with none.
            Err(e) => {
                tracing::debug!(error = %e, "Credentials ignored on an open route.");
                Ok(None)
            }
        }
    }

    /// The tenant the request's credentials name; `Ok(None)` without credentials.
    async fn identify(
        &self,
        config: &Config,
        keys: &KeyIndex,
        req: &Presented<'_>,
    ) -> Result<Option<Arc<Tenant>>, PoolError> {
        let auth = config.auth();
        // Every credential presented must check out and name the same tenant: a valid
        // bearer token does not vouch for a wrong `x-api-key` beside it.
        let mut names: Vec<Arc<str>> = Vec::with_capacity(1);
        if Presented::is_signed(req.headers) {
            names.push(self.hmac(config, req).await?);
        }
        if let Some(token) = bearer(req.headers) {
            names.push(match &auth.jwt() {
                Some(jwt) if jwt::looks_like_jwt(token) => jwt::verify(jwt, token)?,
                _ => api_key(keys, token)?,
            });
        }
        if let Some(key) = header(req.headers, &API_KEY_NAME) {
            names.push(api_key(keys, key)?);
        }
        // HTTP Basic, as browsers send it (the console): the password is the API key.
        if let Some(key) = basic(req.headers) {
            names.push(api_key(keys, &key)?);
        }
        let tenant_name = match names.split_first() {
            None => None,
            Some((first, rest)) if rest.iter().all(|n| n == first) => Some(Arc::clone(first)),
            Some(_) => {
                return Err(PoolError::Unauthenticated(
                    "the request carries credentials of different tenants".into(),
                ));
            }
        };
        let tenant =
            match tenant_name {
                Some(name) => Some(config.tenants().get(name.as_ref()).cloned().ok_or_else(
                    || PoolError::Unauthenticated(format!("unknown tenant `{name}`")),
                )?),
                None => None,
            };
        Ok(tenant)
    }

    async fn hmac(&self, config: &Config, req: &Presented<'_>) -> Result<Arc<str>, PoolError> {
        let bad = |m: &str| PoolError::Unauthenticated(format!("HMAC signature: {m}"));
        let tenant =
            header(req.headers, HMAC_TENANT).ok_or_else(|| bad("missing x-llm-pool-tenant"))?;
        let timestamp = header(req.headers, HMAC_TIMESTAMP)
            .ok_or_else(|| bad("missing x-llm-pool-timestamp"))?;
        let signature = header(req.headers, HMAC_SIGNATURE)
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| bad("x-llm-pool-signature must be hex"))?;
        let (name, secret) = config
            .auth()
            .hmac_secrets()
            .get_key_value(tenant)
            // Same answer as a wrong signature: which tenants sign is nobody's business.
            .ok_or_else(|| bad("wrong signature"))?;
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| bad("timestamp must be Unix seconds"))?;
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        let window = config.auth().hmac_window().as_secs();
        // `abs_diff`: a hostile timestamp (i64::MIN) must not overflow.
        if now.abs_diff(ts) > window {
            return Err(bad("timestamp outside the allowed window"));
        }
        let body = req.body.unwrap_or_default();
        let mac = mac(
            secret.expose_secret(),
            req.method,
            req.path_and_query,
            timestamp,
            header(req.headers, HMAC_NONCE),
            body,
        )
        .ok_or_else(|| bad("unusable secret"))?;
        // Constant-time comparison.
        mac.verify_slice(&signature)
            .map_err(|_| bad("wrong signature"))?;
        let fresh = self
            .seen
            .entry(digest(&signature))
            .or_insert(())
            .await
            .is_fresh();
        if !fresh {
            return Err(bad("replayed (this signature was already used)"));
        }
        Ok(Arc::clone(name))
    }
}

/// The tenants' API keys by SHA-256, built from a config's `[tenants]` when a snapshot is
/// prepared (keys read from the environment are hashed here, and kept only as hashes).
#[derive(Debug, Default)]
pub struct KeyIndex {
    by_digest: HashMap<[u8; 32], Arc<str>>,
}

impl KeyIndex {
    /// Indexes every key; a key given to two tenants is an error at each later place it
    /// is configured (TOML path, message).
    pub fn build(auth: &AuthConfig) -> Result<Self, Vec<(String, String)>> {
        let mut by_digest = HashMap::with_capacity(auth.api_keys().len());
        let mut errors = Vec::new();
        for k in auth.api_keys() {
            let digest = match k.key() {
                KeySource::Sha256(d) => *d,
                KeySource::Secret(s) => digest(s.expose_secret().as_bytes()),
            };
            if let Some(other) = by_digest.insert(digest, Arc::clone(k.tenant())) {
                errors.push((
                    k.at().to_owned(),
                    format!("this API key is also a key of tenant `{other}`"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self { by_digest })
        } else {
            Err(errors)
        }
    }

    /// How many keys are indexed.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn api_key(keys: &KeyIndex, key: &str) -> Result<Arc<str>, PoolError> {
    // The lookup is by the key's SHA-256: timing can reveal at most bits of a hash of the
    // presented key, never of a stored one.
    keys.by_digest
        .get(&digest(key.as_bytes()))
        .cloned()
        .ok_or_else(|| PoolError::Unauthenticated("invalid API key".into()))
}

fn header(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The password of `authorization: Basic base64(user:password)` (the user name is not
/// used; a key alone in the user name is taken too).
fn basic(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let v = header(headers, http::header::AUTHORIZATION)?;
    let (scheme, encoded) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    let key = if password.is_empty() { user } else { password };
    (!key.is_empty()).then(|| key.to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = header(headers, http::header::AUTHORIZATION)?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Seconds since the Unix epoch (HMAC timestamps are wall-clock time).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
