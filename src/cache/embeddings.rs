//! The embeddings cache's store (process-wide; outlives config reloads). What goes in and
//! when is `orchestrator::embed`'s business; this floor only holds it, so that the
//! application state can own it without importing the orchestrator.

use std::sync::Arc;

use tokio::time::Instant;

use crate::providers::Embeddings;

/// A stored embedding: the vectors, the provider, and until when it is served.
pub type Stored = (Embeddings, String, Instant);

/// The process-wide embeddings cache (in memory; bounded by `[cache] max_entries`; each
/// entry lives the task's `cache_ttl_secs`).
pub type EmbedCache = moka::future::Cache<[u8; 32], Arc<Stored>>;

/// A cache sized by the `[cache]` config (`None` when the cache is off).
pub fn cache(config: &crate::config::CacheConfig) -> Option<EmbedCache> {
    config.enabled().then(|| {
        moka::future::Cache::builder()
            .max_capacity(config.max_entries())
            .build()
    })
}
