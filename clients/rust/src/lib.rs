//! A client of a running llm-pool over gRPC (`llmpool.v1.LlmPool`): typed calls with a
//! deadline per call, over one reused HTTP/2 connection (plain or TLS, with a client
//! certificate if the pool asks for one), and the caller's credentials sent for it: an API
//! key, a JWT, or an HMAC signature computed per request.
//!
//! ```no_run
//! use std::time::Duration;
//! use llm_pool_client::{Client, QueryRequest};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut pool = Client::builder("http://127.0.0.1:7070")
//!     .api_key("my-key")
//!     .timeout(Duration::from_secs(10))
//!     .connect()
//!     .await?;
//! let answer = pool.query(QueryRequest::new("classify_domain", "billing is down")).await?;
//! println!("{} (by {})", answer.text, answer.provider);
//! // A deadline for one call: a clone shares the connection.
//! let quick = pool.clone().with_timeout(Duration::from_millis(500)).health().await?;
//! # Ok(()) }
//! ```
//!
//! `llm-pool query` and `llm-pool health` are built on this crate; [`explain`] is their
//! `--explain` table and [`exit_code`] their exit codes.

mod explain;
mod signing;

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub use explain::explain;
pub use signing::{NONCE, SIGNATURE, TENANT, TIMESTAMP, sign, signing_string};

/// The generated messages and client of `llmpool.v1` (`proto/llmpool/v1/llmpool.proto`).
pub mod pb {
    #![allow(
        clippy::all,
        clippy::pedantic,
        unreachable_pub,
        missing_docs,
        reason = "generated code"
    )]
    tonic::include_proto!("llmpool.v1");
}

pub use pb::{
    Answer, Decision, EmbedRequest, EmbedResponse, FeedbackReply, FeedbackRequest, HealthResponse,
    QueryRequest, Strategy, StreamChunk,
};

/// The header naming the priority class a call asks for.
pub const PRIORITY: &str = "x-llm-pool-priority";

type Inner = pb::llm_pool_client::LlmPoolClient<signing::Transport>;

/// A connection to a pool. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    bearer: Option<MetadataValue<Ascii>>,
    priority: Option<MetadataValue<Ascii>>,
    timeout: Option<Duration>,
}

/// The client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not a gRPC address (http://host:7070 or https://host:7070)")]
    Address(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("TLS settings for {addr}: {source}")]
    Tls {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("the {0} is not a valid header value")]
    Header(&'static str),
}

/// How to reach a pool: address, TLS, credentials and the default deadline.
#[derive(Clone)]
#[must_use]
pub struct Builder {
    addr: String,
    bearer: Option<String>,
    hmac: Option<(String, Vec<u8>)>,
    priority: Option<String>,
    ca: Vec<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    domain: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Builder {
    // Secrets stay out of logs: only whether there are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("addr", &self.addr)
            .field("bearer", &self.bearer.as_ref().map(|_| "…"))
            .field("hmac_tenant", &self.hmac.as_ref().map(|(t, _)| t))
            .field("tls", &self.is_tls())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Builder {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            bearer: None,
            hmac: None,
            priority: None,
            ca: Vec::new(),
            identity: None,
            domain: None,
            timeout: None,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// An API key, sent as `authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.bearer = Some(key.into());
        self
    }

    /// A JWT from the caller's issuer, sent as `authorization: Bearer <token>` (the pool
    /// checks its signature, expiry, issuer and audience).
    pub fn jwt(self, token: impl Into<String>) -> Self {
        self.api_key(token)
    }

    /// Signs every call with HMAC-SHA256 under the tenant's secret (timestamp, nonce and
    /// body covered: see [`sign`]) instead of sending a bearer credential.
    pub fn hmac(mut self, tenant: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.hmac = Some((tenant.into(), secret.into()));
        self
    }

    /// The priority class every call asks for (the tenant must be allowed it).
    pub fn priority(mut self, class: impl Into<String>) -> Self {
        self.priority = Some(class.into());
        self
    }

    /// Trusts this CA (PEM) for the pool's certificate, instead of the public roots.
    /// Implies TLS.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca.push(pem.into());
        self
    }

