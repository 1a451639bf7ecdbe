//! `top_k` of label tasks: the k most probable labels with their posterior probabilities.
//!
//! From the Decision's groups when the strategy weighed its answers (VOTING, WEIGHTED,
//! CONSENSUS: each group's posterior, `strategies::posterior`), the labels nobody gave
//! sharing what is left equally. For FASTEST, from the model's log probabilities of its
//! answer's first token, when every candidate provider gives them (the pool asks for
//! them, and returns them only if the caller asked too). Otherwise one answer by one provider: the label returned
//! at the Decision's `confidence` when it has one (CASCADE on confidence), else at that
//! provider's learned accuracy, and the other labels `(1 − p)/(k − 1)` each, the same
//! posterior for a single voter. Computed after the cache, for hits and joins too.

use std::sync::Arc;

use crate::config::TaskConfig;
use crate::providers::Accuracy;
use crate::types::{Answer, LabelProbability, Plan};

/// What `top_k` needs of a plan, kept past it.
pub(super) struct TopK {
    k: usize,
    hidden_logprobs: bool,
    task: Arc<TaskConfig>,
    task_name: Option<String>,
    accuracy: Arc<Accuracy>,
}

impl TopK {
    /// `None` when the request asked for none.
    pub(super) fn of(plan: &Plan) -> Option<Self> {
        (plan.top_k > 0).then(|| Self {
            k: plan.top_k,
            hidden_logprobs: plan.hidden_logprobs,
            task: Arc::clone(&plan.task),
            task_name: plan.task_name.clone(),
            accuracy: Arc::clone(&plan.accuracy),
        })
    }

    pub(super) fn fill(&self, answer: &mut Answer) {
        // The upstream's body has none of this (and may carry log probabilities the caller
        // did not ask for).
        answer.verbatim = None;
        let labels = self.task.labels();
        let d = &answer.decision;
        let mut probs: Vec<(&str, f64)> = d
            .groups
            .iter()
            .filter_map(|g| Some((g.answer.as_str(), g.probability?)))
            .collect();
        if probs.is_empty()
            && let Some(from_logprobs) = answer
                .logprobs
                .as_ref()
                .and_then(|lp| first_token(labels, lp))
        {
            probs = from_logprobs;
        }
        if probs.is_empty() {
            let p =
                super::route::answer_confidence(&self.accuracy, self.task_name.as_deref(), answer);
            probs.push((answer.text.as_str(), p));
        }
        let given: f64 = probs.iter().map(|(_, p)| p).sum();
        let unseen: Vec<&str> = labels
            .iter()
            .map(String::as_str)
            .filter(|l| !probs.iter().any(|(a, _)| a == l))
            .collect();
        let share = if unseen.is_empty() {
            0.0
        } else {
            (1.0 - given).max(0.0) / unseen.len() as f64
        };
        probs.extend(unseen.into_iter().map(|l| (l, share)));
        // Most probable first; equal ones in the task's label order.
        let rank = |l: &str| labels.iter().position(|x| x == l).unwrap_or(usize::MAX);
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(rank(a.0).cmp(&rank(b.0))));
        answer.top_k = probs
            .into_iter()
            .take(self.k)
            .map(|(label, probability)| LabelProbability {
                label: label.to_owned(),
                probability,
            })
            .collect();
        if self.hidden_logprobs {
            answer.logprobs = None;
        }
    }
}

/// The labels' probabilities from the upstream's log probabilities of the answer's first
/// token (OpenAI `logprobs.content[0].top_logprobs`): each alternative counts for the one
/// label it begins (compared as labels are, ignoring case, spacing and punctuation), and
/// the mass is normalised over the labels. `None` when no alternative begins a label.
fn first_token<'a>(
    labels: &'a [String],
    logprobs: &serde_json::Value,
) -> Option<Vec<(&'a str, f64)>> {
    use crate::types::normalize::normalize_label;
    let alternatives = logprobs["content"][0]["top_logprobs"].as_array()?;
    let normal: Vec<String> = labels.iter().map(|l| normalize_label(l)).collect();
    let mut mass = vec![0.0f64; labels.len()];
    for alt in alternatives {
        let (Some(token), Some(logprob)) = (alt["token"].as_str(), alt["logprob"].as_f64()) else {
            continue;
        };
        let t = normalize_label(token);
        if t.is_empty() {
            continue;
        }
        let mut begun = normal.iter().enumerate().filter(|(_, l)| l.starts_with(&t));
        if let (Some((i, _)), None) = (begun.next(), begun.next()) {
            mass[i] += logprob.exp();
        }
    }
    let total: f64 = mass.iter().sum();
    (total > 0.0).then(|| {
        labels
            .iter()
            .map(String::as_str)
            .zip(mass.iter().map(|m| m / total))
            .collect()
    })
}
