//! A provider's endpoints: power-of-two-choices balancing on outstanding requests, a
//! per-endpoint concurrency limit (callers wait for a slot, within their deadline), a
//! circuit breaker per endpoint, and the results of active health checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ProviderConfig;
use crate::qos::breaker::Admit;
use crate::qos::{Breaker, BreakerState};

/// One endpoint's state, shown on `/health` and gRPC `Health`.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointHealth {
    pub url: String,
    /// `serving`, `unknown` (no call or check yet), `open` / `half_open` (breaker),
    /// `unhealthy` (failed its health check) or `model_missing` (the check found the
    /// endpoint does not serve the provider's model).
    pub state: &'static str,
    pub breaker: BreakerState,
    pub trips: u64,
    pub outstanding: usize,
    pub calls: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Models the last health check found on the endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// What the last health check said, as one byte read on every pick.
const CHECK_UNKNOWN: u8 = 0;
const CHECK_OK: u8 = 1;
const CHECK_FAILED: u8 = 2;
const CHECK_MODEL_MISSING: u8 = 3;

pub(crate) struct Endpoint {
    pub(crate) url: Arc<str>,
    /// `url` taken apart once for the client (`None`: it cannot be used; config refuses such
    /// URLs, so this is a guard, not a path).
    target: Option<super::transport::Target>,
    /// `provider#index`: how the Decision names the endpoint (callers do not see URLs).
    label: Arc<str>,
    slots: Arc<Semaphore>,
    /// The concurrency limit (`max_concurrency`); a reload may change it.
    limit: AtomicUsize,
    /// Slots a lowered limit still has to take back: held by calls in flight, they are
    /// forgotten instead of returned when those calls end.
    excess: AtomicUsize,
    calls: AtomicU64,
    failures: AtomicU64,
    seen: AtomicBool,
    check: AtomicU8,
    breaker: Mutex<Breaker>,
    details: Mutex<Details>,
}

/// Only touched on failures and health checks.
#[derive(Default)]
struct Details {
    last_error: Option<String>,
    models: Vec<String>,
}

/// The endpoints of one provider.
pub struct EndpointSet {
    endpoints: Vec<Arc<Endpoint>>,
}

/// Why no endpoint could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Every endpoint's breaker is open.
    CircuitOpen,
    /// Every endpoint failed its health check or lacks the model.
    Unhealthy,
    /// Every endpoint stayed at its concurrency limit until the deadline.
    Busy,
}

/// Holds one slot of an endpoint's concurrency limit (and, half-open, a breaker probe);
/// released on drop.
pub(crate) struct EndpointGuard {
    endpoint: Arc<Endpoint>,
    probe: bool,
    /// The breaker's epoch when the call was admitted.
    epoch: u64,
    recorded: AtomicBool,
    permit: Option<OwnedSemaphorePermit>,
}

// === impl EndpointSet ===

impl EndpointSet {
    pub fn new(config: &ProviderConfig) -> Self {
        let endpoints = config
            .endpoints()
            .iter()
            .enumerate()
            .map(|(i, u)| Endpoint::new(config, i, u.as_str()))
            .collect();
        Self { endpoints }
    }

    /// The endpoints of `config`, keeping the state of those whose URL was already here:
    /// their breaker (under the new settings), counters, health, and concurrency slots
    /// resized to the new limit, so calls in flight on the old snapshot and calls on the
    /// new one share one limit.
    pub(crate) fn reconfigured(&self, config: &ProviderConfig) -> Self {
        let endpoints = config
            .endpoints()
            .iter()
            .enumerate()
            .map(
                |(i, u)| match self.endpoints.iter().find(|e| &*e.url == u.as_str()) {
                    Some(e) => {
                        e.reconfigure(config);
                        Arc::clone(e)
                    }
                    None => Endpoint::new(config, i, u.as_str()),
                },
            )
            .collect();
        Self { endpoints }
    }

    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Each endpoint's URL and where the client sends its calls.
    pub(crate) fn targets(
        &self,
    ) -> impl Iterator<Item = (&Arc<str>, Option<&super::transport::Target>)> {
        self.endpoints.iter().map(|e| (&e.url, e.target.as_ref()))
    }

