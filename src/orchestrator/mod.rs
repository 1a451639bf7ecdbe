//! The orchestrator: the only place that knows the order of things. Validate, resolve the
//! task from the request's snapshot (`request.rs`), admit it against its tenant's limits
//! (`billing.rs`), look in the cache and join identical calls in flight, run the strategy,
//! build the answer and its Decision, settle what it cost, and log one line (`log.rs`);
//! streams in `stream.rs`. API layers translate wire formats into [`PoolRequest`] and back;
//! they hold no logic.
//!
//! May import strategies, state, live, cache, ratelimit, usage, auth, types, error,
//! providers, config; only the API and the app import it.

mod billing;
pub mod embed;
pub mod feedback;
mod log;
pub mod request;
mod route;
mod stream;
mod top_k;

use crate::config::raw::{OutputKind, StrategyKind};
use crate::error::PoolError;
use futures::future::BoxFuture;
use std::sync::Arc;

use crate::cache::{self, Cache, FlightPart};
use crate::live::Snapshot;
use crate::providers::{Completion, ToolCall};
use crate::state::AppState;
use crate::strategies::{cascade, fastest, judge, voting};
use crate::types::{Alternative, Answer, CacheMode, Decision, Outcome, Plan};

use billing::{admit, failed_tokens, used_tokens};
pub use embed::{EmbedAnswer, EmbedCall, embed};
pub use feedback::{FeedbackCall, FeedbackReply, Verdict, feedback};
use log::{Who, log_outcome, plan_logged, record_votes};
pub use request::PoolRequest;
pub use stream::{AnswerStream, StreamItem, stream, stream_cached};

/// Answers one request.
pub async fn handle(snapshot: &Snapshot, req: PoolRequest) -> Result<Answer, PoolError> {
    let ask = |req| -> BoxFuture<'_, _> { Box::pin(handle_one(snapshot, req)) };
    match route::routing_of(snapshot, &req) {
        None => ask(req).await,
        Some(routing) => route::routed(snapshot, req, routing, ask).await,
    }
}

async fn handle_one(snapshot: &Snapshot, req: PoolRequest) -> Result<Answer, PoolError> {
    let plan = req.plan(snapshot)?;
    let mut answer = run(&plan).await?;
    if let Some(top_k) = top_k::TopK::of(&plan) {
        top_k.fill(&mut answer);
    }
    Ok(answer)
}

async fn run(plan: &Plan) -> Result<Answer, PoolError> {
    use tracing::Instrument;
    run_strategy(plan)
        .instrument(crate::telemetry::otel::span(|| strategy_span(plan)))
        .await
}

/// The `strategy` span of a request (see `telemetry::otel`).
fn strategy_span(plan: &Plan) -> tracing::Span {
    let name = plan.strategy.as_str();
    tracing::debug_span!(
        "strategy",
        otel.name = %format!("strategy {name}"),
        strategy = %name,
        task = plan.task_name.as_deref(),
        n = plan.n,
    )
}

