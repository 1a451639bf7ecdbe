//! Application state: built once in `app.rs`, cloned into every handler. No statics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::Cache;
use crate::config::raw::{OutputKind, StrategyKind};
use crate::config::{Config, ConfigStore, TaskConfig};
use crate::providers::ProviderSet;
use crate::providers::Reliability;

/// One consistent view of configuration and providers. A request takes one and keeps it.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub providers: ProviderSet,
    /// Providers' recent valid-answer rates; the same object across reloads.
    pub reliability: Arc<Reliability>,
    /// One implicit task per provider, for requests whose `model` names a provider: the
    /// caller's messages pass through to that provider alone.
    direct: HashMap<String, Arc<TaskConfig>>,
}

impl Snapshot {
    /// Builds providers for `config`, reusing those of `previous` that did not change.
    pub fn prepare(config: Config, previous: Option<&Snapshot>) -> Self {
        let providers = ProviderSet::build(&config, previous.map(|p| &p.providers));
        let mut snapshot = Self::with_providers(config, providers);
        if let Some(previous) = previous {
            snapshot.reliability = Arc::clone(&previous.reliability);
        }
        snapshot
    }

    /// A snapshot over given providers (tests use fakes).
    pub fn with_providers(config: Config, providers: ProviderSet) -> Self {
        let limits = config.limits();
        let direct = config
            .providers()
            .keys()
            .map(|name| {
                let task = TaskConfig {
                    name: name.clone(),
                    description: format!("provider {name}, called directly"),
                    template: None,
                    system: None,
                    variables: Vec::new(),
                    output: OutputKind::Text,
                    labels: Vec::new(),
                    strategy: StrategyKind::Fastest,
                    providers: vec![name.clone()],
                    max_tokens: None,
                    temperature: None,
                    top_p: None,
                    deadline: limits.default_deadline,
                    max_deadline: limits.max_deadline,
                    cache_ttl: std::time::Duration::ZERO,
                    hedge_delay: None,
                    fanout: 1,
                    hedge_percentile: None,
                    hedge_calls: false,
                    fallback: Vec::new(),
                    schema: None,
                    schema_source: None,
                    cache_sampled: false,
                    ensemble: crate::config::Ensemble::single(),
                };
                (name.clone(), Arc::new(task))
            })
            .collect();
        Self {
            config: Arc::new(config),
            providers,
            reliability: Arc::default(),
            direct,
        }
    }

    /// The implicit task of a provider called directly.
    pub fn direct_task(&self, provider: &str) -> Option<Arc<TaskConfig>> {
        self.direct.get(provider).cloned()
    }
}

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
    ready: AtomicBool,
}

impl AppState {
    pub fn new(config: ConfigStore) -> Self {
        let cache = Arc::new(Cache::new(config.load().config.cache()));
        let limiter = Arc::new(crate::ratelimit::Limiter::new(
            config.load().config.rate_limit(),
        ));
        let usage = Arc::new(crate::usage::Ledger::new(config.load().config.usage()));
        Self(Arc::new(Shared {
            usage,
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