    /// A client certificate and its key (PEM), for a pool that requires mutual TLS.
    pub fn identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The name the pool's certificate must carry, when it is not the address's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain = Some(name.into());
        self
    }

    /// The deadline of every call (sent as `grpc-timeout`; the pool's own otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long to wait for the connection (5 s unless set).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn is_tls(&self) -> bool {
        self.addr.starts_with("https://") || !self.ca.is_empty() || self.identity.is_some()
    }

    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let mut endpoint = Endpoint::from_shared(self.addr.clone())
            .map_err(|_| ClientError::Address(self.addr.clone()))?
            .connect_timeout(self.connect_timeout);
        if self.is_tls() {
            let mut tls = ClientTlsConfig::new();
            tls = if self.ca.is_empty() {
                tls.with_webpki_roots()
            } else {
                tls.ca_certificates(self.ca.iter().map(Certificate::from_pem))
            };
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            if let Some(domain) = &self.domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|source| ClientError::Tls {
                    addr: self.addr.clone(),
                    source,
                })?;
        }
        Ok(endpoint)
    }

    fn client(self, channel: Channel) -> Result<Client, ClientError> {
        let header = |value: &str, what| {
            MetadataValue::<Ascii>::try_from(value).map_err(|_| ClientError::Header(what))
        };
        let bearer = match &self.bearer {
            Some(token) => {
                let mut value = header(&format!("Bearer {token}"), "API key or JWT")?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let priority = match &self.priority {
            Some(class) => Some(header(class, "priority class")?),
            None => None,
        };
        let signer = match self.hmac {
            Some((tenant, secret)) => Some(Arc::new(
                signing::Signer::new(&tenant, secret).ok_or(ClientError::Header("HMAC tenant"))?,
            )),
            None => None,
        };
        Ok(Client {
            inner: pb::llm_pool_client::LlmPoolClient::new(signing::Transport::new(
                channel, signer,
            )),
            bearer,
            priority,
            timeout: self.timeout,
        })
    }

    /// Connects now: an unreachable pool is an error here, not at the first call.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let channel = self
            .endpoint()?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        self.client(channel)
    }

    /// Connects at the first call (and again after the connection is lost).
    pub fn connect_lazy(self) -> Result<Client, ClientError> {
        let channel = self.endpoint()?.connect_lazy();
        self.client(channel)
    }
}

impl QueryRequest {
    /// A query of `task` on `input`, everything else from the task's config.
    pub fn new(task: impl Into<String>, input: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            input: input.into(),
            ..Self::default()
        }
    }
}

impl Client {
    /// How to reach the pool at `addr` (`http://127.0.0.1:7070`, `https://pool:7070`).
    pub fn builder(addr: &str) -> Builder {
        Builder::new(addr)
    }

    /// Connects to the pool's gRPC listener at `addr`, without credentials.
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Builder::new(addr).connect().await
    }

    /// Sends `key` as `authorization: Bearer <key>` on every call.
    pub fn with_api_key(mut self, key: &str) -> Result<Self, ClientError> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {key}")
            .parse()
            .map_err(|_| ClientError::Header("API key"))?;
        value.set_sensitive(true);
        self.bearer = Some(value);
        Ok(self)
    }

    /// The deadline of the calls made through this client (a clone, for one call).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(key) = &self.bearer {
            req.metadata_mut().insert("authorization", key.clone());
        }
        if let Some(class) = &self.priority {
            req.metadata_mut().insert(PRIORITY, class.clone());
        }
        if let Some(t) = self.timeout {
            req.set_timeout(t);
        }
        req
    }

    /// One whole answer with its Decision.
    pub async fn query(&mut self, query: QueryRequest) -> Result<Answer, tonic::Status> {
        let req = self.request(query);
        self.inner.query(req).await.map(tonic::Response::into_inner)
    }

    /// A streamed answer: text pieces, then a last chunk (`done`) with the whole Answer.
    pub async fn stream_query(
        &mut self,
        query: QueryRequest,
    ) -> Result<tonic::Streaming<StreamChunk>, tonic::Status> {
        let req = self.request(query);
        self.inner
            .stream_query(req)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The pool's providers, endpoints and breakers.
    pub async fn health(&mut self) -> Result<HealthResponse, tonic::Status> {
        let req = self.request(pb::HealthRequest {});
        self.inner
            .health(req)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Embeddings of `input` by `model` (a provider, `task:NAME` or an alias).
    pub async fn embed(&mut self, request: EmbedRequest) -> Result<EmbedResponse, tonic::Status> {
        let req = self.request(request);
        self.inner.embed(req).await.map(tonic::Response::into_inner)
    }

    /// Says what the right answer to an earlier request was, or whether the one returned
    /// was right: the pool regrades its providers' accuracies on the task.
    pub async fn feedback(
        &mut self,
        request: FeedbackRequest,
    ) -> Result<FeedbackReply, tonic::Status> {
        let req = self.request(request);
        self.inner
            .feedback(req)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// The process exit code for a failed call, by the error's class: scripts can tell a bad
/// request from an overloaded or unavailable pool without reading the message.
pub fn exit_code(code: tonic::Code) -> u8 {
    use tonic::Code as C;
    match code {
        C::InvalidArgument | C::OutOfRange => 2,
        C::NotFound => 3,
        C::Unauthenticated | C::PermissionDenied => 4,
        C::ResourceExhausted => 5,
        C::Unavailable => 6,
        C::DeadlineExceeded => 7,
        // No consensus, and answers invalid for the task: the same request fails again.
        C::Aborted | C::FailedPrecondition => 8,
        _ => 1,
    }
}
