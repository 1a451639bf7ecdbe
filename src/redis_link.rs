//! One Redis connection shared by a feature (the cache, the rate limiter), with the
//! behaviour both need: a timeout on every command, at most one reconnect attempt per
//! [`RECONNECT_EVERY`] while Redis is away, and errors counted and kept for `/health`.
//! Callers degrade (no cache, admit the request) instead of failing when it returns `None`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::time::Instant;

/// How often a lost connection is retried.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Redis health, for `/health` and the admin routes.
#[derive(Debug, Clone, Serialize)]
pub struct RedisStatus {
    pub connected: bool,
    pub errors: u64,
    pub last_error: Option<String>,
}

pub(crate) struct RedisLink {
    client: redis::Client,
    /// Time allowed for one command.
    pub(crate) timeout: Duration,
    /// What this link serves, for log lines ("cache", "rate limits").
    what: &'static str,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
    connected: AtomicBool,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl RedisLink {
    pub(crate) fn new(url: &str, timeout: Duration, what: &'static str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|_| "not a valid redis:// URL".to_owned())?;
        Ok(Self {
            client,
            timeout,
            what,
            conn: tokio::sync::Mutex::new(None),
            last_attempt: Mutex::new(None),
            connected: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// A connection, or `None` while Redis is unreachable (no more than one connect
    /// attempt per `RECONNECT_EVERY`).
    pub(crate) async fn connection(&self) -> Option<ConnectionManager> {
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

    /// Runs `f` on a connection within the timeout; errors are recorded and become `None`.
    pub(crate) async fn run<T, F, Fut>(&self, name: &str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.ok();
                Some(v)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!("{name} timed out"));
                None
            }
        }
    }

    pub(crate) fn failed(&self, error: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.connected.store(false, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_owned());
        tracing::warn!(
            error,
            what = self.what,
            "Redis unavailable; going on without it."
        );
    }

    /// Counts an error that does not mean Redis is down (e.g. an undecodable value).
    pub(crate) fn soft_error(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error);
    }

    pub(crate) fn ok(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    pub(crate) fn status(&self) -> RedisStatus {
        RedisStatus {
            connected: self.connected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}