async fn run_strategy(plan: &Plan) -> Result<Answer, PoolError> {
    let (mut completion, normalized, provider, decision, others) = match plan.strategy {
        StrategyKind::Fastest => {
            let won = fastest::complete(plan).await?;
            let (completion, normalized) = won.value;
            let decision = won.decision;
            (
                completion,
                normalized,
                won.provider.name().to_owned(),
                decision,
                Vec::new(),
            )
        }
        StrategyKind::Voting | StrategyKind::Weighted | StrategyKind::Consensus => {
            let mode = match plan.strategy {
                StrategyKind::Weighted => voting::Mode::Weighted,
                StrategyKind::Consensus => voting::Mode::Consensus,
                _ => voting::Mode::Voting,
            };
            // The ensembles are boxed: each future is larger than FASTEST's, and an
            // unboxed `match` would make every request's future as large as the largest.
            match Box::pin(voting::run(plan, mode)).await {
                Ok(outcome) => ensemble(outcome),
                Err(e) => {
                    // Failed with its candidates: the caller may still say what was right.
                    if let PoolError::NoConsensus { decision, .. }
                    | PoolError::LowConfidence { decision, .. } = &e
                    {
                        feedback::remember(plan, decision, None);
                    }
                    return Err(e);
                }
            }
        }
        StrategyKind::Judge => ensemble(Box::pin(judge::run(plan)).await?),
        StrategyKind::Cascade => ensemble(Box::pin(cascade::run(plan)).await?),
    };
    let mut decision = decision;
    note_refused_overrides(plan, &mut decision);
    if let Some(a) = decision.agreement {
        metrics::histogram!(crate::telemetry::metrics::AGREEMENT, "strategy" => decision.strategy.to_string())
            .record(a);
        record_votes(&decision);
    }
    if let Some(stopped) = &decision.stopped {
        crate::telemetry::metrics::ensemble(
            plan.task_name.as_deref().unwrap_or_default(),
            &decision.strategy,
            stopped,
            decision.candidates.len(),
            decision.confidence,
        );
    }
    feedback::remember(plan, &decision, Some(&normalized));
    // The upstream's body is the answer only when the answer is the winner's own words.
    let verbatim = completion.verbatim.take().filter(|_| {
        plan.strategy == StrategyKind::Fastest
            && others.is_empty()
            && !normalizes(plan, &completion.tool_calls)
    });
    let text = answer_text(plan, completion.text, &completion.tool_calls, normalized);
    let alternatives = others
        .into_iter()
        .map(|c| {
            let normalized = plan.expect.check(&c).unwrap_or_default();
            Alternative {
                text: answer_text(plan, c.text, &c.tool_calls, normalized),
                tool_calls: c.tool_calls,
                finish_reason: c.finish_reason,
                logprobs: c.logprobs,
                reasoning: c.reasoning,
                provider: c.endpoint.split('#').next().unwrap_or_default().to_owned(),
            }
        })
        .collect();
    Ok(Answer {
        text,
        provider,
        model: completion.model,
        usage: completion.usage.into(),
        latency_ms: plan.started.elapsed().as_millis() as u64,
        cache_hit: false,
        joined: false,
        cache_key: None,
        decision,
        finish_reason: completion.finish_reason,
        tool_calls: completion.tool_calls,
        logprobs: completion.logprobs,
        alternatives,
        timings: completion.timings,
        reasoning: completion.reasoning,
        task: plan.task_name.clone(),
        request_id: plan.request_id.clone(),
        top_k: Vec::new(),
        verbatim,
    })
}

/// Says in the Decision which of the caller's overrides were ignored.
fn note_refused_overrides(plan: &Plan, decision: &mut Decision) {
    for r in &plan.refused_overrides {
        decision.fallbacks.push(format!("override_refused:{r}"));
    }
}

fn ensemble(o: Outcome) -> (Completion, String, String, Decision, Vec<Completion>) {
    let provider = o.decision.winner.clone().unwrap_or_default();
    (o.completion, o.normalized, provider, o.decision, o.others)
}

/// The text an answer is returned with: labels and JSON in their normalised form, other
/// kinds (and answers that call tools) as the model wrote them.
fn answer_text(plan: &Plan, text: String, calls: &[ToolCall], normalized: String) -> String {
    if normalizes(plan, calls) {
        normalized
    } else {
        text
    }
}

/// Whether the answer is returned in its normalised form rather than as the model wrote it.
fn normalizes(plan: &Plan, calls: &[ToolCall]) -> bool {
    calls.is_empty() && matches!(plan.task.output(), OutputKind::Label | OutputKind::Json)
}

/// Where a cached request's answer comes from.
enum Lookup {
    /// Serve from, and store to, the cache under this key.
    Key(cache::Key),
    /// Do not touch the cache.
    Skip,
}

/// Decides, from the mode and the task, how the cache takes part; answers hits.
async fn lookup(cache: &Cache, plan: &Plan) -> Result<(Lookup, Option<Answer>), PoolError> {
    let usable = cache.enabled() && cache::cacheable(plan);
    if !usable || plan.cache == CacheMode::Bypass {
        return if plan.cache == CacheMode::Only {
            Err(PoolError::CacheMiss)
        } else {
            Ok((Lookup::Skip, None))
        };
    }
    let key = cache::key::key(plan);
    if plan.cache != CacheMode::Refresh
        && let Some(hit) = cache.get(&key).await
    {
        feedback::alias(plan, &hit.answer.request_id);
        let mut answer = hit.answer.clone();
        answer.cache_hit = true;
        answer.served_free();
        answer.request_id.clone_from(&plan.request_id);
        answer.latency_ms = plan.started.elapsed().as_millis() as u64;
        return Ok((Lookup::Key(key), Some(answer)));
    }
    if plan.cache == CacheMode::Only {
        return Err(PoolError::CacheMiss);
    }
    Ok((Lookup::Key(key), None))
}

