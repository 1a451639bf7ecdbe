//! The orchestrator: the only place that knows the order of things. Validate, resolve the
//! task from the request's snapshot, run the strategy, build the answer and its Decision.
//! API layers translate wire formats into [`PoolRequest`] and back; they hold no logic.
//!
//! May import strategies, state, live, cache, ratelimit, usage, auth, types, error,
//! providers, config; only the API and the app import it.

pub mod request;

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::config::raw::{OutputKind, StrategyKind};
use crate::error::PoolError;
use std::sync::Arc;

use crate::cache::{self, Cache, FlightPart};
use crate::live::Snapshot;
use crate::providers::Completion;
use crate::providers::StreamEvent;
use crate::ratelimit::{Ask, Permit};
use crate::state::AppState;
use crate::strategies::{cascade, fastest, judge, voting};
use crate::types::{Answer, CacheMode, CandidateStatus, Decision, Outcome, Plan};

pub use request::PoolRequest;

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
    let (completion, normalized, provider, decision) = match plan.strategy {
        StrategyKind::Fastest => {
            let won = fastest::complete(plan).await?;
            let (completion, normalized) = won.value;
            let decision = won.decision;
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
    let mut decision = decision;
    note_refused_overrides(plan, &mut decision);
    if let Some(a) = decision.agreement {
        metrics::histogram!(crate::telemetry::metrics::AGREEMENT, "strategy" => decision.strategy.to_string())
            .record(a);
        record_votes(&decision);
    }
    let text = match plan.task.output() {
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
        joined: false,
        cache_key: None,
        decision,
        finish_reason: completion.finish_reason,
        task: plan.task_name.clone(),
        request_id: plan.request_id.clone(),
    })
}

