//! Recent latencies of a provider, for adaptive hedging: the last [`CAPACITY`] successful
//! calls, of which a percentile is read (older calls fall out, so it follows change).

use std::time::Duration;

use parking_lot::Mutex;

/// Calls remembered.
pub const CAPACITY: usize = 512;
/// Fewer samples than this give no percentile (hedging then uses its fixed delay, if any).
pub const MIN_SAMPLES: usize = 20;

#[derive(Debug, Default)]
pub struct LatencyWindow {
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    micros: Vec<u32>,
    next: usize,
}

impl LatencyWindow {
    pub fn record(&self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let mut r = self.ring.lock();
        if r.micros.len() < CAPACITY {
            r.micros.push(us);
        } else {
            let i = r.next;
            r.micros[i] = us;
        }
        r.next = (r.next + 1) % CAPACITY;
    }

    /// The `p`-th percentile (0..=100) of the window, if it holds enough samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut v = {
            let r = self.ring.lock();
            if r.micros.len() < MIN_SAMPLES {
                return None;
            }
            r.micros.clone()
        };
        let last = v.len() - 1;
        let rank = (((p / 100.0) * last as f64).round() as usize).min(last);
        let (_, nth, _) = v.select_nth_unstable(rank);
        Some(Duration::from_micros(u64::from(*nth)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_recent_window() {
        let w = LatencyWindow::default();
        for i in 0..19 {
            w.record(Duration::from_millis(i));
        }
        assert_eq!(w.percentile(95.0), None, "too few samples");
        for i in 19..100 {
            w.record(Duration::from_millis(i));
        }
        assert_eq!(w.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(w.percentile(95.0), Some(Duration::from_millis(94)));
        for _ in 0..CAPACITY {
            w.record(Duration::from_millis(7));
        }
        assert_eq!(
            w.percentile(99.0),
            Some(Duration::from_millis(7)),
            "old samples left"
        );
    }
}
