//! VOTING, WEIGHTED and CONSENSUS: ask `n` candidates, group equivalent answers, and let
//! the largest group win (ties: the group whose first answer arrived first).
//!
//! - VOTING: one vote per valid answer.
//! - WEIGHTED: each answer's vote is `weight × reliability × log-odds(accuracy)`
//!   ([`WEIGHTED_FORMULA`]): the operator's weight; the EWMA of the provider's valid-answer
//!   rate (`providers::Reliability`), for providers that fail to answer; and the log-odds of
//!   its learned accuracy on the task (`providers::Accuracy`), the optimal weight of an
//!   independent voter. Each candidate's weight, accuracy and evidence are in the Decision.
//! - CONSENSUS: one vote per answer, and the winning group must hold at least
//!   `min_agreement` of the valid answers (default: a strict majority) and at least
//!   `min_votes` answers; otherwise
//!   `on_disagreement` decides (`error`, `judge` or `best`).
//!
//! Every one of them reports `confidence`, the winner's posterior probability under the
//! learned accuracies (`super::posterior`); with `min_confidence`, a lower one goes to
//! `on_low_confidence` (`abstain`, `escalate` to the judge, or `best`, flagged). Every valid
//! answer is then graded by that posterior, to learn the accuracies (label, JSON and tool-call
//! tasks).
//!
//! With `early_stop`, gathering ends as soon as the outcome cannot change, and the calls
//! still running are cancelled. With `confidence`, calls go out in waves, the most accurate
//! providers first: each wave is the fewest calls that, agreeing, would bring the leader to
//! the target, and gathering stops as soon as the leader's posterior reaches it; `n` is then
//! the most calls made. `Decision.stopped` says why it stopped. Invalid answers are failed
//! candidates, never votes.

use crate::config::raw::{OnDisagreement, OnLowConfidence};
use crate::error::PoolError;
use crate::providers::Estimate;
use crate::types::Plan;
use crate::types::{Decision, GroupRecord};

use super::gather::{self, End, Flow, Gathered};
use super::grouping::Groups;
use super::posterior::{self, Voter};
use super::{Outcome, judge};

/// The WEIGHTED formula, as shown in the Decision.
pub const WEIGHTED_FORMULA: &str = "vote = weight × reliability × max(log(p·(k−1)/(1−p)), \
     0.001); p = the provider's learned accuracy on the task, (7 + credit) / (10 + graded \
     answers); k = the answer space (the task's labels, else answer_space, else 10); \
     reliability = EWMA of the provider's valid-answer rate (alpha 0.1, prior 1.0); \
     confidence = exp(s_a) / (Σ_b exp(s_b) + k − G), s_a = Σ log(p·(k−1)/(1−p)) over a's \
     answers, G = answers given";

/// How VOTING and CONSENSUS report confidence, as shown in the Decision.
pub const CONFIDENCE_FORMULA: &str = "confidence = exp(s_a) / (Σ_b exp(s_b) + k − G), s_a = \
     Σ log(p·(k−1)/(1−p)) over a's answers, G = answers given; p = the provider's learned \
     accuracy on the task, (7 + credit) / (10 + graded answers); k = the answer space (the \
     task's labels, else answer_space, else 10)";

/// The least WEIGHTED vote, for a provider no better than chance: it breaks no tie, and the
/// votes never sum to zero.
const MIN_VOTE: f64 = 1e-3;

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

/// One valid answer with the candidate that gave it.
struct Vote {
    candidate: usize,
    voter: Voter,
}

