//! Shares the providers' learned accuracies across replicas through Redis (`[learning]
//! redis_url`), so that every replica weighs votes alike.
//!
//! Every `sync_interval` each replica adds the evidence it gathered since the last time
//! to one hash per task (`{key_prefix}{task}`, fields `{provider}|correct` and
//! `{provider}|seen`, `HINCRBYFLOAT`: a sum of counts, as usage is shared), then reads the
//! fleet's totals back; what it did not add itself counts as the other replicas' share
//! (`providers::Accuracy::set_fleet`). The hash outlives restarts, so a new replica starts
//! from what the fleet learned. While Redis is unreachable, evidence waits and is sent
//! later; votes go on with what this replica knows. Changes of `redis_url` take effect on
//! restart.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::live::ConfigStore;
use crate::providers::{Accuracy, AccuracyCounts};
use crate::redis_link::RedisLink;

/// Runs until `shutdown`, then sends what is left once.
pub(crate) async fn run(store: ConfigStore, shutdown: CancellationToken) {
    let cfg = store.load().config.learning().clone();
    let Some(url) = cfg.redis_url() else {
        return;
    };
    let link = match RedisLink::new(url, cfg.redis_timeout(), "accuracy") {
        Ok(link) => link,
        Err(e) => {
            tracing::warn!(error = %e, "Learned accuracies are not shared.");
            return;
        }
    };
    let prefix = cfg.key_prefix().to_owned();
    loop {
        let stop = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(cfg.sync_interval()) => false,
        };
        let snapshot = store.load();
        sync(&link, &prefix, &snapshot).await;
        if stop {
            return;
        }
    }
}

/// One exchange: this replica's new evidence out, the fleet's totals in.
async fn sync(link: &RedisLink, prefix: &str, snapshot: &crate::live::Snapshot) {
    let accuracy: &Accuracy = &snapshot.accuracy;
    let unsent = accuracy.take_unsent();
    if !unsent.is_empty() {
        let mut pipe = redis::pipe();
        for (task, provider, c) in &unsent {
            let key = format!("{prefix}{task}");
            pipe.cmd("HINCRBYFLOAT")
                .arg(&key)
                .arg(format!("{provider}|correct"))
                .arg(c.correct)
                .ignore();
            pipe.cmd("HINCRBYFLOAT")
                .arg(&key)
                .arg(format!("{provider}|seen"))
                .arg(c.seen)
                .ignore();
            pipe.sadd(format!("{prefix}tasks"), task).ignore();
        }
        let sent = link
            .run("accuracy HINCRBYFLOAT", |mut c| async move {
                pipe.query_async::<()>(&mut c).await
            })
            .await;
        if sent.is_none() {
            for (task, provider, c) in unsent {
                accuracy.unsend(&task, &provider, c);
            }
            return;
        }
    }
    let config = &snapshot.config;
    for task in config.tasks().keys() {
        let key = format!("{prefix}{task}");
        let Some(fields) = link
            .run("accuracy HGETALL", |mut c| async move {
                redis::cmd("HGETALL")
                    .arg(key)
                    .query_async::<HashMap<String, String>>(&mut c)
                    .await
            })
            .await
        else {
            return;
        };
        let mut fleet: HashMap<&str, AccuracyCounts> = HashMap::new();
        for (field, value) in &fields {
            let (Some((provider, what)), Ok(v)) = (field.rsplit_once('|'), value.parse::<f64>())
            else {
                link.soft_error(format!("accuracy field `{field}` is not a number"));
                continue;
            };
            let c = fleet.entry(provider).or_default();
            match what {
                "correct" => c.correct = v,
                "seen" => c.seen = v,
                _ => {}
            }
        }
        for (provider, counts) in fleet {
            // Only what this config knows: a removed provider's sums stay in the hash.
            if config.providers().contains_key(provider) {
                accuracy.set_fleet(task, provider, counts);
            }
        }
    }
}
