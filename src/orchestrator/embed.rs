//! Embeddings: one vector per input text from the model's provider (a task's providers in
//! order, the next one when a call fails), balanced over its endpoints and kept off open
//! circuits like completions, hedged after the task's `hedge_delay_ms`, rate-limited and
//! billed to the tenant, and cached in memory: an embedding is a deterministic call, so the
//! cache takes part by default, for the task's `cache_ttl_secs` or else an hour
//! (`x-llm-pool-cache` modes apply).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::config::Target;
use crate::config::security::Tenant;
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::providers::{EmbedRequest, Embeddings, Provider};
use crate::ratelimit::Ask;
use crate::state::AppState;
use crate::types::CacheMode;

/// Most texts in one request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;
/// How long embeddings are served again when the task sets no `cache_ttl_secs`.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Bumped when the key's encoding changes.
const KEY_VERSION: u32 = 1;

/// An embeddings request, independent of the surface it arrived on.
#[derive(Debug, Default)]
pub struct EmbedCall {
    /// A provider, `task:NAME` or an alias.
    pub model: String,
    pub request: EmbedRequest,
    pub cache: CacheMode,
    pub timeout: Option<Duration>,
    pub tenant: Option<Arc<Tenant>>,
    /// The priority class asked for (`x-llm-pool-priority`).
    pub priority: Option<Arc<str>>,
}

/// The vectors and where they came from.
#[derive(Debug, Clone)]
pub struct EmbedAnswer {
    pub embeddings: Arc<Embeddings>,
    pub provider: String,
    pub cache_hit: bool,
}

/// Answers one embeddings request.
pub async fn embed(
    state: &AppState,
    snapshot: &Snapshot,
    call: EmbedCall,
) -> Result<EmbedAnswer, PoolError> {
    let started = Instant::now();
    let config = &snapshot.config;
    check(&call, config.limits())?;
    let (task, task_name) = match config.resolve_model(&call.model) {
        Some(Target::Task(name)) => {
            let t = config
                .tasks()
                .get(&name)
                .ok_or_else(|| PoolError::UnknownTask(name.clone()))?;
            (Arc::clone(t), Some(name))
        }
        Some(Target::Provider(name)) => (
            snapshot
                .direct_task(&name)
                .ok_or_else(|| PoolError::UnknownModel(name.clone()))?,
            None,
        ),
        None => return Err(PoolError::UnknownModel(call.model)),
    };
    if let Some(t) = &call.tenant {
        let allowed = match &task_name {
            Some(name) => t.tasks().permits(name),
            None => task.providers().iter().all(|p| t.providers().permits(p)),
        };
        if !allowed {
            return Err(PoolError::PermissionDenied(format!(
                "tenant `{}` may not use `{}`",
                t.name(),
                call.model
            )));
        }
    }
    let providers: Vec<Arc<dyn Provider>> = task
        .providers()
        .iter()
        .chain(task.fallback())
        .filter_map(|name| snapshot.providers.entry(name).map(|(_, p)| Arc::clone(p)))
        .collect();
    if providers.is_empty() {
        return Err(PoolError::Unavailable {
            summary: "the task has no configured providers".into(),
            decision: None,
        });
    }
    for p in &providers {
        p.refuse_embed(&call.request).map_err(|r| {
            PoolError::invalid(
                r.field,
                format!("provider `{}` cannot take it: {}", p.name(), r.reason),
            )
        })?;
    }
    let key = key(&providers, &call.request);
    let memory = state.embeddings.as_ref();
    if call.cache != CacheMode::Bypass
        && call.cache != CacheMode::Refresh
        && let Some(c) = memory
    {
        let hit = c.get(&key).await;
        if let Some(hit) = hit.filter(|h| h.2 > Instant::now()) {
            metrics::counter!(crate::telemetry::metrics::EMBEDDINGS, "provider" => hit.1.clone(), "outcome" => "cache_hit").increment(1);
            return Ok(EmbedAnswer {
                embeddings: Arc::new(hit.0.clone()),
                provider: hit.1.clone(),
                cache_hit: true,
            });
        }
    }
    if call.cache == CacheMode::Only {
        return Err(PoolError::CacheMiss);
    }
    let timeout = call
        .timeout
        .unwrap_or(task.deadline())
        .min(task.max_deadline());
    let deadline = started + timeout;
    let permit = match &call.tenant {
        Some(t) => {
            let ask = Ask {
                tokens: prompt_estimate(&call.request),
                lease: timeout + Duration::from_secs(5),
            };
            state.limiter.admit(t, ask).await?
        }
        None => crate::ratelimit::Permit::free(),
    };
    let mut request = call.request;
    request.ticket = super::request::ticket(
        &snapshot.config,
        call.tenant.as_deref(),
        call.priority.as_deref(),
        prompt_estimate(&request) as f64,
    )?;
    let request = Arc::new(request);
    let result = hedged(&providers, &request, deadline, task.hedge_delay()).await;
    let (index, embeddings) = match result {
        Ok(found) => found,
        Err(e) => {
            permit.settle(0);
            return Err(e);
        }
    };
    let provider = providers[index].name().to_owned();
    permit.settle(u64::from(embeddings.prompt_tokens));
    state.usage.record_tokens(
        config,
        call.tenant.as_ref().map(|t| t.name()),
        &provider,
        u64::from(embeddings.prompt_tokens),
        0,
    );
    metrics::counter!(crate::telemetry::metrics::EMBEDDINGS, "provider" => provider.clone(), "outcome" => "ok").increment(1);
    if let Some(c) = memory {
        let ttl = Some(task.cache_ttl())
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_TTL);
        let until = Instant::now() + ttl;
        c.insert(key, Arc::new((embeddings.clone(), provider.clone(), until)))
            .await;
    }
    Ok(EmbedAnswer {
        embeddings: Arc::new(embeddings),
        provider,
        cache_hit: false,
    })
}

