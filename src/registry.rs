//! Announces the pool to an HTTP agent registry (`[registry]`): `POST {url}/agents` with the
//! agent definition on start and after every accepted config reload, `DELETE
//! {url}/agents/{id}` on shutdown. Failed calls are retried with exponential backoff and
//! jitter (`backon`), forever, in the background: a registry outage never delays or blocks
//! serving.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::ops::RegistryConfig;
use crate::live::ConfigStore;
use crate::live::Snapshot;

/// What the registry learns about this pool.
pub fn agent(snapshot: &Snapshot, reg: &RegistryConfig) -> serde_json::Value {
    let config = &snapshot.config;
    let tasks: Vec<_> = config
        .tasks()
        .values()
        .map(|t| {
            serde_json::json!({
                "name": t.name(),
                "description": t.description(),
                "strategy": t.strategy(),
                "output": t.output(),
                "labels": t.labels(),
                "providers": t.providers(),
            })
        })
        .collect();
    let providers: Vec<_> = config
        .providers()
        .values()
        .map(|p| {
            serde_json::json!({
                "name": p.name(), "kind": p.kind(), "model": p.model(),
                "cost_per_1k_tokens": p.cost_per_1k_tokens(),
            })
        })
        .collect();
    let cheapest = config
        .providers()
        .values()
        .map(|p| p.cost_per_1k_tokens())
        .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.min(c))));
    serde_json::json!({
        "id": reg.agent_id(),
        "name": "llm-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoint": reg.endpoint(),
        "grpc_endpoint": reg.grpc_endpoint(),
        "protocols": ["native", "openai", "ollama", "grpc"],
        "capabilities": { "tasks": tasks, "providers": providers },
        "cost": { "min_per_1k_tokens": cheapest.unwrap_or(0.0) },
    })
}

/// Keeps the registration current until `shutdown`, then deregisters.
pub async fn run(store: ConfigStore, shutdown: CancellationToken) {
    let client = reqwest::Client::new();
    let mut changes = store.subscribe();
    let mut registered: Option<RegistryConfig> = None;
    loop {
        let snapshot = store.load();
        if let Some(reg) = snapshot.config.registry().cloned() {
            let body = agent(&snapshot, &reg);
            tokio::select! {
                () = shutdown.cancelled() => break,
                // A newer config supersedes this attempt.
                _ = changes.changed() => continue,
                () = register(&client, &reg, &body) => registered = Some(reg),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
    }
    if let Some(reg) = registered {
        deregister(&client, &reg).await;
    }
}

fn request(
    client: &reqwest::Client,
    reg: &RegistryConfig,
    method: reqwest::Method,
    url: String,
) -> reqwest::RequestBuilder {
    let mut req = client.request(method, url).timeout(reg.timeout());
    if let Some(token) = &reg.token() {
        req = req.bearer_auth(token.expose_secret());
    }
    req
}

/// Registers, retrying until it works.
async fn register(client: &reqwest::Client, reg: &RegistryConfig, body: &serde_json::Value) {
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let sent = request(
            client,
            reg,
            reqwest::Method::POST,
            format!("{}/agents", reg.url()),
        )
        .json(body)
        .send()
        .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(agent_id = %reg.agent_id(), registry = %reg.url(), "Registered with the agent registry.");
                metrics::counter!(crate::telemetry::metrics::REGISTRY_CALLS, "call" => "register", "outcome" => "ok").increment(1);
                return;
            }
            outcome => {
                let error = match outcome {
                    Ok(r) => format!("status {}", r.status().as_u16()),
                    Err(e) => e.to_string(),
                };
                metrics::counter!(crate::telemetry::metrics::REGISTRY_CALLS, "call" => "register", "outcome" => "error").increment(1);
                let wait = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "Agent registry unreachable; serving anyway.");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One attempt: shutdown must not wait on an absent registry for more than its timeout.
async fn deregister(client: &reqwest::Client, reg: &RegistryConfig) {
    let url = format!("{}/agents/{}", reg.url(), reg.agent_id());
    match request(client, reg, reqwest::Method::DELETE, url)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => {
            tracing::info!(agent_id = %reg.agent_id(), "Deregistered from the agent registry.");
        }
        Ok(r) => tracing::warn!(status = r.status().as_u16(), "Deregistration refused."),
        Err(error) => tracing::warn!(%error, "Deregistration failed."),
    }
}
