//! The request path's shared words: the planned request, the Decision and the answer, a
//! strategy's outcome, and the output kinds' checks. Plain data and pure functions: this
//! folder imports nothing above `config` and `providers` (its message types, the
//! `Provider` seam and reliability), and everything above it (strategies, cache,
//! accounting, orchestrator, API) takes these words from here.
//!
//! `normalize.rs` is the ground floor: it imports nothing of the crate, and `config` uses
//! it to check that a task's labels stay distinct.

mod decision;
pub mod normalize;
mod outcome;
pub mod output;
mod plan;

pub use decision::{
    Alternative, Answer, Candidate, CandidateStatus, Decision, GroupRecord, JudgeRecord,
    LabelProbability, RouteRecord, TierRecord, UsageOut,
};
pub use outcome::Outcome;
pub use plan::{CacheMode, Plan, UNBOUNDED_COMPLETION_ESTIMATE};

/// A new request id: a random UUID (v4) from the thread's fast generator. Ids name requests
/// in logs, traces and Decisions; they are not secrets, so they need no system call for
/// entropy (the OS generator costs one per id).
pub fn new_request_id() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
