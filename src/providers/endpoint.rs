//! A provider's endpoints: power-of-two-choices balancing on outstanding requests, a
//! per-endpoint concurrency limit, one queue per provider for callers that find every slot
//! taken (`qos::admission`: classes, fair share, bounds, early refusal; a waiter takes the
//! first slot that frees on any endpoint), a circuit breaker per endpoint, and the results
//! of active health checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::ProviderConfig;
use crate::qos::admission::{Queue, Refused};
use crate::qos::breaker::Admit;
use crate::qos::{Breaker, BreakerState, OverloadConfig, Ticket};

/// One endpoint's state, shown on `/health` and gRPC `Health`.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointHealth {
    pub url: String,
    /// `serving`, `unknown` (no call or check yet), `open` / `half_open` (breaker),
    /// `unhealthy` (failed its health check) or `model_missing` (the check found the
    /// endpoint does not serve the provider's model).
    pub state: &'static str,
    pub breaker: BreakerState,
    /// While the breaker is open: in how many milliseconds it lets a probe through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_in_ms: Option<u64>,
    pub trips: u64,
    pub outstanding: usize,
    pub calls: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Models the last health check found on the endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// A provider's queue, shown on `/health`: callers waiting and slots in use per class.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueHealth {
    /// Slots of the endpoints that may take calls.
    pub capacity: usize,
    pub in_flight: usize,
    pub queued: usize,
    pub classes: Vec<ClassHealth>,
    /// Callers queued per tenant and class (tenants with none are left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantQueue>,
}

/// One tenant's callers in one class of [`QueueHealth`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TenantQueue {
    /// `anonymous` for callers without credentials.
    pub tenant: String,
    pub class: String,
    pub queued: usize,
}

/// One class of [`QueueHealth`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClassHealth {
    pub class: String,
    pub queued: usize,
    pub in_flight: usize,
    /// How long its longest-waiting caller has waited, in milliseconds (0: none waits).
    pub oldest_wait_ms: u64,
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
    /// Calls holding a slot; changed under the pool's lock, read without it.
    in_flight: AtomicUsize,
    /// The concurrency limit (`max_concurrency`); a reload may change it (calls over a
    /// lowered limit finish, and no new one starts until the endpoint is below it).
    limit: AtomicUsize,
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
    pool: Arc<Pool>,
}

/// What every snapshot of one provider shares: its endpoints and the queue of callers
/// waiting for a slot on any of them.
struct Pool {
    /// The provider's name (metric labels).
    provider: Arc<str>,
    state: Mutex<PoolState>,
}

struct PoolState {
    endpoints: Vec<Arc<Endpoint>>,
    overload: Arc<OverloadConfig>,
    queue: Queue<Waiting>,
}

/// A queued caller: where its slots are sent, and the endpoint it should avoid.
struct Waiting {
    tx: oneshot::Sender<Vec<EndpointGuard>>,
    exclude: Option<Arc<str>>,
}

/// Why no endpoint could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Every endpoint's breaker is open.
    CircuitOpen,
    /// Every endpoint failed its health check or lacks the model.
    Unhealthy,
    /// Every slot is taken and the caller cannot be served in time.
    Overloaded(Refused),
}

/// Holds one slot of an endpoint's concurrency limit (and, half-open, a breaker probe);
/// released on drop, which hands the slot to the next queued caller.
pub(crate) struct EndpointGuard {
    endpoint: Arc<Endpoint>,
    pool: Arc<Pool>,
    class: usize,
    probe: bool,
    /// The breaker's epoch when the call was admitted.
    epoch: u64,
    recorded: AtomicBool,
}

