//! The answer cache: complete, successful answers by [`key::key`], in process (moka), with
//! per-task lifetimes, capacity in entries and bytes, single flight for concurrent misses,
//! and the caller's modes (`default`, `bypass`, `refresh`, `only`).
//!
//! What is stored: only whole successful answers, with their Decision and usage; never
//! errors, partial streams, or answers that took a degraded path (a fallback provider, a
//! deadline that cut the vote short, consensus not reached, a judge that failed). Answers
//! sampled at temperature > 0 are stored only if the task says `cache_sampled = true`.

pub mod key;
mod single_flight;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::Expiry;
use serde::Serialize;
use tokio::time::Instant;

pub use key::Key;
pub use single_flight::{Role, SingleFlight};

use crate::config::CacheConfig;
use crate::orchestrator::Answer;
use crate::orchestrator::request::Plan;

/// One stored answer.
#[derive(Debug)]
pub struct Entry {
    pub answer: Answer,
    /// The task, for `/admin/cache/clear` by task.
    pub task: Option<String>,
    ttl: Duration,
    size: u32,
}

struct PerEntryTtl;

impl Expiry<Key, Arc<Entry>> for PerEntryTtl {
    #[expect(
        clippy::disallowed_types,
        reason = "moka's Expiry trait takes std's Instant"
    )]
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Entry>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Counters for `/admin/cache`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub evictions: u64,
    pub single_flight_joins: u64,
    pub entries: u64,
    pub bytes: u64,
    pub in_flight: usize,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    evictions: Arc<AtomicU64>,
    joins: AtomicU64,
}

/// The process-wide cache.
pub struct Cache {
    memory: Option<moka::future::Cache<Key, Arc<Entry>>>,
    pub flights: Arc<SingleFlight>,
    counters: Counters,
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Self {
        let counters = Counters::default();
        let evictions = Arc::clone(&counters.evictions);
        // One capacity bounds both: every entry weighs at least max_bytes / max_entries, so
        // no more than max_entries fit.
        let floor = u32::try_from(config.max_bytes / config.max_entries.max(1)).unwrap_or(u32::MAX);
        let memory = config.enabled.then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(move |_k: &Key, v: &Arc<Entry>| v.size.max(floor))
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .eviction_listener(move |_k, _v, cause| {
                    if cause.was_evicted() {
                        evictions.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
        });
        Self {
            memory,
            flights: Arc::default(),
            counters,
        }
    }

    /// A stored answer, if any.
    pub async fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let found = self.memory.as_ref()?.get(key).await;
        let counter = if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores `answer` if it may be stored (see the module docs).
    pub async fn put(&self, key: Key, plan: &Plan, answer: &Answer) {
        let Some(memory) = &self.memory else { return };
        if !storable(plan, answer) {
            return;
        }
        let size = approximate_size(answer);
        let entry = Entry {
            answer: answer.clone(),
            task: plan.task_name.clone(),
            ttl: plan.task.cache_ttl,
            size,
        };
        memory.insert(key, Arc::new(entry)).await;
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_join(&self) {
        self.counters.joins.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes entries: all, or those of `task`, or whose key (hex) starts with `prefix`.
    pub fn clear(&self, task: Option<&str>, prefix: Option<&str>) -> Result<(), String> {
        let Some(memory) = &self.memory else {
            return Ok(());
        };
        match (task, prefix) {
            (None, None) => {
                memory.invalidate_all();
                Ok(())
            }
            (task, prefix) => {
                let task = task.map(str::to_owned);
                let prefix = prefix.map(str::to_ascii_lowercase);
                memory
                    .invalidate_entries_if(move |k, v| {
                        task.as_deref().is_none_or(|t| v.task.as_deref() == Some(t))
                            && prefix
                                .as_deref()
                                .is_none_or(|p| hex::encode(k).starts_with(p))
                    })
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    pub async fn stats(&self) -> Stats {
        let (entries, bytes) = match &self.memory {
            Some(m) => {
                m.run_pending_tasks().await;
                (m.entry_count(), m.weighted_size())
            }
            None => (0, 0),
        };
        let c = &self.counters;
        Stats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stores: c.stores.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            single_flight_joins: c.joins.load(Ordering::Relaxed),
            entries,
            bytes,
            in_flight: self.flights.len(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.memory.is_some()
    }
}

/// Whether a request's answers may come from, or go to, the cache at all.
pub fn cacheable(plan: &Plan) -> bool {
    let sampled = plan.request.params.temperature.is_some_and(|t| t > 0.0);
    !plan.task.cache_ttl.is_zero() && (!sampled || plan.task.cache_sampled)
}

/// Only answers that took the normal path: no fallback provider, no deadline-shortened
/// vote, no failed consensus or judge.
fn storable(plan: &Plan, answer: &Answer) -> bool {
    cacheable(plan)
        && !answer.decision.fallbacks.iter().any(|f| {
            ["fallback:", "deadline:", "no_consensus:", "judge_invalid:"]
                .iter()
                .any(|p| f.starts_with(p))
        })
}

fn approximate_size(answer: &Answer) -> u32 {
    let decision: usize = answer
        .decision
        .candidates
        .iter()
        .map(|c| {
            128 + c.text.as_ref().map_or(0, String::len) + c.error.as_ref().map_or(0, String::len)
        })
        .sum();
    u32::try_from(256 + answer.text.len() + decision).unwrap_or(u32::MAX)
}

/// Elapsed since `t0`, in milliseconds.
pub fn elapsed_ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}
