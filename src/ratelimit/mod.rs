//! Per-tenant limits: requests per minute, tokens per minute and requests in flight.
//!
//! Each per-minute limit is a token bucket holding one minute's allowance and refilling
//! continuously (so `requests_per_minute = 60` admits a burst of 60, then one a second).
//! Tokens are reserved on admission (an estimate: prompt characters / 4 plus `max_tokens`,
//! times the calls the strategy plans) and settled on completion to what the upstreams
//! reported, so the bucket may go below zero and later requests wait for the debt. A failed
//! or cancelled request is settled at zero tokens; it still counts as a request.
//!
//! The `memory` backend counts in this process; the `redis` backend runs the same algorithm
//! in one Lua script per admission (atomic on the Redis server, with the server's clock), so
//! every replica on that Redis enforces one limit. Leases for the in-flight count expire
//! after the request's deadline, so a replica that dies does not hold them forever. If Redis
//! is unreachable the request is admitted (fail open) and the error counted: limits protect
//! capacity, and a Redis outage must not become a pool outage.
//!
//! Hand-written rather than `governor`: settlement needs refunds and debt, which GCRA cells
//! in governor do not offer, and the Redis script must implement exactly the same rule.
//!
//! May import config, error, telemetry and `redis_link`.

mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::security::{RateLimitBackend, RateLimitConfig, Tenant};
use crate::error::PoolError;
use crate::telemetry::metrics;

/// What a request asks for on admission.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Estimated prompt + completion tokens over every planned call.
    pub tokens: u64,
    /// How long a lease may live (the request's deadline).
    pub lease: Duration,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Requests,
    Tokens,
    Concurrent,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Concurrent => "concurrent",
        }
    }
}

/// The tenants' counters.
pub struct Limiter {
    local: Mutex<HashMap<Arc<str>, Local>>,
    redis: Option<redis::RedisLimits>,
}