/// The endpoints that may take a call now, and their free slots.
struct View {
    usable: Vec<Arc<Endpoint>>,
    free: usize,
    capacity: usize,
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
        Self {
            pool: Arc::new(Pool {
                provider: Arc::from(config.name()),
                state: Mutex::new(PoolState {
                    endpoints,
                    overload: Arc::clone(&config.qos().overload),
                    queue: Queue::default(),
                }),
            }),
        }
    }

    /// The endpoints of `config`, keeping the state of those whose URL was already here:
    /// their breaker (under the new settings), counters, health and calls in flight (under
    /// the new limit), and the provider's queue, so calls on the old snapshot and calls on
    /// the new one share one limit and one queue.
    pub(crate) fn reconfigured(&self, config: &ProviderConfig) -> Self {
        let handoffs = {
            let mut s = self.pool.state.lock();
            let endpoints = config
                .endpoints()
                .iter()
                .enumerate()
                .map(
                    |(i, u)| match s.endpoints.iter().find(|e| &*e.url == u.as_str()) {
                        Some(e) => {
                            e.reconfigure(config);
                            Arc::clone(e)
                        }
                        None => Endpoint::new(config, i, u.as_str()),
                    },
                )
                .collect();
            s.endpoints = endpoints;
            s.overload = Arc::clone(&config.qos().overload);
            // A raised limit or a new endpoint may serve callers waiting now.
            self.pool.dispatch(&mut s, Instant::now())
        };
        deliver(handoffs);
        Self {
            pool: Arc::clone(&self.pool),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pool.state.lock().endpoints.len()
    }

    /// Each endpoint's URL and where the client sends its calls.
    pub(crate) fn targets(&self) -> Vec<(Arc<str>, Option<super::transport::Target>)> {
        self.pool
            .state
            .lock()
            .endpoints
            .iter()
            .map(|e| (Arc::clone(&e.url), e.target.clone()))
            .collect()
    }

    /// A slot for a call of `ticket`: on an endpoint that passed its health check (or has
    /// none yet) and whose breaker admits a call, of two free ones chosen at random the one
    /// with fewer outstanding requests. When every slot is taken the caller queues (one
    /// queue per provider, `qos::admission`) and takes the first slot that frees on any
    /// endpoint, until `until` less `service` (the call's expected length) or its class's
    /// longest wait; a caller that cannot be served in that time is refused at once.
    /// `exclude` (the endpoint that just failed) is avoided when another is usable.
    pub(crate) async fn acquire(
        &self,
        ticket: &Ticket,
        exclude: Option<&str>,
        until: Instant,
        service: Duration,
    ) -> Result<EndpointGuard, Unavailable> {
        // A slot its ensemble took for it, if there is one.
        if let Some(gang) = &ticket.gang
            && let Some(guard) = gang.take(|g: &EndpointGuard| {
                Arc::ptr_eq(&g.pool, &self.pool) && exclude.is_none_or(|x| **g.url() != *x)
            })
        {
            return Ok(guard);
        }
        let mut slots = self
            .acquire_many(ticket, 1, exclude, until, service)
            .await?;
        slots.pop().ok_or(Unavailable::Unhealthy)
    }

    /// `n` slots at once for an ensemble's calls (at most the endpoints' capacity): at once
    /// when they are free and nobody waits, else queued as one caller that is served only
    /// when all are free, so an ensemble never holds some slots while it waits for more.
    pub(crate) async fn acquire_many(
        &self,
        ticket: &Ticket,
        n: usize,
        exclude: Option<&str>,
        until: Instant,
        service: Duration,
    ) -> Result<Vec<EndpointGuard>, Unavailable> {
        let now = Instant::now();
        let pool = &self.pool;
        let mut spare = Vec::new();
        let (id, class, rx, bound, handoffs) = {
            let mut s = pool.state.lock();
            let overload = Arc::clone(&s.overload);
            let class = overload.resolve(ticket.class);
            let view = s.view(now)?;
            let n = n.clamp(1, view.capacity.max(1));
            if s.queue.is_empty() && s.queue.room(&overload, class, view.free, view.capacity) >= n {
                let taken = pool.take_many(&view.usable, exclude, class, n, now);
                if taken.len() == n {
                    s.queue.admitted_many(&overload, class, ticket, n);
                    return Ok(taken);
                }
                // A breaker refused a probe meanwhile: give them back, once unlocked.
                spare = taken;
            }
            let bound =
                class_wait(&overload, class).min(until.saturating_duration_since(now + service));
            let (tx, rx) = oneshot::channel();
            let waiting = Waiting {
                tx,
                exclude: exclude.map(Arc::from),
            };
            let id = match s
                .queue
                .enqueue_many(&overload, class, ticket, n, waiting, now, bound)
            {
                Ok(id) => id,
                Err((refused, _)) => {
                    drop(s);
                    drop(spare);
                    pool.refused(&overload, class, ticket, refused);
                    return Err(Unavailable::Overloaded(refused));
                }
            };
            pool.queue_gauges(&s, &overload);
            let handoffs = pool.dispatch(&mut s, now);
            (id, class, rx, bound, handoffs)
        };
        drop(spare);
        deliver(handoffs);
        let mut queued = Queued {
            pool: Arc::clone(pool),
            id,
            rx,
        };
        match tokio::time::timeout_at(now + bound, &mut queued.rx).await {
            Ok(Ok(guards)) => {
                pool.waited(class, ticket, now.elapsed());
                Ok(guards)
            }
            // The pool let go of the waiter without a slot: nothing else does that, but
            // the caller hears "overloaded", not a hang.
            Ok(Err(_)) | Err(_) => {
                let mut s = pool.state.lock();
                if s.queue.remove(id).is_none()
                    && let Ok(guards) = queued.rx.try_recv()
                {
                    // Served just as the wait ran out.
                    drop(s);
                    pool.waited(class, ticket, now.elapsed());
                    return Ok(guards);
                }
                let overload = Arc::clone(&s.overload);
                let refused = s
                    .queue
                    .expired(&overload, class, &ticket.tenant, Instant::now());
                pool.queue_gauges(&s, &overload);
                drop(s);
                pool.refused(&overload, class, ticket, refused);
                Err(Unavailable::Overloaded(refused))
            }
        }
    }

    /// `n` slots at once if they are free now and nobody waits (`None` otherwise).
    pub(crate) fn try_acquire_many(&self, ticket: &Ticket, n: usize) -> Option<Vec<EndpointGuard>> {
        let now = Instant::now();
        let spare = {
            let mut s = self.pool.state.lock();
            let overload = Arc::clone(&s.overload);
            let class = overload.resolve(ticket.class);
            let view = s.view(now).ok()?;
            let n = n.clamp(1, view.capacity.max(1));
            if !s.queue.is_empty() || s.queue.room(&overload, class, view.free, view.capacity) < n {
                return None;
            }
            let taken = self.pool.take_many(&view.usable, None, class, n, now);
            if taken.len() == n {
                s.queue.admitted_many(&overload, class, ticket, n);
                return Some(taken);
            }
            taken
        };
        drop(spare);
        None
    }

    /// Whether an endpoint other than `url` could take a call now (routable, and its
    /// breaker admits one): where a retry may go.
    pub(crate) fn has_other(&self, url: &str) -> bool {
        let now = Instant::now();
        self.pool.state.lock().endpoints.iter().any(|e| {
            &*e.url != url
                && e.check.load(Ordering::Relaxed) != CHECK_MODEL_MISSING
                && e.breaker.lock().available(now)
        })
    }

    /// Records a health check's result for the endpoint at `url`.
    pub(crate) fn record_check(&self, url: &str, result: Result<Vec<String>, String>, model: &str) {
        let Some(e) = self
            .pool
            .state
            .lock()
            .endpoints
            .iter()
            .find(|e| &*e.url == url)
            .cloned()
        else {
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
        let endpoints = self.pool.state.lock().endpoints.clone();
        endpoints
            .iter()
            .map(|e| {
                let (breaker, trips, probe_in) = {
                    let b = e.breaker.lock();
                    let state = b.state(now);
                    let probe_in = (state == BreakerState::Open)
                        .then(|| b.open_until().saturating_duration_since(now).as_millis() as u64);
                    (state, b.trips(), probe_in)
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
                    probe_in_ms: probe_in,
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

    /// The provider's queue: callers waiting and slots in use, per class.
    pub fn queue(&self) -> QueueHealth {
        let s = self.pool.state.lock();
        let classes = s
            .overload
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| ClassHealth {
                class: c.name.to_string(),
                queued: s.queue.depth(i),
                in_flight: s.queue.in_flight(i),
                oldest_wait_ms: s
                    .queue
                    .oldest(i, Instant::now())
                    .map_or(0, |d| d.as_millis() as u64),
            })
            .collect();
        let mut tenants: Vec<TenantQueue> = s
            .queue
            .by_tenant()
            .map(|(class, tenant, queued)| TenantQueue {
                tenant: if tenant.is_empty() {
                    "anonymous".to_owned()
                } else {
                    tenant.to_string()
                },
                class: Pool::class_name(&s.overload, class).to_string(),
                queued,
            })
            .collect();
        tenants.sort_by(|a, b| (&a.class, &a.tenant).cmp(&(&b.class, &b.tenant)));
        QueueHealth {
            capacity: s
                .endpoints
                .iter()
                .filter(|e| e.routable())
                .map(|e| e.limit.load(Ordering::Relaxed))
                .sum(),
            in_flight: s.endpoints.iter().map(|e| e.outstanding()).sum(),
            queued: s.queue.len(),
            classes,
            tenants,
        }
    }
}

/// The longest a caller of `class` may queue.
fn class_wait(overload: &OverloadConfig, class: usize) -> Duration {
    overload
        .classes
        .get(class)
        .map_or(Duration::ZERO, |c| c.max_wait)
}

/// Hands slots to the callers they were given to; a caller that went away in the meantime
/// drops its slot, which passes it on.
fn deliver(handoffs: Handoffs) {
    for (tx, guards) in handoffs.served {
        drop(tx.send(guards));
    }
    drop(handoffs.spare);
}

/// What a dispatch hands out once the pool's lock is released: slots for queued callers,
/// and slots to give back (taken for a caller that could not get all it needs).
#[derive(Default)]
struct Handoffs {
    served: Vec<(oneshot::Sender<Vec<EndpointGuard>>, Vec<EndpointGuard>)>,
    spare: Vec<EndpointGuard>,
}

/// A queued caller; dropped (served, refused, or its future dropped) it leaves the queue.
struct Queued {
    pool: Arc<Pool>,
    id: u64,
    rx: oneshot::Receiver<Vec<EndpointGuard>>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut s = self.pool.state.lock();
        if s.queue.remove(self.id).is_some() {
            let overload = Arc::clone(&s.overload);
            self.pool.queue_gauges(&s, &overload);
        }
        // A slot sent but not taken is dropped with `rx`, after the lock is released.
    }
}

// === impl Pool ===

impl PoolState {
    /// The endpoints that may take a call: routable (or, when none is, those that may
    /// serve the model: panic routing), with a breaker that admits one.
    fn view(&self, now: Instant) -> Result<View, Unavailable> {
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
        let usable: Vec<Arc<Endpoint>> = routable
            .into_iter()
            .filter(|e| e.breaker.lock().available(now))
            .cloned()
            .collect();
        if usable.is_empty() {
            return Err(Unavailable::CircuitOpen);
        }
        let capacity = usable.iter().map(|e| e.limit.load(Ordering::Relaxed)).sum();
        let free = usable.iter().map(|e| e.free()).sum();
        Ok(View {
            usable,
            free,
            capacity,
        })
    }
}

impl Pool {
    /// Takes a free slot on one of `usable` for a caller of `class`: P2C among the free
    /// ones, avoiding `exclude` when another is free.
    fn take_free(
        self: &Arc<Self>,
        usable: &[Arc<Endpoint>],
        exclude: Option<&str>,
        class: usize,
        now: Instant,
    ) -> Option<EndpointGuard> {
        let mut free: Vec<&Arc<Endpoint>> = usable.iter().filter(|e| e.free() > 0).collect();
        if free.len() > 1
            && let Some(x) = exclude
        {
            free.retain(|e| &*e.url != x);
        }
        while !free.is_empty() {
            let i = p2c(&free);
            let e = free.swap_remove(i);
            if let Some(guard) = self.try_take(e, class, now) {
                return Some(guard);
            }
        }
        None
    }

    /// [`Self::take_free`] `n` times; fewer when the endpoints ran out.
    fn take_many(
        self: &Arc<Self>,
        usable: &[Arc<Endpoint>],
        exclude: Option<&str>,
        class: usize,
        n: usize,
        now: Instant,
    ) -> Vec<EndpointGuard> {
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            match self.take_free(usable, exclude, class, now) {
                Some(g) => taken.push(g),
                None => break,
            }
        }
        taken
    }

    fn try_take(
        self: &Arc<Self>,
        e: &Arc<Endpoint>,
        class: usize,
        now: Instant,
    ) -> Option<EndpointGuard> {
        let mut breaker = e.breaker.lock();
        match breaker.admit(now) {
            Admit::Refuse => None,
            admit => {
                e.in_flight.fetch_add(1, Ordering::Relaxed);
                Some(EndpointGuard {
                    endpoint: Arc::clone(e),
                    pool: Arc::clone(self),
                    class,
                    probe: admit == Admit::Probe,
                    epoch: breaker.epoch(),
                    recorded: AtomicBool::new(false),
                })
            }
        }
    }

    /// Gives free slots to queued callers, in the queue's order; the slots go out once the
    /// lock is released ([`deliver`]).
    fn dispatch(self: &Arc<Self>, s: &mut PoolState, now: Instant) -> Handoffs {
        let mut handoffs = Handoffs::default();
        if s.queue.is_empty() {
            return handoffs;
        }
        s.queue.retain(|w| !w.tx.is_closed());
        let overload = Arc::clone(&s.overload);
        while !s.queue.is_empty() {
            let Ok(view) = s.view(now) else {
                break;
            };
            if view.free == 0 {
                break;
            }
            let Some(w) = s.queue.pop_next(&overload, now, view.free, view.capacity) else {
                break;
            };
            let need = w.need;
            let taken =
                self.take_many(&view.usable, w.value.exclude.as_deref(), w.class, need, now);
            if taken.len() == need {
                handoffs.served.push((w.value.tx, taken));
            } else {
                // A half-open breaker ran out of probes: nothing free is usable now.
                handoffs.spare.extend(taken);
                s.queue.restore(w);
                break;
            }
        }
        self.queue_gauges(s, &overload);
        handoffs
    }

    /// A slot came free: the next queued caller gets it.
    fn release(self: &Arc<Self>, e: &Endpoint, class: usize) {
        let now = Instant::now();
        let handoffs = {
            let mut s = self.state.lock();
            e.in_flight.fetch_sub(1, Ordering::Relaxed);
            s.queue.released(class, now);
            self.dispatch(&mut s, now)
        };
        deliver(handoffs);
    }

    fn class_name(overload: &OverloadConfig, class: usize) -> &Arc<str> {
        &overload.classes[class.min(overload.classes.len() - 1)].name
    }

    /// `llm_pool_queue_depth{provider, class}`.
    fn queue_gauges(&self, s: &PoolState, overload: &OverloadConfig) {
        for (i, c) in overload.classes.iter().enumerate() {
            crate::telemetry::metrics::queue_depth(&self.provider, &c.name, s.queue.depth(i));
        }
    }

    /// `llm_pool_queue_wait_seconds{provider, class, tenant}` of a caller that queued.
    fn waited(&self, class: usize, ticket: &Ticket, waited: Duration) {
        let overload = Arc::clone(&self.state.lock().overload);
        crate::telemetry::metrics::queue_wait(
            &self.provider,
            Self::class_name(&overload, class),
            &ticket.tenant,
            waited,
        );
    }

    /// `llm_pool_admission_refused_total{provider, class, tenant, reason}`.
    fn refused(&self, overload: &OverloadConfig, class: usize, ticket: &Ticket, refused: Refused) {
        crate::telemetry::metrics::admission_refused(
            &self.provider,
            Self::class_name(overload, class),
            &ticket.tenant,
            refused.reason.as_str(),
        );
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
        Arc::new(Self {
            url: Arc::from(url),
            target: super::transport::Target::parse(url).ok(),
            label: Arc::from(format!("{}#{index}", config.name())),
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(config.max_concurrency() as usize),
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
        self.limit
            .store(config.max_concurrency() as usize, Ordering::Relaxed);
        self.breaker.lock().set_config(config.qos().breaker.clone());
    }

    fn outstanding(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Slots free under the limit.
    fn free(&self) -> usize {
        self.limit
            .load(Ordering::Relaxed)
            .saturating_sub(self.outstanding())
    }

    fn routable(&self) -> bool {
        matches!(self.check.load(Ordering::Relaxed), CHECK_UNKNOWN | CHECK_OK)
    }
}

// === impl EndpointGuard ===

impl EndpointGuard {
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
        self.pool.release(&self.endpoint, self.class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::admission::Reason;

    fn config_with(endpoints: usize, max_concurrency: u32, overload: &str) -> Arc<ProviderConfig> {
        let urls: Vec<String> = (0..endpoints)
            .map(|i| format!("\"http://127.0.0.{}:9\"", i + 1))
            .collect();
        let text = format!(
            "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [{}]\nmax_concurrency = {max_concurrency}\n\n[tasks.t]\nproviders = [\"p\"]\n{overload}",
            urls.join(", ")
        );
        let c = crate::config::load_str(&text, std::path::Path::new(".")).expect("config");
        Arc::clone(&c.providers()["p"])
    }

    fn config(max_concurrency: u32) -> Arc<ProviderConfig> {
        config_with(1, max_concurrency, "")
    }

    fn class(i: usize) -> Ticket {
        Ticket {
            class: Some(i),
            tenant: Arc::from("t"),
            weight: 1.0,
            cost: 1.0,
            gang: None,
        }
    }

    fn now_plus(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    async fn take(
        set: &EndpointSet,
        t: &Ticket,
        until: Instant,
    ) -> Result<EndpointGuard, Unavailable> {
        set.acquire(t, None, until, Duration::ZERO).await
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_lowered_limit_takes_its_slots_back_as_calls_end() {
        let t = Ticket::default();
        let set = EndpointSet::new(&config(3));
        let a = take(&set, &t, now_plus(1)).await.expect("a");
        let b = take(&set, &t, now_plus(1)).await.expect("b");
        // 3 → 1 while two calls run: no new call until both ended.
        let set = set.reconfigured(&config(1));
        assert_eq!(set.queue().in_flight, 2);
        assert!(
            take(&set, &t, Instant::now()).await.is_err(),
            "over the new limit"
        );
        drop(a);
        assert_eq!(set.queue().in_flight, 1);
        assert!(take(&set, &t, Instant::now()).await.is_err());
        drop(b);
        let c = take(&set, &t, Instant::now())
            .await
            .expect("one slot again");
        assert_eq!(set.queue().in_flight, 1);
        drop(c);
        // 1 → 2: one more slot.
        let set = set.reconfigured(&config(2));
        let _x = take(&set, &t, now_plus(1)).await.expect("x");
        let _y = take(&set, &t, now_plus(1)).await.expect("y");
        assert!(take(&set, &t, Instant::now()).await.is_err());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_waiter_takes_the_first_slot_that_frees_on_any_endpoint() {
        let t = Ticket::default();
        let set = Arc::new(EndpointSet::new(&config_with(2, 1, "")));
        let a = take(&set, &t, now_plus(10)).await.expect("a");
        let b = take(&set, &t, now_plus(10)).await.expect("b");
        let waiting = {
            let set = Arc::clone(&set);
            tokio::spawn(async move {
                take(&set, &Ticket::default(), now_plus(10))
                    .await
                    .map(|g| Arc::clone(g.url()))
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(set.queue().queued, 1);
        // Whichever endpoint frees first serves it: here the second.
        let freed = Arc::clone(b.url());
        drop(b);
        assert_eq!(waiting.await.expect("task").expect("served"), freed);
        assert_ne!(a.url(), &freed);
        assert_eq!(set.queue().queued, 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn queued_callers_are_served_by_class() {
        let set = Arc::new(EndpointSet::new(&config_with(1, 1, "")));
        let first = take(&set, &class(2), now_plus(60)).await.expect("first");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for c in [2, 1, 0] {
            let (set, order) = (Arc::clone(&set), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let g = take(&set, &class(c), now_plus(60)).await.expect("served");
                order.lock().push(c);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(g);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock(), [0, 1, 2]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_full_queue_and_a_short_deadline_are_refused_at_once() {
        let overload = "[qos.overload]\ndefault_class = \"default\"\n[[qos.overload.classes]]\nname = \"default\"\nmax_queue = 1\n";
        let set = Arc::new(EndpointSet::new(&config_with(1, 1, overload)));
        let t = Ticket::default();
        let _held = take(&set, &t, now_plus(60)).await.expect("held");
        let _waiting = {
            let set = Arc::clone(&set);
            tokio::spawn(async move { take(&set, &Ticket::default(), now_plus(60)).await.is_ok() })
        };
        tokio::task::yield_now().await;
        let t0 = Instant::now();
        match take(&set, &t, now_plus(60)).await {
            Err(Unavailable::Overloaded(r)) => {
                assert_eq!(r.reason, Reason::QueueFull);
                assert!(r.saturated, "the only class is full");
            }
            other => panic!("expected a refusal, got {:?}", other.err()),
        }
        assert_eq!(t0.elapsed(), Duration::ZERO, "refused without waiting");
        // A caller whose deadline leaves no room for the call is refused at once too.
        let set2 = EndpointSet::new(&config_with(1, 1, ""));
        let _h = take(&set2, &t, now_plus(60)).await.expect("held");
        let r = set2
            .acquire(&t, None, now_plus(2), Duration::from_secs(3))
            .await;
        assert!(matches!(
            r,
            Err(Unavailable::Overloaded(Refused {
                reason: Reason::TooLate,
                ..
            }))
        ));
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_caller_waits_at_most_its_class_wait_and_leaves_the_queue() {
        let overload = "[qos.overload]\ndefault_class = \"default\"\n[[qos.overload.classes]]\nname = \"default\"\nmax_wait_ms = 2000\n";
        let set = EndpointSet::new(&config_with(1, 1, overload));
        let t = Ticket::default();
        let _held = take(&set, &t, now_plus(60)).await.expect("held");
        let t0 = Instant::now();
        let r = take(&set, &t, now_plus(60)).await;
        assert!(matches!(
            r,
            Err(Unavailable::Overloaded(Refused {
                reason: Reason::Waited,
                ..
            }))
        ));
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!(set.queue().queued, 0);
        // A caller that goes away leaves the queue at once.
        let gone =
            tokio::time::timeout(Duration::from_millis(100), take(&set, &t, now_plus(60))).await;
        assert!(gone.is_err());
        assert_eq!(set.queue().queued, 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_raised_limit_serves_waiters_at_once() {
        let set = Arc::new(EndpointSet::new(&config(1)));
        let t = Ticket::default();
        let _held = take(&set, &t, now_plus(60)).await.expect("held");
        let waiting = {
            let set = Arc::clone(&set);
            tokio::spawn(async move { take(&set, &Ticket::default(), now_plus(60)).await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert_eq!(set.queue().queued, 1);
        let _set = set.reconfigured(&config(2));
        assert!(waiting.await.expect("task"));
    }
}
