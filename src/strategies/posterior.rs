//! The probability that each answer is right, given who gave it and how often each of them
//! is right (their learned accuracy, `providers::Accuracy`).
//!
//! The model is the one-coin Dawid–Skene model: there are `k` possible answers, one of them
//! right and equally likely a priori; a voter of accuracy `p` gives the right answer with
//! probability `p`, and each wrong one with probability `(1 − p)/(k − 1)`; voters are
//! independent given the right answer. Then the posterior of answer `g` is
//!
//! `P(g) = exp(s_g) / (Σ_h exp(s_h) + (k − G))`, with `s_g = Σ_{i votes g} w_i` and
//! `w_i = log(p_i · (k − 1) / (1 − p_i))` (the voter's log-odds),
//!
//! where `G` answers were given and the `k − G` answers nobody gave have score 0. The same
//! log-odds weights are the optimal weighted vote for independent voters, which is what
//! WEIGHTED counts. Repeated samples of one provider are treated as independent voters too,
//! which overstates confidence when they are correlated.

/// Accuracies are held inside `[EPS, 1 − EPS]`, so that no single voter is ever certain.
const EPS: f64 = 1e-3;

/// One valid answer, as the posterior sees it.
#[derive(Debug, Clone, Copy)]
pub struct Voter {
    /// Index of the answer's group.
    pub group: usize,
    /// The voter's accuracy on the task.
    pub accuracy: f64,
    /// Which provider gave it (answers from one provider never grade each other).
    pub source: usize,
}

/// The log-odds of a voter of accuracy `p` among `k` answers: `log(p(k−1)/(1−p))`. Zero for
/// a voter no better than chance (`p = 1/k`), negative below.
pub fn log_odds(p: f64, k: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    let k = k.max(2.0);
    (p * (k - 1.0) / (1.0 - p)).ln()
}

/// The posterior probability of each of `groups` answers, given `voters`, among `k`
/// possible answers (at least the answers given).
pub fn posterior(voters: &[Voter], groups: usize, k: f64) -> Vec<f64> {
    let mut scores = vec![0.0f64; groups];
    let mut given = vec![false; groups];
    for v in voters {
        scores[v.group] += log_odds(v.accuracy, k);
        given[v.group] = true;
    }
    // Answers nobody (counted) gave score 0: each one of the given groups that got no vote
    // here is one of them, and so are the answers nobody gave at all.
    let voted = given.iter().filter(|g| **g).count();
    let unseen = (k - voted as f64).max(0.0);
    let unvoted = (groups - voted) as f64;
    let max = scores
        .iter()
        .zip(&given)
        .filter(|(_, g)| **g)
        .map(|(s, _)| *s)
        .fold(0.0f64, f64::max);
    // Log-sum-exp, shifted by the largest score, for large weights.
    let z: f64 = scores
        .iter()
        .zip(&given)
        .filter(|(_, g)| **g)
        .map(|(s, _)| (s - max).exp())
        .sum::<f64>()
        + unseen.max(unvoted) * (-max).exp();
    scores.iter().map(|s| (s - max).exp() / z).collect()
}

/// What each voter's answer earns as evidence of its accuracy: the posterior probability
/// that it is right given every answer (the E-step of Dawid–Skene). If the accuracies used
/// are right, a voter's expected credit is its accuracy (the law of total expectation), so
/// the sums converge on the truth. `None` when no other provider answered: a provider's
/// samples alone would only confirm what it is already believed to be.
pub fn credits(voters: &[Voter], groups: usize, k: f64) -> Vec<Option<f64>> {
    let post = posterior(voters, groups, k);
    voters
        .iter()
        .map(|v| {
            voters
                .iter()
                .any(|o| o.source != v.source)
                .then(|| post[v.group])
        })
        .collect()
}

/// The size of the answer space for a task: its labels, else `answer_space`, else
/// [`OPEN_ANSWER_SPACE`].
pub fn answer_space(task: &crate::config::TaskConfig) -> f64 {
    if let Some(k) = task.ensemble().answer_space() {
        return k as f64;
    }
    match task.output() {
        crate::config::raw::OutputKind::Label if task.labels().len() >= 2 => {
            task.labels().len() as f64
        }
        _ => OPEN_ANSWER_SPACE,
    }
}

/// The posterior of candidate `winner`'s answer given every valid candidate of `decision`
/// (grouped as the Decision groups them), under the providers' learned accuracies; `None`
/// when the winner joined no group.
pub fn confidence_of(
    plan: &crate::types::Plan,
    decision: &crate::types::Decision,
    winner: usize,
) -> Option<f64> {
    use crate::types::CandidateStatus;
    let group = decision.candidates.get(winner)?.group?;
    let voters: Vec<Voter> = decision
        .candidates
        .iter()
        .filter(|c| c.status == CandidateStatus::Ok)
        .filter_map(|c| {
            let accuracy = match &plan.task_name {
                Some(task) => plan.accuracy.get(task, &c.provider).accuracy,
                None => crate::providers::Estimate::PRIOR.accuracy,
            };
            let source = plan.providers.iter().position(|p| p.name() == c.provider)?;
            Some(Voter {
                group: c.group?,
                accuracy,
                source,
            })
        })
        .collect();
    let groups = voters.iter().map(|v| v.group + 1).max()?.max(group + 1);
    posterior(&voters, groups, answer_space(&plan.task))
        .get(group)
        .copied()
}

