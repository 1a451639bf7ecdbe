//! Streamed answers: FASTEST text streams the winner's tokens as they come; everything else
//! (ensembles, labels, JSON, cache hits) is decided whole and then sent as one piece. A
//! stream is billed for what it generated even when it breaks or its caller goes away.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::billing::{Billing, admit};
use super::log::{log_outcome, plan_logged};
use super::{Lookup, PoolRequest, answer_plan, lookup, note_refused_overrides, run, strategy_span};
use crate::cache::{self, Cache};
use crate::config::raw::StrategyKind;
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::providers::StreamEvent;
use crate::state::AppState;
use crate::strategies::fastest;
use crate::types::{Answer, CandidateStatus, Plan};

/// One item of a streamed answer.
#[derive(Debug)]
pub enum StreamItem {
    /// Text to append.
    Delta(String),
    /// A whole tool call of the answer (the n-th item of this kind is call n).
    ToolCall(crate::providers::ToolCall),
    /// Reasoning to append (before the answer's text).
    Reasoning(String),
    /// The end: the whole answer's metadata (its `text` and `tool_calls` are what was
    /// streamed).
    Done(Box<Answer>),
    /// The stream broke after it started; the error is sent in-band.
    Error(PoolError),
}

/// A streamed answer. Dropping it cancels the upstream call.
pub type AnswerStream = BoxStream<'static, StreamItem>;

/// Answers one request as a stream. Resolves once the answer has started: errors before the
/// first token are returned here (so surfaces can answer with a status code); errors after
/// it arrive in-band as [`StreamItem::Error`].
pub async fn stream(snapshot: &Snapshot, req: PoolRequest) -> Result<AnswerStream, PoolError> {
    if let Some((name, routing)) = super::route::routing_of(snapshot, &req) {
        let ask = |r| -> futures::future::BoxFuture<'_, _> { Box::pin(super::handle(snapshot, r)) };
        let (target, record) = super::route::choose(snapshot, &name, &routing, &req, &ask).await;
        let mut req = req;
        req.task = Some(target);
        req.model = None;
        return Ok(with_route(
            Box::pin(stream_one(snapshot, req)).await?,
            record,
        ));
    }
    stream_one(snapshot, req).await
}

async fn stream_one(snapshot: &Snapshot, req: PoolRequest) -> Result<AnswerStream, PoolError> {
    let plan = req.plan(snapshot)?;
    refuse_top_k(&plan)?;
    if !streams_live(&plan) {
        // The answer must be validated (or chosen among candidates) whole before anything
        // is sent.
        return Ok(whole(run(&plan).await?));
    }
    stream_plan(plan, None, None).await
}

/// FASTEST free text is streamed as it comes; anything else is checked (or chosen among
/// candidates) whole first.
fn streams_live(plan: &Plan) -> bool {
    plan.strategy == StrategyKind::Fastest && !plan.expect.needs_whole()
}

/// A whole answer as a stream: its text, its tool calls, then the end.
pub(super) fn whole(answer: Answer) -> AnswerStream {
    let mut items = Vec::with_capacity(answer.tool_calls.len() + 3);
    if let Some(r) = &answer.reasoning {
        items.push(StreamItem::Reasoning(r.clone()));
    }
    if !answer.text.is_empty() || answer.tool_calls.is_empty() {
        items.push(StreamItem::Delta(answer.text.clone()));
    }
    items.extend(answer.tool_calls.iter().cloned().map(StreamItem::ToolCall));
    items.push(StreamItem::Done(Box::new(answer)));
    futures::stream::iter(items).boxed()
}