impl Limiter {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        let redis = match (&cfg.backend(), &cfg.redis_url()) {
            (RateLimitBackend::Redis, Some(url)) => {
                match redis::RedisLimits::new(url, cfg.key_prefix(), cfg.redis_timeout()) {
                    Ok(r) => Some(r),
                    Err(error) => {
                        tracing::error!(%error, "Rate-limit Redis unusable; counting in memory.");
                        None
                    }
                }
            }
            _ => None,
        };
        Self {
            local: Mutex::new(HashMap::new()),
            redis,
        }
    }

    /// Redis health, when the Redis backend is used.
    pub fn redis_status(&self) -> Option<crate::redis_link::RedisStatus> {
        self.redis.as_ref().map(redis::RedisLimits::status)
    }

    /// Admits a request of `tenant` or refuses it with 429 and the time to wait.
    pub async fn admit(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        ask: Ask,
    ) -> Result<Permit, PoolError> {
        if !tenant.limited() {
            return Ok(Permit::free());
        }
        let outcome = match &self.redis {
            Some(r) => r.admit(tenant, ask).await,
            None => self
                .admit_local(tenant, ask, Instant::now())
                .map(|()| Some(None)),
        };
        match outcome {
            Ok(admitted) => Ok(Permit {
                limiter: Some(Arc::clone(self)),
                tenant: Some(Arc::clone(tenant)),
                reserved: if tenant.tokens_per_minute() > 0 && admitted.is_some() {
                    ask.tokens
                } else {
                    0
                },
                lease: admitted.flatten(),
                done: false,
            }),
            Err((refusal, retry_after)) => {
                ::metrics::counter!(metrics::RATE_LIMITED, "tenant" => tenant.name().to_string(), "limit" => refusal.as_str())
                    .increment(1);
                Err(PoolError::RateLimited {
                    message: match refusal {
                        Refusal::Requests => format!(
                            "tenant `{}` is over {} requests per minute",
                            tenant.name(),
                            tenant.requests_per_minute()
                        ),
                        Refusal::Tokens => format!(
                            "tenant `{}` is over {} tokens per minute",
                            tenant.name(),
                            tenant.tokens_per_minute()
                        ),
                        Refusal::Concurrent => format!(
                            "tenant `{}` has {} requests in flight, its limit",
                            tenant.name(),
                            tenant.max_concurrent()
                        ),
                    },
                    retry_after,
                })
            }
        }
    }

    fn admit_local(&self, t: &Tenant, ask: Ask, now: Instant) -> Result<(), (Refusal, Duration)> {
        let mut map = self.local.lock();
        let state = map
            .entry(Arc::clone(t.name()))
            .or_insert_with(|| Local::full(t, now));
        if t.max_concurrent() > 0 && state.in_flight >= t.max_concurrent() {
            return Err((Refusal::Concurrent, Duration::from_secs(1)));
        }
        let rpm = f64::from(t.requests_per_minute());
        if rpm > 0.0 {
            state.requests.refill(rpm, now);
            if state.requests.level < 1.0 {
                return Err((Refusal::Requests, state.requests.wait(1.0, rpm)));
            }
        }
        let tpm = t.tokens_per_minute() as f64;
        let need = (ask.tokens as f64).min(tpm);
        if tpm > 0.0 {
            state.tokens.refill(tpm, now);
            if state.tokens.level < need {
                return Err((Refusal::Tokens, state.tokens.wait(need, tpm)));
            }
        }
        if rpm > 0.0 {
            state.requests.level -= 1.0;
        }
        if tpm > 0.0 {
            state.tokens.level -= ask.tokens as f64;
        }
        state.in_flight += 1;
        Ok(())
    }

    fn settle_local(&self, t: &Tenant, reserved: u64, used: u64) {
        let mut map = self.local.lock();
        if let Some(state) = map.get_mut(t.name()) {
            let tpm = t.tokens_per_minute() as f64;
            if tpm > 0.0 {
                state.tokens.refill(tpm, Instant::now());
                state.tokens.level = (state.tokens.level + reserved as f64 - used as f64).min(tpm);
            }
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }

    /// The tokens a tenant could spend now (tests and `/admin`): `None` without a token limit.
    pub fn tokens_available(&self, t: &Tenant) -> Option<f64> {
        let tpm = t.tokens_per_minute() as f64;
        (tpm > 0.0).then(|| {
            let mut map = self.local.lock();
            map.get_mut(t.name()).map_or(tpm, |s| {
                s.tokens.refill(tpm, Instant::now());
                s.tokens.level
            })
        })
    }
}

/// One tenant's counters in this process.
struct Local {
    requests: Bucket,
    tokens: Bucket,
    in_flight: u32,
}

impl Local {
    fn full(t: &Tenant, now: Instant) -> Self {
        Self {
            requests: Bucket {
                level: f64::from(t.requests_per_minute()),
                at: now,
            },
            tokens: Bucket {
                level: t.tokens_per_minute() as f64,
                at: now,
            },
            in_flight: 0,
        }
    }
}

/// A token bucket of capacity `per_minute`, refilled at `per_minute / 60` a second.
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, per_minute: f64, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + secs * per_minute / 60.0).min(per_minute);
        self.at = now;
    }

    /// Time until the bucket holds `need`.
    fn wait(&self, need: f64, per_minute: f64) -> Duration {
        Duration::from_secs_f64(((need - self.level) * 60.0 / per_minute).max(0.0))
    }
}

/// An admitted request's claim; settle it with the tokens used. Dropped unsettled (error,
/// cancellation), it settles at zero tokens.
pub struct Permit {
    limiter: Option<Arc<Limiter>>,
    tenant: Option<Arc<Tenant>>,
    reserved: u64,
    lease: Option<String>,
    done: bool,
}

impl Permit {
    /// A permit that limits nothing.
    pub fn free() -> Self {
        Self {
            limiter: None,
            tenant: None,
            reserved: 0,
            lease: None,
            done: true,
        }
    }

    /// Settles the reservation to `used` tokens and ends the request's in-flight count.
    pub fn settle(mut self, used: u64) {
        self.finish(used);
    }

