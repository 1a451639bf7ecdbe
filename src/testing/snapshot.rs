//! A config snapshot over scripted in-process providers, for strategy tests.

use std::path::Path;
use std::sync::Arc;

use super::FakeProvider;
use crate::config::load_str;
use crate::providers::{Provider, ProviderSet};
use crate::state::Snapshot;

/// One task `t` over `providers` (each with extra provider TOML, e.g. `weight = 3.0`),
/// its settings in `task` (TOML lines); `judge`, if given, is configured as its judge.
/// Prompt files resolve against the crate root (`prompts/`).
pub fn snapshot(
    task: &str,
    providers: &[(&Arc<FakeProvider>, &str)],
    judge: Option<&Arc<FakeProvider>>,
) -> Snapshot {
    let mut all: Vec<(&Arc<FakeProvider>, &str)> = providers.to_vec();
    if let Some(j) = judge {
        all.push((j, ""));
    }
    let mut text = String::new();
    for (p, extra) in &all {
        text.push_str(&format!(
            "[providers.{}]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n{extra}\n\n",
            p.name()
        ));
    }
    let names: Vec<String> = providers
        .iter()
        .map(|(p, _)| format!("\"{}\"", p.name()))
        .collect();
    text.push_str(&format!(
        "[tasks.t]\nproviders = [{}]\n{task}\n",
        names.join(", ")
    ));
    if let Some(j) = judge {
        text.push_str(&format!("judge = \"{}\"\n", j.name()));
    }
    let config = load_str(&text, Path::new(env!("CARGO_MANIFEST_DIR"))).expect("valid test config");
    let set = ProviderSet::from_providers(
        all.iter()
            .map(|(p, _)| {
                let pc = Arc::clone(&config.providers()[p.name()]);
                (pc, Arc::clone(p) as Arc<dyn Provider>)
            })
            .collect(),
    );
    Snapshot::with_providers(config, set)
}