fn check(call: &EmbedCall, limits: &crate::config::Limits) -> Result<(), PoolError> {
    let input = &call.request.input;
    if input.is_empty() {
        return Err(PoolError::invalid("input", "give at least one text"));
    }
    if input.len() > MAX_INPUTS {
        return Err(PoolError::invalid(
            "input",
            format!("at most {MAX_INPUTS} texts"),
        ));
    }
    if let Some(i) = input.iter().position(String::is_empty) {
        return Err(PoolError::invalid(
            format!("input[{i}]"),
            "must not be empty",
        ));
    }
    let chars: usize = input.iter().map(|s| s.chars().count()).sum();
    if chars > limits.max_input_chars() {
        return Err(PoolError::invalid(
            "input",
            format!(
                "input is {chars} characters; the limit is {}",
                limits.max_input_chars()
            ),
        ));
    }
    if call.request.dimensions == Some(0) {
        return Err(PoolError::invalid("dimensions", "must be at least 1"));
    }
    if call.timeout.is_some_and(|t| t.is_zero()) {
        return Err(PoolError::invalid("timeout", "must be greater than 0"));
    }
    Ok(())
}

fn prompt_estimate(req: &EmbedRequest) -> u64 {
    (req.input.iter().map(String::len).sum::<usize>() as u64).div_ceil(4)
}

/// SHA-256 over the candidate providers (name, model) and the whole request.
fn key(providers: &[Arc<dyn Provider>], req: &EmbedRequest) -> [u8; 32] {
    let names: Vec<(&str, &str)> = providers.iter().map(|p| (p.name(), p.model())).collect();
    crate::cache::key::Hashing::digest(&(KEY_VERSION, "embed", names, req))
}

/// Calls the providers in order: the next one when a call fails, or a second call when the
/// first is slower than `hedge_after` (to another endpoint of the same provider when it has
/// one, else to the next provider). The first vectors win; the other call is dropped.
async fn hedged(
    providers: &[Arc<dyn Provider>],
    req: &Arc<EmbedRequest>,
    deadline: Instant,
    hedge_after: Option<Duration>,
) -> Result<(usize, Embeddings), PoolError> {
    let mut running = FuturesUnordered::new();
    let launch = |i: usize| {
        let call = providers[i].embed(Arc::clone(req), deadline);
        async move { (i, call.await) }
    };
    running.push(launch(0));
    let started = Instant::now();
    // With more than one endpoint, the hedge goes to the first provider again (its
    // balancer picks another endpoint); otherwise to the next provider.
    let (mut hedge_to, mut next) = if providers[0].endpoints() > 1 {
        (Some(0), 1)
    } else if providers.len() > 1 {
        (Some(1), 2)
    } else {
        (None, 1)
    };
    let expired = || PoolError::DeadlineExceeded {
        elapsed_ms: started.elapsed().as_millis() as u64,
        decision: None,
    };
    let mut hedge_at = hedge_after.map(|d| Instant::now() + d);
    let mut errors: Vec<String> = Vec::new();
    // Every failure so far a refused slot: the soonest retry, and whether all saturated.
    let mut overloaded: Option<(Duration, bool)> = None;
    let mut other_failure = false;
    let unavailable =
        |errors: &[String], overloaded: Option<(Duration, bool)>, other: bool| match overloaded {
            Some((retry_after, saturated)) if !other => PoolError::Overloaded {
                summary: errors.join("; "),
                retry_after,
                saturated,
                decision: None,
            },
            _ => PoolError::Unavailable {
                summary: errors.join("; "),
                decision: None,
            },
        };
    loop {
        let sleep = tokio::time::sleep_until(hedge_at.unwrap_or(deadline));
        tokio::select! {
            done = running.next() => match done {
                Some((i, Ok(e))) => return Ok((i, e)),
                Some((i, Err(e))) => {
                    errors.push(format!("{}: {}", providers[i].name(), e.public_reason()));
                    match &e {
                        crate::providers::ProviderError::Overloaded { retry_after, saturated, .. } => {
                            let (r, s) = overloaded.unwrap_or((*retry_after, *saturated));
                            overloaded = Some((r.min(*retry_after), s && *saturated));
                        }
                        _ => other_failure = true,
                    }
                    if let Some(h) = hedge_to.take() {
                        running.push(launch(h));
                    } else if next < providers.len() {
                        running.push(launch(next));
                        next += 1;
                    } else if running.is_empty() {
                        return Err(if Instant::now() >= deadline {
                            expired()
                        } else {
                            unavailable(&errors, overloaded, other_failure)
                        });
                    }
                }
                None => {
                    return Err(unavailable(&errors, overloaded, other_failure));
                }
            },
            () = sleep => {
                if hedge_at.take().is_none() {
                    return Err(expired());
                }
                if let Some(h) = hedge_to.take()
                    && providers[h].try_hedge()
                {
                    metrics::counter!(crate::telemetry::metrics::HEDGES, "provider" => providers[h].name().to_owned(), "event" => "sent").increment(1);
                    running.push(launch(h));
                }
            }
        }
    }
}
