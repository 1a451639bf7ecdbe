//! Strategies: how one answer is made from one or many provider calls.
//!
//! Each strategy is one file. So far only FASTEST exists; the ensemble strategies of
//! shared/DESIGN.md (VOTING, WEIGHTED, CONSENSUS, JUDGE) are named here so requests can ask
//! for them by name and get a clear refusal instead of a silent substitute.

pub mod fastest;

use std::fmt;

/// Every strategy name a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyName {
    Fastest,
    Voting,
    Weighted,
    Consensus,
    Judge,
}

impl StrategyName {
    /// Accepts `fastest`, `FASTEST`, `STRATEGY_FASTEST`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix("STRATEGY_").unwrap_or(s);
        match s.to_ascii_lowercase().as_str() {
            "fastest" => Some(Self::Fastest),
            "voting" => Some(Self::Voting),
            "weighted" => Some(Self::Weighted),
            "consensus" => Some(Self::Consensus),
            "judge" => Some(Self::Judge),
            _ => None,
        }
    }
}

impl fmt::Display for StrategyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fastest => "FASTEST",
            Self::Voting => "VOTING",
            Self::Weighted => "WEIGHTED",
            Self::Consensus => "CONSENSUS",
            Self::Judge => "JUDGE",
        })
    }
}
