//! Active health checks: every `qos.health_check_interval`, ask every endpoint of every
//! provider which models it serves (`/v1/models` or `/api/tags`). An endpoint that fails
//! its check, or does not serve its provider's model, is not routed to until a later check
//! passes. Results show on `/health` and gRPC `Health`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::live::ConfigStore;

/// How often to look again at the config while checks are off.
const IDLE: Duration = Duration::from_secs(1);

/// Runs until `shutdown`. The first round runs at once, so routing learns early.
pub async fn run(store: ConfigStore, shutdown: CancellationToken) {
    loop {
        let interval = check_once(&store, &shutdown).await;
        let wait = if interval.is_zero() { IDLE } else { interval };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One round over the serving snapshot's providers; returns the configured interval.
pub async fn check_once(store: &ConfigStore, shutdown: &CancellationToken) -> Duration {
    let snapshot = store.load();
    let interval = snapshot.config.qos().health_check_interval;
    if interval.is_zero() {
        return interval;
    }
    let checks: Vec<_> = snapshot
        .providers
        .iter()
        .map(|(_, p)| p.check_health())
        .collect();
    drop(snapshot);
    tokio::select! {
        () = shutdown.cancelled() => {}
        _ = futures::future::join_all(checks) => {}
    }
    interval
}
