//! One consistent view of the configuration bound to running providers: what a request
//! takes once and keeps to its end.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::raw::{OutputKind, StrategyKind};
use crate::config::{Config, TaskConfig};
use crate::providers::{ProviderSet, Reliability};

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
