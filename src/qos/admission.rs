//! Admission to a provider's concurrency slots once they are all taken: one queue per
//! provider, priority classes (each with a reserved share of the slots, a bounded queue and
//! a longest wait, and promotion of callers that waited long), fair share between tenants
//! inside a class, and refusal at once when a caller cannot be served in time.
//!
//! Fair share is start-time fair queueing (Goyal et al., 1996) by estimated tokens: each
//! tenant's callers get a start tag `max(class clock, tenant's last finish)` and a finish
//! tag `start + tokens / weight`; the smallest start tag is served first and the class
//! clock follows it. A tenant's burst therefore queues behind its own earlier work, not in
//! front of other tenants', and a request asking for many tokens costs as many.
//!
//! Bookkeeping only: the endpoints (`providers::endpoint`) own the slots and call this
//! under their lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// `[qos.overload]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OverloadConfig {
    /// Highest priority first.
    pub classes: Vec<ClassConfig>,
    /// Index into `classes` of requests that name no class.
    pub default_class: usize,
    /// `/readyz` answers 503 while a provider has at least this many callers queued
    /// (0: never).
    pub unready_queue_depth: usize,
}

/// One priority class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassConfig {
    pub name: Arc<str>,
    /// Share of each provider's slots kept for this class: other classes may not take the
    /// last `floor(reserved × slots)` free slots this class does not use.
    pub reserved: f64,
    /// Most callers of this class queued per provider; the next is refused at once.
    pub max_queue: usize,
    /// Longest a caller of this class waits for a slot.
    pub max_wait: Duration,
    /// A caller that has waited this long competes in the next higher class, as its tenant
    /// for a fair share there (zero: never). One step only, so the top class is never
    /// crowded by callers promoted from far below.
    pub promote_after: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        let class = |name: &str, reserved: f64, max_wait_secs: u64| ClassConfig {
            name: Arc::from(name),
            reserved,
            max_queue: 256,
            max_wait: Duration::from_secs(max_wait_secs),
            promote_after: Duration::from_secs(5),
        };
        Self {
            classes: vec![
                class("interactive", 0.0, 10),
                class("default", 0.0, 30),
                class("batch", 0.0, 60),
            ],
            default_class: 1,
            unready_queue_depth: 0,
        }
    }
}

impl OverloadConfig {
    /// The index of the class called `name`.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| &*c.name == name)
    }

    /// The class a ticket runs in: its own, or the default (clamped, should a reload have
    /// removed classes while the ticket was made).
    pub fn resolve(&self, class: Option<usize>) -> usize {
        class
            .unwrap_or(self.default_class)
            .min(self.classes.len().saturating_sub(1))
    }

    fn class(&self, i: usize) -> Option<&ClassConfig> {
        self.classes.get(i)
    }
}

/// Who asks for a slot, and how much it will use.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    /// Index of the priority class (`None`: the default class).
    pub class: Option<usize>,
    /// The fair-share key: the tenant's name (empty for callers without credentials).
    pub tenant: Arc<str>,
    /// The tenant's weight within its class (0 counts as 1).
    pub weight: f64,
    /// Estimated tokens (prompt and completion bound).
    pub cost: f64,
    /// An ensemble's slots, taken at once before its calls start (`None`: single calls).
    pub gang: Option<Arc<Gang>>,
}

impl PartialEq for Ticket {
    /// Who asks and how much; the gang is the request's own, not part of what it asks.
    fn eq(&self, other: &Self) -> bool {
        self.class == other.class
            && self.tenant == other.tenant
            && self.weight == other.weight
            && self.cost == other.cost
    }
}

/// Slots taken together for an ensemble's calls, each then taken by one of them (the
/// providers keep what a slot is; this only holds them).
#[derive(Default)]
pub struct Gang {
    slots: parking_lot::Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
}

impl Gang {
    /// Adds slots.
    pub fn put(&self, slots: Vec<Box<dyn std::any::Any + Send + Sync>>) {
        self.slots.lock().extend(slots);
    }

