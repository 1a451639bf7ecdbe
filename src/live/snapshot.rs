//! One consistent view of the configuration bound to running providers: what a request
//! takes once and keeps to its end.

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::KeyIndex;
use crate::config::{Config, ConfigError, ConfigErrors, TaskConfig};
use crate::providers::{Accuracy, ProviderSet, Reliability};

/// One consistent view of configuration and providers. A request takes one and keeps it.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub providers: ProviderSet,
    /// Providers' recent valid-answer rates; the same object across reloads.
    pub reliability: Arc<Reliability>,
    /// Providers' learned accuracy per task; the same object across reloads (less what a
    /// reload removed).
    pub accuracy: Arc<Accuracy>,
    /// The tenants' API keys, indexed by the authenticator.
    pub keys: Arc<KeyIndex>,
    /// One implicit task per provider, for requests whose `model` names a provider: the
    /// caller's messages pass through to that provider alone.
    direct: HashMap<String, Arc<TaskConfig>>,
    /// Whether any task is routed by a router (`orchestrator::route`).
    routed: bool,
}

impl Snapshot {
    /// Binds `config` to running providers, reusing those of `previous` that did not
    /// change. This is the step of a reload that may fail (after the file parsed and
    /// validated): what only the running process checks, the tenants' API keys (indexed,
    /// and refused when one key is given to two tenants) and the TLS files ([`check`]).
    pub fn prepare(config: Config, previous: Option<&Snapshot>) -> Result<Self, ConfigErrors> {
        let keys = check(&config)?;
        let providers = ProviderSet::build(&config, previous.map(|p| &p.providers));
        let mut snapshot = Self::bind(config, providers, keys);
        if let Some(previous) = previous {
            snapshot.reliability = Arc::clone(&previous.reliability);
            snapshot.accuracy = Arc::clone(&previous.accuracy);
            keep_accuracy(&snapshot.accuracy, &previous.config, &snapshot.config);
            snapshot
                .accuracy
                .set_window(snapshot.config.learning().feedback_window());
        }
        Ok(snapshot)
    }

    /// A snapshot over given providers (tests use fakes). API keys that `prepare` would
    /// refuse (one key of two tenants) are left out, not guessed at.
    pub fn with_providers(config: Config, providers: ProviderSet) -> Self {
        let keys = KeyIndex::build(config.auth()).unwrap_or_default();
        Self::bind(config, providers, keys)
    }

    fn bind(config: Config, providers: ProviderSet, keys: KeyIndex) -> Self {
        let limits = config.limits();
        let direct = config
            .providers()
            .keys()
            .map(|name| {
                let task = TaskConfig::direct(name, limits);
                (name.clone(), Arc::new(task))
            })
            .collect();
        let routed = config.tasks().values().any(|t| t.routing().is_some());
        let accuracy = Accuracy::default();
        accuracy.set_window(config.learning().feedback_window());
        Self {
            config: Arc::new(config),
            providers,
            reliability: Arc::default(),
            accuracy: Arc::new(accuracy),
            keys: Arc::new(keys),
            direct,
            routed,
        }
    }

    /// Whether any task of this config is routed by a router.
    pub fn routed(&self) -> bool {
        self.routed
    }

    /// The implicit task of a provider called directly.
    pub fn direct_task(&self, provider: &str) -> Option<Arc<TaskConfig>> {
        self.direct.get(provider).cloned()
    }
}

/// Drops the accuracies a reload made meaningless: of tasks that are gone, and of providers
/// that are gone or now serve another model. A task whose providers or prompt changed keeps
/// them: the operator renamed nothing, and the evidence fades as new answers are graded.
fn keep_accuracy(accuracy: &Accuracy, before: &Config, after: &Config) {
    accuracy.retain(|task, provider| {
        let same_model = match (
            before.providers().get(provider),
            after.providers().get(provider),
        ) {
            (Some(a), Some(b)) => a.model() == b.model(),
            _ => false,
        };
        same_model && after.tasks().contains_key(task)
    });
}

/// What only the running process can check of a config that parsed and validated: the
/// tenants' API keys (indexed; a key of two tenants is refused) and the TLS files (loaded).
/// `check-config`, startup and every reload go through here, so what `check-config`
/// accepts is what the server serves.
pub fn check(config: &Config) -> Result<KeyIndex, ConfigErrors> {
    let mut errors = Vec::new();
    let keys = KeyIndex::build(config.auth())
        .map_err(|e| {
            errors.extend(e.into_iter().map(|(at, m)| ConfigError::new(at, m)));
        })
        .ok();
    if let Some(tls) = &config.server().tls()
        && let Err(e) = crate::tls::load(tls)
    {
        errors.push(ConfigError::new("server.tls", e.to_string()));
    }
    match keys {
        Some(keys) if errors.is_empty() => Ok(keys),
        _ => Err(ConfigErrors(errors)),
    }
}