pub async fn run(plan: &Plan, mode: Mode) -> Result<Outcome, PoolError> {
    let mut decision = Decision::new(mode.name());
    let e = &plan.task.ensemble();
    let k = posterior::answer_space(&plan.task);
    let learned = |name: &str| match &plan.task_name {
        Some(task) => plan.accuracy.get(task, name),
        None => Estimate::PRIOR,
    };
    // Every answer is kept when more than one choice was asked for.
    let adaptive = e.confidence().filter(|_| plan.choices <= 1);
    let mut order: Vec<usize> = (0..plan.fallback_from).collect();
    if adaptive.is_some() {
        // The most accurate providers first: the fewest calls reach the target.
        let acc: Vec<f64> = order
            .iter()
            .map(|&p| learned(plan.providers[p].name()).accuracy)
            .collect();
        order.sort_by(|&a, &b| acc[b].total_cmp(&acc[a]));
    }
    let mut specs = gather::specs(plan, &order, plan.n);
    let estimates: Vec<Estimate> = specs.iter().map(|s| learned(s.provider.name())).collect();
    for s in &mut specs {
        s.weight = match mode {
            Mode::Weighted => weighted_vote(plan, s.provider.name(), s.weight),
            Mode::Voting | Mode::Consensus => 1.0,
        };
    }
    decision.formula = Some(
        match mode {
            Mode::Weighted => WEIGHTED_FORMULA,
            Mode::Voting | Mode::Consensus => CONFIDENCE_FORMULA,
        }
        .into(),
    );
    let kind = plan.task.output();
    let mut groups = Groups::new(kind, e.similarity());
    let mut votes: Vec<Vote> = Vec::new();
    let mut gathered = Gathered::empty();
    let mut next = 0;
    let stopped = loop {
        let size = match adaptive {
            None => specs.len() - next,
            Some(target) => {
                let upcoming: Vec<(f64, Estimate)> = specs[next..]
                    .iter()
                    .map(|s| s.weight)
                    .zip(estimates[next..].iter().copied())
                    .collect();
                let at = Wave {
                    groups: &groups,
                    votes: &votes,
                    k,
                };
                wave_size(plan, mode, at, &upcoming, target)
            }
        };
        let wave = &specs[next..next + size];
        // What the calls not yet started could still add.
        let later: f64 = specs[next + size..].iter().map(|s| s.weight).sum();
        let mut why = "decided";
        let got = gather::gather(
            plan,
            wave,
            &mut decision,
            |cand, normalized, remaining, d| {
                let spec = &specs[cand];
                let g = groups.add(normalized, cand, spec.weight, kind);
                d.candidates[cand].group = Some(g);
                votes.push(Vote {
                    candidate: cand,
                    voter: Voter {
                        group: g,
                        accuracy: estimates[cand].accuracy,
                        source: spec.source,
                    },
                });
                if plan.choices > 1 {
                    return Flow::Continue;
                }
                if let Some(target) = adaptive
                    && leader_posterior(&groups, &votes, k) >= target
                {
                    why = "confident";
                    return Flow::Stop;
                }
                if !e.early_stop() {
                    return Flow::Continue;
                }
                let pending = remaining + later;
                let (decided, hopeless) = match mode {
                    Mode::Voting | Mode::Weighted => (groups.decided(pending), false),
                    Mode::Consensus => consensus_settled(&groups, pending, e),
                };
                // A decided vote below `min_confidence` goes on: more answers can raise it.
                let sure = e
                    .min_confidence()
                    .is_none_or(|min| leader_posterior(&groups, &votes, k) >= min);
                // With nothing left to ask, gathering ends anyway (`all_answered`).
                if pending > 0.0 && (hopeless || (decided && sure)) {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
        )
        .await;
        next += size;
        gathered.merge(got);
        match gathered.end {
            End::Deadline => break "deadline",
            End::Stopped => break why,
            End::AllDone if next >= specs.len() || size == 0 => break "all_answered",
            End::AllDone => {}
        }
    };
    decision.stopped = Some(stopped.into());
    for (c, (spec, est)) in decision
        .candidates
        .iter_mut()
        .zip(specs.iter().zip(&estimates))
    {
        if mode == Mode::Weighted {
            c.weight = Some(spec.weight);
        }
        c.accuracy = Some(est.accuracy);
        c.evidence = Some(est.evidence);
    }
    record_groups(&mut decision, &groups);
    decide(plan, mode, groups, gathered, decision, &votes, k).await
}

/// A WEIGHTED vote of `provider` ([`WEIGHTED_FORMULA`]), given the operator's `weight`.
pub(crate) fn weighted_vote(plan: &Plan, provider: &str, weight: f64) -> f64 {
    let accuracy = match &plan.task_name {
        Some(task) => plan.accuracy.get(task, provider).accuracy,
        None => Estimate::PRIOR.accuracy,
    };
    let k = posterior::answer_space(&plan.task);
    weight * plan.reliability.get(provider) * posterior::log_odds(accuracy, k).max(MIN_VOTE)
}

/// How many calls the next wave makes: the fewest that, all agreeing with the leader (or
/// with each other, before any answer), would bring its posterior to `target` or, with
/// `early_stop`, decide the vote (no other answer could still win, at `min_confidence` if
/// set); all that are left when even that would not.
fn wave_size(
    plan: &Plan,
    mode: Mode,
    at: Wave<'_>,
    upcoming: &[(f64, Estimate)],
    target: f64,
) -> usize {
    let e = &plan.task.ensemble();
    let kind = plan.task.output();
    let key = match at.groups.leader() {
        Some(l) => at.groups.all()[l].key.clone(),
        // Matches no answer: a new group.
        None => "\u{0}".to_owned(),
    };
    let mut groups = at.groups.clone();
    let mut trial: Vec<Voter> = at.votes.iter().map(|v| v.voter).collect();
    let mut left: f64 = upcoming.iter().map(|(w, _)| w).sum();
    for (m, (weight, est)) in upcoming.iter().enumerate() {
        let g = groups.add(&key, usize::MAX - m, *weight, kind);
        trial.push(Voter {
            group: g,
            accuracy: est.accuracy,
            source: usize::MAX - m,
        });
        left -= weight;
        let post = posterior::posterior(&trial, groups.all().len(), at.k)[g];
        let decided = e.early_stop()
            && match mode {
                Mode::Voting | Mode::Weighted => groups.decided(left.max(0.0)),
                Mode::Consensus => consensus_settled(&groups, left.max(0.0), e).0,
            }
            && e.min_confidence().is_none_or(|min| post >= min);
        if post >= target || decided {
            return m + 1;
        }
    }
    upcoming.len()
}

/// Where the gathering stands between two waves.
struct Wave<'a> {
    groups: &'a Groups,
    votes: &'a [Vote],
    k: f64,
}

/// The posterior of the current leader.
fn leader_posterior(groups: &Groups, votes: &[Vote], k: f64) -> f64 {
    let Some(l) = groups.leader() else {
        return 0.0;
    };
    let voters: Vec<Voter> = votes.iter().map(|v| v.voter).collect();
    posterior::posterior(&voters, groups.all().len(), k)[l]
}

/// Whether the consensus outcome can no longer change: (the leader already has enough
/// agreement however the rest answer, no group can reach the thresholds).
fn consensus_settled(groups: &Groups, pending: f64, e: &crate::config::Ensemble) -> (bool, bool) {
    let min_votes = e.min_votes();
    let Some(l) = groups.leader() else {
        return (false, false);
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
    (success, hopeless)
}

fn record_groups(decision: &mut Decision, groups: &Groups) {
    decision.groups = groups
        .all()
        .iter()
        .map(|g| GroupRecord {
            answer: g.key.clone(),
            members: g.members.clone(),
            votes: g.votes,
            probability: None,
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
    votes: &[Vote],
    k: f64,
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
    let voters: Vec<Voter> = votes.iter().map(|v| v.voter).collect();
    let post = posterior::posterior(&voters, groups.all().len(), k);
    for (g, p) in decision.groups.iter_mut().zip(&post) {
        g.probability = Some(*p);
    }
    learn(plan, &mut decision, votes, &voters, groups.all().len(), k);
    let g = &groups.all()[leader];
    let agreement = g.votes / groups.total_votes();
    decision.agreement = Some(agreement);
    let mut winner = g.members[0];
    let e = &plan.task.ensemble();
    let reps: Vec<usize> = groups.all().iter().map(|g| g.members[0]).collect();
    let mut judged = false;
    if mode == Mode::Consensus {
        let reached = g.members.len() >= e.min_votes() && e.agrees(agreement);
        if !reached {
            decision.degrade("no_consensus");
            match e.on_disagreement() {
                OnDisagreement::Error => {
                    decision.confidence = Some(post[leader]);
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
                    judged = true;
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
    if let Some(min) = e.min_confidence()
        && post[leader] < min
    {
        decision.degrade("low_confidence");
        match e.on_low_confidence() {
            OnLowConfidence::Abstain => {
                decision.confidence = Some(post[leader]);
                return Err(PoolError::LowConfidence {
                    confidence: post[leader],
                    min_confidence: min,
                    decision: Box::new(decision),
                });
            }
            OnLowConfidence::Best => decision.fallbacks.push("low_confidence:best".into()),
            OnLowConfidence::Escalate if judged => {}
            OnLowConfidence::Escalate => match judge::pick(plan, &mut decision, &reps).await {
                Ok(w) => {
                    winner = w;
                    decision.fallbacks.push("low_confidence:judge".into());
                }
                Err(_) => decision
                    .fallbacks
                    .push("low_confidence:judge_failed:best".into()),
            },
        }
    }
    let winning_group = decision.candidates[winner].group.unwrap_or(leader);
    decision.confidence = post.get(winning_group).copied();
    super::outcome(plan, winner, &gathered, decision)
}

/// Grades every valid answer by its posterior (`posterior::credits`), for the providers'
/// accuracies on the task, and records each credit in the Decision.
fn learn(
    plan: &Plan,
    decision: &mut Decision,
    votes: &[Vote],
    voters: &[Voter],
    groups: usize,
    k: f64,
) {
    let Some(task) = plan.task_name.as_deref() else {
        return;
    };
    if !posterior::learns(&plan.task) {
        return;
    }
    for (v, credit) in votes.iter().zip(posterior::credits(voters, groups, k)) {
        let Some(credit) = credit else { continue };
        let c = &mut decision.candidates[v.candidate];
        plan.accuracy.grade(task, &c.provider, credit);
        c.credit = Some(credit);
    }
}
