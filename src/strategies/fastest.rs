//! FASTEST: call the best provider; after the hedge delay also call the next (or start with
//! `fanout` at once); a failed call hands over to the next provider at once; the first valid
//! answer wins and the other calls are dropped, which drops their upstream requests so the
//! model servers stop generating.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::error::PoolError;
use crate::providers::{Completion, Provider, ProviderError, StartedStream, StreamEvent, Usage};
use crate::types::Plan;
use crate::types::{Candidate, CandidateStatus, Decision};

/// What a winning call produced, with the Decision so far.
pub struct Won<T> {
    pub value: T,
    /// Index of the winner in `Decision::candidates`.
    pub candidate: usize,
    pub provider: Arc<dyn Provider>,
    pub decision: Decision,
}

/// A call's result as the race sees it.
pub trait Attempt: Send + 'static {
    fn endpoint(&self) -> &str;
    fn usage(&self) -> Option<Usage>;
    /// Failed attempts on other endpoints before this one answered.
    fn retries(&self) -> u32;
}

impl Attempt for Completion {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn usage(&self) -> Option<Usage> {
        Some(self.usage)
    }
    fn retries(&self) -> u32 {
        self.retries
    }
}

/// A stream that produced its first event.
pub struct FirstEvent {
    pub stream: StartedStream,
    pub first: Option<StreamEvent>,
}

impl Attempt for FirstEvent {
    fn endpoint(&self) -> &str {
        &self.stream.endpoint
    }
    fn usage(&self) -> Option<Usage> {
        None
    }
    fn retries(&self) -> u32 {
        self.stream.retries
    }
}

/// One whole answer: the first valid one wins.
pub async fn complete(plan: &Plan) -> Result<Won<(Completion, String)>, PoolError> {
    let expect = plan.expect.clone();
    let won = race(
        plan,
        false,
        |p, req, deadline| p.complete(req, deadline),
        move |c: &Completion| expect.check(c),
    )
    .await?;
    let normalized = won.decision.candidates[won.candidate]
        .text
        .clone()
        .unwrap_or_default();
    Ok(Won {
        value: (won.value, normalized),
        candidate: won.candidate,
        provider: won.provider,
        decision: won.decision,
    })
}

/// A streamed answer: the first stream to produce its first event wins; failures before
/// that hand over to the next provider.
pub async fn stream(plan: &Plan) -> Result<Won<FirstEvent>, PoolError> {
    race(
        plan,
        true,
        |p, req, deadline| {
            let started = p.stream(req, deadline);
            Box::pin(async move {
                let mut stream = started.await?;
                match stream.events.next().await {
                    Some(Err(e)) => Err(e),
                    first => Ok(FirstEvent {
                        first: first.and_then(Result::ok),
                        stream,
                    }),
                }
            }) as BoxFuture<'static, _>
        },
        // A stream that ends before any text or tool call is an empty answer: invalid, as
        // in `complete`.
        |f: &FirstEvent| match f.first {
            Some(StreamEvent::Delta(_) | StreamEvent::ToolCall(_) | StreamEvent::Reasoning(_)) => {
                Ok(String::new())
            }
            _ => Err("empty answer".to_owned()),
        },
    )
    .await
}

type Launched<T> = BoxFuture<'static, (usize, usize, Result<T, ProviderError>, u64)>;

/// How the race starts one call: whole answers or streams.
trait Launch<T>:
    Fn(
    &Arc<dyn Provider>,
    Arc<crate::providers::ProviderRequest>,
    Instant,
) -> BoxFuture<'static, Result<T, ProviderError>>
{
}

impl<T, F> Launch<T> for F where
    F: Fn(
        &Arc<dyn Provider>,
        Arc<crate::providers::ProviderRequest>,
        Instant,
    ) -> BoxFuture<'static, Result<T, ProviderError>>
{
}