    /// Takes a slot of type `S` that `fits`.
    pub fn take<S: 'static>(&self, fits: impl Fn(&S) -> bool) -> Option<S> {
        let mut slots = self.slots.lock();
        let i = slots
            .iter()
            .position(|s| s.downcast_ref::<S>().is_some_and(&fits))?;
        slots.swap_remove(i).downcast::<S>().ok().map(|b| *b)
    }

    /// Frees what no call took.
    pub fn clear(&self) {
        let spare = std::mem::take(&mut *self.slots.lock());
        drop(spare);
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Gang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gang").field("slots", &self.len()).finish()
    }
}

/// Why a caller was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The class's queue holds `max_queue` callers.
    QueueFull,
    /// The expected wait is longer than the caller can wait (its class's `max_wait`, or
    /// its deadline less the expected service time).
    TooLate,
    /// It waited as long as it could.
    Waited,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::TooLate => "too_late",
            Self::Waited => "waited",
        }
    }
}

/// A refusal: when to try again, and whether the provider is saturated (every class's
/// queue full) rather than this class over its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub reason: Reason,
    pub retry_after: Duration,
    pub saturated: bool,
}

/// One queued caller.
pub struct Waiter<T> {
    pub id: u64,
    pub class: usize,
    pub tenant: Arc<str>,
    pub since: Instant,
    /// Its start tag, on the clock of class `tier`: its own class, or the class it was
    /// promoted into (where it competes as its tenant for a fair share, not ahead of all).
    start: f64,
    tier: usize,
    cost: f64,
    weight: f64,
    /// Slots it takes at once (an ensemble's members on this provider).
    pub need: usize,
    pub value: T,
}

#[derive(Debug, Clone, Copy, Default)]
struct ClassState {
    /// The start tag of the caller served last.
    clock: f64,
    in_flight: usize,
    queued: usize,
    /// Tenants with callers queued.
    tenants: usize,
    /// Slots this class's callers gave back: the rate the class is actually served at,
    /// which under strict priority is what the classes above leave it.
    drain: Drain,
}

/// A provider's queue.
pub struct Queue<T> {
    waiters: Vec<Waiter<T>>,
    classes: Vec<ClassState>,
    /// Finish tag per (class, tenant).
    finish: HashMap<(usize, Arc<str>), f64>,
    /// Callers queued per (class, tenant).
    queued_by: HashMap<(usize, Arc<str>), usize>,
    next_id: u64,
    drain: Drain,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            waiters: Vec::new(),
            classes: Vec::new(),
            finish: HashMap::new(),
            queued_by: HashMap::new(),
            next_id: 0,
            drain: Drain::default(),
        }
    }
}

/// A caller is queued only if its expected wait is at most this share of what it can wait.
const WAIT_MARGIN: f64 = 0.6;

/// Tenants' finish tags kept before the ones that carry no debt are dropped.
const MAX_TAGS: usize = 4096;

impl<T> Queue<T> {
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Callers of `class` queued.
    pub fn depth(&self, class: usize) -> usize {
        self.classes.get(class).map_or(0, |c| c.queued)
    }

    /// How long the longest-waiting caller of `class` has waited.
    pub fn oldest(&self, class: usize, now: Instant) -> Option<Duration> {
        self.waiters
            .iter()
            .filter(|w| w.class == class)
            .map(|w| now.saturating_duration_since(w.since))
            .max()
    }

    /// Callers queued per (class, tenant).
    pub fn by_tenant(&self) -> impl Iterator<Item = (usize, &Arc<str>, usize)> {
        self.queued_by.iter().map(|((c, t), n)| (*c, t, *n))
    }

    /// Slots held by callers of `class`.
    pub fn in_flight(&self, class: usize) -> usize {
        self.classes.get(class).map_or(0, |c| c.in_flight)
    }

    fn fit(&mut self, config: &OverloadConfig) {
        if self.classes.len() < config.classes.len() {
            self.classes
                .resize(config.classes.len(), ClassState::default());
        }
    }

