//! Quality of service around every provider call: circuit breakers per endpoint, budgeted
//! retries with backoff, latency tracking for adaptive hedging, and their configuration.
//! Balancing and concurrency limits live with the endpoints (`providers::endpoint`).
//!
//! Imports nothing of the crate: `config` builds these settings, `providers` runs them.

pub mod admission;
pub mod breaker;
pub mod latency;
pub mod retry;

use std::time::Duration;

pub use admission::{ClassConfig, OverloadConfig, Ticket};
pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use latency::LatencyWindow;
pub use retry::{Budget, RetryConfig};

/// `[qos]`, checked. Part of every provider's configuration; a change keeps endpoint state
/// (see `providers::registry`).
#[derive(Debug, Clone, PartialEq)]
pub struct QosConfig {
    pub breaker: BreakerConfig,
    pub retry: RetryConfig,
    /// Active health checks: every `health_check_interval` (zero: off).
    pub health_check_interval: Duration,
    pub health_check_timeout: Duration,
    /// Hedges may add at most this share of calls (over ten seconds) …
    pub hedge_budget_percent: f32,
    /// … plus this many per second.
    pub hedge_budget_min_per_sec: u32,
    /// `[qos.overload]`: priority classes and queue bounds.
    pub overload: std::sync::Arc<OverloadConfig>,
}

impl Default for QosConfig {
    fn default() -> Self {
        Self {
            breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            health_check_interval: Duration::from_secs(10),
            health_check_timeout: Duration::from_secs(2),
            // "The Tail at Scale": a few percent of extra calls cut the tail by 10×.
            hedge_budget_percent: 5.0,
            hedge_budget_min_per_sec: 1,
            overload: std::sync::Arc::default(),
        }
    }
}
