//! A config snapshot over scripted in-process providers, for strategy tests.

use std::path::Path;
use std::sync::Arc;

use super::FakeProvider;
use crate::config::load_str;
use crate::live::Snapshot;
use crate::providers::{Provider, ProviderSet};

/// One task `t` over `providers` (each with extra provider TOML, e.g. `weight = 3.0`),
/// its settings in `task` (TOML lines); `judge`, if given, is configured as its judge.
/// Prompt files resolve against the crate root (`prompts/`).
pub fn snapshot(
    task: &str,
    providers: &[(&Arc<FakeProvider>, &str)],
    judge: Option<&Arc<FakeProvider>>,
) -> Snapshot {
    let (judge_line, others) = match judge {
        Some(j) => (format!("judge = \"{}\"\n", j.name()), vec![j]),
        None => (String::new(), Vec::new()),
    };
    snapshot_with(&format!("{task}\n{judge_line}"), providers, &others)
}

/// Like [`snapshot`], with `others` configured as providers but not named in the task's
/// `providers` (so `task` may name them as `fallback` or `judge`).
pub fn snapshot_with(
    task: &str,
    providers: &[(&Arc<FakeProvider>, &str)],
    others: &[&Arc<FakeProvider>],
) -> Snapshot {
    let mut all: Vec<(&Arc<FakeProvider>, &str)> = providers.to_vec();
    all.extend(others.iter().map(|p| (*p, "")));
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
