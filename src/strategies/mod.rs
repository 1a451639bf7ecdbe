//! Strategies: how one answer is made from one or many provider calls. Each strategy is
//! one file; `gather` runs the concurrent calls of the ensembles, `grouping` decides which
//! answers are equivalent. Reliability lives with the providers (`providers::reliability`).
//!
//! May import types, providers, config, error and telemetry; only the orchestrator imports
//! it.

pub mod cascade;
pub mod fastest;
pub mod gather;
pub mod grouping;
pub mod hedge;
pub mod judge;
pub mod posterior;
pub mod voting;

use crate::error::PoolError;
use crate::providers::Reliability;
use crate::types::{Candidate, CandidateStatus, Decision, Outcome, Plan};

/// Records what each finished call says about its provider: a valid answer counts for it;
/// an invalid answer or a failed call against it. Calls cancelled because another answer
/// won, and calls cut by the caller's deadline (`Timeout`), say nothing about the provider:
/// one caller's short deadline must not lower the votes of everyone's.
pub(crate) fn record_reliability(reliability: &Reliability, candidates: &[Candidate]) {
    for c in candidates {
        match c.status {
            CandidateStatus::Ok => reliability.record(&c.provider, true),
            CandidateStatus::Invalid | CandidateStatus::Error => {
                reliability.record(&c.provider, false);
            }
            CandidateStatus::Timeout | CandidateStatus::Cancelled | CandidateStatus::Running => {}
        }
    }
}

/// Records a failed call: `Timeout` when the request's deadline cut it (`past_deadline`, or
/// the error says so), else `Error`; the reason callers may read, and the whole error in
/// the debug log for operators.
pub(crate) fn failed(c: &mut Candidate, e: &crate::providers::ProviderError, past_deadline: bool) {
    c.status =
        if past_deadline || matches!(e, crate::providers::ProviderError::DeadlineExceeded { .. }) {
            CandidateStatus::Timeout
        } else {
            CandidateStatus::Error
        };
    tracing::debug!(provider = %c.provider, error = %e, "Upstream call failed.");
    c.error = Some(e.public_reason());
    if let crate::providers::ProviderError::Overloaded {
        retry_after,
        saturated,
        ..
    } = e
    {
        c.overloaded = Some((*retry_after, *saturated));
    }
}

/// The outcome for `winner`, an index into `decision.candidates`.
fn outcome(
    plan: &Plan,
    winner: usize,
    gathered: &gather::Gathered,
    mut decision: Decision,
) -> Result<Outcome, PoolError> {
    let completion = gathered
        .completion(winner)
        .cloned()
        .ok_or_else(|| PoolError::Internal("the winning candidate has no answer".into()))?;
    decision.winner = Some(decision.candidates[winner].provider.clone());
    let normalized = decision.candidates[winner].text.clone().unwrap_or_default();
    // More choices: the other valid answers, in candidate order.
    let others = (0..gathered.completions.len())
        .filter(|&i| i != winner && decision.candidates[i].status == CandidateStatus::Ok)
        .filter_map(|i| gathered.completion(i).cloned())
        .take(plan.choices.saturating_sub(1))
        .collect();
    Ok(Outcome {
        completion,
        normalized,
        decision,
        others,
    })
}

/// No candidate produced a valid answer: 504 when the deadline cut the calls short;
/// `invalid_answer` when every candidate answered but none validly; else 503.
fn nothing_valid(plan: &Plan, end: gather::End, decision: Decision) -> PoolError {
    if end == gather::End::Deadline {
        return PoolError::DeadlineExceeded {
            elapsed_ms: plan.started.elapsed().as_millis() as u64,
            decision: Some(Box::new(decision)),
        };
    }
    no_answer(decision, false)
}

/// Every candidate failed. The error says why, by what the candidates did: every upstream
/// refused the request (400: the request is wrong), every candidate answered invalidly
/// (`invalid_answer`: the servers work, the answers do not fit the task), or calls failed
/// (503).
pub(crate) fn no_answer(decision: Decision, refused_only: bool) -> PoolError {
    let summary = decision
        .candidates
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c.provider,
                c.error.as_deref().unwrap_or("no answer")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let answered_invalid = decision
        .candidates
        .iter()
        .filter(|c| c.status != CandidateStatus::Cancelled)
        .all(|c| c.status == CandidateStatus::Invalid)
        && decision
            .candidates
            .iter()
            .any(|c| c.status == CandidateStatus::Invalid);
    if let Some((retry_after, saturated)) = all_overloaded(&decision) {
        return PoolError::Overloaded {
            summary,
            retry_after,
            saturated,
            decision: Some(Box::new(decision)),
        };
    }
    let decision = Some(Box::new(decision));
    if refused_only {
        PoolError::Rejected { summary, decision }
    } else if answered_invalid {
        PoolError::InvalidAnswer { summary, decision }
    } else {
        PoolError::Unavailable { summary, decision }
    }
}

/// When every candidate that ran was refused a slot: the soonest retry, and whether every
/// provider was saturated.
fn all_overloaded(decision: &Decision) -> Option<(std::time::Duration, bool)> {
    let mut tried = decision
        .candidates
        .iter()
        .filter(|c| c.status != CandidateStatus::Cancelled)
        .peekable();
    tried.peek()?;
    tried.try_fold((std::time::Duration::MAX, true), |(retry, saturated), c| {
        let (r, s) = c.overloaded?;
        Some((retry.min(r), saturated && s))
    })
}

/// One candidate's upstream call inside its `upstream` span (provider, model, hedge, sample;
/// outcome and tokens once done), so that its attempts are children of it. Without trace
/// export the call is returned as is.
pub(crate) fn traced<T: fastest::Attempt>(
    provider: &dyn crate::providers::Provider,
    hedge: bool,
    sample: u32,
    call: futures::future::BoxFuture<'static, Result<T, crate::providers::ProviderError>>,
) -> futures::future::BoxFuture<'static, Result<T, crate::providers::ProviderError>> {
    use tracing::Instrument;
    use tracing::field::Empty;
    if !crate::telemetry::otel::enabled() {
        return call;
    }
    let span = tracing::debug_span!(
        "upstream",
        otel.name = %format!("upstream {}", provider.name()),
        otel.kind = "client",
        provider = provider.name(),
        model = provider.model(),
        hedge,
        sample,
        endpoint = Empty,
        outcome = Empty,
        prompt_tokens = Empty,
        completion_tokens = Empty,
    );
    let recorder = span.clone();
    Box::pin(
        async move {
            let result = call.await;
            match &result {
                Ok(t) => {
                    recorder.record("outcome", "ok");
                    recorder.record("endpoint", t.endpoint());
                    if let Some(u) = t.usage() {
                        recorder.record("prompt_tokens", u.prompt_tokens);
                        recorder.record("completion_tokens", u.completion_tokens);
                    }
                }
                Err(e) => {
                    recorder.record("outcome", e.metric_label());
                }
            }
            result
        }
        .instrument(span),
    )
}
