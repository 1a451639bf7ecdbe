//! The live state: the checked config bound to running providers (`Snapshot`), the store
//! that hot reload swaps atomically (`store`), the file watcher that triggers reloads
//! (`watch`) and the active health checks that run over the current providers (`health`).
//!
//! `config/` only parses and validates; this folder is where a checked config meets the
//! running process. It imports `config` and `providers`; the app wires it.

pub mod health;
mod snapshot;
pub mod store;
pub mod watch;

pub use snapshot::{Snapshot, check};
pub use store::{ConfigStore, ReloadStatus};
