//! Watches the config file (and the prompts folder) and asks for a reload when they change.
//!
//! Watches the parent folders, not the file: editors replace files by rename and Kubernetes
//! ConfigMaps swap a `..data` symlink, and both would orphan a watch on the file itself.
//! Events are debounced (collected until the folder is quiet for [`DEBOUNCE`]); the watcher
//! does no parsing: it only calls [`ConfigStore::reload_from_disk`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ConfigStore;

/// Long enough to cover an editor's write-rename-chmod burst and a ConfigMap's symlink swap,
/// short enough that an operator sees the change at once.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// Starts watching now (so no change made after this returns is missed) and returns the
/// task that handles events until `shutdown` is cancelled. Failures to watch are logged and
/// retried: serving never depends on the watcher.
pub fn start(
    store: ConfigStore,
    extra_dirs: Vec<PathBuf>,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let dirs = store.path().map(|file| {
        let mut dirs = vec![
            file.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        ];
        dirs.extend(extra_dirs);
        for dir in &mut dirs {
            if dir.as_os_str().is_empty() {
                *dir = PathBuf::from(".");
            }
        }
        dirs
    });
    let first = dirs.as_deref().map(watch);
    async move {
        let Some(dirs) = dirs else { return };
        let mut current = first;
        loop {
            let (watcher, rx) = match current.take().unwrap_or_else(|| watch(&dirs)) {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "Cannot watch the configuration; retrying in 5s.");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            tracing::debug!(dirs = ?dirs, "Watching configuration.");
            if !handle_events(&store, rx, &shutdown).await {
                return;
            }
            drop(watcher);
        }
    }
}

fn watch(dirs: &[PathBuf]) -> notify::Result<(notify::RecommendedWatcher, Events)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev);
    })?;
    for dir in dirs {
        if dir.is_dir() {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
    }
    Ok((watcher, rx))
}

/// Debounces events into reloads. Returns false on shutdown, true when the watcher must be
/// recreated.
async fn handle_events(store: &ConfigStore, mut rx: Events, shutdown: &CancellationToken) -> bool {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return false,
            ev = rx.recv() => ev,
        };
        match first {
            None => return true,
            Some(Err(error)) => {
                // Speculate that the file changed: a lost event must not lose a reload.
                tracing::warn!(%error, "Configuration watcher failed; recreating it.");
                reload(store);
                return true;
            }
            Some(Ok(ev)) if ev.kind.is_access() => continue,
            Some(Ok(_)) => {}
        }
        // Debounce: wait until no event arrived for DEBOUNCE.
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return false,
                ev = rx.recv() => if ev.is_none() { break },
                () = tokio::time::sleep(DEBOUNCE) => break,
            }
        }
        reload(store);
    }
}

fn reload(store: &ConfigStore) {
    // Errors are recorded and logged by the store.
    let _ = store.reload_from_disk();
}