    /// Picks an endpoint that passed its health check (or has none yet) and whose breaker
    /// admits a call: of two chosen at random, the one with fewer outstanding requests. When
    /// every such endpoint is at its limit, waits for the least loaded one until `until`.
    /// `exclude` (the endpoint that just failed) is avoided when another is usable.
    pub(crate) async fn acquire(
        &self,
        exclude: Option<&str>,
        until: Instant,
    ) -> Result<EndpointGuard, Unavailable> {
        let now = Instant::now();
        let mut routable: Vec<&Arc<Endpoint>> =
            self.endpoints.iter().filter(|e| e.routable()).collect();
        if routable.is_empty() {
            // Panic routing (as Envoy's panic threshold): when every endpoint failed its
            // last check, a stale check (a server still starting, a blip) must not fail
            // every request for a whole interval; try those that may serve the model and
            // let the breakers judge. Endpoints known to lack the model stay out.
            routable = self
                .endpoints
                .iter()
                .filter(|e| e.check.load(Ordering::Relaxed) != CHECK_MODEL_MISSING)
                .collect();
        }
        if routable.is_empty() {
            return Err(Unavailable::Unhealthy);
        }
        let mut admitted: Vec<&Arc<Endpoint>> = routable
            .into_iter()
            .filter(|e| e.breaker.lock().available(now))
            .collect();
        if admitted.is_empty() {
            return Err(Unavailable::CircuitOpen);
        }
        if admitted.len() > 1
            && let Some(x) = exclude
        {
            admitted.retain(|e| &*e.url != x);
        }
        // Try free endpoints, P2C first, then any, before queueing.
        let mut free: Vec<&Arc<Endpoint>> = admitted
            .iter()
            .copied()
            .filter(|e| e.slots.available_permits() > 0)
            .collect();
        while !free.is_empty() {
            let i = p2c(&free);
            let e = free.swap_remove(i);
            if let Some(guard) = e.try_take(now) {
                return Ok(guard);
            }
        }
        // Everything usable is at its limit: queue on the least loaded endpoint.
        let e = admitted
            .iter()
            .min_by_key(|e| e.outstanding())
            .ok_or(Unavailable::Busy)?;
        let permit = tokio::time::timeout_at(until, Arc::clone(&e.slots).acquire_owned())
            .await
            .map_err(|_| Unavailable::Busy)?
            .map_err(|_| Unavailable::Busy)?;
        let mut breaker = e.breaker.lock();
        match breaker.admit(Instant::now()) {
            Admit::Refuse => Err(Unavailable::CircuitOpen),
            admit => Ok(EndpointGuard::new(
                e,
                admit == Admit::Probe,
                breaker.epoch(),
                permit,
            )),
        }
    }

    /// Whether an endpoint other than `url` could take a call now (routable, and its
    /// breaker admits one): where a retry may go.
    pub(crate) fn has_other(&self, url: &str) -> bool {
        let now = Instant::now();
        self.endpoints.iter().any(|e| {
            &*e.url != url
                && e.check.load(Ordering::Relaxed) != CHECK_MODEL_MISSING
                && e.breaker.lock().available(now)
        })
    }

    /// Records a health check's result for the endpoint at `url`.
    pub(crate) fn record_check(&self, url: &str, result: Result<Vec<String>, String>, model: &str) {
        let Some(e) = self.endpoints.iter().find(|e| &*e.url == url) else {
            return;
        };
        let mut d = e.details.lock();
        match result {
            Ok(models) => {
                let serves = models.is_empty() || models.iter().any(|m| same_model(m, model));
                e.check.store(
                    if serves {
                        CHECK_OK
                    } else {
                        CHECK_MODEL_MISSING
                    },
                    Ordering::Relaxed,
                );
                if !serves {
                    d.last_error = Some(format!("health check: model `{model}` not served"));
                }
                d.models = models;
            }
            Err(error) => {
                e.check.store(CHECK_FAILED, Ordering::Relaxed);
                d.last_error = Some(format!("health check: {error}"));
            }
        }
    }

