//! The record of how an answer was chosen, returned with every answer; and the answer.

use std::collections::BTreeMap;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::providers::Usage;

/// How a candidate call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// When the call was sent, in milliseconds after the request began (with `latency_ms`,
    /// the call's place on a timeline).
    #[serde(default)]
    pub started_ms: u64,
    /// Attempts on other endpoints of the provider that failed before this call's endpoint
    /// answered (retries within the call).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Sent because earlier calls were slow (hedging), not because one failed.
    pub hedged: bool,
    /// 0 for a provider's first sample in this request, 1 for its second, …
    pub sample: u32,
    /// WEIGHTED: this candidate's vote, `weight × reliability × log-odds(accuracy)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// VOTING/WEIGHTED/CONSENSUS: the provider's learned accuracy on the task when it was
    /// asked (the prior, 0.7, until it has evidence), and the graded answers behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<f64>,
    /// What this answer earned as evidence of its provider's accuracy: the posterior
    /// probability that it was right (absent when it was not graded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<f64>,
    /// Index into `Decision::groups` of the group this answer joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    /// The provider refused this call a slot (every slot taken, not served in time), so
    /// nothing was sent: when to try again, and whether every class's queue was full.
    #[serde(skip)]
    pub overloaded: Option<(std::time::Duration, bool)>,
}

impl Candidate {
    /// A call just started, `started_ms` after the request began.
    pub fn running(
        provider: &str,
        model: &str,
        hedged: bool,
        sample: u32,
        started_ms: u64,
    ) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            endpoint: None,
            status: CandidateStatus::Running,
            text: None,
            latency_ms: 0,
            started_ms,
            retries: 0,
            error: None,
            usage: None,
            hedged,
            sample,
            weight: None,
            accuracy: None,
            evidence: None,
            credit: None,
            group: None,
            overloaded: None,
        }
    }
}

/// How a routed task chose the task that answered (`router`, `routes`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteRecord {
    /// The label task that classified the request.
    pub router: String,
    /// Its answer (empty when it failed).
    pub label: String,
    /// Its confidence in that answer.
    pub confidence: f64,
    /// The route taken: the label, or the safe route.
    pub route: String,
    /// The task that answered.
    pub task: String,
    /// `confident`, `unsure` (below `route_confidence`: the safe route) or `router_failed`.
    pub reason: Cow<'static, str>,
}

/// A label and the posterior probability that it is the right answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelProbability {
    pub label: String,
    pub probability: f64,
}

/// One group of equivalent answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group's normalised answer.
    pub answer: String,
    /// Indices into `Decision::candidates`.
    pub members: Vec<usize>,
    pub votes: f64,
    /// The posterior probability that this answer is right (VOTING/WEIGHTED/CONSENSUS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
}

/// What the judge was shown and said.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JudgeRecord {
    pub provider: String,
    /// Seed of the shuffle that set the order candidates were shown in (against position
    /// bias); the same seed reproduces the order.
    pub seed: u64,
    /// Candidate indices in the order shown (position 1 first).
    pub order: Vec<usize>,
    /// Scores by candidate index.
    pub scores: BTreeMap<usize, f64>,
    /// The chosen candidate index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<usize>,
    /// Judge calls made (a second one when the first answer was invalid).
    pub attempts: u32,
    /// Why attempts failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One CASCADE tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierRecord {
    pub provider: String,
    pub cost_per_1k_tokens: f64,
    pub accepted: bool,
    /// Why the tier was accepted or left.
    pub reason: String,
    /// Indices into `Decision::candidates` of this tier's calls.
    pub candidates: Vec<usize>,
}

/// How the answer was chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub strategy: Cow<'static, str>,
    pub candidates: Vec<Candidate>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub votes: BTreeMap<String, f64>,
    /// The provider whose answer was returned.
    pub winner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// VOTING/WEIGHTED/CONSENSUS: the posterior probability that the answer is right, under
    /// the providers' learned accuracies (`strategies::posterior`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Why the ensemble stopped drawing candidates: `confident` (the leader reached the
    /// task's `confidence`), `decided` (no other answer could win), `all_answered` (every
    /// planned call finished) or `deadline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// Fallbacks taken, in order (`failover:NAME` when a provider was tried because the
    /// one before it failed).
    pub fallbacks: Vec<String>,
    /// Groups of equivalent answers (voting strategies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRecord>,
    /// How votes were weighed (WEIGHTED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formula: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierRecord>,
    /// A routed task: how the answering task was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteRecord>,
    /// Tokens of every call made for this answer (the answer's own `usage` is the
    /// winner's).
    pub total_usage: UsageOut,
    /// Why this is not the task's normal, complete answer (`fallback`, `deadline`,
    /// `no_consensus`, `judge_invalid`, `no_tier_accepted`): such answers are returned,
    /// flagged, but never cached. Empty for a normal answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<Cow<'static, str>>,
}