/// How many answers a wrong voter is taken to choose among when the task does not say
/// (JSON, tool calls, text).
pub const OPEN_ANSWER_SPACE: f64 = 10.0;

/// Whether the task's answers are graded, to learn accuracies: labels, JSON and tool calls
/// (agreement among free text says less about being right).
pub fn learns(task: &crate::config::TaskConfig) -> bool {
    use crate::config::raw::OutputKind;
    matches!(
        task.output(),
        OutputKind::Label | OutputKind::Json | OutputKind::ToolCall
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn voter(group: usize, accuracy: f64, source: usize) -> Voter {
        Voter {
            group,
            accuracy,
            source,
        }
    }

    #[test]
    fn one_voter_is_as_sure_as_its_accuracy_for_any_k() {
        for k in [2.0, 4.0, 10.0, 1000.0] {
            let p = posterior(&[voter(0, 0.8, 0)], 1, k);
            assert!((p[0] - 0.8).abs() < 1e-9, "k={k}: {p:?}");
        }
    }

    #[test]
    fn the_issue_example_one_strong_voter_outweighs_four_weak_ones() {
        // 0.90 says A; 0.60, 0.60, 0.55, 0.55 say B (yes/no).
        let voters = [
            voter(0, 0.9, 0),
            voter(1, 0.6, 1),
            voter(1, 0.6, 2),
            voter(1, 0.55, 3),
            voter(1, 0.55, 4),
        ];
        let p = posterior(&voters, 2, 2.0);
        assert!(p[0] > p[1], "{p:?}");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
        let w: f64 = (0.9f64 / 0.1).ln();
        let rest = 2.0 * (0.6f64 / 0.4).ln() + 2.0 * (0.55f64 / 0.45).ln();
        let expect = (w - rest).exp() / ((w - rest).exp() + 1.0);
        assert!((p[0] - expect).abs() < 1e-9);
    }

    #[test]
    fn answers_nobody_gave_keep_their_share() {
        // Four labels, one voter of accuracy 0.4: A has 0.4, the three others 0.2 each.
        let p = posterior(&[voter(0, 0.4, 0)], 1, 4.0);
        assert!((p[0] - 0.4).abs() < 1e-9);
    }

    #[test]
    fn a_provider_never_grades_itself_alone() {
        // Two samples of one provider and nobody else: no credit.
        let voters = [voter(0, 0.7, 0), voter(0, 0.7, 0)];
        assert_eq!(credits(&voters, 1, 2.0), vec![None, None]);
        // With another provider: each answer earns its group's posterior.
        let voters = [voter(0, 0.5, 0), voter(0, 0.8, 1), voter(1, 0.6, 2)];
        let c = credits(&voters, 2, 2.0);
        let p = posterior(&voters, 2, 2.0);
        assert_eq!(c, vec![Some(p[0]), Some(p[0]), Some(p[1])]);
    }

    proptest! {
        /// The posterior is a distribution over the given answers and the unseen ones, and
        /// a voter's weight grows with its accuracy.
        #[test]
        fn posterior_is_a_probability_and_weights_are_monotone(
            accs in prop::collection::vec(0.0f64..=1.0, 1..8),
            groups in prop::collection::vec(0usize..3, 8),
            k in 3.0f64..20.0,
            p in 0.0f64..1.0, q in 0.0f64..1.0,
        ) {
            let voters: Vec<Voter> = accs.iter().enumerate().map(|(i, a)| voter(groups[i], *a, i)).collect();
            let post = posterior(&voters, 3, k);
            let sum: f64 = post.iter().sum();
            prop_assert!(post.iter().all(|x| (0.0..=1.0).contains(x)));
            prop_assert!(sum <= 1.0 + 1e-9);
            let (lo, hi) = if p < q { (p, q) } else { (q, p) };
            prop_assert!(log_odds(lo, k) <= log_odds(hi, k) + 1e-12);
        }

        /// The expected credit of a voter is its accuracy when the accuracies are right:
        /// the exact expectation over both voters' answers (two labels, truth A).
        #[test]
        fn expected_credit_is_the_accuracy(p in 0.05f64..0.95, q in 0.05f64..0.95) {
            let credit = |mine: usize, theirs: usize| {
                credits(&[voter(mine, p, 0), voter(theirs, q, 1)], 2, 2.0)[0].unwrap()
            };
            // Group 0 is A when the voter answers A; group indices are per request, so an
            // answer of B by both is one group, the voter's.
            let expected = p * q * credit(0, 0)
                + p * (1.0 - q) * credit(0, 1)
                + (1.0 - p) * q * credit(0, 1)
                + (1.0 - p) * (1.0 - q) * credit(0, 0);
            prop_assert!((expected - p).abs() < 1e-9, "{expected} vs {p}");
        }
    }
}
