//! Retries: which failures, how many, how long to wait, and the budget that keeps them from
//! multiplying load when an upstream is down.
//!
//! A retry is allowed for connect errors, 5xx, and upstream timeouts (not for the caller's
//! 4xx, nor when the request's own deadline ran out), at most `max_attempts` attempts in
//! all, only while the wait still fits in the remaining deadline, and only while the budget
//! has room: retries may add at most `budget_percent` % to the calls of the last ten
//! seconds (plus `budget_min_per_sec` per second, so a quiet pool can still retry). Waits
//! are exponential with full jitter: a random time in `[0, min(max, base · 2^attempt)]`.

use std::time::Duration;

use tower::retry::budget::{Budget as _, TpsBudget};

/// Retry settings (`[qos.retry]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, the first included (1 = no retries).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub budget_percent: f32,
    pub budget_min_per_sec: u32,
    /// Randomise waits (full jitter). Off only in tests, for determinism.
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            // Finagle's default: retries add at most 20 % load.
            budget_percent: 20.0,
            budget_min_per_sec: 5,
            jitter: true,
        }
    }
}

impl RetryConfig {
    /// The wait before retry number `retry` (1 = the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.backoff_max);
        if self.jitter {
            cap.mul_f64(fastrand::f64())
        } else {
            cap
        }
    }
}

/// A sliding-window budget for extra calls (retries or hedges).
pub struct Budget {
    inner: TpsBudget,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Budget")
    }
}

/// How far back a budget remembers calls.
const BUDGET_TTL: Duration = Duration::from_secs(10);

impl Budget {
    /// Extra calls up to `percent` % of ordinary calls, plus `min_per_sec` per second.
    pub fn new(percent: f32, min_per_sec: u32) -> Self {
        Self {
            inner: TpsBudget::new(BUDGET_TTL, min_per_sec, percent / 100.0),
        }
    }

    /// Counts an ordinary call.
    pub fn deposit(&self) {
        self.inner.deposit();
    }

    /// Takes room for one extra call; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_below_it() {
        let c = RetryConfig {
            jitter: false,
            ..RetryConfig::default()
        };
        let waits: Vec<_> = (1..=7).map(|r| c.backoff(r).as_millis()).collect();
        assert_eq!(waits, vec![50, 100, 200, 400, 800, 1000, 1000]);
        let j = RetryConfig::default();
        for r in 1..10 {
            assert!(j.backoff(r) <= c.backoff(r));
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_budget_caps_extra_calls() {
        let b = Budget::new(20.0, 0);
        for _ in 0..100 {
            b.deposit();
        }
        let mut extra = 0;
        while b.withdraw() {
            extra += 1;
        }
        assert!(
            (18..=20).contains(&extra),
            "{extra} extra calls for 100 calls at 20 %"
        );
    }
}