/// The hedge delay for a call to `provider`: the task's percentile of its recent latency
/// when set and known, else the fixed `hedge_delay_ms`.
pub fn hedge_delay(plan: &Plan, provider: &dyn Provider, streaming: bool) -> Option<Duration> {
    plan.task
        .hedge_percentile()
        .and_then(|p| provider.latency_percentile(p, streaming))
        .or(plan.task.hedge_delay())
}

async fn race<T, L, A>(
    plan: &Plan,
    streaming: bool,
    launch: L,
    accept: A,
) -> Result<Won<T>, PoolError>
where
    T: Attempt,
    L: Launch<T>,
    A: Fn(&T) -> Result<String, String>,
{
    let providers = &plan.providers;
    // Providers past `main` are fallbacks: asked only when the others failed.
    let main = plan.fallback_from;
    let mut decision = Decision::new("fastest");
    let mut inflight: FuturesUnordered<Launched<T>> = FuturesUnordered::new();
    let mut next = 0;
    let mut refused_only = true;
    let mut hedged_same = false;

    let start = |p: usize,
                 hedged: bool,
                 decision: &mut Decision,
                 inflight: &mut FuturesUnordered<Launched<T>>| {
        start_call(plan, &launch, p, hedged, decision, inflight);
    };

    let fanout = plan.task.fanout().clamp(1, main.max(1));
    for _ in 0..fanout {
        start(next, false, &mut decision, &mut inflight);
        next += 1;
    }
    let delay = hedge_delay(plan, providers[0].as_ref(), streaming);
    let mut hedge_at = delay.map(|d| Instant::now() + d);

    loop {
        let hedge_target = hedge_target(next, main, hedged_same, providers[0].as_ref());
        let hedge_armed = hedge_at.is_some() && hedge_target.is_some();
        let hedge_sleep = tokio::time::sleep_until(hedge_at.unwrap_or(plan.deadline));
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(plan.deadline) => return Err(timed_out(plan, decision)),
            Some((index, provider_index, result, latency_ms)) = inflight.next() => {
                let valid = finished(&mut decision, index, result, latency_ms, &accept, &mut refused_only);
                if let Some(value) = valid {
                    // Returning drops `inflight`, which cancels the losers.
                    return Ok(won(plan, decision, index, provider_index, value));
                }
                // The next main provider takes over at once; a fallback (often priced) only
                // once every main call has failed, not while one still runs.
                if next < main || (next < providers.len() && inflight.is_empty()) {
                    let kind = if next < main { "failover" } else { "fallback" };
                    if next >= main {
                        decision.degrade("fallback");
                    }
                    decision.fallbacks.push(format!("{kind}:{}", providers[next].name()));
                    start(next, false, &mut decision, &mut inflight);
                    next += 1;
                    hedge_at = delay.map(|d| Instant::now() + d);
                } else if inflight.is_empty() {
                    record_reliability(plan, &decision);
                    return Err(super::no_answer(decision, refused_only));
                }
            }
            () = hedge_sleep, if hedge_armed => {
                if providers[0].try_hedge() {
                    count_hedge(providers[0].as_ref(), "sent");
                    let target = hedge_target.unwrap_or(0);
                    if target == 0 {
                        hedged_same = true;
                    } else {
                        next += 1;
                    }
                    start(target, true, &mut decision, &mut inflight);
                    hedge_at = delay.map(|d| Instant::now() + d);
                } else {
                    decision.fallbacks.push("hedge_budget_exhausted".into());
                    hedge_at = None;
                }
            }
        }
    }
}

/// Starts the call to provider `p`, recorded as a running candidate.
fn start_call<T, L>(
    plan: &Plan,
    launch: &L,
    p: usize,
    hedged: bool,
    decision: &mut Decision,
    inflight: &mut FuturesUnordered<Launched<T>>,
) where
    T: Attempt,
    L: Launch<T>,
{
    let provider = &plan.providers[p];
    let index = decision.candidates.len();
    decision.candidates.push(Candidate::running(
        provider.name(),
        provider.model(),
        hedged,
        0,
        plan.started.elapsed().as_millis() as u64,
    ));
    let call = super::traced(
        provider.as_ref(),
        hedged,
        0,
        launch(provider, Arc::clone(&plan.request), plan.deadline),
    );
    inflight.push(Box::pin(async move {
        let t0 = Instant::now();
        let result = call.await;
        (index, p, result, t0.elapsed().as_millis() as u64)
    }));
}

