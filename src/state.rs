//! Application state: built once in `app.rs`, cloned into every handler. No statics. The
//! per-request view of config and providers is `live::Snapshot`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::Cache;
use crate::live::ConfigStore;

/// Everything handlers need. Cloned for every request (axum's `State`), so it is one `Arc`:
/// a clone is one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`].
pub struct Shared {
    pub config: ConfigStore,
    /// The answer cache (process-wide; outlives config reloads).
    pub cache: Arc<Cache>,
    /// Background tasks; shutdown waits for them.
    pub tasks: TaskTracker,
    /// Cancelled when the process starts shutting down.
    pub shutdown: CancellationToken,
    /// Credentials checks (and the HMAC replay memory).
    pub auth: Arc<crate::auth::Authenticator>,
    /// Tenants' rate limits (process-wide; outlive reloads).
    pub limiter: Arc<crate::ratelimit::Limiter>,
    /// Tokens and cost per tenant and provider.
    pub usage: Arc<crate::usage::Ledger>,
    /// Embeddings served again while fresh (process-wide; outlives config reloads).
    pub embeddings: Option<crate::cache::embeddings::EmbedCache>,
    /// `server.max_in_flight` of the HTTP and the gRPC listener (`None`: no cap).
    pub in_flight: InFlightCaps,
    /// The most recent requests and their Decisions, for the console.
    pub recent: crate::recent::Recent,
    ready: AtomicBool,
}

/// One cap on inference requests in flight per listener (restart to change).
pub struct InFlightCaps {
    pub http: Option<Arc<tokio::sync::Semaphore>>,
    pub grpc: Option<Arc<tokio::sync::Semaphore>>,
    pub limit: usize,
}

impl InFlightCaps {
    fn new(limit: usize) -> Self {
        let cap = || (limit > 0).then(|| Arc::new(tokio::sync::Semaphore::new(limit)));
        Self {
            http: cap(),
            grpc: cap(),
            limit,
        }
    }
}

impl AppState {
    pub fn new(config: ConfigStore) -> Self {
        let cache = Arc::new(Cache::new(config.load().config.cache()));
        let limiter = Arc::new(crate::ratelimit::Limiter::new(
            config.load().config.rate_limit(),
        ));
        let usage = Arc::new(crate::usage::Ledger::new(config.load().config.usage()));
        let embeddings = crate::cache::embeddings::cache(config.load().config.cache());
        let in_flight = InFlightCaps::new(config.load().config.server().max_in_flight());
        Self(Arc::new(Shared {
            in_flight,
            recent: crate::recent::Recent::default(),
            usage,
            embeddings,
            config,
            cache,
            auth: Arc::new(crate::auth::Authenticator::new()),
            limiter,
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            ready: AtomicBool::new(true),
        }))
    }

    /// False once shutdown began: `/readyz` then fails so load balancers stop sending.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shutdown.is_cancelled()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}
