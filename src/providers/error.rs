//! What can go wrong calling an upstream, classified so that retry and failover decide from
//! the type, never from message text.

use std::sync::Arc;

/// An upstream call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The connection could not be made (refused, reset, DNS, TLS).
    #[error("endpoint {endpoint}: connect: {message}")]
    Connect { endpoint: Arc<str>, message: String },
    /// The call ran past the provider's per-call timeout.
    #[error("endpoint {endpoint}: timed out")]
    Timeout { endpoint: Arc<str> },
    /// The request's own deadline ran out during the call (says nothing of the endpoint).
    #[error("endpoint {endpoint}: the request's deadline passed")]
    DeadlineExceeded { endpoint: Arc<str> },
    /// The upstream answered with an error status.
    #[error("endpoint {endpoint}: status {status}: {message}")]
    Status {
        endpoint: Arc<str>,
        status: u16,
        message: String,
    },
    /// The upstream's body was not what its API promises.
    #[error("endpoint {endpoint}: bad response: {message}")]
    Decode { endpoint: Arc<str>, message: String },
    /// The upstream reported an error inside an answer it had started (an SSE `error`
    /// event, an Ollama `{"error"}` line).
    #[error("endpoint {endpoint}: error inside the answer: {message}")]
    InBand { endpoint: Arc<str>, message: String },
    /// The connection broke while reading the body or stream.
    #[error("endpoint {endpoint}: stream broken: {message}")]
    Broken { endpoint: Arc<str>, message: String },
    /// No endpoint of the provider can take the call now.
    #[error("provider {provider}: {reason}")]
    NoEndpoint {
        provider: String,
        reason: &'static str,
    },
    /// Every slot of the provider's endpoints is taken and the caller could not be served
    /// in time (its class's queue was full, or it would have waited too long).
    #[error("provider {provider}: overloaded ({reason}); retry after {} ms", retry_after.as_millis())]
    Overloaded {
        provider: String,
        reason: &'static str,
        retry_after: std::time::Duration,
        /// Every class's queue was full, not just the caller's.
        saturated: bool,
    },
}

impl ProviderError {
    /// Whether the upstream refused the request itself (400, 413, 422: bad parameters, a
    /// prompt too long for its context): another provider would likely refuse it too, and
    /// the caller should hear about it as a bad request.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 400 | 413 | 422,
                ..
            }
        )
    }

    /// Whether another attempt (elsewhere, or later) may succeed. Refusals are the caller's
    /// fault and are not retried; other 4xx (a missing model, a bad key, 408, 429) are.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { .. } => !self.is_refusal(),
            Self::DeadlineExceeded { .. } => false,
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Broken { .. }
            | Self::InBand { .. }
            | Self::NoEndpoint { .. }
            | Self::Overloaded { .. }
            | Self::Decode { .. } => true,
        }
    }

    /// Whether the endpoint itself misbehaved (counts against its health): 5xx, and 401,
    /// 403, 404 (a bad key, or a model missing on that endpoint).
    pub fn is_endpoint_failure(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500 || matches!(status, 401 | 403 | 404),
            Self::NoEndpoint { .. } | Self::Overloaded { .. } | Self::DeadlineExceeded { .. } => {
                false
            }
            _ => true,
        }
    }

    /// What went wrong, in words a tenant may read: no upstream URL and no upstream body
    /// (those can name internal hosts, keys or other callers' data). The full error, with
    /// both, goes to the logs and to `/health` for operators.
    pub fn public_reason(&self) -> String {
        match self {
            Self::Connect { .. } => "could not connect to the model server".to_owned(),
            Self::Timeout { .. } => "the model server did not answer in time".to_owned(),
            Self::DeadlineExceeded { .. } => "the request's deadline passed".to_owned(),
            // A refusal is about the caller's own request ("context length exceeded"):
            // its reason is theirs to read, cut short.
            Self::Status {
                status, message, ..
            } if self.is_refusal() => {
                let reason: String = message.chars().take(200).collect();
                format!("the model server refused the request ({status}): {reason}")
            }
            Self::Status { status, .. } => format!("the model server answered {status}"),
            Self::Decode { .. } => "the model server's answer was malformed".to_owned(),
            Self::InBand { .. } => {
                "the model server reported an error inside its answer".to_owned()
            }
            Self::Broken { .. } => "the model server's answer broke off".to_owned(),
            Self::NoEndpoint { provider, reason } => format!("provider {provider}: {reason}"),
            Self::Overloaded {
                provider, reason, ..
            } => format!("provider {provider}: overloaded, {reason}"),
        }
    }

    /// A short, low-cardinality label for metrics and the Decision.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::DeadlineExceeded { .. } => "deadline",
            Self::Status { status, .. } if *status >= 500 => "upstream_5xx",
            Self::Status { .. } => "upstream_4xx",
            Self::Decode { .. } => "decode",
            Self::Broken { .. } => "broken",
            Self::InBand { .. } => "in_band_error",
            Self::NoEndpoint { .. } => "no_endpoint",
            Self::Overloaded { .. } => "overloaded",
        }
    }
}