/// Where a hedge goes: the next main provider; with none left, another endpoint of the
/// first one (once); else nowhere.
fn hedge_target(
    next: usize,
    main: usize,
    hedged_same: bool,
    first: &dyn Provider,
) -> Option<usize> {
    if next < main {
        Some(next)
    } else if !hedged_same && first.endpoints() > 1 {
        Some(0)
    } else {
        None
    }
}

/// The deadline passed with calls still running: 504, every running call a timeout.
fn timed_out(plan: &Plan, mut decision: Decision) -> PoolError {
    let elapsed_ms = plan.started.elapsed().as_millis() as u64;
    decision.finish_running(CandidateStatus::Timeout, elapsed_ms);
    record_reliability(plan, &decision);
    PoolError::DeadlineExceeded {
        elapsed_ms,
        decision: Some(Box::new(decision)),
    }
}

/// Candidate `index` (a call to provider `provider_index`) answered validly and wins; the
/// calls still running are marked cancelled.
fn won<T>(
    plan: &Plan,
    mut decision: Decision,
    index: usize,
    provider_index: usize,
    value: T,
) -> Won<T> {
    if decision.candidates[index].hedged {
        count_hedge(plan.providers[0].as_ref(), "won");
    }
    decision.winner = Some(decision.candidates[index].provider.clone());
    decision.finish_running(CandidateStatus::Cancelled, 0);
    record_reliability(plan, &decision);
    Won {
        value,
        candidate: index,
        provider: Arc::clone(&plan.providers[provider_index]),
        decision,
    }
}

/// Records a finished call in the Decision (latency, endpoint, tokens, status, why it
/// failed); returns the call's value when its answer is valid for the task.
fn finished<T: Attempt>(
    decision: &mut Decision,
    index: usize,
    result: Result<T, ProviderError>,
    latency_ms: u64,
    accept: &impl Fn(&T) -> Result<String, String>,
    refused_only: &mut bool,
) -> Option<T> {
    let c = &mut decision.candidates[index];
    c.latency_ms = latency_ms;
    match result {
        Ok(value) => {
            c.endpoint = Some(value.endpoint().to_owned());
            c.usage = value.usage();
            c.retries = value.retries();
            let usage = c.usage;
            let verdict = accept(&value);
            let c = &mut decision.candidates[index];
            match verdict {
                Ok(normalized) => {
                    c.status = CandidateStatus::Ok;
                    c.text = Some(normalized);
                }
                Err(why) => {
                    *refused_only = false;
                    c.status = CandidateStatus::Invalid;
                    c.error = Some(why);
                }
            }
            // Every answer's tokens were spent, valid or not.
            if let Some(u) = usage {
                decision.add_usage(u);
            }
            (decision.candidates[index].status == CandidateStatus::Ok).then_some(value)
        }
        Err(e) => {
            *refused_only &= e.is_refusal();
            super::failed(c, &e, false);
            None
        }
    }
}

/// `llm_pool_hedges_total{provider, event}`: a hedge `sent`, or a hedge that `won`.
fn count_hedge(provider: &dyn Provider, event: &'static str) {
    metrics::counter!(
        crate::telemetry::metrics::HEDGES,
        "provider" => provider.name().to_owned(),
        "event" => event
    )
    .increment(1);
}

/// Feeds finished calls into the providers' reliability.
fn record_reliability(plan: &Plan, decision: &Decision) {
    super::record_reliability(&plan.reliability, &decision.candidates);
}