    /// Whether a caller of `class` may take one of `free` slots out of `capacity`: the
    /// free slots other classes have reserved and do not use stay theirs.
    pub fn may_take(
        &self,
        config: &OverloadConfig,
        class: usize,
        free: usize,
        capacity: usize,
    ) -> bool {
        self.room(config, class, free, capacity) > 0
    }

    /// How many of `free` slots (out of `capacity`) a caller of `class` may take.
    pub fn room(
        &self,
        config: &OverloadConfig,
        class: usize,
        free: usize,
        capacity: usize,
    ) -> usize {
        let held: usize = config
            .classes
            .iter()
            .enumerate()
            .filter(|&(c, _)| c != class)
            .map(|(c, cfg)| {
                let reserved = (cfg.reserved * capacity as f64).floor() as usize;
                reserved.saturating_sub(self.in_flight(c))
            })
            .sum();
        free.saturating_sub(held)
    }

    fn start_tag(&mut self, class: usize, t: &Ticket) -> f64 {
        if self.finish.len() >= MAX_TAGS {
            let classes = &self.classes;
            self.finish
                .retain(|(c, _), f| *f > classes.get(*c).map_or(0.0, |s| s.clock));
        }
        tag(
            &mut self.finish,
            &self.classes,
            class,
            &t.tenant,
            t.cost,
            t.weight,
        )
    }

    /// A caller of `class` took a free slot without queueing: its tenant's share is charged
    /// as if it had queued.
    pub fn admitted(&mut self, config: &OverloadConfig, class: usize, t: &Ticket) {
        self.admitted_many(config, class, t, 1);
    }

    /// [`Self::admitted`] for `n` slots taken at once.
    pub fn admitted_many(&mut self, config: &OverloadConfig, class: usize, t: &Ticket, n: usize) {
        self.fit(config);
        let cost = Ticket {
            cost: t.cost * n as f64,
            ..t.clone()
        };
        let start = self.start_tag(class, &cost);
        let c = &mut self.classes[class];
        c.clock = c.clock.max(start);
        c.in_flight += n;
    }

    /// A slot held by a caller of `class` came free.
    pub fn released(&mut self, class: usize, now: Instant) {
        if let Some(c) = self.classes.get_mut(class) {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.drain.tick(now);
        }
        self.drain.tick(now);
    }

    /// How long a new caller of `tenant` in `class` can expect to wait, at the rate slots
    /// have been coming free (`None` until enough came free to tell): behind every caller
    /// queued in higher classes, and in its own class behind one caller of each tenant
    /// with callers queued for each of its tenant's own queued callers (fair share: a
    /// tenant with many callers waiting waits longer than one with few).
    pub fn expected_wait(
        &self,
        config: &OverloadConfig,
        class: usize,
        tenant: &Arc<str>,
        now: Instant,
    ) -> Option<Duration> {
        let rate = self.drain.rate(now)?;
        let higher: usize = self.classes.iter().take(class).map(|c| c.queued).sum();
        let (queued, tenants) = self
            .classes
            .get(class)
            .map_or((0, 0), |c| (c.queued, c.tenants));
        let own = self
            .queued_by
            .get(&(class, Arc::clone(tenant)))
            .copied()
            .unwrap_or(0);
        let tenants = tenants + usize::from(own == 0);
        let same = queued.min((own + 1) * tenants.max(1) - 1) + 1;
        let wait = (higher + same) as f64 / rate;
        // Callers of the class below promoted into this one by then share it too, as their
        // tenants: one of each such tenant per caller this tenant has queued.
        let mut promoted = 0;
        let mut promoted_tenants: Vec<&Arc<str>> = Vec::new();
        for w in self.waiters.iter().filter(|w| w.class == class + 1) {
            let soon = config.class(w.class).is_some_and(|cfg| {
                !cfg.promote_after.is_zero()
                    && cfg
                        .promote_after
                        .saturating_sub(now.saturating_duration_since(w.since))
                        .as_secs_f64()
                        <= wait
            });
            if soon {
                promoted += 1;
                if !promoted_tenants.contains(&&w.tenant) {
                    promoted_tenants.push(&w.tenant);
                }
            }
        }
        let promoted = promoted.min((own + 1) * promoted_tenants.len());
        let by_total = wait + promoted as f64 / rate;
        // The class's own queue at the rate the class has been served, when it has been:
        // what arrivals above it (not queued yet) will keep taking shows there.
        let by_class = self
            .classes
            .get(class)
            .and_then(|c| c.drain.rate(now))
            .map_or(0.0, |r| same as f64 / r);
        Some(Duration::from_secs_f64(by_total.max(by_class)))
    }