    fn finish(&mut self, used: u64) {
        if self.done {
            return;
        }
        self.done = true;
        let (Some(limiter), Some(tenant)) = (self.limiter.take(), self.tenant.take()) else {
            return;
        };
        if limiter.redis.is_some() {
            let (reserved, lease) = (self.reserved, self.lease.take());
            // Settling must not hold up the answer; it runs beside it.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Some(r) = &limiter.redis {
                        r.settle(&tenant, reserved, used, lease.as_deref()).await;
                    }
                });
            }
        } else {
            limiter.settle_local(&tenant, self.reserved, used);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(rpm: u32, tpm: u64, conc: u32) -> Arc<Tenant> {
        Arc::new(Tenant::with_limits("t", rpm, tpm, conc))
    }

    fn limiter() -> Arc<Limiter> {
        Arc::new(Limiter::new(&RateLimitConfig::in_memory()))
    }

    const ASK: Ask = Ask {
        tokens: 10,
        lease: Duration::from_secs(60),
    };

    fn retry_after(e: PoolError) -> Duration {
        match e {
            PoolError::RateLimited { retry_after, .. } => retry_after,
            other => panic!("expected 429, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_per_minute_exact_over_windows() {
        let (l, t) = (limiter(), tenant(6, 0, 0));
        for _ in 0..6 {
            l.admit(&t, ASK)
                .await
                .expect("within the minute's allowance")
                .settle(0);
        }
        let wait = retry_after(l.admit(&t, ASK).await.err().expect("7th refused"));
        assert_eq!(
            wait,
            Duration::from_secs(10),
            "one request refills every 10 s"
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(l.admit(&t, ASK).await.is_err(), "not yet refilled at 9 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        l.admit(&t, ASK).await.expect("refilled at 10 s").settle(0);
        assert!(l.admit(&t, ASK).await.is_err());
        // A whole minute later the whole allowance is back, and no more.
        tokio::time::advance(Duration::from_secs(120)).await;
        let mut admitted = 0;
        while l.admit(&t, ASK).await.is_ok() {
            admitted += 1;
        }
        assert_eq!(admitted, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_reserved_then_settled() {
        let (l, t) = (limiter(), tenant(0, 1000, 0));
        let ask = Ask { tokens: 600, ..ASK };
        let first = l.admit(&t, ask).await.expect("600 of 1000");
        assert_eq!(l.tokens_available(&t), Some(400.0));
        let wait = retry_after(l.admit(&t, ask).await.err().expect("600 more do not fit"));
        assert_eq!(
            wait,
            Duration::from_secs(12),
            "200 tokens at 1000/min = 12 s"
        );
        // The first used only 100: 500 come back.
        first.settle(100);
        assert_eq!(l.tokens_available(&t), Some(900.0));
        let second = l.admit(&t, ask).await.expect("fits after settlement");
        // Used more than reserved: the bucket goes into debt.
        second.settle(1500);
        assert_eq!(l.tokens_available(&t), Some(-600.0));
        assert!(l.admit(&t, Ask { tokens: 1, ..ASK }).await.is_err());
        tokio::time::advance(Duration::from_secs(36)).await;
        assert_eq!(l.tokens_available(&t), Some(0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_permit_refunds_and_frees_its_slot() {
        let (l, t) = (limiter(), tenant(0, 1000, 1));
        let ask = Ask { tokens: 300, ..ASK };
        let p = l.admit(&t, ask).await.expect("first");
        assert!(l.admit(&t, ask).await.is_err(), "one in flight at most");
        drop(p);
        assert_eq!(l.tokens_available(&t), Some(1000.0));
        l.admit(&t, ask).await.expect("slot freed").settle(300);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ask_larger_than_the_minute_waits_for_a_full_bucket() {
        let (l, t) = (limiter(), tenant(0, 100, 0));
        let big = Ask { tokens: 250, ..ASK };
        l.admit(&t, big)
            .await
            .expect("a full bucket admits it")
            .settle(250);
        let wait = retry_after(l.admit(&t, big).await.err().expect("in debt"));
        assert_eq!(
            wait,
            Duration::from_secs(150),
            "150 debt + 100 capacity at 100/min"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_tenants_are_not_counted() {
        let (l, t) = (limiter(), tenant(0, 0, 0));
        for _ in 0..1000 {
            l.admit(&t, ASK).await.expect("no limits").settle(10);
        }
        assert!(l.local.lock().is_empty());
    }
}
