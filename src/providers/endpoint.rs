//! A provider's endpoints: power-of-two-choices balancing on outstanding requests, a
//! per-endpoint concurrency limit, and passive health from call outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::ProviderConfig;

/// Consecutive failures after which an endpoint is reported `failing` and tried last.
const FAILING_AFTER: u32 = 3;

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
    outstanding: AtomicUsize,
    limit: usize,
    calls: AtomicU64,
    failures: AtomicU64,
    passive: Mutex<Passive>,
}

#[derive(Default)]
struct Passive {
    seen: bool,
    consecutive_failures: u32,
    last_error: Option<String>,
}

/// The endpoints of one provider.
pub struct EndpointSet {
    endpoints: Vec<Arc<Endpoint>>,
}

/// Holds one slot of an endpoint's concurrency limit; released on drop.
pub(crate) struct EndpointGuard {
    endpoint: Arc<Endpoint>,
}

// === impl EndpointSet ===

impl EndpointSet {
    pub fn new(config: &ProviderConfig) -> Self {
        let endpoints = config
            .endpoints
            .iter()
            .map(|u| {
                Arc::new(Endpoint {
                    url: Arc::from(u.as_str()),
                    outstanding: AtomicUsize::new(0),
                    limit: config.max_concurrency as usize,
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    passive: Mutex::new(Passive::default()),
                })
            })
            .collect();
        Self { endpoints }
    }

    /// Picks an endpoint: of two chosen at random, the one with fewer outstanding requests
    /// (healthy ones first); `None` when every endpoint is at its limit.
    pub(crate) fn acquire(&self, exclude: Option<&str>) -> Option<EndpointGuard> {
        let candidates: Vec<&Arc<Endpoint>> = self
            .endpoints
            .iter()
            .filter(|e| e.outstanding.load(Ordering::Relaxed) < e.limit)
            .filter(|e| exclude != Some(&*e.url) || self.endpoints.len() == 1)
            .collect();
        let healthy: Vec<&Arc<Endpoint>> = candidates
            .iter()
            .copied()
            .filter(|e| !e.is_failing())
            .collect();
        let pool = if healthy.is_empty() {
            &candidates
        } else {
            &healthy
        };
        let chosen = match pool.len() {
            0 => return None,
            1 => pool[0],
            n => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let (ea, eb) = (pool[a], pool[b]);
                if eb.outstanding.load(Ordering::Relaxed) < ea.outstanding.load(Ordering::Relaxed) {
                    eb
                } else {
                    ea
                }
            }
        };
        // The limit check above is a hint; a race past it costs one extra request at most.
        chosen.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(EndpointGuard {
            endpoint: Arc::clone(chosen),
        })
    }

    pub fn health(&self) -> Vec<EndpointHealth> {
        self.endpoints
            .iter()
            .map(|e| {
                let p = e.passive.lock();
                EndpointHealth {
                    url: e.url.to_string(),
                    state: if !p.seen {
                        "unknown"
                    } else if p.consecutive_failures >= FAILING_AFTER {
                        "failing"
                    } else {
                        "serving"
                    },
                    outstanding: e.outstanding.load(Ordering::Relaxed),
                    calls: e.calls.load(Ordering::Relaxed),
                    failures: e.failures.load(Ordering::Relaxed),
                    consecutive_failures: p.consecutive_failures,
                    last_error: p.last_error.clone(),
                }
            })
            .collect()
    }
}

// === impl Endpoint ===

impl Endpoint {
    fn is_failing(&self) -> bool {
        self.passive.lock().consecutive_failures >= FAILING_AFTER
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
        let mut p = e.passive.lock();
        p.seen = true;
        match outcome {
            Ok(()) => p.consecutive_failures = 0,
            Err(err) if err.is_endpoint_failure() => {
                e.failures.fetch_add(1, Ordering::Relaxed);
                p.consecutive_failures = p.consecutive_failures.saturating_add(1);
                p.last_error = Some(err.to_string());
            }
            Err(_) => p.consecutive_failures = 0,
        }
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.endpoint.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}