/// Each ensemble candidate's vote: in the winning group, in another, or invalid.
fn record_votes(decision: &Decision) {
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

/// Says in the Decision which of the caller's overrides were ignored.
fn note_refused_overrides(plan: &Plan, decision: &mut Decision) {
    for r in &plan.refused_overrides {
        decision.fallbacks.push(format!("override_refused:{r}"));
    }
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
    if plan.task.output() != OutputKind::Text || plan.strategy != StrategyKind::Fastest {
        // The answer must be validated (or chosen among candidates) whole before anything
        // is sent.
        return Ok(whole(run(&plan).await?));
    }
    stream_plan(plan, None, None).await
}

/// A whole answer as a stream: its text, then the end.
fn whole(answer: Answer) -> AnswerStream {
    let text = answer.text.clone();
    let items = vec![StreamItem::Delta(text), StreamItem::Done(Box::new(answer))];
    futures::stream::iter(items).boxed()
}

/// What a streamed request costs its tenant, settled once: with the answer's usage when it
/// completes; otherwise (an error after the first token, or a caller that went away) with
/// the tokens generated so far, the prompt's estimate plus one token per streamed piece.
struct Billing {
    permit: Option<Permit>,
    ledger: Arc<crate::usage::Ledger>,
    config: Arc<crate::config::Config>,
    tenant: Option<Arc<str>>,
    /// The provider streaming, once known.
    provider: Option<String>,
    prompt_tokens: u64,
    pieces: u64,
}

impl Billing {
    /// This billing, leaving an empty one behind.
    fn take(&mut self) -> Self {
        Self {
            permit: self.permit.take(),
            ledger: Arc::clone(&self.ledger),
            config: Arc::clone(&self.config),
            tenant: self.tenant.clone(),
            provider: None,
            prompt_tokens: self.prompt_tokens,
            pieces: 0,
        }
    }

    fn answered(&mut self, answer: &Answer) {
        if let Some(p) = self.permit.take() {
            p.settle(used_tokens(answer));
            self.ledger
                .record(&self.config, self.tenant.as_ref(), answer);
        }
    }

    fn failed(&mut self, e: &PoolError) {
        if let Some(p) = self.permit.take() {
            p.settle(failed_tokens(e));
            if let Some(d) = e.decision() {
                self.ledger
                    .record_spent(&self.config, self.tenant.as_ref(), d);
            }
        }
    }

    fn cut(&mut self) {
        if let Some(p) = self.permit.take() {
            let Some(provider) = &self.provider else {
                p.settle(0);
                return;
            };
            p.settle(self.prompt_tokens + self.pieces);
            self.ledger.record_tokens(
                &self.config,
                self.tenant.as_ref(),
                provider,
                self.prompt_tokens,
                self.pieces,
            );
        }
    }
}

impl Drop for Billing {
    fn drop(&mut self) {
        self.cut();
    }
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
                        joined: false,
                        cache_key: store.as_ref().map(|(_, key)| hex::encode(key)),
                        decision,
                        finish_reason,
                        task,
                        request_id,
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
pub async fn handle_cached(
    state: &AppState,
    snapshot: &Snapshot,
    req: PoolRequest,
) -> Result<Answer, PoolError> {
    let plan = plan_logged(req, snapshot)?;
    let permit = admit(state, &plan).await?;
    let tenant = plan.tenant.as_ref().map(|t| Arc::clone(&t.name));
    let answer = answer_plan(&state.cache, plan).await;
    permit.settle(answer.as_ref().map_or_else(failed_tokens, used_tokens));
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

/// Tokens a failed request spent upstream before failing (a lost vote still generated).
fn failed_tokens(e: &PoolError) -> u64 {
    e.decision()
        .map_or(0, |d| u64::from(d.total_usage.total_tokens))
}

/// Tokens an answer cost upstream (a cache hit, or a join of an identical request's call,
/// cost none).
fn used_tokens(a: &Answer) -> u64 {
    if a.billed() {
        u64::from(a.decision.total_usage.total_tokens)
    } else {
        0
    }
}

/// Admits the plan against its tenant's limits (a request without a tenant is not limited).
async fn admit(state: &AppState, plan: &Plan) -> Result<Permit, PoolError> {
    let Some(tenant) = &plan.tenant else {
        return Ok(Permit::free());
    };
    let ask = Ask {
        tokens: plan.token_estimate(),
        lease: plan.deadline.saturating_duration_since(plan.started) + LEASE_MARGIN,
    };
    state
        .limiter
        .admit(tenant, ask)
        .await
        .inspect_err(|e| log_outcome(plan.who(), plan.started, Err(e)))
}

/// Leases of the in-flight limit outlive the request's deadline by this much.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Plans a request; a refused request gets its log line too.
fn plan_logged(req: PoolRequest, snapshot: &Snapshot) -> Result<Plan, PoolError> {
    let (id, task, tenant, started) = (
        req.request_id.clone(),
        req.task.clone(),
        req.tenant.as_ref().map(|t| Arc::clone(&t.name)),
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

async fn answer_plan(cache: &Arc<Cache>, plan: Plan) -> Result<Answer, PoolError> {
    let request_id = plan.request_id.clone();
    let (task, started) = (plan.task_name.clone(), plan.started);
    let tenant = plan.tenant.as_ref().map(|t| Arc::clone(&t.name));
    let result = answer_plan_inner(cache, plan).await;
    let who = Who {
        request_id: &request_id,
        task: task.as_deref(),
        tenant: tenant.as_deref(),
    };
    log_outcome(who, started, result.as_ref());
    result
}

/// Who a log line is about.
#[derive(Clone, Copy)]
struct Who<'a> {
    request_id: &'a str,
    task: Option<&'a str>,
    tenant: Option<&'a str>,
}

impl Plan {
    fn who(&self) -> Who<'_> {
        Who {
            request_id: &self.request_id,
            task: self.task_name.as_deref(),
            tenant: self.tenant.as_ref().map(|t| &*t.name),
        }
    }
}

/// One line per request (INFO): who asked for what, what answered, how long, what it cost.
fn log_outcome(who: Who<'_>, started: tokio::time::Instant, result: Result<&Answer, &PoolError>) {
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

async fn answer_plan_inner(cache: &Arc<Cache>, plan: Plan) -> Result<Answer, PoolError> {
    let key = match lookup(cache, &plan).await? {
        (_, Some(hit)) => return Ok(hit),
        (Lookup::Skip, None) => return run(&plan).await,
        (Lookup::Key(key), None) => key,
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

/// Streams one request through the cache: a hit is replayed as a stream (its whole text,
/// then the end, marked as a cache hit); a miss streams from upstream and stores the answer
/// once it is complete.
pub async fn stream_cached(
    state: &AppState,
    snapshot: &Snapshot,
    req: PoolRequest,
) -> Result<AnswerStream, PoolError> {
    let plan = plan_logged(req, snapshot)?;
    let permit = admit(state, &plan).await?;
    // The permit rides with the stream (see `Billing`).
    let mut billing = Billing {
        permit: Some(permit),
        ledger: Arc::clone(&state.usage),
        config: Arc::clone(&snapshot.config),
        tenant: plan.tenant.as_ref().map(|t| Arc::clone(&t.name)),
        provider: None,
        prompt_tokens: plan.prompt_estimate(),
        pieces: 0,
    };
    let whole_or_stream =
        if plan.task.output() != OutputKind::Text || plan.strategy != StrategyKind::Fastest {
            answer_plan(&state.cache, plan).await.map(Err)
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
                    stream_plan(plan, store, Some(billing.take())).await.map(Ok)
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
            Ok(whole(answer))
        }
        Ok(Ok(stream)) => Ok(stream),
    }
}
