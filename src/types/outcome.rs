//! What a strategy hands back to the orchestrator.

use super::decision::Decision;
use crate::providers::Completion;

/// An ensemble's result: the winning candidate's answer and the Decision.
pub struct Outcome {
    pub completion: Completion,
    /// The winner's normalised answer (label, canonical JSON, or the text).
    pub normalized: String,
    pub decision: Decision,
    /// Other valid candidates' answers, in candidate order, when the request asked for
    /// more than one choice (`Plan::choices`).
    pub others: Vec<Completion>,
}