/// Streams a FASTEST text answer; a complete answer is stored under `store` if given.
async fn stream_plan(
    plan: Plan,
    store: Option<(Arc<Cache>, cache::Key)>,
    mut billing: Option<Billing>,
) -> Result<AnswerStream, PoolError> {
    let started = {
        use tracing::Instrument;
        let span = crate::telemetry::otel::span(|| strategy_span(&plan));
        fastest::stream(&plan).instrument(span).await
    };
    let won = started.inspect_err(|e| {
        log_outcome(plan.who(), plan.started, Err(e));
    })?;
    let fastest::Won {
        value,
        candidate,
        provider,
        mut decision,
    } = won;
    let fastest::FirstEvent { stream, first } = value;
    decision.candidates[candidate].status = CandidateStatus::Running;
    note_refused_overrides(&plan, &mut decision);
    let started = plan.started;
    let deadline = plan.deadline;
    let task = plan.task_name.clone();
    let request_id = plan.request_id.clone();
    let provider_name = provider.name().to_owned();
    let model = stream.model.clone();
    let mut events = stream.events;
    if let Some(b) = &mut billing {
        b.provider = Some(provider_name.clone());
    }
    Ok(async_stream::stream! {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut reasoning: Option<String> = None;
        let mut pending = first;
        loop {
            let event = match pending.take() {
                Some(e) => Some(Ok(e)),
                None => events.next().await,
            };
            match event {
                Some(Ok(StreamEvent::Delta(d))) => {
                    text.push_str(&d);
                    if let Some(b) = &mut billing {
                        b.pieces += 1;
                    }
                    yield StreamItem::Delta(d);
                }
                Some(Ok(StreamEvent::Reasoning(r))) => {
                    reasoning.get_or_insert_with(String::new).push_str(&r);
                    if let Some(b) = &mut billing {
                        b.pieces += 1;
                    }
                    yield StreamItem::Reasoning(r);
                }
                Some(Ok(StreamEvent::ToolCall(call))) => {
                    tool_calls.push(call.clone());
                    if let Some(b) = &mut billing {
                        b.pieces += 1;
                    }
                    yield StreamItem::ToolCall(call);
                }
                Some(Ok(StreamEvent::Done { usage, finish_reason, logprobs, timings })) => {
                    let c = &mut decision.candidates[candidate];
                    c.status = CandidateStatus::Ok;
                    c.usage = Some(usage);
                    decision.add_usage(usage);
                    let answer = Answer {
                        text,
                        provider: provider_name,
                        model,
                        usage: usage.into(),
                        latency_ms: started.elapsed().as_millis() as u64,
                        cache_hit: false,
                        joined: false,
                        cache_key: store.as_ref().map(|(_, key)| hex::encode(key)),
                        decision,
                        finish_reason,
                        tool_calls,
                        logprobs,
                        alternatives: Vec::new(),
                        timings,
                        reasoning,
                        task,
                        request_id,
                        top_k: Vec::new(),
                        verbatim: None,
                    };
                    if let Some((cache, key)) = &store {
                        cache.put(*key, &plan, &answer).await;
                    }
                    if let Some(b) = &mut billing {
                        b.answered(&answer);
                    }
                    log_outcome(plan.who(), started, Ok(&answer));
                    yield StreamItem::Done(Box::new(answer));
                    return;
                }
                Some(Err(e)) => {
                    let c = &mut decision.candidates[candidate];
                    let past_deadline = tokio::time::Instant::now() >= deadline;
                    c.status = if past_deadline {
                        CandidateStatus::Timeout
                    } else {
                        CandidateStatus::Error
                    };
                    tracing::debug!(provider = %provider_name, error = %e, "Stream broke.");
                    c.error = Some(e.public_reason());
                    let decision = Some(Box::new(decision));
                    let error = if past_deadline {
                        PoolError::DeadlineExceeded {
                            elapsed_ms: started.elapsed().as_millis() as u64,
                            decision,
                        }
                    } else {
                        PoolError::Unavailable { summary: format!("{provider_name}: {}", e.public_reason()), decision }
                    };
                    log_outcome(plan.who(), started, Err(&error));
                    // Billed for what was streamed (the upstream reported no usage).
                    drop(billing.take());
                    yield StreamItem::Error(error);
                    return;
                }
                None => {
                    yield StreamItem::Error(PoolError::Internal("stream ended early".into()));
                    return;
                }
            }
        }
    }
    .boxed())
}

/// Streams one request through the cache: a hit is replayed as a stream (its whole text,
/// then the end, marked as a cache hit); a miss streams from upstream and stores the answer
/// once it is complete. Boxed once, as [`super::handle_cached`] is.
pub fn stream_cached<'a>(
    state: &'a AppState,
    snapshot: &'a Snapshot,
    req: PoolRequest,
) -> BoxFuture<'a, Result<AnswerStream, PoolError>> {
    match super::route::routing_of(snapshot, &req) {
        None => Box::pin(stream_cached_one(state, snapshot, req)),
        Some(routing) => Box::pin(stream_routed(state, snapshot, req, routing)),
    }
}

