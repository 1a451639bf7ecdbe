//! A provider's endpoints: power-of-two-choices balancing on outstanding requests, a
//! per-endpoint concurrency limit (callers wait for a slot, within their deadline), and
//! passive health from call outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ProviderConfig;

/// Consecutive failures after which an endpoint is reported `failing` and tried last.
const FAILING_AFTER: u32 = 3;
/// A failing endpoint gets a probe again this long after its last failure, so a replica
/// that restarted comes back into rotation without waiting for the others to fail.
const RETRY_FAILING_AFTER: Duration = Duration::from_secs(5);

/// One endpoint's state, shown on `/health` and gRPC `Health`.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointHealth {
    pub url: String,
    /// `serving` (last call succeeded), `unknown` (no call yet) or `failing`.
    pub state: &'static str,
    pub outstanding: usize,
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

pub(crate) struct Endpoint {
    pub(crate) url: Arc<str>,
    slots: Arc<Semaphore>,
    limit: usize,
    calls: AtomicU64,
    failures: AtomicU64,
    consecutive_failures: AtomicU32,
    seen: AtomicBool,
    passive: Mutex<Passive>,
}

/// Failure details; only touched when a call fails.
#[derive(Default)]
struct Passive {
    last_failure: Option<Instant>,
    last_error: Option<String>,
}

/// The endpoints of one provider.
pub struct EndpointSet {
    endpoints: Vec<Arc<Endpoint>>,
}

/// Holds one slot of an endpoint's concurrency limit; released on drop.
pub(crate) struct EndpointGuard {
    endpoint: Arc<Endpoint>,
    _permit: OwnedSemaphorePermit,
}

// === impl EndpointSet ===

impl EndpointSet {
    pub fn new(config: &ProviderConfig) -> Self {
        let limit = config.max_concurrency as usize;
        let endpoints = config
            .endpoints
            .iter()
            .map(|u| {
                Arc::new(Endpoint {
                    url: Arc::from(u.as_str()),
                    slots: Arc::new(Semaphore::new(limit)),
                    limit,
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    consecutive_failures: AtomicU32::new(0),
                    seen: AtomicBool::new(false),
                    passive: Mutex::new(Passive::default()),
                })
            })
            .collect();
        Self { endpoints }
    }

    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Picks an endpoint (of two chosen at random among the healthy ones with a free slot,
    /// the one with fewer outstanding requests) and takes a slot. When every endpoint is
    /// full, waits for the least loaded one until `until`; `None` if none frees in time.
    pub(crate) async fn acquire(
        &self,
        exclude: Option<&str>,
        until: Instant,
    ) -> Option<EndpointGuard> {
        let now = Instant::now();
        let usable = |e: &&Arc<Endpoint>| exclude != Some(&*e.url) || self.endpoints.len() == 1;
        // Healthy endpoints first, then failing ones.
        for healthy in [true, false] {
            let pool = || {
                self.endpoints
                    .iter()
                    .filter(usable)
                    .filter(move |e| e.is_healthy(now) == healthy)
                    .filter(|e| e.slots.available_permits() > 0)
            };
            let n = pool().count();
            let chosen = match n {
                0 => continue,
                1 => pool().next(),
                n => {
                    let a = fastrand::usize(..n);
                    let mut b = fastrand::usize(..n - 1);
                    if b >= a {
                        b += 1;
                    }
                    let ea = pool().nth(a);
                    let eb = pool().nth(b);
                    match (ea, eb) {
                        (Some(ea), Some(eb)) if eb.outstanding() < ea.outstanding() => Some(eb),
                        (ea, eb) => ea.or(eb),
                    }
                }
            };
            if let Some(e) = chosen
                && let Ok(permit) = Arc::clone(&e.slots).try_acquire_owned()
            {
                return Some(EndpointGuard {
                    endpoint: Arc::clone(e),
                    _permit: permit,
                });
            }
        }
        // Everything is at its limit: queue on the least loaded endpoint.
        let e = self
            .endpoints
            .iter()
            .filter(usable)
            .min_by_key(|e| (!e.is_healthy(now), e.outstanding()))?;
        let permit = tokio::time::timeout_at(until, Arc::clone(&e.slots).acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(EndpointGuard {
            endpoint: Arc::clone(e),
            _permit: permit,
        })
    }

    pub fn health(&self) -> Vec<EndpointHealth> {
        self.endpoints
            .iter()
            .map(|e| {
                let p = e.passive.lock();
                let consecutive = e.consecutive_failures.load(Ordering::Relaxed);
                EndpointHealth {
                    url: e.url.to_string(),
                    state: if !e.seen.load(Ordering::Relaxed) {
                        "unknown"
                    } else if consecutive >= FAILING_AFTER {
                        "failing"
                    } else {
                        "serving"
                    },
                    outstanding: e.outstanding(),
                    calls: e.calls.load(Ordering::Relaxed),
                    failures: e.failures.load(Ordering::Relaxed),
                    consecutive_failures: consecutive,
                    last_error: p.last_error.clone(),
                }
            })
            .collect()
    }
}

// === impl Endpoint ===

impl Endpoint {
    fn outstanding(&self) -> usize {
        self.limit.saturating_sub(self.slots.available_permits())
    }

    /// Healthy unless it failed `FAILING_AFTER` times in a row, and recently.
    fn is_healthy(&self, now: Instant) -> bool {
        if self.consecutive_failures.load(Ordering::Relaxed) < FAILING_AFTER {
            return true;
        }
        self.passive
            .lock()
            .last_failure
            .is_none_or(|t| now.saturating_duration_since(t) >= RETRY_FAILING_AFTER)
    }
}

// === impl EndpointGuard ===

impl EndpointGuard {
    pub(crate) fn url(&self) -> &Arc<str> {
        &self.endpoint.url
    }

    /// Records the outcome of the call made through this slot.
    pub(crate) fn record(&self, outcome: Result<(), &super::ProviderError>) {
        let e = &self.endpoint;
        e.calls.fetch_add(1, Ordering::Relaxed);
        e.seen.store(true, Ordering::Relaxed);
        match outcome {
            Err(err) if err.is_endpoint_failure() => {
                e.failures.fetch_add(1, Ordering::Relaxed);
                e.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                let mut p = e.passive.lock();
                p.last_failure = Some(Instant::now());
                p.last_error = Some(err.to_string());
            }
            _ => e.consecutive_failures.store(0, Ordering::Relaxed),
        }
    }
}
