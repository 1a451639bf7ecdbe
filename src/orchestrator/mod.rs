//! The orchestrator: the only place that knows the order of things. Validate, resolve the
//! task from the request's snapshot, run the strategy, build the answer and its Decision.
//! API layers translate wire formats into [`PoolRequest`] and back; they hold no logic.

pub mod decision;
pub mod output;
pub mod request;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::config::raw::{OutputKind, StrategyKind};
use crate::error::PoolError;
use std::sync::Arc;

use crate::cache::{self, Cache, Role};
use crate::providers::Completion;
use crate::providers::StreamEvent;
use crate::state::Snapshot;
use crate::strategies::{Outcome, cascade, fastest, judge, voting};

pub use decision::{Answer, Candidate, CandidateStatus, Decision, UsageOut};
pub use request::{CacheMode, Plan, PoolRequest};

/// One item of a streamed answer.
#[derive(Debug)]
pub enum StreamItem {
    /// Text to append.
    Delta(String),
    /// The end: the whole answer's metadata (its `text` is what was streamed).
    Done(Box<Answer>),
    /// The stream broke after it started; the error is sent in-band.
    Error(PoolError),
}

/// A streamed answer. Dropping it cancels the upstream call.
pub type AnswerStream = BoxStream<'static, StreamItem>;

/// Answers one request.
pub async fn handle(snapshot: &Snapshot, req: PoolRequest) -> Result<Answer, PoolError> {
    let plan = req.plan(snapshot)?;
    run(&plan).await
}

async fn run(plan: &Plan) -> Result<Answer, PoolError> {
    let (completion, normalized, provider, decision) = match plan.strategy {
        StrategyKind::Fastest => {
            let won = fastest::complete(plan).await?;
            let (completion, normalized) = won.value;
            let mut decision = won.decision;
            decision.add_usage(completion.usage);
            (
                completion,
                normalized,
                won.provider.name().to_owned(),
                decision,
            )
        }
        StrategyKind::Voting | StrategyKind::Weighted | StrategyKind::Consensus => {
            let mode = match plan.strategy {
                StrategyKind::Weighted => voting::Mode::Weighted,
                StrategyKind::Consensus => voting::Mode::Consensus,
                _ => voting::Mode::Voting,
            };
            ensemble(voting::run(plan, mode).await?)
        }
        StrategyKind::Judge => ensemble(judge::run(plan).await?),
        StrategyKind::Cascade => ensemble(cascade::run(plan).await?),
    };
    if let Some(a) = decision.agreement {
        metrics::histogram!(crate::telemetry::metrics::AGREEMENT, "strategy" => decision.strategy.to_string())
            .record(a);
    }
    let text = match plan.task.output {
        OutputKind::Text => completion.text,
        // Labels and JSON are returned in their normalised form.
        OutputKind::Label | OutputKind::Json => normalized,
    };
    Ok(Answer {
        text,
        provider,
        model: completion.model,
        usage: completion.usage.into(),
        latency_ms: plan.started.elapsed().as_millis() as u64,
        cache_hit: false,
        cache_key: None,
        decision,
        finish_reason: completion.finish_reason,
        task: plan.task_name.clone(),
        request_id: plan.request_id.clone(),
    })
}

fn ensemble(o: Outcome) -> (Completion, String, String, Decision) {
    let provider = o.decision.winner.clone().unwrap_or_default();
    (o.completion, o.normalized, provider, o.decision)
}

/// Answers one request as a stream. Resolves once the answer has started: errors before the
/// first token are returned here (so surfaces can answer with a status code); errors after
/// it arrive in-band as [`StreamItem::Error`].
pub async fn stream(snapshot: &Snapshot, req: PoolRequest) -> Result<AnswerStream, PoolError> {
    let plan = req.plan(snapshot)?;
    if plan.task.output != OutputKind::Text || plan.strategy != StrategyKind::Fastest {
        // The answer must be validated (or chosen among candidates) whole before anything
        // is sent.
        return Ok(whole(run(&plan).await?));
    }
    stream_plan(plan, None).await
}

/// A whole answer as a stream: its text, then the end.
fn whole(answer: Answer) -> AnswerStream {
    let text = answer.text.clone();
    let items = vec![StreamItem::Delta(text), StreamItem::Done(Box::new(answer))];
    futures::stream::iter(items).boxed()
}