    fn count(&mut self, class: usize, tenant: &Arc<str>, up: bool) {
        let key = (class, Arc::clone(tenant));
        let c = &mut self.classes[class];
        if up {
            c.queued += 1;
            let n = self.queued_by.entry(key).or_insert(0);
            if *n == 0 {
                c.tenants += 1;
            }
            *n += 1;
        } else {
            c.queued -= 1;
            if let Some(n) = self.queued_by.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.queued_by.remove(&key);
                    c.tenants -= 1;
                }
            }
        }
    }

    /// What a refused caller of `class` is told.
    fn refusal(
        &self,
        config: &OverloadConfig,
        class: usize,
        tenant: &Arc<str>,
        reason: Reason,
        now: Instant,
    ) -> Refused {
        let saturated = config
            .classes
            .iter()
            .enumerate()
            .all(|(c, cfg)| self.depth(c) >= cfg.max_queue);
        Refused {
            reason,
            retry_after: self
                .expected_wait(config, class, tenant, now)
                .unwrap_or(Duration::from_secs(1)),
            saturated,
        }
    }

    /// Queues a caller of `class` that can wait at most `bound`, or refuses it at once (the
    /// value comes back with the refusal).
    pub fn enqueue(
        &mut self,
        config: &OverloadConfig,
        class: usize,
        t: &Ticket,
        value: T,
        now: Instant,
        bound: Duration,
    ) -> Result<u64, (Refused, T)> {
        self.enqueue_many(config, class, t, 1, value, now, bound)
    }

    /// [`Self::enqueue`] for a caller that takes `need` slots at once: it is served only
    /// when that many are free for it, and while it is first in line the slots that free
    /// are kept for it (so it cannot starve behind single callers).
    #[expect(clippy::too_many_arguments, reason = "the queue's one entry point")]
    pub fn enqueue_many(
        &mut self,
        config: &OverloadConfig,
        class: usize,
        t: &Ticket,
        need: usize,
        value: T,
        now: Instant,
        bound: Duration,
    ) -> Result<u64, (Refused, T)> {
        self.fit(config);
        let Some(cfg) = config.class(class) else {
            return Err((
                self.refusal(config, class, &t.tenant, Reason::QueueFull, now),
                value,
            ));
        };
        if self.depth(class) >= cfg.max_queue {
            return Err((
                self.refusal(config, class, &t.tenant, Reason::QueueFull, now),
                value,
            ));
        }
        // A margin for what the estimate cannot see (arrivals to come in higher classes,
        // calls longer than the median): refused at once rather than after waiting in vain.
        let late = bound.is_zero()
            || self
                .expected_wait(config, class, &t.tenant, now)
                .is_some_and(|expected| expected.as_secs_f64() > bound.as_secs_f64() * WAIT_MARGIN);
        if late {
            return Err((
                self.refusal(config, class, &t.tenant, Reason::TooLate, now),
                value,
            ));
        }
        let start = self.start_tag(class, t);
        let id = self.next_id;
        self.next_id += 1;
        self.count(class, &t.tenant, true);
        self.waiters.push(Waiter {
            id,
            class,
            tenant: Arc::clone(&t.tenant),
            since: now,
            start,
            tier: class,
            cost: t.cost * need.max(1) as f64,
            weight: t.weight,
            need: need.max(1),
            value,
        });
        Ok(id)
    }

    /// The refusal for a caller of `tenant` that waited as long as it could.
    pub fn expired(
        &self,
        config: &OverloadConfig,
        class: usize,
        tenant: &Arc<str>,
        now: Instant,
    ) -> Refused {
        self.refusal(config, class, tenant, Reason::Waited, now)
    }

    /// The class a waiter competes in now: its own, or the next higher one once it has
    /// waited `promote_after`.
    fn effective(config: &OverloadConfig, w: &Waiter<T>, now: Instant) -> usize {
        let Some(cfg) = config.class(w.class) else {
            return w.class;
        };
        if cfg.promote_after.is_zero() {
            return w.class;
        }
        if now.saturating_duration_since(w.since) >= cfg.promote_after {
            w.class.saturating_sub(1)
        } else {
            w.class
        }
    }

    /// Takes the caller to serve next with one of `free` slots out of `capacity`: the
    /// highest (effective) class first, then the smallest start tag, then the oldest; only
    /// callers whose class may take a slot. A caller needing more slots than it may take
    /// now is not passed over: nothing is served until they are free (`None`).
    pub fn pop_next(
        &mut self,
        config: &OverloadConfig,
        now: Instant,
        free: usize,
        capacity: usize,
    ) -> Option<Waiter<T>> {
        // Callers promoted since the last look join their new class's fair queue.
        for w in &mut self.waiters {
            let effective = Self::effective(config, w, now);
            if effective < w.tier {
                w.start = tag(
                    &mut self.finish,
                    &self.classes,
                    effective,
                    &w.tenant,
                    w.cost,
                    w.weight,
                );
                w.tier = effective;
            }
        }
        let mut best: Option<(usize, (usize, f64, u64))> = None;
        for (i, w) in self.waiters.iter().enumerate() {
            let key = (w.tier, w.start, w.id);
            if best.is_some_and(|(_, b)| !before(key, b)) {
                continue;
            }
            if self.may_take(config, w.class, free, capacity) {
                best = Some((i, key));
            }
        }
        let (i, _) = best?;
        let w = &self.waiters[i];
        // More than the endpoints have now (some went out of rotation): what they have.
        if w.need.min(capacity.max(1)) > self.room(config, w.class, free, capacity) {
            return None;
        }
        let mut w = self.waiters.swap_remove(i);
        w.need = w.need.min(capacity.max(1));
        self.count(w.class, &w.tenant, false);
        self.classes[w.class].in_flight += w.need;
        let tier = &mut self.classes[w.tier];
        tier.clock = tier.clock.max(w.start);
        Some(w)
    }

    /// Puts back a waiter [`Self::pop_next`] gave out that could not be served after all.
    pub fn restore(&mut self, w: Waiter<T>) {
        self.count(w.class, &w.tenant, true);
        let c = &mut self.classes[w.class];
        c.in_flight = c.in_flight.saturating_sub(w.need);
        self.waiters.push(w);
    }

    /// Takes the waiter `id` out of the queue (it gave up), if it is still there.
    pub fn remove(&mut self, id: u64) -> Option<Waiter<T>> {
        let i = self.waiters.iter().position(|w| w.id == id)?;
        let w = self.waiters.swap_remove(i);
        self.count(w.class, &w.tenant, false);
        Some(w)
    }

    /// Drops waiters `keep` rejects (callers that went away).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut i = 0;
        while i < self.waiters.len() {
            if keep(&self.waiters[i].value) {
                i += 1;
            } else {
                let w = self.waiters.swap_remove(i);
                self.count(w.class, &w.tenant, false);
            }
        }
    }
}