/// The stream of the task the router picks (the router's own answer is a whole one).
async fn stream_routed(
    state: &AppState,
    snapshot: &Snapshot,
    req: PoolRequest,
    (name, routing): (String, crate::config::Routing),
) -> Result<AnswerStream, PoolError> {
    let ask = |r| super::handle_cached(state, snapshot, r);
    let (target, record) = super::route::choose(snapshot, &name, &routing, &req, &ask).await;
    let mut req = req;
    req.task = Some(target);
    req.model = None;
    let items = Box::pin(stream_cached_one(state, snapshot, req)).await?;
    Ok(with_route(items, record))
}

async fn stream_cached_one(
    state: &AppState,
    snapshot: &Snapshot,
    req: PoolRequest,
) -> Result<AnswerStream, PoolError> {
    let plan = plan_logged(req, snapshot)?;
    refuse_top_k(&plan)?;
    let permit = admit(state, &plan).await?;
    let keep = snapshot.config.console().recent_requests();
    let recent = (keep > 0).then(|| Recorded {
        state: state.clone(),
        keep,
        request_id: plan.request_id.clone(),
        task: plan.task_name.clone(),
        tenant: plan.tenant.as_ref().map(|t| Arc::clone(t.name())),
        started: plan.started,
    });
    // The permit rides with the stream (see `Billing`).
    let mut billing = Billing {
        permit: Some(permit),
        ledger: Arc::clone(&state.usage),
        config: Arc::clone(&snapshot.config),
        tenant: plan.tenant.as_ref().map(|t| Arc::clone(t.name())),
        provider: None,
        prompt_tokens: plan.prompt_estimate(),
        pieces: 0,
    };
    let whole_or_stream = if !streams_live(&plan) {
        // Boxed as in `handle_cached`.
        Box::pin(answer_plan(&state.cache, plan)).await.map(Err)
    } else {
        match lookup(&state.cache, &plan).await {
            Err(e) => Err(e),
            Ok((_, Some(hit))) => {
                log_outcome(plan.who(), plan.started, Ok(&hit));
                Ok(Err(hit))
            }
            Ok((lookup, None)) => {
                let store = match lookup {
                    Lookup::Key(key) => Some((Arc::clone(&state.cache), key)),
                    Lookup::Skip => None,
                };
                // The billing moves into the stream (a failure before the first token,
                // which spent nothing, settles at zero).
                Box::pin(stream_plan(plan, store, Some(billing.take())))
                    .await
                    .map(Ok)
            }
        }
    };
    match whole_or_stream {
        Err(e) => {
            billing.failed(&e);
            Err(e)
        }
        Ok(Err(answer)) => {
            billing.answered(&answer);
            Ok(recorded(recent, whole(answer)))
        }
        Ok(Ok(stream)) => Ok(recorded(recent, stream)),
    }
}

/// What the console's recent requests keep of a stream, once it ends.
struct Recorded {
    state: AppState,
    keep: usize,
    request_id: String,
    task: Option<String>,
    tenant: Option<Arc<str>>,
    started: tokio::time::Instant,
}

/// The stream, recording its outcome among the recent requests when it ends (a stream
/// the caller dropped before its end is not recorded).
fn recorded(recent: Option<Recorded>, items: AnswerStream) -> AnswerStream {
    let Some(r) = recent else {
        return items;
    };
    let mut r = Some(r);
    items
        .inspect(move |item| {
            let outcome = match item {
                StreamItem::Done(answer) => Ok(&**answer),
                StreamItem::Error(e) => Err(e),
                _ => return,
            };
            if let Some(r) = r.take() {
                r.state.recent.record(
                    r.keep,
                    r.request_id,
                    r.task,
                    r.tenant.as_deref(),
                    r.started.elapsed(),
                    outcome,
                );
            }
        })
        .boxed()
}

/// `top_k` is computed on the whole answer: a stream cannot carry it, so it is refused, not
/// dropped.
fn refuse_top_k(plan: &Plan) -> Result<(), PoolError> {
    if plan.top_k > 0 {
        return Err(PoolError::invalid(
            "top_k",
            "is returned with whole answers only: leave out `stream`",
        ));
    }
    Ok(())
}

/// A routed stream: its final answer carries how the route was chosen.
fn with_route(items: AnswerStream, record: crate::types::RouteRecord) -> AnswerStream {
    let failed = record.reason == "router_failed";
    let mut record = Some(record);
    Box::pin(items.map(move |item| match item {
        StreamItem::Done(mut answer) => {
            if failed {
                answer.decision.degrade("router_failed");
            }
            answer.decision.route = record.take();
            StreamItem::Done(answer)
        }
        other => other,
    }))
}
