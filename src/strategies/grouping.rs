//! Answer equivalence for voting.
//!
//! Answers are grouped by their normalised form: labels and JSON arrive normalised from
//! `orchestrator::output` (canonical label, canonical JSON); text is normalised here
//! (lower case, runs of white space as one space, trailing `.`, `!`, `?` and quotes
//! dropped). With a similarity threshold, a text answer joins the first group (in order of
//! creation) whose first answer has a similarity at or above it. Similarity is the Jaccard
//! index |A ∩ B| / |A ∪ B| of the two answers' sets of lower-cased words (runs of letters
//! and digits); two empty sets have similarity 1.

use std::collections::BTreeSet;

use crate::config::raw::OutputKind;

/// One group of equivalent answers.
#[derive(Debug, Clone)]
pub struct Group {
    /// The normalised answer of the group's first member.
    pub key: String,
    /// Candidate indices, in arrival order.
    pub members: Vec<usize>,
    /// Sum of the members' vote weights.
    pub votes: f64,
    /// Arrival rank of the first member (0 = the first answer of the request).
    pub first_arrival: usize,
    words: BTreeSet<String>,
}

/// The groups of one request.
#[derive(Debug, Default, Clone)]
pub struct Groups {
    groups: Vec<Group>,
    similarity: Option<f64>,
    arrivals: usize,
}

/// Normalised text for grouping.
pub fn normalize_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    let trimmed = out.trim_end_matches(['.', '!', '?', '"', '\'']);
    trimmed.to_owned()
}

fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jaccard index of the two texts' word sets.
pub fn similarity(a: &str, b: &str) -> f64 {
    jaccard(&words(a), &words(b))
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

impl Groups {
    /// `similarity` applies to `text` answers only.
    pub fn new(kind: OutputKind, similarity: Option<f64>) -> Self {
        Self {
            groups: Vec::new(),
            similarity: similarity.filter(|_| kind == OutputKind::Text),
            arrivals: 0,
        }
    }

    /// Adds a valid answer (already normalised for its kind); returns its group's index.
    pub fn add(
        &mut self,
        normalized: &str,
        candidate: usize,
        weight: f64,
        kind: OutputKind,
    ) -> usize {
        let key = if kind == OutputKind::Text {
            normalize_text(normalized)
        } else {
            normalized.to_owned()
        };
        let arrival = self.arrivals;
        self.arrivals += 1;
        let found = match self.similarity {
            None => self.groups.iter().position(|g| g.key == key),
            Some(threshold) => {
                let w = words(&key);
                let found = self
                    .groups
                    .iter()
                    .position(|g| g.key == key || jaccard(&g.words, &w) >= threshold);
                if found.is_none() {
                    return self.push(key, w, candidate, weight, arrival);
                }
                found
            }
        };
        match found {
            Some(i) => {
                let g = &mut self.groups[i];
                g.members.push(candidate);
                g.votes += weight;
                i
            }
            None => self.push(key, BTreeSet::new(), candidate, weight, arrival),
        }
    }

    fn push(
        &mut self,
        key: String,
        words: BTreeSet<String>,
        candidate: usize,
        weight: f64,
        arrival: usize,
    ) -> usize {
        self.groups.push(Group {
            key,
            members: vec![candidate],
            votes: weight,
            first_arrival: arrival,
            words,
        });
        self.groups.len() - 1
    }

    pub fn all(&self) -> &[Group] {
        &self.groups
    }

    /// Answers added so far.
    pub fn answers(&self) -> usize {
        self.arrivals
    }

    /// The winning group: most votes; ties go to the group whose first member arrived first.
    pub fn leader(&self) -> Option<usize> {
        (0..self.groups.len()).min_by(|&a, &b| {
            let (ga, gb) = (&self.groups[a], &self.groups[b]);
            gb.votes
                .partial_cmp(&ga.votes)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(ga.first_arrival.cmp(&gb.first_arrival))
        })
    }

    /// Votes of the strongest group other than the leader (0 if none).
    pub fn runner_up_votes(&self) -> f64 {
        let leader = self.leader();
        self.groups
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != leader)
            .map(|(_, g)| g.votes)
            .fold(0.0, f64::max)
    }

    /// Whether the leader stays the leader whatever the calls still running answer, given
    /// the most weight they can add (`remaining`): a rival must not even tie.
    pub fn decided(&self, remaining: f64) -> bool {
        match self.leader() {
            None => false,
            Some(l) => {
                self.groups[l].votes > self.runner_up_votes().max(0.0) + remaining
                    && self.groups[l].votes > remaining
            }
        }
    }

    /// Sum of all votes.
    pub fn total_votes(&self) -> f64 {
        self.groups.iter().map(|g| g.votes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_normalisation_and_similarity() {
        assert_eq!(normalize_text("  The  Answer is 42. "), "the answer is 42");
        assert_eq!(
            similarity("Paris is the capital", "the capital is Paris!"),
            1.0
        );
        assert!((similarity("a b c d", "a b x y") - (2.0 / 6.0)).abs() < 1e-12);
        assert_eq!(similarity("", ""), 1.0);
    }

    #[test]
    fn majority_wins_and_ties_go_to_the_first_arrival() {
        let mut g = Groups::new(OutputKind::Label, None);
        g.add("B", 0, 1.0, OutputKind::Label);
        g.add("A", 1, 1.0, OutputKind::Label);
        assert_eq!(
            g.all()[g.leader().unwrap()].key,
            "B",
            "tie: first arrival wins"
        );
        g.add("A", 2, 1.0, OutputKind::Label);
        assert_eq!(g.all()[g.leader().unwrap()].key, "A");
        assert_eq!(g.all()[g.leader().unwrap()].members, vec![1, 2]);
    }

    #[test]
    fn similar_texts_share_a_group() {
        let mut g = Groups::new(OutputKind::Text, Some(0.6));
        g.add("Paris is the capital of France.", 0, 1.0, OutputKind::Text);
        g.add("The capital of France is Paris", 1, 1.0, OutputKind::Text);
        g.add("Lyon", 2, 1.0, OutputKind::Text);
        assert_eq!(g.all().len(), 2);
        assert_eq!(g.all()[0].members, vec![0, 1]);
    }

    #[test]
    fn decided_only_when_no_rival_can_tie() {
        let mut g = Groups::new(OutputKind::Label, None);
        g.add("A", 0, 1.0, OutputKind::Label);
        g.add("A", 1, 1.0, OutputKind::Label);
        assert!(!g.decided(2.0), "two more votes for B would tie");
        assert!(g.decided(1.0));
        g.add("B", 2, 1.0, OutputKind::Label);
        assert!(!g.decided(1.0));
        assert!(g.decided(0.0));
    }

    fn label() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["A".to_owned(), "B".to_owned(), "C".to_owned()])
    }

    proptest! {
        /// The winner depends only on the multiset of answers, except for ties, which go to
        /// the group whose first answer arrived first.
        #[test]
        fn winner_is_order_independent_but_for_ties(answers in prop::collection::vec(label(), 1..12), seed in any::<u64>()) {
            let winner = |order: &[String]| {
                let mut g = Groups::new(OutputKind::Label, None);
                for (i, a) in order.iter().enumerate() {
                    g.add(a, i, 1.0, OutputKind::Label);
                }
                let l = g.leader().unwrap();
                (g.all()[l].key.clone(), g.all()[l].votes)
            };
            let mut shuffled = answers.clone();
            fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
            let (a, va) = winner(&answers);
            let (b, vb) = winner(&shuffled);
            prop_assert_eq!(va, vb, "the winning vote count never depends on order");
            let top: Vec<_> = ["A", "B", "C"].iter().filter(|l| answers.iter().filter(|x| x == *l).count() as f64 == va).collect();
            if top.len() == 1 {
                prop_assert_eq!(a, b);
            } else {
                let first = |order: &[String]| order.iter().find(|x| top.iter().any(|t| **t == x.as_str())).cloned().unwrap();
                prop_assert_eq!(a, first(&answers));
                prop_assert_eq!(b, first(&shuffled));
            }
        }

        /// Grouping is an equivalence for labels and JSON: every answer groups with itself,
        /// and two answers share a group whichever comes first.
        #[test]
        fn grouping_is_reflexive_and_symmetric(a in "[a-c]{1,3}", b in "[a-c]{1,3}", json in any::<bool>()) {
            let kind = if json { OutputKind::Json } else { OutputKind::Label };
            let same = |x: &str, y: &str| {
                let mut g = Groups::new(kind, Some(0.5));
                g.add(x, 0, 1.0, kind) == g.add(y, 1, 1.0, kind)
            };
            prop_assert!(same(&a, &a));
            prop_assert_eq!(same(&a, &b), same(&b, &a));
        }
    }
}
