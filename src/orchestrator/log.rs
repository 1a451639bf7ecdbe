//! One INFO line per request (who asked for what, what answered, how long, what it cost)
//! and the answer metrics that go with it.

use std::sync::Arc;

use super::PoolRequest;
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::types::{Answer, Decision, Plan};

/// Who a log line is about.
#[derive(Clone, Copy)]
pub(super) struct Who<'a> {
    pub(super) request_id: &'a str,
    pub(super) task: Option<&'a str>,
    pub(super) tenant: Option<&'a str>,
}

impl Plan {
    pub(super) fn who(&self) -> Who<'_> {
        Who {
            request_id: &self.request_id,
            task: self.task_name.as_deref(),
            tenant: self.tenant.as_ref().map(|t| &**t.name()),
        }
    }
}

/// One line per request (INFO): who asked for what, what answered, how long, what it cost.
pub(super) fn log_outcome(
    who: Who<'_>,
    started: tokio::time::Instant,
    result: Result<&Answer, &PoolError>,
) {
    let Who {
        request_id,
        task,
        tenant,
    } = who;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_millis() as u64;
    let m = crate::telemetry::metrics::answer;
    match result {
        // Task and strategy come from the config (labels stay low-cardinality); a failed
        // request's task may be whatever the caller wrote, so it is not a label.
        Ok(a) => m(
            a.task.as_deref().unwrap_or("direct"),
            &a.decision.strategy,
            "ok",
            elapsed,
        ),
        Err(e) => m("_", "_", e.kind().as_str(), elapsed),
    }
    match result {
        Ok(a) => tracing::info!(
            request_id,
            tenant,
            task,
            strategy = %a.decision.strategy,
            winner = %a.provider,
            latency_ms,
            tokens = a.decision.total_usage.total_tokens,
            cache = if a.cache_hit { "hit" } else if a.cache_key.is_some() { "miss" } else { "off" },
            "Request answered."
        ),
        Err(e) => tracing::info!(
            request_id,
            tenant,
            task,
            latency_ms,
            error = e.kind().as_str(),
            "Request failed."
        ),
    }
}

/// Plans a request; a refused request gets its log line too.
pub(super) fn plan_logged(req: PoolRequest, snapshot: &Snapshot) -> Result<Plan, PoolError> {
    let (id, task, tenant, started) = (
        req.request_id.clone(),
        req.task.clone(),
        req.tenant.as_ref().map(|t| Arc::clone(t.name())),
        tokio::time::Instant::now(),
    );
    req.plan(snapshot).inspect_err(|e| {
        let who = Who {
            request_id: &id,
            task: task.as_deref(),
            tenant: tenant.as_deref(),
        };
        log_outcome(who, started, Err(e));
    })
}

/// Each ensemble candidate's vote: in the winning group, in another, or invalid.
pub(super) fn record_votes(decision: &Decision) {
    let winning = decision
        .candidates
        .iter()
        .find(|c| Some(&c.provider) == decision.winner.as_ref() && c.group.is_some())
        .and_then(|c| c.group);
    for c in &decision.candidates {
        let vote = match c.group {
            None => "invalid",
            g if g == winning => "winner",
            Some(_) => "other",
        };
        metrics::counter!(
            crate::telemetry::metrics::VOTES,
            "strategy" => decision.strategy.to_string(),
            "provider" => c.provider.clone(),
            "vote" => vote
        )
        .increment(1);
    }
}
