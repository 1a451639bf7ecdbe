//! The set of live providers of one snapshot. Building a new set reuses the provider objects
//! (and so their connections, load counters and health) of providers whose configuration a
//! reload did not change, and the endpoint state (breakers, latency windows, concurrency
//! slots) of providers whose endpoints, kind and model stayed the same.

use std::collections::HashMap;
use std::sync::Arc;

use super::http::HttpProvider;
use super::{Provider, ollama::Ollama, openai::OpenAi};
use crate::config::raw::ProviderKind;
use crate::config::{Config, ProviderConfig};

struct Entry {
    config: Arc<ProviderConfig>,
    provider: Arc<dyn Provider>,
}

/// Providers by name.
#[derive(Default)]
pub struct ProviderSet {
    entries: HashMap<String, Entry>,
}

impl ProviderSet {
    /// Builds the providers of `config`, keeping those of `previous` whose config is equal.
    pub fn build(config: &Config, previous: Option<&ProviderSet>) -> Self {
        let entries = config
            .providers()
            .iter()
            .map(|(name, pc)| {
                // Unchanged: the same object. Changed but the same model on the same kind
                // of server (a new weight, cost, capabilities, limits or `[qos]`): a new
                // object over the same endpoint state. Otherwise: built anew.
                let kept = previous.and_then(|p| p.entries.get(name)).and_then(|e| {
                    if *e.config == **pc {
                        Some(Arc::clone(&e.provider))
                    } else {
                        e.provider.reconfigure(Arc::clone(pc))
                    }
                });
                let provider = kept.unwrap_or_else(|| build_one(Arc::clone(pc)));
                (
                    name.clone(),
                    Entry {
                        config: Arc::clone(pc),
                        provider,
                    },
                )
            })
            .collect();
        Self { entries }
    }

    /// A set of given providers (tests, fakes).
    pub fn from_providers(providers: Vec<(Arc<ProviderConfig>, Arc<dyn Provider>)>) -> Self {
        let entries = providers
            .into_iter()
            .map(|(config, provider)| (config.name().to_owned(), Entry { config, provider }))
            .collect();
        Self { entries }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.entries.get(name).map(|e| &e.provider)
    }

    /// A provider with its configuration.
    pub fn entry(&self, name: &str) -> Option<(&Arc<ProviderConfig>, &Arc<dyn Provider>)> {
        self.entries.get(name).map(|e| (&e.config, &e.provider))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<ProviderConfig>, &Arc<dyn Provider>)> {
        self.entries.values().map(|e| (&e.config, &e.provider))
    }
}

fn build_one(config: Arc<ProviderConfig>) -> Arc<dyn Provider> {
    match config.kind() {
        ProviderKind::Openai => Arc::new(HttpProvider::new(config, OpenAi)),
        ProviderKind::Ollama => Arc::new(HttpProvider::new(config, Ollama)),
    }
}