/// Answers one request through the cache: a hit is returned at once; concurrent identical
/// misses share one upstream call (single flight), each waiting within its own deadline.
///
/// Boxed here, once: the caller's future (a handler's) holds a pointer rather than the
/// whole call, which every layer above it would otherwise move by value.
pub fn handle_cached<'a>(
    state: &'a AppState,
    snapshot: &'a Snapshot,
    req: PoolRequest,
) -> BoxFuture<'a, Result<Answer, PoolError>> {
    let ask = move |req| -> BoxFuture<'a, _> { Box::pin(handle_cached_one(state, snapshot, req)) };
    match route::routing_of(snapshot, &req) {
        None => ask(req),
        Some(routing) => Box::pin(route::routed(snapshot, req, routing, ask)),
    }
}

async fn handle_cached_one(
    state: &AppState,
    snapshot: &Snapshot,
    req: PoolRequest,
) -> Result<Answer, PoolError> {
    let plan = plan_logged(req, snapshot)?;
    let permit = admit(state, &plan).await?;
    let tenant = plan.tenant.as_ref().map(|t| Arc::clone(t.name()));
    let keep = snapshot.config.console().recent_requests();
    let recent = (keep > 0).then(|| {
        (
            plan.request_id.clone(),
            plan.task_name.clone(),
            plan.started,
        )
    });
    // Boxed: the strategy's state machine is large, and every layer above (handler, route
    // layers, hyper's service) moves its future by value; behind a box they move a pointer.
    let answer = Box::pin(answer_plan(&state.cache, plan)).await;
    permit.settle(answer.as_ref().map_or_else(failed_tokens, used_tokens));
    if let Some((request_id, task, started)) = recent {
        state.recent.record(
            keep,
            request_id,
            task,
            tenant.as_deref(),
            started.elapsed(),
            answer.as_ref(),
        );
    }
    match &answer {
        Ok(a) => state.usage.record(&snapshot.config, tenant.as_ref(), a),
        // A failed request's calls still generated tokens (a lost vote, a cut stream).
        Err(e) => {
            if let Some(d) = e.decision() {
                state
                    .usage
                    .record_spent(&snapshot.config, tenant.as_ref(), d);
            }
        }
    }
    answer
}

async fn answer_plan(cache: &Arc<Cache>, plan: Plan) -> Result<Answer, PoolError> {
    let request_id = plan.request_id.clone();
    let (task, started) = (plan.task_name.clone(), plan.started);
    let tenant = plan.tenant.as_ref().map(|t| Arc::clone(t.name()));
    let top_k = top_k::TopK::of(&plan);
    let mut result = answer_plan_inner(cache, plan).await;
    if let (Some(top_k), Ok(answer)) = (&top_k, &mut result) {
        top_k.fill(answer);
    }
    let who = Who {
        request_id: &request_id,
        task: task.as_deref(),
        tenant: tenant.as_deref(),
    };
    log_outcome(who, started, result.as_ref());
    result
}

async fn answer_plan_inner(cache: &Arc<Cache>, plan: Plan) -> Result<Answer, PoolError> {
    // The lookup's result (an answer wide) ends with this block, before the call: awaited
    // inside the `match`, it would stay in the future across the whole call.
    let key = {
        match lookup(cache, &plan).await? {
            (_, Some(hit)) => return Ok(hit),
            (Lookup::Skip, None) => None,
            (Lookup::Key(key), None) => Some(key),
        }
    };
    let Some(key) = key else {
        return run(&plan).await;
    };
    let plan = Arc::new(plan);
    loop {
        let (role, flight) = cache.flights.run(key, || {
            let (plan, cache) = (Arc::clone(&plan), Arc::clone(cache));
            Box::pin(async move {
                let mut answer = run(&plan).await?;
                answer.cache_key = Some(hex::encode(key));
                cache.put(key, &plan, &answer).await;
                Ok(Arc::new(answer))
            })
        });
        if role == FlightPart::Joined {
            cache.count_join();
        }
        return match tokio::time::timeout_at(plan.deadline, flight).await {
            Err(_) => Err(PoolError::DeadlineExceeded {
                elapsed_ms: plan.started.elapsed().as_millis() as u64,
                decision: None,
            }),
            // The shared call ran on the leader's deadline; a joiner with time left is not
            // bound by it: it asks again (leading a new call, or joining a newer one).
            Ok(Err(PoolError::DeadlineExceeded { .. }))
                if role == FlightPart::Joined && tokio::time::Instant::now() < plan.deadline =>
            {
                continue;
            }
            Ok(Err(e)) => Err(e),
            Ok(Ok(shared)) => {
                let mut answer = Arc::unwrap_or_clone(shared);
                if role == FlightPart::Joined {
                    feedback::alias(&plan, &answer.request_id);
                    answer.request_id.clone_from(&plan.request_id);
                    answer.latency_ms = plan.started.elapsed().as_millis() as u64;
                    answer.joined = true;
                    answer.served_free();
                }
                Ok(answer)
            }
        };
    }
}
