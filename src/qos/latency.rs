//! Recent latencies of a provider, for adaptive hedging and admission: the last
//! [`CAPACITY`] successful calls, of which a percentile is read (older calls fall out, so it
//! follows change). Percentiles are on the 0..=100 scale ([`MEDIAN`] is 50).
//!
//! The window is kept sorted as well as in arrival order, so a percentile (read on every
//! call) is one index, and a record moves at most `CAPACITY` samples by one place.

use std::time::Duration;

use parking_lot::Mutex;

/// Calls remembered.
pub const CAPACITY: usize = 512;
/// Fewer samples than this give no percentile (hedging then uses its fixed delay, if any).
pub const MIN_SAMPLES: usize = 20;
/// The median, as a percentile.
pub const MEDIAN: f64 = 50.0;

#[derive(Debug, Default)]
pub struct LatencyWindow {
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    /// In arrival order (a ring: `next` is the oldest once full).
    micros: Vec<u32>,
    /// The same samples, ascending.
    sorted: Vec<u32>,
    next: usize,
}

impl LatencyWindow {
    pub fn record(&self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let mut guard = self.ring.lock();
        let r = &mut *guard;
        if r.micros.len() < CAPACITY {
            r.micros.push(us);
        } else {
            let old = std::mem::replace(&mut r.micros[r.next], us);
            // Present: every sample of `micros` is in `sorted`.
            if let Ok(i) = r.sorted.binary_search(&old) {
                r.sorted.remove(i);
            }
        }
        let at = r.sorted.partition_point(|&x| x <= us);
        r.sorted.insert(at, us);
        r.next = (r.next + 1) % CAPACITY;
    }

    /// The `p`-th percentile (0..=100) of the window, if it holds enough samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let r = self.ring.lock();
        if r.sorted.len() < MIN_SAMPLES {
            return None;
        }
        let last = r.sorted.len() - 1;
        let rank = (((p / 100.0) * last as f64).round() as usize).min(last);
        Some(Duration::from_micros(u64::from(r.sorted[rank])))
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

    /// The sorted copy stays the window's exact contents however samples come and go
    /// (duplicates and evictions included): every percentile equals the one computed
    /// from the arrival-order samples.
    #[test]
    fn percentiles_match_a_sort_of_the_window() {
        let w = LatencyWindow::default();
        let mut seen = Vec::new();
        let mut x: u64 = 7;
        for i in 0..(3 * CAPACITY) {
            // A small range, so that duplicates are common.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let us = (x >> 33) % 300;
            w.record(Duration::from_micros(us));
            seen.push(us);
            if i % 37 == 0 || i + 1 == 3 * CAPACITY {
                let mut window: Vec<u64> = seen[seen.len().saturating_sub(CAPACITY)..].to_vec();
                window.sort_unstable();
                for p in [0.0, 12.5, MEDIAN, 95.0, 100.0] {
                    let expected = (window.len() >= MIN_SAMPLES).then(|| {
                        let last = window.len() - 1;
                        Duration::from_micros(
                            window[((p / 100.0 * last as f64).round() as usize).min(last)],
                        )
                    });
                    assert_eq!(w.percentile(p), expected, "p{p} after {} samples", i + 1);
                }
            }
        }
    }
}
