//! Test helpers, compiled for tests and the `test-util` feature only: a scripted upstream
//! model server speaking both OpenAI and Ollama over real HTTP, and a scripted in-process
//! provider for paused-clock strategy tests.

mod fake_provider;
mod fake_upstream;
mod snapshot;

pub use fake_provider::{Call as ProviderCall, FakeProvider, Responder, judge_preferring};
pub use fake_upstream::{FakeUpstream, Recorded, Reply, Step};
pub use snapshot::{snapshot, snapshot_with};
