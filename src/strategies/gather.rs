//! Gathering candidates for the ensemble strategies: start `n` calls at once, validate each
//! answer as it arrives, let the strategy decide after each one whether to wait for more,
//! and cancel what is still running when it stops or the deadline passes.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::providers::{Completion, Prompt, Provider, ProviderError, ProviderRequest};
use crate::types::Plan;
use crate::types::{Candidate, CandidateStatus, Decision};

/// One call to make.
pub struct CallSpec {
    pub provider: Arc<dyn Provider>,
    pub request: Arc<ProviderRequest>,
    /// The vote this call's answer carries.
    pub weight: f64,
    pub sample: u32,
    /// Index of the provider in `Plan::providers`.
    pub source: usize,
}

/// What the strategy says after each valid answer.
pub enum Flow {
    Continue,
    Stop,
}

/// How gathering ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every call finished.
    AllDone,
    /// The strategy stopped early; the rest were cancelled.
    Stopped,
    /// The deadline passed; the rest were cancelled.
    Deadline,
}

/// Answers by candidate index (into `Decision::candidates`).
pub struct Gathered {
    pub completions: Vec<Option<Completion>>,
    pub end: End,
}

impl Gathered {
    /// Nothing gathered yet.
    pub fn empty() -> Self {
        Self {
            completions: Vec::new(),
            end: End::AllDone,
        }
    }

    /// Adds a later wave's answers (their candidate indices follow this one's), and takes
    /// its end.
    pub fn merge(&mut self, later: Gathered) {
        if self.completions.len() < later.completions.len() {
            self.completions.resize(later.completions.len(), None);
        }
        for (i, c) in later.completions.into_iter().enumerate() {
            if c.is_some() {
                self.completions[i] = c;
            }
        }
        self.end = later.end;
    }

    pub fn completion(&self, candidate: usize) -> Option<&Completion> {
        self.completions.get(candidate).and_then(Option::as_ref)
    }
}

/// `n` calls over the plan's providers: each provider in turn, then again with new samples
/// once each was asked. A repeat gets seed `seed + i` (`i` = the call's index, so no two
/// calls share a seed) and at least `sample_temperature`.
pub fn specs(plan: &Plan, providers: &[usize], n: usize) -> Vec<CallSpec> {
    let e = &plan.task.ensemble();
    (0..n)
        .map(|i| {
            let p = providers[i % providers.len()];
            let sample = (i / providers.len()) as u32;
            let request = if sample == 0 {
                Arc::clone(&plan.request)
            } else {
                let mut r = (*plan.request).clone();
                r.params.seed = Some(r.params.seed.unwrap_or(0).wrapping_add(i as u64));
                r.params.temperature = Some(
                    r.params
                        .temperature
                        .unwrap_or(0.0)
                        .max(e.sample_temperature()),
                );
                Arc::new(r)
            };
            CallSpec {
                provider: Arc::clone(&plan.providers[p]),
                request,
                weight: plan.weights[p],
                sample,
                source: p,
            }
        })
        .collect()
}

type Launched = BoxFuture<'static, (usize, Result<Completion, ProviderError>, u64)>;

/// Runs `specs`, recording each call in `decision`. `on_valid(candidate, normalized,
/// remaining_weight)` is called for each valid answer, in arrival order.
pub async fn gather(
    plan: &Plan,
    specs: &[CallSpec],
    decision: &mut Decision,
    on_valid: impl FnMut(usize, &str, f64, &mut Decision) -> Flow,
) -> Gathered {
    let offset = decision.candidates.len();
    let completions: Vec<Option<Completion>> = vec![None; offset + specs.len()];
    // The members' slots, taken together before any call starts.
    let gang = plan
        .request
        .ticket
        .gang
        .as_ref()
        .filter(|_| specs.len() > 1);
    if let Some(gang) = gang
        && let Err(e) = admit(plan, specs, gang).await
    {
        for spec in specs {
            let mut c = Candidate::running(
                spec.provider.name(),
                spec.provider.model(),
                false,
                spec.sample,
                plan.started.elapsed().as_millis() as u64,
            );
            super::failed(&mut c, &e, Instant::now() >= plan.deadline);
            decision.candidates.push(c);
        }
        return Gathered {
            completions,
            end: if Instant::now() >= plan.deadline {
                End::Deadline
            } else {
                End::AllDone
            },
        };
    }
    let gathered = run(plan, specs, decision, offset, completions, on_valid).await;
    if let Some(gang) = gang {
        // Slots no call took (none should be left: every call takes its slot first).
        gang.clear();
    }
    gathered
}

