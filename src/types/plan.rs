//! A planned request: the validated, resolved form every strategy, the cache and the
//! accounting work from. The orchestrator makes it (`orchestrator::request`); everything
//! below the orchestrator reads it.

use std::sync::Arc;

use tokio::time::Instant;

use crate::config::TaskConfig;
use crate::config::raw::StrategyKind;
use crate::providers::{Accuracy, Provider, ProviderRequest, Reliability};

/// What callers may ask of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    #[default]
    Default,
    Bypass,
    Refresh,
    Only,
}

impl CacheMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "" | "default" => Some(Self::Default),
            "bypass" => Some(Self::Bypass),
            "refresh" => Some(Self::Refresh),
            "only" => Some(Self::Only),
            _ => None,
        }
    }
}

/// A validated, resolved request: everything a strategy needs.
pub struct Plan {
    pub task: Arc<TaskConfig>,
    /// The task name callers know it by (`None` for a provider called directly).
    pub task_name: Option<String>,
    pub strategy: StrategyKind,
    /// The task's providers, then its fallback providers.
    pub providers: Vec<Arc<dyn Provider>>,
    /// Index in `providers` where the fallbacks start.
    pub fallback_from: usize,
    /// `weight` of each provider, in `providers` order.
    pub weights: Vec<f64>,
    /// `cost_per_1k_tokens` of each provider, in `providers` order.
    pub costs: Vec<f64>,
    /// Ensemble size.
    pub n: usize,
    /// Answers the caller asked for (OpenAI `n`): the winner, then other valid candidates.
    pub choices: usize,
    pub reliability: Arc<Reliability>,
    /// The providers' learned accuracy per task.
    pub accuracy: Arc<Accuracy>,
    /// The task's judge provider, if it has one.
    pub judge: Option<Arc<dyn Provider>>,
    pub request: Arc<ProviderRequest>,
    /// What a valid answer looks like (the task's and the request's rules).
    pub expect: crate::types::output::Expect,
    pub started: Instant,
    pub deadline: Instant,
    pub request_id: String,
    pub cache: CacheMode,
    /// The caller, for rate limits and logs.
    pub tenant: Option<Arc<crate::config::security::Tenant>>,
    /// `strategy` / `n` the caller asked for but has no right to change (ignored).
    pub refused_overrides: Vec<&'static str>,
    /// Label tasks: how many of the most probable labels to return (0: none).
    pub top_k: usize,
    /// The pool asked the upstream for log probabilities (for `top_k`), not the caller: they
    /// are not returned.
    pub hidden_logprobs: bool,
}

/// Completion tokens reserved per call when a request sets no `max_tokens`; settlement
/// corrects the estimate to what was used.
pub const UNBOUNDED_COMPLETION_ESTIMATE: u64 = 256;

impl Plan {
    /// Tokens to reserve against the tenant's tokens-per-minute: prompt characters / 4 plus
    /// the completion bound, times the calls the strategy plans (plus the judge's).
    pub fn token_estimate(&self) -> u64 {
        let per_call = self.prompt_estimate()
            + self
                .request
                .params
                .max_tokens
                .map_or(UNBOUNDED_COMPLETION_ESTIMATE, u64::from);
        let e = &self.task.ensemble();
        let judge = u64::from(self.judge.is_some());
        let calls = match self.strategy {
            // Every tier may be asked, twice when its samples must agree, and judged.
            StrategyKind::Cascade => {
                let samples = if matches!(
                    e.accept(),
                    crate::config::raw::AcceptRule::Agree
                        | crate::config::raw::AcceptRule::Confidence
                ) {
                    2
                } else {
                    1
                };
                self.fallback_from as u64 * (samples + judge)
            }
            StrategyKind::Fastest => self.task.fanout().max(1) as u64,
            _ => self.n.max(1) as u64 + judge,
        };
        per_call * calls
    }

    /// The prompt's tokens, estimated as characters / 4.
    pub fn prompt_estimate(&self) -> u64 {
        (self.request.prompt_chars() as u64).div_ceil(4)
    }
}
