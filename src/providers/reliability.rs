//! Each provider's reliability: an exponentially weighted moving average of its recent
//! valid-answer rate (1 for a valid answer, 0 for an invalid one or a failed call; calls
//! cancelled because another answer won, or cut by the caller's deadline, are not counted).
//!
//! `reliability ← (1 − α) · reliability + α · outcome`, α = [`ALPHA`], starting at
//! [`PRIOR`]. Kept by provider name outside the config snapshot, so it survives reloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Weight of the newest outcome: about the last 10 calls matter.
pub(crate) const ALPHA: f64 = 0.1;
/// A provider with no history is trusted fully until it fails.
pub(crate) const PRIOR: f64 = 1.0;

/// Reliability by provider name.
#[derive(Default)]
pub struct Reliability {
    by_provider: RwLock<HashMap<String, Arc<AtomicU64>>>,
}

impl Reliability {
    /// The current reliability of `provider` (0..=1).
    pub fn get(&self, provider: &str) -> f64 {
        self.by_provider
            .read()
            .get(provider)
            .map_or(PRIOR, |v| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    /// Records one outcome.
    pub fn record(&self, provider: &str, valid: bool) {
        let cell = {
            let read = self.by_provider.read();
            read.get(provider).cloned()
        };
        let cell = cell.unwrap_or_else(|| {
            Arc::clone(
                self.by_provider
                    .write()
                    .entry(provider.to_owned())
                    .or_insert_with(|| Arc::new(AtomicU64::new(PRIOR.to_bits()))),
            )
        });
        let outcome = if valid { 1.0 } else { 0.0 };
        let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let r = f64::from_bits(bits);
            Some(((1.0 - ALPHA) * r + ALPHA * outcome).to_bits())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_moves_toward_outcomes() {
        let r = Reliability::default();
        assert_eq!(r.get("a"), 1.0);
        r.record("a", false);
        assert!((r.get("a") - 0.9).abs() < 1e-12);
        r.record("a", false);
        assert!((r.get("a") - 0.81).abs() < 1e-12);
        r.record("a", true);
        assert!((r.get("a") - 0.829).abs() < 1e-12);
        assert_eq!(r.get("b"), 1.0);
    }
}