    pub fn health(&self) -> Vec<EndpointHealth> {
        let now = Instant::now();
        self.endpoints
            .iter()
            .map(|e| {
                let (breaker, trips) = {
                    let b = e.breaker.lock();
                    (b.state(now), b.trips())
                };
                let d = e.details.lock();
                let state = match (e.check.load(Ordering::Relaxed), breaker) {
                    (CHECK_FAILED, _) => "unhealthy",
                    (CHECK_MODEL_MISSING, _) => "model_missing",
                    (_, BreakerState::Open) => "open",
                    (_, BreakerState::HalfOpen) => "half_open",
                    (CHECK_OK, _) => "serving",
                    _ if e.seen.load(Ordering::Relaxed) => "serving",
                    _ => "unknown",
                };
                EndpointHealth {
                    url: e.url.to_string(),
                    state,
                    breaker,
                    trips,
                    outstanding: e.outstanding(),
                    calls: e.calls.load(Ordering::Relaxed),
                    failures: e.failures.load(Ordering::Relaxed),
                    last_error: d.last_error.clone(),
                    models: d.models.clone(),
                }
            })
            .collect()
    }
}

/// Power of two choices: of two distinct random picks, the one with fewer outstanding.
fn p2c(pool: &[&Arc<Endpoint>]) -> usize {
    let n = pool.len();
    if n == 1 {
        return 0;
    }
    let a = fastrand::usize(..n);
    let mut b = fastrand::usize(..n - 1);
    if b >= a {
        b += 1;
    }
    if pool[b].outstanding() < pool[a].outstanding() {
        b
    } else {
        a
    }
}

/// Ollama lists `phi3:mini` for `phi3:mini`, and `llama3:latest` for `llama3`.
fn same_model(listed: &str, wanted: &str) -> bool {
    listed == wanted
        || listed.strip_suffix(":latest") == Some(wanted)
        || wanted.strip_suffix(":latest") == Some(listed)
}

// === impl Endpoint ===

impl Endpoint {
    fn new(config: &ProviderConfig, index: usize, url: &str) -> Arc<Self> {
        let limit = config.max_concurrency() as usize;
        Arc::new(Self {
            url: Arc::from(url),
            target: super::transport::Target::parse(url).ok(),
            label: Arc::from(format!("{}#{index}", config.name())),
            slots: Arc::new(Semaphore::new(limit)),
            limit: AtomicUsize::new(limit),
            excess: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            seen: AtomicBool::new(false),
            check: AtomicU8::new(CHECK_UNKNOWN),
            breaker: Mutex::new(Breaker::new(config.qos().breaker.clone(), Instant::now())),
            details: Mutex::new(Details::default()),
        })
    }

    /// Applies a reloaded provider's limit and breaker settings to this endpoint's state.
    fn reconfigure(&self, config: &ProviderConfig) {
        let new = config.max_concurrency() as usize;
        let old = self.limit.swap(new, Ordering::SeqCst);
        if new > old {
            // Cancel what a lowered limit still had to take back, then add slots.
            let grow = new - old;
            let owed = self
                .excess
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| {
                    Some(x - x.min(grow))
                })
                .unwrap_or(0);
            self.slots.add_permits(grow - owed.min(grow));
        } else if new < old {
            let shrink = old - new;
            let taken = self.slots.forget_permits(shrink);
            self.excess.fetch_add(shrink - taken, Ordering::SeqCst);
        }
        self.breaker.lock().set_config(config.qos().breaker.clone());
    }

    fn outstanding(&self) -> usize {
        (self.limit.load(Ordering::Relaxed) + self.excess.load(Ordering::Relaxed))
            .saturating_sub(self.slots.available_permits())
    }

    fn routable(&self) -> bool {
        matches!(self.check.load(Ordering::Relaxed), CHECK_UNKNOWN | CHECK_OK)
    }

    fn try_take(self: &Arc<Self>, now: Instant) -> Option<EndpointGuard> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        let mut breaker = self.breaker.lock();
        match breaker.admit(now) {
            Admit::Refuse => None,
            admit => Some(EndpointGuard::new(
                self,
                admit == Admit::Probe,
                breaker.epoch(),
                permit,
            )),
        }
    }
}

