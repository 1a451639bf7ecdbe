//! The most recent requests, with their Decisions, for the operator console (`/ui`): a
//! ring buffer of `[console] recent_requests` entries (128 unless set; 0 keeps none). It is
//! the only place requests are kept, in memory, and only until newer ones push them out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::PoolError;
use crate::types::{Answer, Decision};

/// One finished request.
#[derive(Debug, Serialize)]
pub struct RecentRequest {
    pub request_id: String,
    /// When it finished (milliseconds since the Unix epoch).
    pub at_ms: u64,
    pub task: Option<String>,
    pub tenant: Option<String>,
    /// `ok`, or the error's class (`no_consensus`, `deadline_exceeded`, ...).
    pub status: &'static str,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub cache_hit: bool,
    /// How it was decided (a failed request's too, when the pool made one).
    pub decision: Option<Decision>,
}

/// The ring buffer (process-wide; outlives config reloads).
#[derive(Default)]
pub struct Recent {
    entries: Mutex<VecDeque<Arc<RecentRequest>>>,
}

impl Recent {
    /// Keeps the outcome of a request, dropping the oldest beyond `capacity`.
    pub fn record(
        &self,
        capacity: usize,
        request_id: String,
        task: Option<String>,
        tenant: Option<&str>,
        elapsed: Duration,
        outcome: Result<&Answer, &PoolError>,
    ) {
        if capacity == 0 {
            return;
        }
        let (status, error, decision, cache_hit) = match outcome {
            Ok(a) => ("ok", None, Some(a.decision.clone()), a.cache_hit),
            Err(e) => (
                e.kind().as_str(),
                Some(e.to_string()),
                e.decision().cloned(),
                false,
            ),
        };
        let entry = Arc::new(RecentRequest {
            request_id,
            at_ms: unix_ms(),
            task,
            tenant: tenant.map(str::to_owned),
            status,
            error,
            latency_ms: elapsed.as_millis() as u64,
            cache_hit,
            decision,
        });
        let mut entries = self.entries.lock();
        while entries.len() >= capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The newest `n`, newest first.
    pub fn latest(&self, n: usize) -> Vec<Arc<RecentRequest>> {
        self.entries.lock().iter().rev().take(n).cloned().collect()
    }

    /// The request with this id, if it is still kept.
    pub fn get(&self, request_id: &str) -> Option<Arc<RecentRequest>> {
        self.entries
            .lock()
            .iter()
            .rev()
            .find(|r| r.request_id == request_id)
            .cloned()
    }

    /// How many are kept now.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> PoolError {
        PoolError::invalid("input", "empty")
    }

    #[test]
    fn keeps_the_newest_within_capacity() {
        let recent = Recent::default();
        for i in 0..5 {
            recent.record(
                3,
                format!("r{i}"),
                Some("chat".into()),
                None,
                Duration::from_millis(i),
                Err(&failed()),
            );
        }
        let ids: Vec<_> = recent
            .latest(10)
            .iter()
            .map(|r| r.request_id.clone())
            .collect();
        assert_eq!(ids, ["r4", "r3", "r2"]);
        assert!(recent.get("r1").is_none(), "pushed out");
        let r2 = recent.get("r2").expect("kept");
        assert_eq!(r2.status, "invalid_argument");
        assert_eq!(r2.latency_ms, 2);
        // A smaller capacity (a reload) trims at the next request.
        recent.record(1, "r5".into(), None, None, Duration::ZERO, Err(&failed()));
        assert_eq!(recent.len(), 1);
        // Capacity 0 keeps nothing new.
        recent.record(0, "r6".into(), None, None, Duration::ZERO, Err(&failed()));
        assert!(recent.get("r6").is_none());
    }
}
