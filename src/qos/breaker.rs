//! The circuit breaker of one endpoint, as a pure state machine driven by call outcomes and
//! the clock (so it is tested on a paused clock and by property tests).
//!
//! - **Closed**: calls pass. It trips when `consecutive_failures` calls fail in a row, or
//!   when, over the last `window`, at least `min_calls` calls were made and the share that
//!   failed is at least `failure_rate`.
//! - **Open**: calls are refused until the cool-down ends. The cool-down doubles on each
//!   trip that follows the previous one within `max_cooldown` of closing, up to
//!   `max_cooldown`.
//! - **Half-open**: after the cool-down, up to `half_open_probes` calls pass as probes. A
//!   successful probe closes the breaker; a failed one opens it again (longer).
//!
//! Timeouts, connect errors and 5xx are failures; the caller's own 4xx are not.
//!
//! Every trip and every close starts a new *epoch*. A call's outcome counts only in the
//! epoch that admitted it: a half-open breaker is judged by its own probes, not by the late
//! answer of a call admitted before it tripped.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Breaker settings (`[qos.breaker]`).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            // Five in a row is rarely bad luck on a local network.
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_calls: 10,
            window: Duration::from_secs(30),
            // Long enough for a model server to restart, short enough to notice recovery.
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
            half_open_probes: 1,
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Whether a call may go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: a normal call.
    Call,
    /// Half-open: a probe; its outcome decides.
    Probe,
    /// Open (or half-open with every probe taken).
    Refuse,
}

/// Most outcomes remembered for the failure rate, whatever the window.
const MAX_WINDOW_CALLS: usize = 1024;

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive: u32,
    outcomes: VecDeque<(Instant, bool)>,
    open_until: Instant,
    probes: u32,
    /// Trips in a row (each within `max_cooldown` of the last close); sets the cool-down.
    streak: u32,
    closed_at: Option<Instant>,
    trips: u64,
    /// Bumped on every trip and close; see the module docs.
    epoch: u64,
}