/// Streams a FASTEST text answer; a complete answer is stored under `store` if given.
async fn stream_plan(
    plan: Plan,
    store: Option<(Arc<Cache>, cache::Key)>,
) -> Result<AnswerStream, PoolError> {
    let won = fastest::stream(&plan).await.inspect_err(|e| {
        log_outcome(
            &plan.request_id,
            plan.task_name.as_deref(),
            plan.started,
            Err(e),
        );
    })?;
    let fastest::Won {
        value,
        candidate,
        provider,
        mut decision,
    } = won;
    let fastest::FirstEvent { stream, first } = value;
    decision.candidates[candidate].status = CandidateStatus::Running;
    let started = plan.started;
    let deadline = plan.deadline;
    let task = plan.task_name.clone();
    let request_id = plan.request_id.clone();
    let provider_name = provider.name().to_owned();
    let model = stream.model.clone();
    let mut events = stream.events;
    Ok(async_stream::stream! {
        let mut text = String::new();
        let mut pending = first;
        loop {
            let event = match pending.take() {
                Some(e) => Some(Ok(e)),
                None => events.next().await,
            };
            match event {
                Some(Ok(StreamEvent::Delta(d))) => {
                    text.push_str(&d);
                    yield StreamItem::Delta(d);
                }
                Some(Ok(StreamEvent::Done { usage, finish_reason })) => {
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
                        cache_key: store.as_ref().map(|(_, key)| hex::encode(key)),
                        decision,
                        finish_reason,
                        task,
                        request_id,
                    };
                    if let Some((cache, key)) = &store {
                        cache.put(*key, &plan, &answer).await;
                    }
                    log_outcome(&plan.request_id, plan.task_name.as_deref(), started, Ok(&answer));
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
                    c.error = Some(e.to_string());
                    let decision = Some(Box::new(decision));
                    let error = if past_deadline {
                        PoolError::DeadlineExceeded {
                            elapsed_ms: started.elapsed().as_millis() as u64,
                            decision,
                        }
                    } else {
                        PoolError::Unavailable { summary: format!("{provider_name}: {e}"), decision }
                    };
                    log_outcome(&plan.request_id, plan.task_name.as_deref(), started, Err(&error));
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
        let mut answer = hit.answer.clone();
        answer.cache_hit = true;
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
pub async fn handle_cached(
    cache: &Arc<Cache>,
    snapshot: &Snapshot,
    req: PoolRequest,
) -> Result<Answer, PoolError> {
    answer_plan(cache, plan_logged(req, snapshot)?).await
}

/// Plans a request; a refused request gets its log line too.
fn plan_logged(req: PoolRequest, snapshot: &Snapshot) -> Result<Plan, PoolError> {
    let (id, task, started) = (
        req.request_id.clone(),
        req.task.clone(),
        tokio::time::Instant::now(),
    );
    req.plan(snapshot)
        .inspect_err(|e| log_outcome(&id, task.as_deref(), started, Err(e)))
}

async fn answer_plan(cache: &Arc<Cache>, plan: Plan) -> Result<Answer, PoolError> {
    let request_id = plan.request_id.clone();
    let (task, started) = (plan.task_name.clone(), plan.started);
    let result = answer_plan_inner(cache, plan).await;
    log_outcome(&request_id, task.as_deref(), started, result.as_ref());
    result
}

/// One line per request (INFO): who asked for what, what answered, how long, what it cost.
fn log_outcome(
    request_id: &str,
    task: Option<&str>,
    started: tokio::time::Instant,
    result: Result<&Answer, &PoolError>,
) {
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(a) => tracing::info!(
            request_id,
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
            task,
            latency_ms,
            error = e.kind().as_str(),
            "Request failed."
        ),
    }
}

async fn answer_plan_inner(cache: &Arc<Cache>, plan: Plan) -> Result<Answer, PoolError> {
    let key = match lookup(cache, &plan).await? {
        (_, Some(hit)) => return Ok(hit),
        (Lookup::Skip, None) => return run(&plan).await,
        (Lookup::Key(key), None) => key,
    };
    let plan = Arc::new(plan);
    let (role, flight) = cache.flights.run(key, || {
        let (plan, cache) = (Arc::clone(&plan), Arc::clone(cache));
        Box::pin(async move {
            let mut answer = run(&plan).await?;
            answer.cache_key = Some(hex::encode(key));
            cache.put(key, &plan, &answer).await;
            Ok(Arc::new(answer))
        })
    });
    if role == Role::Joined {
        cache.count_join();
    }
    match tokio::time::timeout_at(plan.deadline, flight).await {
        Err(_) => Err(PoolError::DeadlineExceeded {
            elapsed_ms: plan.started.elapsed().as_millis() as u64,
            decision: None,
        }),
        Ok(Err(e)) => Err(e),
        Ok(Ok(shared)) => {
            let mut answer = Arc::unwrap_or_clone(shared);
            if role == Role::Joined {
                answer.request_id.clone_from(&plan.request_id);
                answer.latency_ms = plan.started.elapsed().as_millis() as u64;
            }
            Ok(answer)
        }
    }
}

/// Streams one request through the cache: a hit is replayed as a stream (its whole text,
/// then the end, marked as a cache hit); a miss streams from upstream and stores the answer
/// once it is complete.
pub async fn stream_cached(
    cache: &Arc<Cache>,
    snapshot: &Snapshot,
    req: PoolRequest,
) -> Result<AnswerStream, PoolError> {
    let plan = plan_logged(req, snapshot)?;
    if plan.task.output != OutputKind::Text || plan.strategy != StrategyKind::Fastest {
        return Ok(whole(answer_plan(cache, plan).await?));
    }
    match lookup(cache, &plan).await? {
        (_, Some(hit)) => {
            log_outcome(
                &plan.request_id,
                plan.task_name.as_deref(),
                plan.started,
                Ok(&hit),
            );
            Ok(whole(hit))
        }
        (Lookup::Skip, None) => stream_plan(plan, None).await,
        (Lookup::Key(key), None) => stream_plan(plan, Some((Arc::clone(cache), key))).await,
    }
}
