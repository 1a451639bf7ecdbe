//! The Redis backend: answers shared by every replica of the pool (Redis, KeyDB, Valkey).
//!
//! A Redis that is slow, down or gone degrades to no cache, never to failed requests: every
//! command has a timeout, errors are counted and shown on `/health`, and the connection is
//! re-established in the background (at most one attempt per [`RECONNECT_EVERY`]).

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::redis_link::RedisLink;
pub use crate::redis_link::RedisStatus;

use super::Key;
use crate::types::Answer;

/// What Redis holds per key.
#[derive(Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) task: Option<String>,
    /// When the entry expires (Unix milliseconds), so a memory copy expires with it.
    pub(super) expires_at_ms: u64,
    pub(super) answer: Answer,
}

pub(super) struct RedisCache {
    link: RedisLink,
    prefix: String,
}

impl RedisCache {
    pub(super) fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            link: RedisLink::new(url, timeout, "cache")?,
            prefix: prefix.to_owned(),
        }))
    }

    fn redis_key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, hex::encode(key))
    }

    pub(super) async fn get(&self, key: &Key) -> Option<Stored> {
        let k = self.redis_key(key);
        let v = self
            .link
            .run("GET", |mut c| async move {
                c.get::<_, Option<Vec<u8>>>(k).await
            })
            .await??;
        match serde_json::from_slice(&v) {
            Ok(stored) => Some(stored),
            Err(e) => {
                // Another version's entry, or garbage: a miss, and said so.
                self.link.soft_error(format!("undecodable entry: {e}"));
                None
            }
        }
    }

    pub(super) async fn put(&self, key: &Key, stored: &Stored, ttl: Duration) {
        let Ok(bytes) = serde_json::to_vec(stored) else {
            return;
        };
        let k = self.redis_key(key);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(k).arg(bytes).arg("PX").arg(ms);
        self.link
            .run(
                "SET",
                |mut c| async move { cmd.query_async::<()>(&mut c).await },
            )
            .await;
    }

    /// Deletes this pool's keys: all, of a task, or whose hex key starts with `hex_prefix`.
    pub(super) async fn clear(
        &self,
        task: Option<&str>,
        hex_prefix: Option<&str>,
    ) -> Result<u64, String> {
        let mut conn = self.link.connection().await.ok_or("Redis is unreachable")?;
        let pattern = format!("{}{}*", self.prefix, hex_prefix.unwrap_or(""));
        let mut keys: Vec<String> = Vec::new();
        {
            let mut iter = conn
                .scan_match::<_, String>(&pattern)
                .await
                .map_err(|e| e.to_string())?;
            while let Some(k) = futures::StreamExt::next(&mut iter).await {
                keys.push(k.map_err(|e| e.to_string())?);
            }
        }
        let mut deleted = 0;
        for k in keys {
            if let Some(t) = task {
                let v: Option<Vec<u8>> = conn.get(&k).await.map_err(|e| e.to_string())?;
                let matches = v
                    .and_then(|v| serde_json::from_slice::<Stored>(&v).ok())
                    .is_some_and(|s| s.task.as_deref() == Some(t));
                if !matches {
                    continue;
                }
            }
            let n: u64 = conn.del(&k).await.map_err(|e| e.to_string())?;
            deleted += n;
        }
        Ok(deleted)
    }

    pub(super) fn status(&self) -> RedisStatus {
        self.link.status()
    }
}