impl Breaker {
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            config,
            state: BreakerState::Closed,
            consecutive: 0,
            outcomes: VecDeque::new(),
            open_until: now,
            probes: 0,
            streak: 0,
            closed_at: None,
            trips: 0,
            epoch: 0,
        }
    }

    /// New settings from a config reload; the state (open or closed, the window, the
    /// cool-down streak, trips) is kept.
    pub fn set_config(&mut self, config: BreakerConfig) {
        self.config = config;
    }

    /// The current epoch: give it back with the outcome of a call admitted now.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The state as of `now` (an open breaker whose cool-down ended reads half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open if now >= self.open_until => BreakerState::HalfOpen,
            s => s,
        }
    }

    /// Total trips so far.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Whether a call could be admitted now, without taking a probe.
    pub fn available(&self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                self.state == BreakerState::Open || self.probes < self.config.half_open_probes
            }
        }
    }

    /// Admits a call (taking a probe when half-open).
    pub fn admit(&mut self, now: Instant) -> Admit {
        if self.state == BreakerState::Open && now >= self.open_until {
            self.state = BreakerState::HalfOpen;
            self.probes = 0;
        }
        match self.state {
            BreakerState::Closed => Admit::Call,
            BreakerState::Open => Admit::Refuse,
            BreakerState::HalfOpen if self.probes < self.config.half_open_probes => {
                self.probes += 1;
                Admit::Probe
            }
            BreakerState::HalfOpen => Admit::Refuse,
        }
    }

    /// A probe was dropped without an outcome (its call was cancelled): free its place.
    pub fn release_probe(&mut self) {
        if self.state == BreakerState::HalfOpen {
            self.probes = self.probes.saturating_sub(1);
        }
    }

    /// Records the outcome of a call admitted in the current epoch.
    pub fn on_result(&mut self, success: bool, now: Instant) {
        self.on_outcome(success, self.epoch, now);
    }

    /// Records the outcome of a call admitted in `epoch`; outcomes of calls admitted
    /// before the last trip or close are ignored.
    pub fn on_outcome(&mut self, success: bool, epoch: u64, now: Instant) {
        if epoch != self.epoch {
            return;
        }
        match self.state {
            BreakerState::HalfOpen => {
                if success {
                    self.close(now);
                } else {
                    self.trip(now);
                }
            }
            BreakerState::Open => {}
            BreakerState::Closed => {
                self.outcomes.push_back((now, success));
                while self.outcomes.len() > MAX_WINDOW_CALLS
                    || self.outcomes.front().is_some_and(|(t, _)| {
                        now.saturating_duration_since(*t) > self.config.window
                    })
                {
                    self.outcomes.pop_front();
                }
                if success {
                    self.consecutive = 0;
                    return;
                }
                self.consecutive += 1;
                let calls = self.outcomes.len() as u32;
                let failed = self.outcomes.iter().filter(|(_, ok)| !ok).count() as f64;
                if self.consecutive >= self.config.consecutive_failures
                    || (calls >= self.config.min_calls
                        && failed / f64::from(calls) >= self.config.failure_rate)
                {
                    self.trip(now);
                }
            }
        }
    }

    fn trip(&mut self, now: Instant) {
        let recent = self
            .closed_at
            .is_none_or(|c| now.saturating_duration_since(c) < self.config.max_cooldown);
        self.streak = if recent {
            self.streak.saturating_add(1)
        } else {
            1
        };
        let factor = 1u32
            .checked_shl(self.streak.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let cooldown = self
            .config
            .cooldown
            .saturating_mul(factor)
            .min(self.config.max_cooldown);
        self.state = BreakerState::Open;
        self.open_until = now + cooldown;
        self.probes = 0;
        self.consecutive = 0;
        self.outcomes.clear();
        self.trips += 1;
        self.epoch += 1;
    }

    fn close(&mut self, now: Instant) {
        self.state = BreakerState::Closed;
        self.closed_at = Some(now);
        self.probes = 0;
        self.consecutive = 0;
        self.outcomes.clear();
        self.epoch += 1;
    }

    /// When the cool-down ends (meaningful while open).
    pub fn open_until(&self) -> Instant {
        self.open_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            min_calls: 6,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(8),
            half_open_probes: 1,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn trips_on_consecutive_failures_and_recovers_through_half_open() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg(), t0);
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Admit::Call);
            b.on_result(false, t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.on_result(false, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(b.admit(t0), Admit::Refuse);
        assert!(!b.available(t0));
        let t1 = t0 + secs(1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.available(t1));
        assert_eq!(b.admit(t1), Admit::Probe);
        assert_eq!(b.admit(t1), Admit::Refuse, "one probe at a time");
        assert!(!b.available(t1));
        b.on_result(true, t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn trips_on_failure_rate_with_a_minimum_of_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg(), t0);
        // Alternate: never three in a row, but half of the calls fail.
        for i in 0..5 {
            b.on_result(i % 2 == 0, t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed, "5 calls < min_calls");
        b.on_result(false, t0);
        assert_eq!(b.state(t0), BreakerState::Open, "3 of 6 failed");
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg(), t0);
        for _ in 0..2 {
            b.on_result(false, t0);
            b.on_result(true, t0);
        }
        let later = t0 + secs(11);
        b.on_result(true, later);
        b.on_result(false, later);
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn cooldown_grows_on_repeated_trips_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg(), t0);
        let mut now = t0;
        let mut cooldowns = Vec::new();
        for _ in 0..6 {
            while b.state(now) == BreakerState::Closed {
                b.on_result(false, now);
            }
            cooldowns.push(b.open_until() - now);
            now = b.open_until();
            assert_eq!(b.admit(now), Admit::Probe);
            b.on_result(false, now); // the probe fails: open again, longer
            cooldowns.push(b.open_until() - now);
            now = b.open_until();
            assert_eq!(b.admit(now), Admit::Probe);
            b.on_result(true, now);
        }
        assert_eq!(
            &cooldowns[..5],
            &[secs(1), secs(2), secs(4), secs(8), secs(8)]
        );
        // After a long healthy spell the streak starts over.
        let much_later = now + secs(60);
        for _ in 0..3 {
            b.on_result(false, much_later);
        }
        assert_eq!(b.open_until() - much_later, secs(1));
    }

    #[test]
    fn a_cancelled_probe_frees_its_place() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg(), t0);
        for _ in 0..3 {
            b.on_result(false, t0);
        }
        let t1 = t0 + secs(1);
        assert_eq!(b.admit(t1), Admit::Probe);
        b.release_probe();
        assert_eq!(b.admit(t1), Admit::Probe);
    }

    #[test]
    fn half_open_is_judged_by_its_probes_not_by_late_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new(cfg(), t0);
        // A slow call is admitted while closed; then the endpoint trips.
        assert_eq!(b.admit(t0), Admit::Call);
        let slow = b.epoch();
        for _ in 0..3 {
            b.on_result(false, t0);
        }
        let t1 = t0 + secs(1);
        assert_eq!(b.admit(t1), Admit::Probe);
        let probe = b.epoch();
        // The slow call's late success says nothing about the endpoint now.
        b.on_outcome(true, slow, t1);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        // The probe's failure does.
        b.on_outcome(false, probe, t1);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert_eq!(b.trips(), 2);
    }

    proptest! {
        /// Whatever happened before, once the upstream recovers (every call succeeds) the
        /// breaker is closed again within the longest cool-down plus one probe.
        #[test]
        fn never_stuck_open_after_recovery(outcomes in prop::collection::vec((any::<bool>(), 0u64..3000), 0..200)) {
            let t0 = Instant::now();
            let mut b = Breaker::new(cfg(), t0);
            let mut now = t0;
            for (ok, gap_ms) in outcomes {
                now += Duration::from_millis(gap_ms);
                if b.admit(now) != Admit::Refuse {
                    b.on_result(ok, now);
                }
            }
            // Recovery: a caller tries every 100 ms and always succeeds.
            let deadline = now + cfg().max_cooldown + Duration::from_millis(100);
            while b.state(now) != BreakerState::Closed {
                prop_assert!(now <= deadline, "still {:?} at {:?}", b.state(now), now - t0);
                if b.admit(now) != Admit::Refuse {
                    b.on_result(true, now);
                }
                now += Duration::from_millis(100);
            }
        }
    }
}
