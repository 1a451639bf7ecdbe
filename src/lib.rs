//! `llm-pool`: one process in front of a pool of LLM servers (Ollama and OpenAI-compatible).
//! It serves gRPC and HTTP, resolves each request's task from a hot-reloaded TOML file, runs
//! the task's strategy across providers and returns the answer with its Decision.
//!
//! See shared/DESIGN.md for the semantics; `main.rs` only wires these modules together.

mod accuracy_sync;
pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
/// The gRPC client (the `llm-pool-client` crate, `clients/rust`), which the CLI is built on.
pub use llm_pool_client as client;
pub mod config;
pub mod error;
pub mod listen;
pub mod live;
pub mod orchestrator;
pub mod providers;
pub mod qos;
pub mod ratelimit;
pub mod recent;
mod redis_link;
pub mod registry;
pub mod state;
pub mod strategies;
pub mod telemetry;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tls;
pub mod types;
pub mod usage;
