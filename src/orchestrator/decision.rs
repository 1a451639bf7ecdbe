//! The record of how an answer was chosen, returned with every answer; and the answer.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::providers::Usage;

/// How a candidate call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateStatus {
    /// A valid answer.
    Ok,
    /// An answer that is not valid for the task's output kind.
    Invalid,
    /// The call failed.
    Error,
    /// The call was dropped because another answer won.
    Cancelled,
    /// The call was still running when the deadline passed.
    Timeout,
    /// The call is still running (streams: the winner while it streams).
    Running,
}

impl CandidateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Invalid => "invalid",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::Running => "running",
        }
    }
}

/// One provider call made for a request.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub provider: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub status: CandidateStatus,
    /// The answer as the strategy compared it (normalised for labels and JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Sent because earlier calls were slow (hedging), not because one failed.
    pub hedged: bool,
}

/// How the answer was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub strategy: &'static str,
    pub candidates: Vec<Candidate>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub votes: BTreeMap<String, f64>,
    /// The provider whose answer was returned.
    pub winner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// Fallbacks taken, in order (`failover:NAME` when a provider was tried because the
    /// one before it failed).
    pub fallbacks: Vec<String>,
}

impl Decision {
    pub fn new(strategy: &'static str) -> Self {
        Self {
            strategy,
            candidates: Vec::new(),
            votes: BTreeMap::new(),
            winner: None,
            agreement: None,
            rationale: None,
            fallbacks: Vec::new(),
        }
    }
}

/// A finished answer.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub text: String,
    pub provider: String,
    pub model: String,
    pub usage: UsageOut,
    pub latency_ms: u64,
    pub cache_hit: bool,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub request_id: String,
}

/// Usage with the total spelled out, as every wire format reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total(),
        }
    }
}