/// A start tag for `tenant` in `class`: `max(class clock, tenant's last finish)`, and the
/// tenant's finish moves on by `cost / weight`.
fn tag(
    finish: &mut HashMap<(usize, Arc<str>), f64>,
    classes: &[ClassState],
    class: usize,
    tenant: &Arc<str>,
    cost: f64,
    weight: f64,
) -> f64 {
    let clock = classes[class].clock;
    let weight = if weight > 0.0 { weight } else { 1.0 };
    let f = finish.entry((class, Arc::clone(tenant))).or_insert(clock);
    let start = f.max(clock);
    *f = start + cost.max(1.0) / weight;
    start
}

fn before(a: (usize, f64, u64), b: (usize, f64, u64)) -> bool {
    a.0.cmp(&b.0)
        .then(a.1.total_cmp(&b.1))
        .then(a.2.cmp(&b.2))
        .is_lt()
}

/// Slots coming free per second: an exponentially decayed count of releases.
#[derive(Debug, Clone, Copy, Default)]
struct Drain {
    first: Option<Instant>,
    last: Option<Instant>,
    count: f64,
}

/// The decay's time constant, in seconds.
const DRAIN_TAU: f64 = 10.0;
/// Releases seen before the rate is trusted.
const DRAIN_MIN: f64 = 4.0;