/// Takes every member's slot at once: on each provider the members' slots together
/// (`Provider::reserve`), and across providers all or none, never holding one provider's
/// slots while waiting for another's (it waits on the one that was short, then takes the
/// others only if they are free at once).
async fn admit(
    plan: &Plan,
    specs: &[CallSpec],
    gang: &crate::qos::admission::Gang,
) -> Result<(), ProviderError> {
    let mut demand: Vec<(&Arc<dyn Provider>, usize)> = Vec::new();
    for spec in specs {
        match demand
            .iter_mut()
            .find(|(p, _)| p.name() == spec.provider.name())
        {
            Some(d) => d.1 += 1,
            None => demand.push((&spec.provider, 1)),
        }
    }
    let ticket = &plan.request.ticket;
    if let [(provider, n)] = demand.as_slice() {
        gang.put(provider.reserve(ticket, *n, plan.deadline).await?);
        return Ok(());
    }
    let mut wait_on: Option<usize> = None;
    // Each round waits in one provider's queue; bounded, in case the others never come
    // free at the same moment (then the calls queue one by one, as single calls do).
    for _ in 0..MAX_ADMISSION_ROUNDS {
        let mut taken = Vec::new();
        if let Some(i) = wait_on {
            let (provider, n) = demand[i];
            taken.extend(provider.reserve(ticket, n, plan.deadline).await?);
        }
        let short = demand
            .iter()
            .enumerate()
            .filter(|&(j, _)| Some(j) != wait_on)
            .find_map(
                |(j, (provider, n))| match provider.try_reserve(ticket, *n) {
                    Some(slots) => {
                        taken.extend(slots);
                        None
                    }
                    None => Some(j),
                },
            );
        match short {
            None => {
                gang.put(taken);
                return Ok(());
            }
            Some(j) => {
                drop(taken);
                wait_on = Some(j);
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(())
}

/// Rounds of [`admit`] across providers before the calls go on without a gang.
const MAX_ADMISSION_ROUNDS: usize = 16;

/// [`gather`]'s calls, once admitted.
async fn run(
    plan: &Plan,
    specs: &[CallSpec],
    decision: &mut Decision,
    offset: usize,
    mut completions: Vec<Option<Completion>>,
    mut on_valid: impl FnMut(usize, &str, f64, &mut Decision) -> Flow,
) -> Gathered {
    let mut inflight: FuturesUnordered<Launched> = FuturesUnordered::new();
    let mut remaining: f64 = specs.iter().map(|s| s.weight).sum();
    for (i, spec) in specs.iter().enumerate() {
        decision.candidates.push(Candidate::running(
            spec.provider.name(),
            spec.provider.model(),
            false,
            spec.sample,
            plan.started.elapsed().as_millis() as u64,
        ));
        let call = if plan.task.hedge_calls() {
            let delay = super::fastest::hedge_delay(plan, spec.provider.as_ref(), false);
            super::hedge::complete(
                Arc::clone(&spec.provider),
                Arc::clone(&spec.request),
                plan.deadline,
                delay,
            )
        } else {
            super::traced(
                spec.provider.as_ref(),
                false,
                spec.sample,
                spec.provider
                    .complete(Arc::clone(&spec.request), plan.deadline),
            )
        };
        inflight.push(Box::pin(async move {
            let t0 = Instant::now();
            let result = call.await;
            (offset + i, result, t0.elapsed().as_millis() as u64)
        }));
    }
    while !inflight.is_empty() {
        let next = tokio::select! {
            biased;
            () = tokio::time::sleep_until(plan.deadline) => None,
            next = inflight.next() => next,
        };
        let Some((index, result, latency_ms)) = next else {
            decision.finish_running(
                CandidateStatus::Timeout,
                plan.started.elapsed().as_millis() as u64,
            );
            record_reliability(plan, decision, offset);
            return Gathered {
                completions,
                end: End::Deadline,
            };
        };
        let spec = &specs[index - offset];
        remaining -= spec.weight;
        let c = &mut decision.candidates[index];
        c.latency_ms = latency_ms;
        let valid = match result {
            Ok(completion) => {
                c.endpoint = Some(completion.endpoint.to_string());
                c.retries = completion.retries;
                c.usage = Some(completion.usage);
                decision.add_usage(completion.usage);
                let c = &mut decision.candidates[index];
                match plan.expect.check(&completion) {
                    Ok(normalized) => {
                        c.status = CandidateStatus::Ok;
                        c.text = Some(normalized.clone());
                        completions[index] = Some(completion);
                        Some(normalized)
                    }
                    Err(why) => {
                        c.status = CandidateStatus::Invalid;
                        c.text = Some(completion.text);
                        c.error = Some(why);
                        None
                    }
                }
            }
            Err(e) => {
                super::failed(c, &e, Instant::now() >= plan.deadline);
                None
            }
        };
        if let Some(normalized) = valid
            && let Flow::Stop = on_valid(index, &normalized, remaining.max(0.0), decision)
        {
            decision.finish_running(CandidateStatus::Cancelled, 0);
            record_reliability(plan, decision, offset);
            return Gathered {
                completions,
                end: End::Stopped,
            };
        }
    }
    record_reliability(plan, decision, offset);
    Gathered {
        completions,
        end: End::AllDone,
    }
}

/// Feeds the outcome of every finished call into reliability.
fn record_reliability(plan: &Plan, decision: &Decision, offset: usize) {
    super::record_reliability(&plan.reliability, &decision.candidates[offset..]);
}

/// The text the candidates answered: the last user message, or the raw prompt.
pub fn question(plan: &Plan) -> &str {
    match &plan.request.prompt {
        Prompt::Raw(s) => s,
        Prompt::Chat(messages) => messages
            .iter()
            .rev()
            .find(|m| m.role == crate::providers::Role::User)
            .map_or("", |m| m.content.as_str()),
    }
}
