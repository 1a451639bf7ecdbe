//! A client of a running pool over gRPC (`llmpool.v1.LlmPool`): typed calls with a deadline
//! per call and an API key, over one reused HTTP/2 connection. The `llm-pool query` and
//! `llm-pool health` commands are built on it.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::api::grpc::pb;
use crate::api::grpc::pb::llm_pool_client::LlmPoolClient;

/// A connection to a pool.
#[derive(Clone)]
pub struct Client {
    inner: LlmPoolClient<Channel>,
    api_key: Option<MetadataValue<Ascii>>,
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
    #[error("the API key is not a valid header value")]
    ApiKey,
}

impl Client {
    /// Connects to the pool's gRPC listener at `addr` (`http://127.0.0.1:7070`).
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        let endpoint = Endpoint::from_shared(addr.to_owned())
            .map_err(|_| ClientError::Address(addr.to_owned()))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Self {
            inner: LlmPoolClient::new(channel),
            api_key: None,
            timeout: None,
        })
    }

    /// Sends `key` as `authorization: Bearer <key>` on every call.
    pub fn with_api_key(mut self, key: &str) -> Result<Self, ClientError> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {key}")
            .parse()
            .map_err(|_| ClientError::ApiKey)?;
        value.set_sensitive(true);
        self.api_key = Some(value);
        Ok(self)
    }

    /// The deadline of every call (`grpc-timeout`); the pool's own deadline otherwise.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(key) = &self.api_key {
            req.metadata_mut().insert("authorization", key.clone());
        }
        if let Some(t) = self.timeout {
            req.set_timeout(t);
        }
        req
    }

    /// One whole answer with its Decision.
    pub async fn query(&mut self, query: pb::QueryRequest) -> Result<pb::Answer, tonic::Status> {
        let req = self.request(query);
        self.inner.query(req).await.map(tonic::Response::into_inner)
    }

    /// A streamed answer: text pieces, then a last chunk with the whole Answer.
    pub async fn stream_query(
        &mut self,
        query: pb::QueryRequest,
    ) -> Result<tonic::Streaming<pb::StreamChunk>, tonic::Status> {
        let req = self.request(query);
        self.inner
            .stream_query(req)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The pool's providers, endpoints and breakers.
    pub async fn health(&mut self) -> Result<pb::HealthResponse, tonic::Status> {
        let req = self.request(pb::HealthRequest {});
        self.inner
            .health(req)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Embeddings of `input` by `model` (a provider, `task:NAME` or an alias).
    pub async fn embed(
        &mut self,
        request: pb::EmbedRequest,
    ) -> Result<pb::EmbedResponse, tonic::Status> {
        let req = self.request(request);
        self.inner.embed(req).await.map(tonic::Response::into_inner)
    }

    /// Says what the right answer to an earlier request was, or whether the one returned
    /// was right: the pool regrades its providers' accuracies on the task.
    pub async fn feedback(
        &mut self,
        request: pb::FeedbackRequest,
    ) -> Result<pb::FeedbackReply, tonic::Status> {
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

/// The Decision as a table a person reads: strategy and winner, then one row per candidate
/// (status, latency, endpoint, group, vote weight, answer or error), the groups with their
/// votes, the judge's verdict and the cascade's tiers.
pub fn explain(answer: &pb::Answer) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let Some(d) = &answer.decision else {
        return "no decision (a cache hit or a join carries the original's)\n".to_owned();
    };
    let strategy = pb::Strategy::try_from(d.strategy)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("STRATEGY_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| d.strategy.to_string());
    let _ = writeln!(
        out,
        "strategy {strategy}  winner {}  agreement {:.2}  latency {} ms{}",
        if d.winner.is_empty() { "-" } else { &d.winner },
        d.agreement,
        answer.latency_ms,
        if answer.cache_hit {
            "  (cache hit)"
        } else {
            ""
        }
    );
    if let Some(c) = d.confidence {
        let _ = writeln!(
            out,
            "confidence {c:.3}  calls {}{}",
            d.candidates.len(),
            if d.stopped.is_empty() {
                String::new()
            } else {
                format!("  stopped: {}", d.stopped)
            }
        );
    }
    if !d.degraded.is_empty() {
        let _ = writeln!(out, "degraded  {}", d.degraded.join(", "));
    }
    if !d.formula.is_empty() {
        let _ = writeln!(out, "formula  {}", d.formula);
    }
    let _ = writeln!(
        out,
        "{:<3} {:<16} {:<9} {:>8} {:<14} {:>5} {:>7} {:>8}  answer / error",
        "#", "provider", "status", "ms", "endpoint", "group", "weight", "accuracy"
    );
    for (i, c) in d.candidates.iter().enumerate() {
        let text = if c.error.is_empty() {
            &c.text
        } else {
            &c.error
        };
        let text: String = text.replace('\n', " ").chars().take(60).collect();
        let _ = writeln!(
            out,
            "{:<3} {:<16} {:<9} {:>8} {:<14} {:>5} {:>7} {:>8}  {}{}",
            i,
            format!("{}{}", c.provider, if c.hedged { " (hedge)" } else { "" }),
            c.status,
            c.latency_ms,
            c.endpoint,
            c.group.map_or("-".to_owned(), |g| g.to_string()),
            c.weight.map_or("-".to_owned(), |w| format!("{w:.2}")),
            c.accuracy.map_or("-".to_owned(), |a| format!("{a:.3}")),
            text,
            if c.sample > 0 {
                format!("  (sample {})", c.sample)
            } else {
                String::new()
            }
        );
    }
    for (i, g) in d.groups.iter().enumerate() {
        let answer: String = g.answer.replace('\n', " ").chars().take(60).collect();
        let bar = "#".repeat((g.votes.max(0.0) * 4.0).round().min(40.0) as usize);
        let _ = writeln!(
            out,
            "group {i}: votes {:.2} {bar} members {:?}{}  {answer}",
            g.votes,
            g.members,
            g.probability
                .map_or(String::new(), |p| format!("  p {p:.3}"))
        );
    }
    if let Some(j) = &d.judge {
        let _ = writeln!(
            out,
            "judge {}: winner {}  attempts {}  scores {:?}{}",
            j.provider,
            j.winner.map_or("-".to_owned(), |w| w.to_string()),
            j.attempts,
            j.scores,
            if j.errors.is_empty() {
                String::new()
            } else {
                format!("  errors {:?}", j.errors)
            }
        );
    }
    if !d.rationale.is_empty() {
        let _ = writeln!(out, "rationale  {}", d.rationale);
    }
    for t in &d.tiers {
        let _ = writeln!(
            out,
            "tier {} ({}/1k): {}  {}",
            t.provider,
            t.cost_per_1k_tokens,
            if t.accepted { "accepted" } else { "passed on" },
            t.reason
        );
    }
    if !d.fallbacks.is_empty() {
        let _ = writeln!(out, "fallbacks  {}", d.fallbacks.join(", "));
    }
    out
}
