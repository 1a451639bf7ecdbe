//! VOTING, WEIGHTED and CONSENSUS: ask `n` candidates, group equivalent answers, and let
//! the largest group win (ties: the group whose first answer arrived first).
//!
//! - VOTING: one vote per valid answer.
//! - WEIGHTED: each answer's vote is its provider's `weight × reliability`, where
//!   reliability is the EWMA of the provider's recent valid-answer rate
//!   (see [`super::reliability`]); the weights are in the Decision.
//! - CONSENSUS: one vote per answer, and the winning group must hold at least
//!   `min_agreement` of the valid answers (default: a strict majority) and at least
//!   `min_votes` answers; otherwise
//!   `on_disagreement` decides (`error`, `judge` or `best`).
//!
//! With `early_stop`, gathering ends as soon as the outcome cannot change, and the calls
//! still running are cancelled. Invalid answers are failed candidates, never votes.

use crate::config::raw::OnDisagreement;
use crate::error::PoolError;
use crate::types::Plan;
use crate::types::{Decision, GroupRecord};

use super::gather::{self, End, Flow, Gathered};
use super::grouping::Groups;
use super::{Outcome, judge};

/// The WEIGHTED formula, as shown in the Decision.
pub const WEIGHTED_FORMULA: &str = "vote = provider weight × reliability; reliability = EWMA of \
     the provider's valid-answer rate (alpha 0.1, prior 1.0)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Voting,
    Weighted,
    Consensus,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Voting => "voting",
            Self::Weighted => "weighted",
            Self::Consensus => "consensus",
        }
    }
}

pub async fn run(plan: &Plan, mode: Mode) -> Result<Outcome, PoolError> {
    let mut decision = Decision::new(mode.name());
    let all: Vec<usize> = (0..plan.fallback_from).collect();
    let mut specs = gather::specs(plan, &all, plan.n);
    match mode {
        Mode::Weighted => {
            for s in &mut specs {
                s.weight *= plan.reliability.get(s.provider.name());
            }
            decision.formula = Some(WEIGHTED_FORMULA.into());
        }
        Mode::Voting | Mode::Consensus => specs.iter_mut().for_each(|s| s.weight = 1.0),
    }
    let e = &plan.task.ensemble();
    let kind = plan.task.output();
    let mut groups = Groups::new(kind, e.similarity());
    let weights: Vec<f64> = specs.iter().map(|s| s.weight).collect();
    let gathered = gather::gather(
        plan,
        &specs,
        &mut decision,
        |cand, normalized, remaining, d| {
            let g = groups.add(normalized, cand, weights[cand], kind);
            d.candidates[cand].group = Some(g);
            // Every candidate is an answer when more than one choice was asked for.
            if !e.early_stop() || plan.choices > 1 {
                return Flow::Continue;
            }
            let stop = match mode {
                Mode::Voting | Mode::Weighted => groups.decided(remaining),
                Mode::Consensus => consensus_settled(&groups, remaining, e),
            };
            if stop { Flow::Stop } else { Flow::Continue }
        },
    )
    .await;
    if mode == Mode::Weighted {
        for (c, w) in decision.candidates.iter_mut().zip(&weights) {
            c.weight = Some(*w);
        }
    }
    record_groups(&mut decision, &groups);
    decide(plan, mode, groups, gathered, decision).await
}

/// Whether the consensus outcome can no longer change: either the leader already has
/// enough agreement however the rest answer, or no group can reach the thresholds.
fn consensus_settled(groups: &Groups, pending: f64, e: &crate::config::Ensemble) -> bool {
    let min_votes = e.min_votes();
    let Some(l) = groups.leader() else {
        return false;
    };
    let valid = groups.answers() as f64;
    let lead = groups.all()[l].members.len() as f64;
    let success =
        groups.decided(pending) && lead >= min_votes as f64 && e.agrees(lead / (valid + pending));
    let best = groups
        .all()
        .iter()
        .map(|g| g.members.len())
        .max()
        .unwrap_or(0) as f64;
    let hopeless =
        best + pending < min_votes as f64 || !e.agrees((best + pending) / (valid + pending));
    success || hopeless
}

fn record_groups(decision: &mut Decision, groups: &Groups) {
    decision.groups = groups
        .all()
        .iter()
        .map(|g| GroupRecord {
            answer: g.key.clone(),
            members: g.members.clone(),
            votes: g.votes,
        })
        .collect();
    for g in groups.all() {
        decision.votes.insert(vote_label(&g.key), g.votes);
    }
}

/// Keys of `Decision::votes`: the answer, cut to 120 characters.
fn vote_label(key: &str) -> String {
    if key.chars().count() <= 120 {
        key.to_owned()
    } else {
        let cut: String = key.chars().take(119).collect();
        format!("{cut}…")
    }
}

async fn decide(
    plan: &Plan,
    mode: Mode,
    groups: Groups,
    gathered: Gathered,
    mut decision: Decision,
) -> Result<Outcome, PoolError> {
    let Some(leader) = groups.leader() else {
        return Err(super::nothing_valid(plan, gathered.end, decision));
    };
    if gathered.end == End::Deadline {
        decision.degrade("deadline");
        decision.fallbacks.push(format!(
            "deadline:decided_on_{}_of_{}",
            groups.answers(),
            decision.candidates.len()
        ));
    }
    let g = &groups.all()[leader];
    let agreement = g.votes / groups.total_votes();
    decision.agreement = Some(agreement);
    let mut winner = g.members[0];
    if mode == Mode::Consensus {
        let e = &plan.task.ensemble();
        let reached = g.members.len() >= e.min_votes() && e.agrees(agreement);
        if !reached {
            decision.degrade("no_consensus");
            match e.on_disagreement() {
                OnDisagreement::Error => {
                    return Err(PoolError::NoConsensus {
                        agreement,
                        min_agreement: e.agreement_threshold(),
                        votes: g.members.len(),
                        min_votes: e.min_votes(),
                        decision: Box::new(decision),
                    });
                }
                OnDisagreement::Best => decision.fallbacks.push("no_consensus:best".into()),
                OnDisagreement::Judge => {
                    let reps: Vec<usize> = groups.all().iter().map(|g| g.members[0]).collect();
                    match judge::pick(plan, &mut decision, &reps).await {
                        Ok(w) => {
                            winner = w;
                            decision.fallbacks.push("no_consensus:judge".into());
                        }
                        Err(_) => decision
                            .fallbacks
                            .push("no_consensus:judge_failed:best".into()),
                    }
                }
            }
        }
    }
    super::outcome(plan, winner, &gathered, decision)
}
