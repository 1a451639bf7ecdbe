//! The live configuration: an `ArcSwap<Snapshot>` that hot reload swaps atomically.
//!
//! A request loads its `Arc<Snapshot>` once and keeps it to the end, so in-flight requests
//! finish on the snapshot they started with. A reload prepares the whole new snapshot first
//! (validation, provider clients); only a fully prepared one is swapped in, and the swap
//! itself cannot fail. A rejected file leaves the old snapshot serving and is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::Snapshot;
use crate::config::ConfigErrors;

/// The outcome of the latest reload attempt, for `/admin/config`, `/health` and tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// Version of the snapshot serving now (1 = the one loaded at start).
    pub version: u64,
    /// Why the latest attempt was rejected, if it was; cleared by a successful reload.
    pub last_error: Option<String>,
    /// When the latest attempt was rejected (seconds since the Unix epoch).
    pub last_error_at: Option<u64>,
    /// When the serving snapshot was loaded (seconds since the Unix epoch).
    pub loaded_at: u64,
    pub reloads_ok: u64,
    pub reloads_rejected: u64,
}

/// Shared handle to the live configuration.
#[derive(Clone)]
pub struct ConfigStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    current: ArcSwap<Snapshot>,
    status: Mutex<ReloadStatus>,
    events: watch::Sender<ReloadStatus>,
    texts: Mutex<Texts>,
}

/// The serving file's text, and what the last accepted reload changed (for the console).
#[derive(Default)]
struct Texts {
    serving: Option<String>,
    /// The version it made, and a unified diff of the file, URLs' credentials masked.
    diff: Option<(u64, String)>,
}

// === impl ConfigStore ===

impl ConfigStore {
    /// `path` is the file that reloads read; `None` for a store built in memory (tests).
    pub fn new(path: Option<PathBuf>, snapshot: Snapshot) -> Self {
        let status = ReloadStatus {
            version: 1,
            loaded_at: unix_now(),
            ..Default::default()
        };
        let (events, _) = watch::channel(status.clone());
        let serving = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        Self {
            inner: Arc::new(Inner {
                path,
                current: ArcSwap::from_pointee(snapshot),
                status: Mutex::new(status),
                events,
                texts: Mutex::new(Texts {
                    serving,
                    diff: None,
                }),
            }),
        }
    }

    /// The snapshot serving now. Take it once per request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    pub fn status(&self) -> ReloadStatus {
        self.inner.status.lock().clone()
    }

    /// Notified after every reload attempt, accepted or rejected.
    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        self.inner.events.subscribe()
    }

    /// Re-reads the file and swaps in the new snapshot, or keeps the old one and records why.
    pub fn reload_from_disk(&self) -> Result<u64, ConfigErrors> {
        let Some(path) = self.inner.path.clone() else {
            return Ok(self.status().version);
        };
        // Read once: the text that is loaded is the text the diff shows.
        let text = crate::config::read(&path);
        let result = text.as_ref().map_err(Clone::clone).and_then(|text| {
            let config = crate::config::load_text(&path, text)?;
            let previous = self.load();
            Snapshot::prepare(config, Some(&previous))
        });
        let outcome = self.apply(result);
        if let (Ok(version), Ok(text)) = (&outcome, text) {
            let mut texts = self.inner.texts.lock();
            let old = texts.serving.take().unwrap_or_default();
            texts.diff = Some((*version, diff(&old, &text, *version)));
            texts.serving = Some(text);
        }
        outcome
    }

    /// What the last accepted reload changed in the file: the version it made and a
    /// unified diff (credentials in URLs masked); `None` before the first reload.
    pub fn last_diff(&self) -> Option<(u64, String)> {
        self.inner.texts.lock().diff.clone()
    }

    /// Swaps in a prepared snapshot or records a rejection.
    pub fn apply(&self, result: Result<Snapshot, ConfigErrors>) -> Result<u64, ConfigErrors> {
        let mut status = self.inner.status.lock();
        let outcome = match result {
            Ok(snapshot) => {
                status.version += 1;
                status.reloads_ok += 1;
                status.last_error = None;
                status.last_error_at = None;
                status.loaded_at = unix_now();
                self.inner.current.store(Arc::new(snapshot));
                metrics::counter!(crate::telemetry::metrics::CONFIG_RELOADS, "result" => "ok")
                    .increment(1);
                tracing::info!(version = status.version, "Configuration reloaded.");
                Ok(status.version)
            }
            Err(errors) => {
                status.reloads_rejected += 1;
                metrics::counter!(crate::telemetry::metrics::CONFIG_RELOADS, "result" => "rejected")
                    .increment(1);
                status.last_error = Some(errors.to_string());
                status.last_error_at = Some(unix_now());
                tracing::error!(
                    version = status.version,
                    error = %errors,
                    "Configuration rejected; the previous configuration keeps serving."
                );
                Err(errors)
            }
        };
        let snapshot = status.clone();
        drop(status);
        self.inner.events.send_replace(snapshot);
        outcome
    }
}

/// A unified diff of two versions of the file, with any `user:password@` in URLs masked
/// (the file holds no other secrets: keys are hashes or environment variables' names).
fn diff(old: &str, new: &str, version: u64) -> String {
    let old = mask_credentials(old);
    let new = mask_credentials(new);
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(2)
        .header(
            &format!("version {}", version.saturating_sub(1)),
            &format!("version {version}"),
        )
        .to_string()
}

fn mask_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        while let Some(at) = rest.find("://") {
            let (head, tail) = rest.split_at(at + 3);
            out.push_str(head);
            // Up to the end of the authority: `user:pass@host` has its `@` before any `/`.
            let end = tail
                .find(|c: char| c == '/' || c == '"' || c == '\'' || c.is_whitespace())
                .unwrap_or(tail.len());
            match tail[..end].rfind('@') {
                Some(a) => {
                    out.push_str("***@");
                    rest = &tail[a + 1..];
                }
                None => rest = tail,
            }
        }
        out.push_str(rest);
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_mask_credentials_in_urls() {
        let old = "a = 1\nredis_url = \"redis://:hunter2@cache:6379/0\"\n";
        let new =
            "a = 2\nredis_url = \"redis://user:s3cret@cache:6379/0\"\nurl = \"http://h/x@y\"\n";
        let d = diff(old, new, 3);
        assert!(
            d.contains("--- version 2") && d.contains("+++ version 3"),
            "{d}"
        );
        assert!(d.contains("-a = 1") && d.contains("+a = 2"), "{d}");
        assert!(!d.contains("hunter2") && !d.contains("s3cret"), "{d}");
        assert!(d.contains("redis://***@cache:6379/0"), "{d}");
        // An `@` after the host is part of the path, not credentials.
        assert!(d.contains("http://h/x@y"), "{d}");
    }
}
