//! Default values, each with the reason it has that value.

use std::time::Duration;

use super::raw::{AcceptRule, OnDisagreement, OutputKind, StrategyKind};

/// The ports of shared/DESIGN.md, on every interface, as a container expects.
pub(crate) const GRPC_ADDR: &str = "0.0.0.0:7070";
pub(crate) const HTTP_ADDR: &str = "0.0.0.0:7071";
/// Prompt files sit beside the config file in `prompts/`, as in this repository.
pub(crate) const PROMPTS_DIR: &str = "prompts";
/// 1 MiB holds a long chat (a 128k-token context is ~500 KB of text) while keeping a hostile
/// client from making the pool buffer large bodies.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Local models stream for tens of seconds; 30 s lets most in-flight answers finish on
/// SIGTERM, inside Kubernetes' default 30 s termination grace once the endpoint is removed.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// ~100k tokens of input: more than the small local models' contexts, so the model server,
/// not the pool, is what refuses a prompt that is merely long.
pub(crate) const MAX_INPUT_CHARS: usize = 400_000;
/// Long agent conversations stay well under this; more is almost certainly a bug or abuse.
pub(crate) const MAX_MESSAGES: usize = 1_000;
/// A generous ceiling: small local models rarely have more context than this.
pub(crate) const MAX_TOKENS: u32 = 8_192;
/// A small local model answers a short prompt in well under a minute on a CPU.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);
/// Nothing should hold a connection and an upstream slot for more than ten minutes.
pub(crate) const MAX_DEADLINE: Duration = Duration::from_secs(600);

/// Equal say for every provider unless configured.
pub(crate) fn weight() -> f64 {
    1.0
}
/// llama-server's and Ollama's default parallel slots are 4 or fewer; more only queues.
pub(crate) fn max_concurrency() -> u32 {
    8
}
/// Endpoints are on the local network; a second is plenty to connect, and failing fast lets
/// the next endpoint answer.
pub(crate) fn connect_timeout_ms() -> u64 {
    1_000
}
/// One generation of a few hundred tokens on a CPU (a whole answer that is not streamed).
pub(crate) fn first_byte_timeout_ms() -> u64 {
    120_000
}
/// A model server that is generating sends a token every few tens of milliseconds even on
/// a CPU; half a minute of silence means it is stuck.
pub(crate) fn idle_timeout_ms() -> u64 {
    30_000
}
pub(crate) fn output() -> OutputKind {
    OutputKind::Text
}
pub(crate) fn strategy() -> StrategyKind {
    StrategyKind::Fastest
}
/// One call at a time: hedging and fan-out multiply load and are opt-in.
pub(crate) fn fanout() -> u32 {
    1
}
/// Ten samples of a small model cost about one answer of a model ten times larger; more
/// rarely changes a vote.
pub(crate) fn max_n() -> u32 {
    10
}
/// Enough randomness that repeated samples of one model differ, little enough that they
/// stay on topic.
pub(crate) fn sample_temperature() -> f32 {
    0.7
}
/// An operator who asks for a least confidence wants no answer below it.
pub(crate) fn on_low_confidence() -> super::raw::OnLowConfidence {
    super::raw::OnLowConfidence::Abstain
}
/// Stopping as soon as the vote is decided saves the slowest calls.
pub(crate) fn early_stop() -> bool {
    true
}
/// Two answers that agree: one answer alone is no consensus.
pub(crate) fn min_votes() -> u32 {
    2
}
/// Disagreement is surfaced, not hidden.
pub(crate) fn on_disagreement() -> OnDisagreement {
    OnDisagreement::Error
}
pub(crate) fn judge_prompt() -> String {
    "judge.md".to_owned()
}
/// Two agreeing samples: cheap, and a strong signal that a small model is not guessing.
pub(crate) fn accept() -> AcceptRule {
    AcceptRule::Agree
}
/// Judges score 0..=10; 7 is "good" in prompts/judge.md.
pub(crate) fn accept_threshold() -> f64 {
    7.0
}
pub(crate) fn allow_override() -> bool {
    true
}

pub(crate) fn yes() -> bool {
    true
}