// === impl EndpointGuard ===

impl EndpointGuard {
    fn new(
        endpoint: &Arc<Endpoint>,
        probe: bool,
        epoch: u64,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            endpoint: Arc::clone(endpoint),
            probe,
            epoch,
            recorded: AtomicBool::new(false),
            permit: Some(permit),
        }
    }

    pub(crate) fn url(&self) -> &Arc<str> {
        &self.endpoint.url
    }

    /// Where the client sends this endpoint's calls.
    pub(crate) fn target(&self) -> Option<&super::transport::Target> {
        self.endpoint.target.as_ref()
    }

    /// The endpoint as callers may see it named (`provider#index`).
    pub(crate) fn label(&self) -> &Arc<str> {
        &self.endpoint.label
    }

    /// Records the outcome of the call made through this slot. Endpoint failures (connect
    /// errors, per-call timeouts, 5xx, 401/403/404) count against the breaker; an answer,
    /// even a caller's 4xx, shows the endpoint alive; the request's own deadline says
    /// nothing about the endpoint.
    pub(crate) fn record(&self, outcome: Result<(), &super::ProviderError>) {
        let e = &self.endpoint;
        e.calls.fetch_add(1, Ordering::Relaxed);
        e.seen.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let verdict = match outcome {
            Ok(()) => {
                // An answer is fresher evidence than a failed health check.
                let _ = e.check.compare_exchange(
                    CHECK_FAILED,
                    CHECK_UNKNOWN,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Some(true)
            }
            Err(err) if err.is_endpoint_failure() => {
                e.failures.fetch_add(1, Ordering::Relaxed);
                e.details.lock().last_error = Some(err.to_string());
                Some(false)
            }
            Err(super::ProviderError::DeadlineExceeded { .. }) => None,
            Err(_) => Some(true),
        };
        if let Some(success) = verdict {
            e.breaker.lock().on_outcome(success, self.epoch, now);
            self.recorded.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        if self.probe && !self.recorded.load(Ordering::Relaxed) {
            self.endpoint.breaker.lock().release_probe();
        }
        // A lowered limit takes this slot back instead of freeing it.
        if let Some(permit) = self.permit.take()
            && self
                .endpoint
                .excess
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| x.checked_sub(1))
                .is_ok()
        {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_concurrency: u32) -> Arc<ProviderConfig> {
        let text = format!(
            "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\nmax_concurrency = {max_concurrency}\n\n[tasks.t]\nproviders = [\"p\"]\n"
        );
        let c = crate::config::load_str(&text, std::path::Path::new(".")).expect("config");
        Arc::clone(&c.providers()["p"])
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_lowered_limit_takes_its_slots_back_as_calls_end() {
        let set = EndpointSet::new(&config(3));
        let far = Instant::now() + std::time::Duration::from_secs(1);
        let a = set.acquire(None, far).await.expect("a");
        let b = set.acquire(None, far).await.expect("b");
        // 3 → 1 while two calls run: one free slot goes at once, one is owed.
        let set = set.reconfigured(&config(1));
        let e = &set.endpoints[0];
        assert_eq!(e.outstanding(), 2);
        assert!(
            set.acquire(None, Instant::now()).await.is_err(),
            "over the new limit"
        );
        drop(a);
        assert_eq!(e.outstanding(), 1, "the owed slot was taken back");
        assert!(set.acquire(None, Instant::now()).await.is_err());
        drop(b);
        let c = set
            .acquire(None, Instant::now())
            .await
            .expect("one slot again");
        assert_eq!(e.outstanding(), 1);
        drop(c);
        // 1 → 2: one more slot.
        let set = set.reconfigured(&config(2));
        let _x = set.acquire(None, far).await.expect("x");
        let _y = set.acquire(None, far).await.expect("y");
        assert!(set.acquire(None, Instant::now()).await.is_err());
    }
}
