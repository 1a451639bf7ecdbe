//! Feedback on answers: what callers say was right overrides what the ensembles inferred.
//!
//! Every answered request of a label, JSON or tool-call task is remembered (its valid
//! answers, their providers and the credit each earned; `[learning] feedback_window` of
//! them, oldest out first). `POST /v1/feedback` and the `Feedback` RPC name a request id and
//! either the right answer or a verdict on the one returned; each remembered answer is then
//! regraded (`providers::Accuracy::feedback`). Only the tenant that made the request may
//! give feedback on it; to anyone else the id is unknown.

use std::sync::Arc;

use serde::Serialize;

use crate::config::raw::OutputKind;
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::providers::accuracy::{Graded, GradedAnswer, Refused, Regraded, Truth};
use crate::strategies::posterior;
use crate::types::{CandidateStatus, Decision, Plan};

/// What a caller says of an answer.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The right answer, as the caller writes it (normalised here, as the task's answers
    /// are).
    Answer(String),
    Good,
    Bad,
}

/// One feedback.
#[derive(Debug, Clone)]
pub struct FeedbackCall {
    pub request_id: String,
    pub verdict: Verdict,
    /// The caller (`None` without credentials).
    pub tenant: Option<Arc<crate::config::security::Tenant>>,
}

/// What the feedback changed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackReply {
    pub request_id: String,
    pub task: String,
    /// The right answer as the pool compares answers (`None` for a verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    pub graded: Vec<Regraded>,
}

/// Applies one feedback.
pub fn feedback(snapshot: &Snapshot, call: FeedbackCall) -> Result<FeedbackReply, PoolError> {
    if call.request_id.is_empty() {
        return Err(PoolError::invalid("request_id", "is required"));
    }
    let tenant = call.tenant.as_ref().map(|t| t.name().as_ref());
    let unknown = || PoolError::UnknownRequest(call.request_id.clone());
    let task_name = snapshot
        .accuracy
        .task_of(&call.request_id, tenant)
        .ok_or_else(unknown)?;
    let (truth, answer, verdict) = match &call.verdict {
        Verdict::Good => (Truth::Good, None, "good"),
        Verdict::Bad => (Truth::Bad, None, "bad"),
        Verdict::Answer(text) => {
            let task = snapshot
                .config
                .tasks()
                .get(&task_name)
                .ok_or_else(unknown)?;
            let normalized = normalize(task, text).map_err(|e| PoolError::invalid("answer", e))?;
            (
                Truth::Answer(normalized.clone()),
                Some(normalized),
                "answer",
            )
        }
    };
    let graded = snapshot
        .accuracy
        .feedback(&call.request_id, tenant, &truth)
        .map_err(|r| match r {
            Refused::Unknown => unknown(),
            Refused::Unanswered => PoolError::invalid(
                "verdict",
                "that request returned no answer (no consensus or too little confidence): \
                 give the right answer instead",
            ),
        })?;
    crate::telemetry::metrics::feedback(&task_name, verdict);
    Ok(FeedbackReply {
        request_id: call.request_id,
        task: task_name,
        answer,
        graded,
    })
}

/// The right answer in the form the task's answers are compared in.
fn normalize(task: &crate::config::TaskConfig, text: &str) -> Result<String, String> {
    match task.output() {
        OutputKind::ToolCall => {
            // The calls as the Decision shows them: `[{"name", "arguments"}]`.
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| format!("a tool-call task's answer is its calls as JSON: {e}"))?;
            Ok(crate::types::normalize::canonical_json(&value))
        }
        _ => crate::types::output::check(task, text),
    }
}

/// Remembers a request for feedback (label, JSON and tool-call tasks): its valid answers,
/// and the one returned (`None` when it failed with its candidates).
pub(super) fn remember(plan: &Plan, decision: &Decision, winner: Option<&str>) {
    let Some(task) = plan.task_name.as_deref() else {
        return;
    };
    if !plan.accuracy.remembers() || !posterior::learns(&plan.task) {
        return;
    }
    let answers = decision
        .candidates
        .iter()
        .filter(|c| c.status == CandidateStatus::Ok)
        .filter_map(|c| {
            Some(GradedAnswer {
                provider: c.provider.clone(),
                answer: c.text.clone()?,
                probability: c
                    .group
                    .and_then(|g| decision.groups.get(g))
                    .and_then(|g| g.probability),
                credit: c.credit,
            })
        })
        .collect();
    plan.accuracy.remember(
        &plan.request_id,
        Graded {
            tenant: plan.tenant.as_ref().map(|t| Arc::clone(t.name())),
            task: task.to_owned(),
            winner: winner.map(str::to_owned),
            answers,
        },
    );
}

/// Feedback on `plan`'s request goes to the answers of `original` (a cache hit or a joined
/// call returned them).
pub(super) fn alias(plan: &Plan, original: &str) {
    if plan.accuracy.remembers() && posterior::learns(&plan.task) {
        plan.accuracy.alias(&plan.request_id, original);
    }
}
