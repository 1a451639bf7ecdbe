//! JUDGE: gather `n` candidates, show the distinct valid answers to the judge provider with
//! `prompts/judge.md` in a shuffled order (the seed is in the Decision, against position
//! bias), and take its `{winner, scores, rationale}`. An invalid verdict is asked once more;
//! after that the pool falls back to WEIGHTED over the same candidates and says so.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::PoolError;
use crate::providers::{GenParams, Message, Prompt, ProviderRequest, Role};
use crate::types::Plan;
use crate::types::output;
use crate::types::{Decision, JudgeRecord};

use super::gather::{self, Flow};
use super::grouping::Groups;
use super::{Outcome, voting};

/// Tokens the judge may spend on its verdict.
const JUDGE_MAX_TOKENS: u32 = 384;

pub async fn run(plan: &Plan) -> Result<Outcome, PoolError> {
    let mut decision = Decision::new("judge");
    let all: Vec<usize> = (0..plan.fallback_from).collect();
    let specs = gather::specs(plan, &all, plan.n);
    let kind = plan.task.output();
    let mut groups = Groups::new(kind, None);
    let gathered = gather::gather(plan, &specs, &mut decision, |cand, normalized, _, d| {
        d.candidates[cand].group = Some(groups.add(normalized, cand, 1.0, kind));
        Flow::Continue
    })
    .await;
    if groups.leader().is_none() {
        return Err(super::nothing_valid(plan, gathered.end, decision));
    }
    if gathered.end == gather::End::Deadline {
        // The judge chooses among fewer candidates than the task asked for.
        decision.degrade("deadline");
    }
    // One candidate per distinct answer: the judge need not read duplicates.
    let reps: Vec<usize> = groups.all().iter().map(|g| g.members[0]).collect();
    let winner = if reps.len() == 1 {
        decision
            .fallbacks
            .push("judge_skipped:one_distinct_answer".into());
        reps[0]
    } else {
        match pick(plan, &mut decision, &reps).await {
            Ok(w) => w,
            Err(()) => {
                decision.fallbacks.push("judge_invalid:weighted".into());
                decision.degrade("judge_invalid");
                decision.formula = Some(voting::WEIGHTED_FORMULA.into());
                weighted_winner(plan, &mut decision)
            }
        }
    };
    // What the candidates' learned accuracies say of the chosen answer (the verdict itself
    // is not counted as evidence).
    decision.confidence = super::posterior::confidence_of(plan, &decision, winner);
    super::outcome(plan, winner, &gathered, decision)
}

/// WEIGHTED over the candidates already gathered (no new calls).
fn weighted_winner(plan: &Plan, decision: &mut Decision) -> usize {
    let kind = plan.task.output();
    let mut groups = Groups::new(kind, plan.task.ensemble().similarity());
    for (i, c) in decision.candidates.iter_mut().enumerate() {
        if let (crate::types::CandidateStatus::Ok, Some(text)) = (c.status, &c.text) {
            let operator = plan
                .providers
                .iter()
                .position(|p| p.name() == c.provider)
                .map_or(1.0, |p| plan.weights[p]);
            let weight = voting::weighted_vote(plan, &c.provider, operator);
            c.weight = Some(weight);
            groups.add(text, i, weight, kind);
        }
    }
    let leader = groups.leader().unwrap_or(0);
    decision.votes = groups
        .all()
        .iter()
        .map(|g| (g.key.clone(), g.votes))
        .collect();
    groups.all().get(leader).map_or(0, |g| g.members[0])
}

#[derive(Deserialize)]
struct Verdict {
    winner: serde_json::Value,
    #[serde(default)]
    scores: HashMap<String, serde_json::Value>,
    #[serde(default)]
    rationale: String,
}

fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Asks the judge to choose among `candidates` (indices into `decision.candidates`, whose
/// `text` holds their normalised answers); returns the chosen index. Records everything in
/// `decision.judge`.
pub async fn pick(plan: &Plan, decision: &mut Decision, candidates: &[usize]) -> Result<usize, ()> {
    let (Some(judge), Some(template)) = (&plan.judge, &plan.task.ensemble().judge_template())
    else {
        return Err(());
    };
    let seed = fastrand::u64(..);
    let mut order = candidates.to_vec();
    fastrand::Rng::with_seed(seed).shuffle(&mut order);
    let mut listing = String::new();
    for (pos, &c) in order.iter().enumerate() {
        let text = decision.candidates[c].text.as_deref().unwrap_or_default();
        let _ = write!(listing, "[{}] {}\n\n", pos + 1, text.trim());
    }
    let vars = HashMap::from([("candidates".to_owned(), listing.trim_end().to_owned())]);
    let mut record = JudgeRecord {
        provider: judge.name().to_owned(),
        seed,
        order: order.clone(),
        ..Default::default()
    };
    let Ok(prompt) = template.render(Some(gather::question(plan)), &vars) else {
        record
            .errors
            .push("the judge template could not be rendered".into());
        decision.judge = Some(record);
        return Err(());
    };
    let request = Arc::new(ProviderRequest {
        prompt: Prompt::Chat(vec![Message::new(Role::User, prompt)]),
        params: GenParams {
            max_tokens: Some(JUDGE_MAX_TOKENS),
            temperature: Some(0.0),
            format: crate::providers::Format::Json,
            ..Default::default()
        },
        ticket: plan.request.ticket.clone(),
    });
    let mut result = Err(());
    for _attempt in 0..2 {
        record.attempts += 1;
        let call = super::traced(
            judge.as_ref(),
            false,
            0,
            judge.complete(Arc::clone(&request), plan.deadline),
        );
        let verdict = match call.await {
            Ok(c) => {
                decision.add_usage(c.usage);
                parse(&c.text, order.len())
            }
            Err(e) => Err(e.public_reason()),
        };
        match verdict {
            Ok(v) => {
                for (pos, score) in v.scores {
                    record.scores.insert(order[pos], score);
                }
                record.winner = Some(order[v.winner]);
                decision.rationale = Some(v.rationale);
                result = Ok(order[v.winner]);
                break;
            }
            Err(why) => record.errors.push(why),
        }
    }
    plan.reliability.record(judge.name(), result.is_ok());
    decision.judge = Some(record);
    result
}

/// A checked verdict, by 0-based position in the order shown.
struct Parsed {
    winner: usize,
    scores: Vec<(usize, f64)>,
    rationale: String,
}

fn parse(text: &str, shown: usize) -> Result<Parsed, String> {
    let json = output::check_kind(crate::config::raw::OutputKind::Json, &[], text)
        .map_err(|_| "the verdict is not JSON".to_owned())?;
    let v: Verdict = serde_json::from_str(&json).map_err(|e| format!("bad verdict: {e}"))?;
    let winner = number(&v.winner)
        .filter(|w| w.fract() == 0.0 && *w >= 1.0 && *w <= shown as f64)
        .ok_or_else(|| format!("winner {} is not a number from 1 to {shown}", v.winner))?;
    let scores = v
        .scores
        .iter()
        .filter_map(|(k, s)| {
            let pos: usize = k.trim().trim_matches(['[', ']']).parse().ok()?;
            (1..=shown).contains(&pos).then_some((pos - 1, number(s)?))
        })
        .collect();
    Ok(Parsed {
        winner: winner as usize - 1,
        scores,
        rationale: v.rationale,
    })
}

/// The judge's score for a single candidate (CASCADE `accept = "judge"`).
pub async fn score(plan: &Plan, decision: &mut Decision, candidate: usize) -> Option<f64> {
    pick(plan, decision, &[candidate]).await.ok()?;
    decision.judge.as_ref()?.scores.get(&candidate).copied()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn verdicts_are_validated() {
        let v = parse(
            r#"{"winner": 2, "scores": {"1": 3, "2": "9"}, "rationale": "B is right"}"#,
            2,
        )
        .unwrap();
        assert_eq!(v.winner, 1);
        assert_eq!(v.scores.len(), 2);
        assert_eq!(v.rationale, "B is right");
        assert!(
            parse(r#"{"winner": 3, "scores": {}}"#, 2).is_err(),
            "out of range"
        );
        assert!(parse(r#"{"winner": 1.5}"#, 2).is_err());
        assert!(parse("the second one", 2).is_err());
        assert_eq!(
            parse("```json\n{\"winner\": \"1\"}\n```", 2)
                .unwrap()
                .winner,
            0
        );
    }
}
