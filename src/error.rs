//! The one mapping from what went wrong to gRPC codes and HTTP statuses (shared/DESIGN.md,
//! "Errors"). Wire shapes live with each API; this file decides only the kind.
//!
//! May import `types` (an error carries the Decision made so far) and nothing above it.

use crate::types::Decision;

/// The class of a failure, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    /// The request body stalled past the body timeout.
    RequestTimeout,
    Unauthenticated,
    PermissionDenied,
    RateLimited,
    /// Every slot was taken and the request could not be served in time (its class's
    /// queue was full, or it would have waited past its deadline).
    Overloaded,
    NoConsensus,
    /// The winning answer's posterior was below the task's `min_confidence`
    /// (`on_low_confidence = "abstain"`).
    LowConfidence,
    /// Every candidate answered, and no answer was valid for the task's output kind.
    InvalidAnswer,
    DeadlineExceeded,
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::InvalidArgument => S::BAD_REQUEST,
            Self::NotFound => S::NOT_FOUND,
            Self::PayloadTooLarge => S::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => S::REQUEST_TIMEOUT,
            Self::Unauthenticated => S::UNAUTHORIZED,
            Self::PermissionDenied => S::FORBIDDEN,
            Self::RateLimited | Self::Overloaded => S::TOO_MANY_REQUESTS,
            Self::NoConsensus | Self::LowConfidence => S::CONFLICT,
            Self::InvalidAnswer => S::BAD_GATEWAY,
            Self::DeadlineExceeded => S::GATEWAY_TIMEOUT,
            Self::Unavailable => S::SERVICE_UNAVAILABLE,
            Self::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            Self::InvalidArgument => C::InvalidArgument,
            Self::NotFound => C::NotFound,
            Self::PayloadTooLarge | Self::RateLimited | Self::Overloaded => C::ResourceExhausted,
            Self::Unauthenticated => C::Unauthenticated,
            Self::PermissionDenied => C::PermissionDenied,
            Self::NoConsensus | Self::LowConfidence => C::Aborted,
            // "Do not retry until the system is fixed": the same request gets the same
            // invalid answers, so clients must not retry it as they retry UNAVAILABLE.
            Self::InvalidAnswer => C::FailedPrecondition,
            Self::DeadlineExceeded | Self::RequestTimeout => C::DeadlineExceeded,
            Self::Unavailable => C::Unavailable,
            Self::Internal => C::Internal,
        }
    }

    /// Low-cardinality name, used as the native error `code` and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::NoConsensus => "no_consensus",
            Self::LowConfidence => "low_confidence",
            Self::InvalidAnswer => "invalid_answer",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// A request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// A field of the request is missing or out of range.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("unknown task `{0}`")]
    UnknownTask(String),
    #[error("unknown model `{0}`: use a provider name, `task:NAME` or an alias (see /v1/models)")]
    UnknownModel(String),
    /// Feedback names a request the pool does not remember for this caller.
    #[error(
        "no answered request `{0}` to give feedback on: unknown, made by another caller, not of \
         a label, JSON or tool-call task, or older than the last [learning] feedback_window \
         requests"
    )]
    UnknownRequest(String),
    /// `cache: only` and the answer is not cached.
    #[error("not in the cache (cache mode `only`)")]
    CacheMiss,
    #[error("request body too large (limit {limit} bytes)")]
    BodyTooLarge { limit: usize },
    /// The body stopped arriving for longer than the body timeout.
    #[error("the request body stalled; send it without pauses")]
    BodyTimeout,
    /// The deadline passed before an answer was ready.
    #[error("deadline exceeded after {elapsed_ms} ms")]
    DeadlineExceeded {
        elapsed_ms: u64,
        decision: Option<Box<Decision>>,
    },
    /// No candidate produced a valid answer.
    #[error("no provider produced an answer: {summary}")]
    Unavailable {
        summary: String,
        decision: Option<Box<Decision>>,
    },
    /// The candidates answered, but no answer was valid for the task's output kind (a label
    /// outside the set, JSON that fails the schema). The model servers work; the task's
    /// prompt or models do not fit. Each candidate's reason is in the Decision.
    #[error("no valid answer: {summary}")]
    InvalidAnswer {
        summary: String,
        decision: Option<Box<Decision>>,
    },
    /// CONSENSUS with `on_disagreement = "error"`: the winning group was too small. The
    /// Decision carries every candidate.
    #[error(
        "no consensus: the largest group holds {votes} answer(s) and {agreement:.2} of the \
         valid answers; the task needs {min_votes} and {min_agreement:.2}"
    )]
    NoConsensus {
        agreement: f64,
        min_agreement: f64,
        votes: usize,
        min_votes: usize,
        decision: Box<Decision>,
    },
    /// `min_confidence` with `on_low_confidence = "abstain"`: the winning answer's posterior
    /// was too low. The Decision carries every candidate.
    #[error(
        "low confidence: the leading answer is right with probability {confidence:.3}; the \
         task needs {min_confidence:.3}"
    )]
    LowConfidence {
        confidence: f64,
        min_confidence: f64,
        decision: Box<Decision>,
    },
    /// Every upstream refused the request itself (4xx): the request, not the pool, is wrong.
    #[error("the model servers refused the request: {summary}")]
    Rejected {
        summary: String,
        decision: Option<Box<Decision>>,
    },
    /// Missing or invalid credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The tenant is over one of its limits; retry after `retry_after`.
    #[error("rate limited: {message}; retry after {} s", ceil_secs(*retry_after))]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// Every provider that could answer refused the request a slot: every slot was taken
    /// and it could not be served in time. 429 (`RESOURCE_EXHAUSTED`) when its class was
    /// over its bounds; 503 (`UNAVAILABLE`) when every class's queue was full
    /// (`saturated`). Nothing was sent upstream.
    #[error("overloaded: {summary}; retry after {} s", ceil_secs(*retry_after))]
    Overloaded {
        summary: String,
        retry_after: std::time::Duration,
        saturated: bool,
        decision: Option<Box<Decision>>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl PoolError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } | Self::Rejected { .. } => ErrorKind::InvalidArgument,
            Self::NoConsensus { .. } => ErrorKind::NoConsensus,
            Self::LowConfidence { .. } => ErrorKind::LowConfidence,
            Self::UnknownTask(_)
            | Self::UnknownModel(_)
            | Self::UnknownRequest(_)
            | Self::CacheMiss => ErrorKind::NotFound,
            Self::BodyTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Self::BodyTimeout => ErrorKind::RequestTimeout,
            Self::DeadlineExceeded { .. } => ErrorKind::DeadlineExceeded,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::InvalidAnswer { .. } => ErrorKind::InvalidAnswer,
            Self::Internal(_) => ErrorKind::Internal,
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::Overloaded {
                saturated: true, ..
            } => ErrorKind::Unavailable,
            Self::Overloaded { .. } => ErrorKind::Overloaded,
        }
    }

    /// The field a validation error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whole seconds a rate-limited caller should wait (`Retry-After`), at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Overloaded { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
                    .map(|s| s.max(1))
            }
            _ => None,
        }
    }

    /// Headers that go with this error on HTTP: `Retry-After` on 429 and on an overloaded
    /// 503, `WWW-Authenticate` on 401.
    pub fn http_headers(&self, headers: &mut http::HeaderMap) {
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if matches!(
            self.kind(),
            ErrorKind::InvalidAnswer | ErrorKind::NoConsensus | ErrorKind::LowConfidence
        ) {
            // The same request would fail the same way: tell SDKs that retry 409 and 5xx
            // on their own (the OpenAI SDKs read this header) not to.
            headers.insert(
                http::HeaderName::from_static("x-should-retry"),
                http::HeaderValue::from_static("false"),
            );
        }
        if matches!(self, Self::Unauthenticated(_)) {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"llm-pool\""),
            );
        }
    }

    /// The Decision gathered before the failure, when there is one.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Self::DeadlineExceeded { decision, .. }
            | Self::Unavailable { decision, .. }
            | Self::InvalidAnswer { decision, .. }
            | Self::Rejected { decision, .. }
            | Self::Overloaded { decision, .. } => decision.as_deref(),
            Self::NoConsensus { decision, .. } | Self::LowConfidence { decision, .. } => {
                Some(decision)
            }
            _ => None,
        }
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says and the message repeats.
fn ceil_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}