impl Decision {
    pub fn new(strategy: &'static str) -> Self {
        Self {
            strategy: Cow::Borrowed(strategy),
            candidates: Vec::new(),
            votes: BTreeMap::new(),
            winner: None,
            agreement: None,
            confidence: None,
            stopped: None,
            rationale: None,
            fallbacks: Vec::new(),
            groups: Vec::new(),
            formula: None,
            judge: None,
            tiers: Vec::new(),
            route: None,
            total_usage: UsageOut::default(),
            degraded: Vec::new(),
        }
    }

    /// Marks the answer as taken off the normal path (see `degraded`).
    pub fn degrade(&mut self, why: &'static str) {
        if !self.degraded.iter().any(|d| d == why) {
            self.degraded.push(Cow::Borrowed(why));
        }
    }

    /// Adds a call's tokens to the total.
    pub fn add_usage(&mut self, u: Usage) {
        self.total_usage.prompt_tokens += u.prompt_tokens;
        self.total_usage.completion_tokens += u.completion_tokens;
        self.total_usage.total_tokens += u.total();
    }

    /// Marks every call still running with `status`.
    pub fn finish_running(&mut self, status: CandidateStatus, latency_ms: u64) {
        for c in &mut self.candidates {
            if c.status == CandidateStatus::Running {
                c.status = status;
                c.latency_ms = latency_ms;
            }
        }
    }
}

impl Answer {
    /// Whether this request made the upstream calls itself (not a cache hit, not a join
    /// of an identical request's call): what it is billed for.
    pub fn billed(&self) -> bool {
        !self.cache_hit && !self.joined
    }

    /// Marks the answer as served from someone else's calls: its `usage` (what the caller
    /// is told it spent) becomes zero; the Decision keeps the original calls' tokens.
    pub fn served_free(&mut self) {
        self.usage = UsageOut::default();
        // The upstream's body tells of the tokens spent; this caller spent none.
        self.verbatim = None;
    }
}

/// A finished answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    pub provider: String,
    pub model: String,
    pub usage: UsageOut,
    pub latency_ms: u64,
    pub cache_hit: bool,
    /// The answer came from an identical request's call in flight (single flight): like a
    /// cache hit, it cost this request no upstream tokens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub joined: bool,
    /// The answer's cache key (hex SHA-256), when the cache took part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The tools the answer calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<crate::providers::ToolCall>,
    /// The answer's token log probabilities, when asked for (OpenAI's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<serde_json::Value>,
    /// More answers, when the request asked for more than one choice: other valid
    /// candidates, in candidate order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// The model's reasoning before its answer, when it gave some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The model server's own timings of the winning call, when it reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<crate::providers::Timings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub request_id: String,
    /// `top_k` of the request (label tasks): the most probable labels, most probable first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_k: Vec<LabelProbability>,
    /// The winning upstream's body, when this answer is exactly what it said (a FASTEST
    /// answer, unnormalised, of one choice, not from the cache or another caller's call):
    /// a surface of the same dialect may hand it on (see [`crate::providers::Verbatim`]).
    /// Never stored or serialised.
    #[serde(skip)]
    pub verbatim: Option<crate::providers::Verbatim>,
}

/// One more answer of a request that asked for several.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alternative {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<crate::providers::ToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The provider that answered it.
    pub provider: String,
}

/// Usage with the total spelled out, as every wire format reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers go to Redis as JSON and must come back whole.
    #[test]
    fn answers_round_trip_through_json() {
        let mut d = Decision::new("voting");
        d.candidates.push(Candidate::running("a", "m", false, 0, 0));
        d.judge = Some(JudgeRecord {
            provider: "j".into(),
            ..Default::default()
        });
        let answer = Answer {
            text: "t".into(),
            provider: "a".into(),
            model: "m".into(),
            usage: UsageOut::default(),
            latency_ms: 1,
            cache_hit: false,
            joined: false,
            cache_key: None,
            decision: d,
            finish_reason: None,
            tool_calls: Vec::new(),
            logprobs: None,
            alternatives: Vec::new(),
            timings: None,
            reasoning: None,
            task: None,
            request_id: "r".into(),
            top_k: Vec::new(),
            verbatim: None,
        };
        let json = serde_json::to_string(&answer).unwrap();
        let back: Answer = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
