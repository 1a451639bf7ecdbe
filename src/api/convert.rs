//! Conversions every surface shares (gRPC, native, OpenAI and Ollama): chat messages with
//! their roles checked, `stop` as one string or a list, and the providers' health as the
//! health routes show it. Each dialect's own conversions live in its folder.

use serde::{Deserialize, Serialize};

use crate::error::PoolError;
use crate::providers::{EndpointHealth, Message, Role};
use crate::state::AppState;

/// `stop` as one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// Converts role strings, naming the bad one.
pub(crate) fn message(i: usize, role: &str, content: String) -> Result<Message, PoolError> {
    let role = Role::parse(role).ok_or_else(|| {
        PoolError::invalid(
            format!("messages[{i}].role"),
            format!("`{role}` is not one of system, developer, user, assistant, tool"),
        )
    })?;
    Ok(Message::new(role, content))
}

#[derive(Serialize)]
pub(crate) struct ProviderHealth {
    pub(crate) name: String,
    pub(crate) kind: crate::config::raw::ProviderKind,
    pub(crate) model: String,
    pub(crate) endpoints: Vec<EndpointHealth>,
    /// Callers waiting for a slot and slots in use, per priority class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) queue: Option<crate::providers::QueueHealth>,
}

/// The providers whose queue holds at least `depth` callers (none when `depth` is 0):
/// why `/readyz` says this replica should get no new work.
pub(crate) fn saturated(state: &AppState, depth: usize) -> Vec<(String, usize)> {
    if depth == 0 {
        return Vec::new();
    }
    let snapshot = state.config.load();
    snapshot
        .providers
        .iter()
        .filter_map(|(config, provider)| {
            let queued = provider.queue()?.queued;
            (queued >= depth).then(|| (config.name().to_owned(), queued))
        })
        .collect()
}

/// Provider state of the serving snapshot, sorted by name.
pub(crate) fn provider_health(state: &AppState) -> Vec<ProviderHealth> {
    let snapshot = state.config.load();
    let mut out: Vec<ProviderHealth> = snapshot
        .providers
        .iter()
        .map(|(config, provider)| ProviderHealth {
            name: config.name().to_owned(),
            kind: config.kind(),
            model: config.model().to_owned(),
            endpoints: provider.health(),
            queue: provider.queue(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
