//! CASCADE (after FrugalGPT): try providers cheapest first; accept a tier's answer when it
//! is valid for the output kind and passes the task's `accept` rule (`valid`; `agree`: two
//! samples of the tier agree; `judge`: the judge scores it at least `accept_threshold`;
//! `confidence`: its posterior under the tier's learned accuracy is at least
//! `min_confidence`, from one sample, or two that agree when one is not enough);
//! otherwise escalate to the next tier. If no tier is accepted, the last (strongest) tier's
//! valid answer is returned and the Decision says so. Every tier tried is in the Decision.

use crate::config::raw::AcceptRule;
use crate::error::PoolError;
use crate::types::Plan;
use crate::types::{Decision, TierRecord};

use super::gather::{self, End, Flow, Gathered};
use super::grouping::Groups;
use super::{Outcome, judge};

/// Asks `specs` (samples of one tier), adding their answers to `groups` and `completions`.
async fn ask(
    plan: &Plan,
    specs: &[gather::CallSpec],
    decision: &mut Decision,
    groups: &mut Groups,
    completions: &mut Vec<Option<crate::providers::Completion>>,
) -> End {
    let kind = plan.task.output();
    let first = decision.candidates.len();
    let gathered = gather::gather(plan, specs, decision, |cand, normalized, _, d| {
        d.candidates[cand].group = Some(groups.add(normalized, cand, 1.0, kind));
        Flow::Continue
    })
    .await;
    completions.resize(decision.candidates.len(), None);
    for (i, c) in gathered.completions.into_iter().enumerate().skip(first) {
        completions[i] = c;
    }
    gathered.end
}

/// The tier's learned accuracy on the task.
fn tier_accuracy(plan: &Plan, tier: usize) -> f64 {
    match &plan.task_name {
        Some(task) => {
            plan.accuracy
                .get(task, plan.providers[tier].name())
                .accuracy
        }
        None => crate::providers::Estimate::PRIOR.accuracy,
    }
}

/// The posterior of the tier's leading answer, its samples taken as independent voters of
/// the tier's accuracy (`super::posterior`).
fn tier_confidence(plan: &Plan, groups: &Groups, accuracy: f64) -> f64 {
    let Some(leader) = groups.leader() else {
        return 0.0;
    };
    let voters: Vec<super::posterior::Voter> = groups
        .all()
        .iter()
        .enumerate()
        .flat_map(|(g, group)| {
            group.members.iter().map(move |_| super::posterior::Voter {
                group: g,
                accuracy,
                source: 0,
            })
        })
        .collect();
    let k = super::posterior::answer_space(&plan.task);
    super::posterior::posterior(&voters, groups.all().len(), k)[leader]
}

pub async fn run(plan: &Plan) -> Result<Outcome, PoolError> {
    let mut decision = Decision::new("cascade");
    let mut tiers: Vec<usize> = (0..plan.fallback_from).collect();
    // Cheapest first; equal costs keep the task's order.
    tiers.sort_by(|&a, &b| plan.costs[a].total_cmp(&plan.costs[b]));
    let e = &plan.task.ensemble();
    let kind = plan.task.output();
    let mut completions: Vec<Option<crate::providers::Completion>> = Vec::new();
    let mut last_valid: Option<usize> = None;
    let mut end = End::AllDone;
    for &tier in &tiers {
        let samples = match e.accept() {
            AcceptRule::Agree => 2,
            AcceptRule::Valid | AcceptRule::Judge | AcceptRule::Confidence => 1,
        };
        let first = decision.candidates.len();
        let mut groups = Groups::new(kind, e.similarity());
        let specs = gather::specs(plan, &[tier], 2);
        end = ask(
            plan,
            &specs[..samples],
            &mut decision,
            &mut groups,
            &mut completions,
        )
        .await;
        let accuracy = tier_accuracy(plan, tier);
        if e.accept() == AcceptRule::Confidence
            && end != End::Deadline
            && tier_confidence(plan, &groups, accuracy) < e.min_confidence().unwrap_or(1.0)
            && groups.answers() == 1
        {
            // One answer is not enough: a second sample, which must agree.
            end = ask(
                plan,
                &specs[1..],
                &mut decision,
                &mut groups,
                &mut completions,
            )
            .await;
        }
        let valid: Vec<usize> = groups
            .all()
            .iter()
            .flat_map(|g| g.members.iter().copied())
            .collect();
        let candidate = valid.iter().copied().min();
        if let Some(c) = candidate {
            last_valid = Some(c);
        }
        let (accepted, reason) = match (candidate, e.accept()) {
            (None, _) => (false, "no valid answer".to_owned()),
            (Some(_), AcceptRule::Valid) => (true, "valid answer".to_owned()),
            (Some(_), AcceptRule::Agree) => {
                let agree = groups.all().len() == 1 && valid.len() == 2;
                let reason = if agree {
                    "two samples agree"
                } else {
                    "samples disagree"
                };
                (agree, reason.to_owned())
            }
            (Some(_), AcceptRule::Confidence) => {
                let p = tier_confidence(plan, &groups, accuracy);
                let min = e.min_confidence().unwrap_or(1.0);
                decision.confidence = Some(p);
                if p >= min {
                    (true, format!("confidence {p:.3} ≥ {min}"))
                } else {
                    (false, format!("confidence {p:.3} < {min}"))
                }
            }
            (Some(c), AcceptRule::Judge) => match judge::score(plan, &mut decision, c).await {
                Some(s) if s >= e.accept_threshold() => {
                    (true, format!("judge score {s} ≥ {}", e.accept_threshold()))
                }
                Some(s) => (false, format!("judge score {s} < {}", e.accept_threshold())),
                None => (false, "the judge gave no valid score".to_owned()),
            },
        };
        decision.tiers.push(TierRecord {
            provider: plan.providers[tier].name().to_owned(),
            cost_per_1k_tokens: plan.costs[tier],
            accepted,
            reason,
            candidates: (first..decision.candidates.len()).collect(),
        });
        if accepted {
            let winner = candidate.unwrap_or(first);
            // The accepted tier's answer, its samples under the tier's learned accuracy.
            decision.confidence = Some(tier_confidence(plan, &groups, accuracy));
            if end == End::Deadline {
                decision.degrade("deadline");
            }
            let gathered = Gathered { completions, end };
            return super::outcome(plan, winner, &gathered, decision);
        }
        if end == End::Deadline {
            break;
        }
        decision.fallbacks.push(format!(
            "escalate:{}",
            tiers
                .iter()
                .skip_while(|&&t| t != tier)
                .nth(1)
                .map_or("none", |&t| plan.providers[t].name())
        ));
    }
    let gathered = Gathered { completions, end };
    match last_valid {
        Some(winner) => {
            decision.fallbacks.push("cascade:no_tier_accepted".into());
            decision.degrade("no_tier_accepted");
            if end == End::Deadline {
                decision.degrade("deadline");
            }
            super::outcome(plan, winner, &gathered, decision)
        }
        None => Err(super::nothing_valid(plan, end, decision)),
    }
}
