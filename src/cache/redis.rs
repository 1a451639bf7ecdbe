//! The Redis backend: answers shared by every replica of the pool (Redis, KeyDB, Valkey).
//!
//! A Redis that is slow, down or gone degrades to no cache, never to failed requests: every
//! command has a timeout, errors are counted and shown on `/health`, and the connection is
//! re-established in the background (at most one attempt per [`RECONNECT_EVERY`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Key;
use crate::orchestrator::Answer;

/// How often a lost connection is retried.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// What Redis holds per key.
#[derive(Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) task: Option<String>,
    /// When the entry expires (Unix milliseconds), so a memory copy expires with it.
    pub(super) expires_at_ms: u64,
    pub(super) answer: Answer,
}

/// Redis health, for `/health` and `/admin/cache`.
#[derive(Debug, Clone, Serialize)]
pub struct RedisStatus {
    pub connected: bool,
    pub errors: u64,
    pub last_error: Option<String>,
}

pub(super) struct RedisCache {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
    connected: AtomicBool,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl RedisCache {
    pub(super) fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url).map_err(|_| "not a valid redis:// URL".to_owned())?;
        Ok(Arc::new(Self {
            client,
            prefix: prefix.to_owned(),
            timeout,
            conn: tokio::sync::Mutex::new(None),
            last_attempt: Mutex::new(None),
            connected: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    fn redis_key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, hex::encode(key))
    }

    /// A connection, or `None` while Redis is unreachable (no more than one connect
    /// attempt per `RECONNECT_EVERY`).
    async fn connection(&self) -> Option<ConnectionManager> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Some(c.clone());
        }
        {
            let mut last = self.last_attempt.lock();
            if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            self.timeout.max(Duration::from_millis(200)),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                *guard = Some(c.clone());
                self.connected.store(true, Ordering::Relaxed);
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("connect timed out");
                None
            }
        }
    }

    fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.connected.store(false, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_owned());
        tracing::warn!(error, "Redis cache unavailable; serving without it.");
    }

    fn ok(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    pub(super) async fn get(&self, key: &Key) -> Option<Stored> {
        let mut conn = self.connection().await?;
        let k = self.redis_key(key);
        match tokio::time::timeout(self.timeout, conn.get::<_, Option<Vec<u8>>>(k)).await {
            Ok(Ok(v)) => {
                self.ok();
                match serde_json::from_slice(&v?) {
                    Ok(stored) => Some(stored),
                    Err(e) => {
                        // Another version's entry, or garbage: a miss, and said so.
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        *self.last_error.lock() = Some(format!("undecodable entry: {e}"));
                        None
                    }
                }
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("GET timed out");
                None
            }
        }
    }

    pub(super) async fn put(&self, key: &Key, stored: &Stored, ttl: Duration) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(stored) else {
            return;
        };
        let k = self.redis_key(key);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(k).arg(bytes).arg("PX").arg(ms);
        match tokio::time::timeout(self.timeout, cmd.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => self.ok(),
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(_) => self.failed("SET timed out"),
        }
    }

    /// Deletes this pool's keys: all, of a task, or whose hex key starts with `hex_prefix`.
    pub(super) async fn clear(
        &self,
        task: Option<&str>,
        hex_prefix: Option<&str>,
    ) -> Result<u64, String> {
        let mut conn = self.connection().await.ok_or("Redis is unreachable")?;
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
        RedisStatus {
            connected: self.connected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}