impl Drain {
    fn decayed(&self, now: Instant) -> f64 {
        match self.last {
            Some(last) => {
                self.count * (-now.saturating_duration_since(last).as_secs_f64() / DRAIN_TAU).exp()
            }
            None => 0.0,
        }
    }

    fn tick(&mut self, now: Instant) {
        self.count = self.decayed(now) + 1.0;
        self.last = Some(now);
        self.first.get_or_insert(now);
    }

    fn rate(&self, now: Instant) -> Option<f64> {
        let first = self.first?;
        if self.count < DRAIN_MIN {
            return None;
        }
        // The decayed count of a steady rate r after t seconds is r·τ·(1 − e^(−t/τ)).
        let t = now.saturating_duration_since(first).as_secs_f64().max(1e-3);
        let span = DRAIN_TAU * (1.0 - (-t / DRAIN_TAU).exp());
        let rate = self.decayed(now) / span;
        (rate > 0.0).then_some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(class: usize, tenant: &str, cost: f64) -> Ticket {
        Ticket {
            class: Some(class),
            tenant: Arc::from(tenant),
            weight: 1.0,
            cost,
            gang: None,
        }
    }

    fn config(reserved: [f64; 3], max_queue: usize) -> OverloadConfig {
        let mut c = OverloadConfig::default();
        for (class, r) in c.classes.iter_mut().zip(reserved) {
            class.reserved = r;
            class.max_queue = max_queue;
            class.promote_after = Duration::from_secs(5);
        }
        c
    }

    const LONG: Duration = Duration::from_secs(60);

    /// Serves everything queued one slot at a time; the tenants in the order served.
    fn drain_order(q: &mut Queue<()>, c: &OverloadConfig, now: Instant) -> Vec<String> {
        let mut order = Vec::new();
        while let Some(w) = q.pop_next(c, now, 1, 100) {
            order.push(w.tenant.to_string());
            q.released(w.class, now);
        }
        order
    }

    #[tokio::test(start_paused = true)]
    async fn higher_classes_are_served_first() {
        let c = config([0.0; 3], 10);
        let mut q = Queue::default();
        let now = Instant::now();
        for (class, who) in [(2, "batch"), (1, "default"), (0, "interactive")] {
            q.enqueue(&c, class, &ticket(class, who, 1.0), (), now, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        assert_eq!(
            drain_order(&mut q, &c, now),
            ["interactive", "default", "batch"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_waited_long_is_promoted() {
        let c = config([0.0; 3], 10);
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.enqueue(&c, 2, &ticket(2, "old-batch", 1.0), (), t0, LONG)
            .map_err(|_| ())
            .expect("queued");
        tokio::time::advance(Duration::from_secs(11)).await;
        let now = Instant::now();
        q.enqueue(&c, 0, &ticket(0, "new-interactive", 1.0), (), now, LONG)
            .map_err(|_| ())
            .expect("queued");
        q.enqueue(&c, 1, &ticket(1, "new-default", 1.0), (), now, LONG)
            .map_err(|_| ())
            .expect("queued");
        // After 11 s batch competes in the default class (one step, never more), where it
        // came first.
        assert_eq!(
            drain_order(&mut q, &c, now),
            ["new-interactive", "old-batch", "new-default"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn promoted_callers_share_their_new_class_instead_of_taking_it() {
        let c = config([0.0; 3], 100);
        let mut q = Queue::default();
        let t0 = Instant::now();
        // The default class has served a lot already: its clock is far ahead of batch's.
        for _ in 0..20 {
            q.enqueue(&c, 1, &ticket(1, "x", 1.0), (), t0, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        assert_eq!(drain_order(&mut q, &c, t0).len(), 20);
        for _ in 0..6 {
            q.enqueue(&c, 2, &ticket(2, "nightly", 1.0), (), t0, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        tokio::time::advance(Duration::from_millis(5500)).await;
        for _ in 0..6 {
            q.enqueue(&c, 1, &ticket(1, "a", 1.0), (), Instant::now(), LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        // Promoted into `default` after 5 s, nightly alternates with a there.
        let order = drain_order(&mut q, &c, Instant::now());
        assert_eq!(
            order[..6].iter().filter(|t| *t == "nightly").count(),
            3,
            "{order:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_needing_several_slots_is_served_only_with_all_and_not_passed_over() {
        let c = config([0.0; 3], 10);
        let mut q = Queue::default();
        let now = Instant::now();
        q.enqueue_many(&c, 1, &ticket(1, "ensemble", 1.0), 3, "gang", now, LONG)
            .map_err(|_| ())
            .expect("queued");
        q.enqueue(&c, 1, &ticket(1, "single", 1.0), "single", now, LONG)
            .map_err(|_| ())
            .expect("queued");
        // Two free: not enough for the gang, and the single caller behind it waits too.
        assert!(q.pop_next(&c, now, 2, 4).is_none());
        let w = q.pop_next(&c, now, 3, 4).expect("all three free");
        assert_eq!((w.value, w.need), ("gang", 3));
        assert_eq!(q.in_flight(1), 3);
        assert_eq!(q.pop_next(&c, now, 1, 4).map(|w| w.value), Some("single"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reserved_share_is_kept_from_other_classes() {
        // 4 slots, a quarter reserved for interactive: batch may take 3, not the 4th.
        let c = config([0.25, 0.0, 0.0], 10);
        let mut q: Queue<()> = Queue::default();
        let t = ticket(2, "b", 1.0);
        for in_use in 0..3 {
            assert!(q.may_take(&c, 2, 4 - in_use, 4), "slot {in_use}");
            q.admitted(&c, 2, &t);
        }
        assert!(!q.may_take(&c, 2, 1, 4), "the last slot is interactive's");
        assert!(q.may_take(&c, 0, 1, 4));
        q.admitted(&c, 0, &ticket(0, "i", 1.0));
        // Interactive uses its share now; a second interactive caller competes like anyone.
        assert!(!q.may_take(&c, 2, 0, 4));
        q.released(0, Instant::now());
        assert!(!q.may_take(&c, 2, 1, 4), "reserved again once released");
    }

    #[tokio::test(start_paused = true)]
    async fn tenants_share_a_class_by_tokens() {
        let c = config([0.0; 3], 100);
        let mut q = Queue::default();
        let now = Instant::now();
        // Tenant a bursts 6 requests first; b and c send 3 each afterwards.
        for _ in 0..6 {
            q.enqueue(&c, 1, &ticket(1, "a", 100.0), (), now, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        for _ in 0..3 {
            for who in ["b", "c"] {
                q.enqueue(&c, 1, &ticket(1, who, 100.0), (), now, LONG)
                    .map_err(|_| ())
                    .expect("queued");
            }
        }
        let order = drain_order(&mut q, &c, now);
        // Round robin while all three have work; a's rest after.
        assert_eq!(
            order[..9].iter().filter(|t| *t == "a").count(),
            3,
            "{order:?}"
        );
        assert_eq!(&order[9..], ["a", "a", "a"], "{order:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenant_asking_for_more_tokens_gets_fewer_requests() {
        let c = config([0.0; 3], 100);
        let mut q = Queue::default();
        let now = Instant::now();
        for _ in 0..8 {
            q.enqueue(&c, 1, &ticket(1, "big", 400.0), (), now, LONG)
                .map_err(|_| ())
                .expect("queued");
            q.enqueue(&c, 1, &ticket(1, "small", 100.0), (), now, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        let order = drain_order(&mut q, &c, now);
        let first_ten = &order[..10];
        let big = first_ten.iter().filter(|t| *t == "big").count();
        assert_eq!(big, 2, "400 tokens each against 100: {order:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_at_once() {
        let c = config([0.0; 3], 2);
        let mut q = Queue::default();
        let now = Instant::now();
        for _ in 0..2 {
            q.enqueue(&c, 1, &ticket(1, "a", 1.0), (), now, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        let (refused, ()) = q
            .enqueue(&c, 1, &ticket(1, "a", 1.0), (), now, LONG)
            .expect_err("full");
        assert_eq!(refused.reason, Reason::QueueFull);
        assert!(!refused.saturated, "other classes still have room");
        // Another class still queues.
        assert!(
            q.enqueue(&c, 2, &ticket(2, "a", 1.0), (), now, LONG)
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_would_wait_past_its_bound_is_refused_at_once() {
        let c = config([0.0; 3], 100);
        let mut q = Queue::default();
        // Slots came free twice a second for 10 s.
        for _ in 0..20 {
            tokio::time::advance(Duration::from_millis(500)).await;
            q.released(1, Instant::now());
        }
        let now = Instant::now();
        for _ in 0..4 {
            q.enqueue(&c, 1, &ticket(1, "a", 1.0), (), now, LONG)
                .map_err(|_| ())
                .expect("queued");
        }
        let expected = q
            .expected_wait(&c, 1, &Arc::from("a"), now)
            .expect("measured");
        // Five ahead (its tenant's four queued and itself) at about two a second.
        assert!((2.0..3.2).contains(&expected.as_secs_f64()), "{expected:?}");
        let (refused, ()) = q
            .enqueue(&c, 1, &ticket(1, "a", 1.0), (), now, Duration::from_secs(1))
            .expect_err("too late");
        assert_eq!(refused.reason, Reason::TooLate);
        assert_eq!(refused.retry_after, expected);
        assert!(
            q.enqueue(&c, 1, &ticket(1, "a", 1.0), (), now, Duration::from_secs(5))
                .is_ok()
        );
        // Higher classes do not wait behind lower ones; another tenant of the class waits
        // behind one of a's callers, not all of them.
        assert!(
            q.expected_wait(&c, 0, &Arc::from("a"), now)
                .expect("measured")
                < expected
        );
        let other = q
            .expected_wait(&c, 1, &Arc::from("b"), now)
            .expect("measured");
        assert!(
            (0.8..1.2).contains(&other.as_secs_f64()),
            "two ahead at two a second: {other:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn removed_and_restored_waiters_keep_the_counts() {
        let c = config([0.0; 3], 1);
        let mut q = Queue::default();
        let now = Instant::now();
        let id = q
            .enqueue(&c, 1, &ticket(1, "a", 1.0), 7, now, LONG)
            .map_err(|_| ())
            .expect("queued");
        assert_eq!(q.depth(1), 1);
        let w = q.pop_next(&c, now, 1, 1).expect("served");
        assert_eq!((q.depth(1), q.in_flight(1)), (0, 1));
        q.restore(w);
        assert_eq!((q.depth(1), q.in_flight(1)), (1, 0));
        assert_eq!(q.remove(id).map(|w| w.value), Some(7));
        assert!(q.is_empty());
        assert_eq!(q.depth(1), 0);
    }
}
