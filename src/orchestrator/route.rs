//! Routing by classification: a task with a `router` first asks that label task (any
//! strategy) about the request, and answers with the task its label routes to. When the
//! router's confidence is below `route_confidence`, or the router fails, the request takes
//! `safe_route` (and a failed router flags the answer `router_failed`). The Decision
//! records the route (`Decision::route`); `llm_pool_routes_total` counts them.
//!
//! The router's confidence is its Decision's `confidence` (the ensembles' posterior), else
//! the learned accuracy of the provider that answered (`answer_confidence`).

use futures::future::BoxFuture;

use crate::config::Routing;
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::providers::{Accuracy, Estimate};
use crate::types::{Answer, RouteRecord};

use super::PoolRequest;

/// The confidence of an answer: its Decision's posterior, else the answering provider's
/// learned accuracy on the task.
pub(super) fn answer_confidence(accuracy: &Accuracy, task: Option<&str>, answer: &Answer) -> f64 {
    answer.decision.confidence.unwrap_or_else(|| match task {
        Some(task) => accuracy.get(task, &answer.provider).accuracy,
        None => Estimate::PRIOR.accuracy,
    })
}

/// The routing of `req`'s task, when it has one (and its name).
pub(super) fn routing_of(snapshot: &Snapshot, req: &PoolRequest) -> Option<(String, Routing)> {
    if !snapshot.routed() {
        return None;
    }
    let name = req
        .task
        .as_deref()
        .or_else(|| req.model.as_deref().and_then(|m| m.strip_prefix("task:")))?;
    let task = snapshot.config.tasks().get(name)?;
    Some((name.to_owned(), task.routing()?.clone()))
}

/// Answers `req` with `ask` through its task's router (`routing`, from [`routing_of`]).
pub(super) async fn routed<'a>(
    snapshot: &'a Snapshot,
    req: PoolRequest,
    (name, routing): (String, Routing),
    ask: impl Fn(PoolRequest) -> BoxFuture<'a, Result<Answer, PoolError>>,
) -> Result<Answer, PoolError> {
    let (target, record) = choose(snapshot, &name, &routing, &req, &ask).await;
    let mut req = req;
    req.task = Some(target);
    req.model = None;
    let mut answer = ask(req).await?;
    if record.reason == "router_failed" {
        answer.decision.degrade("router_failed");
    }
    answer.decision.route = Some(record);
    Ok(answer)
}

/// Asks the router and picks the route: (the task to answer, the record of why).
pub(super) async fn choose<'a>(
    snapshot: &'a Snapshot,
    name: &str,
    routing: &Routing,
    req: &PoolRequest,
    ask: &impl Fn(PoolRequest) -> BoxFuture<'a, Result<Answer, PoolError>>,
) -> (String, RouteRecord) {
    // The router sees the request as it came, with its own strategy.
    let mut question = req.clone();
    question.task = Some(routing.router.clone());
    question.model = None;
    question.strategy = None;
    question.n = None;
    question.choices = None;
    question.top_k = None;
    question.request_id = format!("{}.route", req.request_id);
    let (label, confidence, reason) = match ask(question).await {
        Ok(a) => {
            let c = answer_confidence(&snapshot.accuracy, Some(&routing.router), &a);
            let sure = routing.confidence.is_none_or(|min| c >= min);
            (a.text, c, if sure { "confident" } else { "unsure" })
        }
        Err(e) => {
            tracing::warn!(task = name, router = %routing.router, error = %e, "The router failed; taking the safe route.");
            (String::new(), 0.0, "router_failed")
        }
    };
    let route = if reason == "confident" && routing.routes.contains_key(&label) {
        label.clone()
    } else {
        routing.safe.clone()
    };
    let target = routing.routes.get(&route).cloned().unwrap_or_default();
    crate::telemetry::metrics::route(name, &route, reason);
    let record = RouteRecord {
        router: routing.router.clone(),
        label,
        confidence,
        route,
        task: target.clone(),
        reason: reason.into(),
    };
    (target, record)
}
