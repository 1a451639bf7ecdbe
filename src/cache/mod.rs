//! The answer cache: complete, successful answers by [`key::key`], in process (moka), with
//! per-task lifetimes, capacity in entries and bytes, single flight for concurrent misses,
//! and the caller's modes (`default`, `bypass`, `refresh`, `only`).
//!
//! What is stored: only whole successful answers, with their Decision and usage; never
//! errors, partial streams, or answers that took a degraded path (a fallback provider, a
//! deadline that cut the vote short, consensus not reached, a judge that failed). Answers
//! sampled at temperature > 0 are stored only if the task says `cache_sampled = true`.
//!
//! May import types, providers (message types), config, error and `redis_link`.

pub mod embeddings;
pub mod key;
mod redis;
mod single_flight;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::Expiry;
use serde::Serialize;

pub use key::Key;
pub use redis::RedisStatus;
pub use single_flight::{FlightPart, SingleFlight};

use crate::config::CacheConfig;
use crate::types::Answer;
use crate::types::Plan;

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
    /// Hits served by Redis (after a memory miss, in `two_level`).
    pub redis_hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub evictions: u64,
    pub single_flight_joins: u64,
    pub entries: u64,
    pub bytes: u64,
    pub in_flight: usize,
    /// The Redis backend, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStatus>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    redis_hits: AtomicU64,
    stores: AtomicU64,
    evictions: Arc<AtomicU64>,
    joins: AtomicU64,
}

/// The process-wide cache.
pub struct Cache {
    memory: Option<moka::future::Cache<Key, Arc<Entry>>>,
    redis: Option<Arc<redis::RedisCache>>,
    pub flights: Arc<SingleFlight>,
    counters: Counters,
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Self {
        let counters = Counters::default();
        let evictions = Arc::clone(&counters.evictions);
        // One capacity bounds both: every entry weighs at least max_bytes / max_entries, so
        // no more than max_entries fit.
        let floor =
            u32::try_from(config.max_bytes() / config.max_entries().max(1)).unwrap_or(u32::MAX);
        use crate::config::raw::CacheBackend;
        let in_memory = matches!(
            config.backend(),
            CacheBackend::Memory | CacheBackend::TwoLevel
        );
        let in_redis = matches!(
            config.backend(),
            CacheBackend::Redis | CacheBackend::TwoLevel
        );
        let redis = config
            .redis_url()
            .filter(|_| config.enabled() && in_redis)
            .and_then(|url| {
                redis::RedisCache::new(url, config.key_prefix(), config.redis_timeout()).ok()
            });
        let memory = (config.enabled() && in_memory).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.max_bytes())
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
            redis,
            flights: Arc::default(),
            counters,
        }
    }

    /// A stored answer, if any: memory first, then Redis (a Redis hit also fills memory).
    pub async fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let mut found = match &self.memory {
            Some(m) => m.get(key).await,
            None => None,
        };
        if found.is_none()
            && let Some(r) = &self.redis
        {
            // Boxed: the shared tier's future is three times the memory tier's, and every
            // request's future would otherwise carry it.
            found = Box::pin(self.shared_hit(r, key)).await;
        }
        let counter = if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A shared-tier hit with time left, copied into the memory tier.
    async fn shared_hit(&self, r: &redis::RedisCache, key: &Key) -> Option<Arc<Entry>> {
        let stored = r.get(key).await?;
        let ttl = Duration::from_millis(stored.expires_at_ms.saturating_sub(unix_ms()));
        if ttl.is_zero() {
            return None;
        }
        self.counters.redis_hits.fetch_add(1, Ordering::Relaxed);
        let size = approximate_size(&stored.answer);
        let entry = Arc::new(Entry {
            answer: stored.answer,
            task: stored.task,
            ttl,
            size,
        });
        if let Some(m) = &self.memory {
            m.insert(*key, Arc::clone(&entry)).await;
        }
        Some(entry)
    }

    /// Stores `answer` if it may be stored (see the module docs).
    pub async fn put(&self, key: Key, plan: &Plan, answer: &Answer) {
        if !self.enabled() || !storable(plan, answer) {
            return;
        }
        let ttl = plan.task.cache_ttl();
        if let Some(memory) = &self.memory {
            let entry = Entry {
                // A hit is served free: the upstream's body (its usage) is not for it.
                answer: Answer {
                    verbatim: None,
                    ..answer.clone()
                },
                task: plan.task_name.clone(),
                ttl,
                size: approximate_size(answer),
            };
            memory.insert(key, Arc::new(entry)).await;
        }
        if let Some(r) = &self.redis {
            let stored = redis::Stored {
                task: plan.task_name.clone(),
                expires_at_ms: unix_ms()
                    .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
                answer: answer.clone(),
            };
            r.put(&key, &stored, ttl).await;
        }
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_join(&self) {
        self.counters.joins.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes entries: all, or those of `task`, or whose key (hex) starts with `prefix`;
    /// in memory and in Redis.
    pub async fn clear(&self, task: Option<&str>, prefix: Option<&str>) -> Result<(), String> {
        if let Some(r) = &self.redis {
            r.clear(task, prefix.map(str::to_ascii_lowercase).as_deref())
                .await?;
        }
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
            redis_hits: c.redis_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            stores: c.stores.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            single_flight_joins: c.joins.load(Ordering::Relaxed),
            entries,
            bytes,
            in_flight: self.flights.len(),
            redis: self.redis.as_ref().map(|r| r.status()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.memory.is_some() || self.redis.is_some()
    }

    /// The Redis backend's health, when there is one (for `/health`).
    pub fn redis_status(&self) -> Option<RedisStatus> {
        self.redis.as_ref().map(|r| r.status())
    }
}

/// Whether a request's answers may come from, or go to, the cache at all.
pub fn cacheable(plan: &Plan) -> bool {
    let sampled = plan.request.params.temperature.is_some_and(|t| t > 0.0);
    !plan.task.cache_ttl().is_zero() && (!sampled || plan.task.cache_sampled())
}

/// The one rule for what is stored: a complete answer that took the task's normal path.
///
/// - the request may be cached at all ([`cacheable`]);
/// - no strategy marked the answer degraded (`Decision::degraded`: a fallback provider, a
///   deadline that cut the gathering short, consensus not reached, a judge that failed, a
///   cascade with no tier accepted);
/// - no member of a vote or a judged gathering failed (the answer was chosen from fewer
///   candidates than the task asked for);
/// - no candidate was a repeated sample (temperature > 0), unless `cache_sampled`;
/// - the answer ended normally (`stop`, `length`, or a call of tools; or no reason given by
///   a whole answer).
///
/// Streams store only on their normal end, never after an error.
pub fn storable(plan: &Plan, answer: &Answer) -> bool {
    let d = &answer.decision;
    // Strategies that combine their candidates' answers (FASTEST and CASCADE hand over
    // on failure by design).
    let ensemble = matches!(&*d.strategy, "voting" | "weighted" | "consensus" | "judge");
    cacheable(plan)
        && d.degraded.is_empty()
        && !(ensemble
            && d.candidates.iter().any(|c| {
                matches!(
                    c.status,
                    crate::types::CandidateStatus::Error | crate::types::CandidateStatus::Timeout
                )
            }))
        && (plan.task.cache_sampled() || d.candidates.iter().all(|c| c.sample == 0))
        && answer
            .finish_reason
            .as_deref()
            .is_none_or(|r| matches!(r, "stop" | "length" | "tool_calls" | "function_call"))
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

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
