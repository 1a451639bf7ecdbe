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
/// A file rewritten continuously is still reloaded this long after its first change.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// Starts watching now (so no change made after this returns is missed) and returns the
/// task that handles events until `shutdown` is cancelled. Failures to watch are logged and
/// retried: serving never depends on the watcher.
pub fn start(
    store: ConfigStore,
    extra_dirs: Vec<PathBuf>,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let relevant = Relevant {
        file_name: store
            .path()
            .and_then(Path::file_name)
            .map(ToOwned::to_owned),
        prompt_dirs: extra_dirs.clone(),
    };
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
            if !handle_events(&store, &relevant, rx, &shutdown).await {
                return;
            }
            drop(watcher);
        }
    }
}

fn watch(dirs: &[PathBuf]) -> notify::Result<(notify::RecommendedWatcher, Events)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if worth_passing(&ev) {
            let _ = tx.send(ev);
        }
    })?;
    for dir in dirs {
        if dir.is_dir() {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
    }
    Ok((watcher, rx))
}

/// inotify reports every open and read of a file in a watched folder (notify asks for
/// them); they change nothing, and passing them on would wake the runtime for each — on
/// every request when a busy neighbour shares the folder.
fn worth_passing(ev: &notify::Result<notify::Event>) -> bool {
    !ev.as_ref().is_ok_and(|e| e.kind.is_access())
}

/// Which event paths can change the configuration: the file itself (by name, so renames and
/// symlink targets count), Kubernetes' `..data`-style entries, and anything in a prompts
/// folder. Editors' swap files and other neighbours are ignored.
struct Relevant {
    file_name: Option<std::ffi::OsString>,
    prompt_dirs: Vec<PathBuf>,
}

impl Relevant {
    fn matches(&self, ev: &notify::Event) -> bool {
        ev.paths.iter().any(|p| {
            let name = p.file_name();
            name.is_some() && name == self.file_name.as_deref()
                || name.is_some_and(|n| n.to_string_lossy().starts_with(".."))
                || p.parent()
                    .is_some_and(|d| self.prompt_dirs.iter().any(|pd| same_dir(pd, d)))
        })
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || a.canonicalize()
            .ok()
            .zip(b.canonicalize().ok())
            .is_some_and(|(a, b)| a == b)
}

/// Debounces events into reloads. Returns false on shutdown, true when the watcher must be
/// recreated.
async fn handle_events(
    store: &ConfigStore,
    relevant: &Relevant,
    mut rx: Events,
    shutdown: &CancellationToken,
) -> bool {
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
                reload(store).await;
                return true;
            }
            Some(Ok(ev)) if ev.kind.is_access() || !relevant.matches(&ev) => continue,
            Some(Ok(_)) => {}
        }
        // Debounce: wait until no event arrived for DEBOUNCE, but no longer than
        // MAX_DEBOUNCE, so a file rewritten without pause still gets reloaded.
        let latest = tokio::time::Instant::now() + MAX_DEBOUNCE;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return false,
                ev = rx.recv() => if ev.is_none() { break },
                () = tokio::time::sleep(DEBOUNCE) => break,
                () = tokio::time::sleep_until(latest) => break,
            }
        }
        reload(store).await;
    }
}

/// Parsing, reading prompts and building clients is blocking work: off the async workers.
async fn reload(store: &ConfigStore) {
    let store = store.clone();
    // Errors are recorded and logged by the store.
    let _ = tokio::task::spawn_blocking(move || store.reload_from_disk()).await;
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};

    #[test]
    fn opens_and_reads_in_the_folder_are_not_passed_on() {
        let event = |kind| Ok(notify::Event::new(kind));
        assert!(!super::worth_passing(&event(EventKind::Access(
            AccessKind::Open(AccessMode::Any)
        ))));
        assert!(!super::worth_passing(&event(EventKind::Access(
            AccessKind::Close(AccessMode::Read)
        ))));
        assert!(super::worth_passing(&event(EventKind::Modify(
            ModifyKind::Any
        ))));
        assert!(super::worth_passing(&Err(notify::Error::generic("lost"))));
    }
}
