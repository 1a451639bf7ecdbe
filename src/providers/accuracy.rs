//! How often each provider is right on each task, learned online from the ensembles' own
//! answers and from callers' feedback.
//!
//! For every (task, provider) the pool keeps two sums: `seen`, the answers the provider
//! gave that were graded, and `correct`, the credit they earned. An answer's credit is the
//! probability that it was right: inferred from the *other* providers' answers to the same
//! request (see `strategies::posterior::credits`: leave-one-out, so a provider never grades
//! itself), or 0 or 1 when a caller said what the right answer was (`POST /v1/feedback`),
//! which replaces the inferred credit. This is Dawid–Skene estimation of one accuracy per
//! provider, done incrementally: each graded answer is one E-step's expectation, added once.
//!
//! The estimate is the mean of a Beta prior updated by the sums:
//! `accuracy = (PRIOR_MEAN × PRIOR_STRENGTH + correct) / (PRIOR_STRENGTH + seen)`. Every
//! provider starts at [`PRIOR_MEAN`], the same for all (so a new provider's vote counts like
//! the others' until evidence says otherwise), and one answer moves the estimate by at most
//! `1 / (PRIOR_STRENGTH + 1)`.
//!
//! Kept by task and provider name outside the config snapshot: a reload keeps the estimates
//! of the providers it keeps (same model), and drops the others ([`Accuracy::retain`]).
//! With Redis configured, replicas add their sums into one shared hash and read the
//! fleet's totals back (`redis_link`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

/// What a provider's accuracy is believed to be before any evidence.
pub const PRIOR_MEAN: f64 = 0.7;
/// How many graded answers the prior counts as: one answer moves the estimate by at most
/// 1/11.
pub const PRIOR_STRENGTH: f64 = 10.0;

/// One (task, provider)'s sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Credit earned: the sum of the graded answers' probabilities of being right.
    pub correct: f64,
    /// Answers graded.
    pub seen: f64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.correct += other.correct;
        self.seen += other.seen;
    }
}

/// A provider's accuracy on a task, as the votes use it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The posterior mean, 0..1.
    pub accuracy: f64,
    /// Graded answers behind it (this replica's and, with Redis, the fleet's).
    pub evidence: f64,
}

impl Estimate {
    /// The estimate from sums.
    pub fn from_counts(c: Counts) -> Self {
        let seen = c.seen.max(0.0);
        let correct = c.correct.clamp(0.0, seen);
        Self {
            accuracy: (PRIOR_MEAN * PRIOR_STRENGTH + correct) / (PRIOR_STRENGTH + seen),
            evidence: seen,
        }
    }

    /// No evidence: the prior.
    pub const PRIOR: Self = Self {
        accuracy: PRIOR_MEAN,
        evidence: 0.0,
    };
}

#[derive(Debug, Default)]
struct Cell {
    /// What this replica learned, all of it.
    local: Counts,
    /// This replica's sums not yet added to the shared hash.
    unsent: Counts,
    /// The other replicas' sums, as last read from the shared hash.
    remote: Counts,
}

impl Cell {
    fn counts(&self) -> Counts {
        let mut c = self.local;
        c.add(self.remote);
        c
    }
}

/// One task's cells, by provider.
type ByProvider = HashMap<String, Arc<Mutex<Cell>>>;

/// Accuracy by task, then provider; and the recent requests callers may give feedback on.
#[derive(Default)]
pub struct Accuracy {
    by_task: RwLock<HashMap<String, ByProvider>>,
    ledger: Mutex<Ledger>,
}

/// One valid answer of a remembered request.
#[derive(Debug, Clone, Serialize)]
pub struct GradedAnswer {
    pub provider: String,
    /// The normalised answer.
    pub answer: String,
    /// Its group's posterior when the request was answered (ensembles).
    pub probability: Option<f64>,
    /// What it earned as evidence so far (`None`: never graded).
    pub credit: Option<f64>,
}

/// A request remembered for feedback: who asked, the task, the answer returned and every
/// valid answer given.
#[derive(Debug, Clone)]
pub struct Graded {
    pub tenant: Option<Arc<str>>,
    pub task: String,
    /// The normalised answer returned (`None`: the request failed with its candidates, no
    /// consensus or too little confidence).
    pub winner: Option<String>,
    pub answers: Vec<GradedAnswer>,
}

/// What a caller says of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// The right answer, normalised as the task's answers are.
    Answer(String),
    /// The answer returned was right.
    Good,
    /// The answer returned was wrong.
    Bad,
}

/// Why feedback was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, no longer remembered, or another tenant's.
    Unknown,
    /// A verdict on a request that returned no answer.
    Unanswered,
}

/// One answer regraded by feedback.
#[derive(Debug, Clone, Serialize)]
pub struct Regraded {
    pub provider: String,
    pub answer: String,
    /// The credit it had (`None`: it had not been graded).
    pub credit_before: Option<f64>,
    pub credit: f64,
    /// The provider's accuracy on the task now.
    pub accuracy: Estimate,
}

/// Recent requests by id, oldest first out.
#[derive(Default)]
struct Ledger {
    by_id: HashMap<String, Arc<Mutex<Graded>>>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Ledger {
    fn insert(&mut self, id: String, graded: Arc<Mutex<Graded>>) {
        if self.capacity == 0 {
            return;
        }
        if self.by_id.insert(id.clone(), graded).is_none() {
            self.order.push_back(id);
        }
        self.evict();
    }

    fn evict(&mut self) {
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// One row of [`Accuracy::all`].
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub task: String,
    pub provider: String,
    #[serde(flatten)]
    pub estimate: Estimate,
    /// The credit behind the estimate.
    pub correct: f64,
}

impl Accuracy {
    /// The current estimate for `provider` on `task` (the prior when nothing was learned).
    pub fn get(&self, task: &str, provider: &str) -> Estimate {
        self.by_task
            .read()
            .get(task)
            .and_then(|p| p.get(provider))
            .map_or(Estimate::PRIOR, |cell| {
                Estimate::from_counts(cell.lock().counts())
            })
    }

    /// Adds one graded answer: `credit` (0..=1) is the probability that it was right.
    pub fn grade(&self, task: &str, provider: &str, credit: f64) {
        self.add(
            task,
            provider,
            Counts {
                correct: credit.clamp(0.0, 1.0),
                seen: 1.0,
            },
        );
    }

    /// Replaces an answer's earlier credit by a new one (feedback: the caller said whether
    /// it was right), without counting the answer twice.
    pub fn regrade(&self, task: &str, provider: &str, was: f64, now: f64) {
        self.add(
            task,
            provider,
            Counts {
                correct: now.clamp(0.0, 1.0) - was.clamp(0.0, 1.0),
                seen: 0.0,
            },
        );
    }

    fn add(&self, task: &str, provider: &str, delta: Counts) {
        let cell = self.cell(task, provider);
        let mut cell = cell.lock();
        cell.local.add(delta);
        cell.unsent.add(delta);
        let e = Estimate::from_counts(cell.counts());
        drop(cell);
        crate::telemetry::metrics::accuracy(task, provider, e.accuracy, e.evidence);
    }

    fn cell(&self, task: &str, provider: &str) -> Arc<Mutex<Cell>> {
        if let Some(cell) = self.by_task.read().get(task).and_then(|p| p.get(provider)) {
            return Arc::clone(cell);
        }
        let mut by_task = self.by_task.write();
        Arc::clone(
            by_task
                .entry(task.to_owned())
                .or_default()
                .entry(provider.to_owned())
                .or_default(),
        )
    }

    /// How many requests are remembered for feedback (`[learning] feedback_window`).
    pub fn set_window(&self, capacity: usize) {
        let mut ledger = self.ledger.lock();
        ledger.capacity = capacity;
        ledger.evict();
    }

    /// Whether answered requests are remembered for feedback (the window is not 0).
    pub fn remembers(&self) -> bool {
        self.ledger.lock().capacity > 0
    }

    /// Remembers an answered request for feedback.
    pub fn remember(&self, request_id: &str, graded: Graded) {
        let mut ledger = self.ledger.lock();
        if ledger.capacity > 0 {
            ledger.insert(request_id.to_owned(), Arc::new(Mutex::new(graded)));
        }
    }

    /// Feedback on `request_id` goes to `original`'s answers (a cache hit or a joined call
    /// returned them).
    pub fn alias(&self, request_id: &str, original: &str) {
        let mut ledger = self.ledger.lock();
        if let Some(g) = ledger.by_id.get(original).cloned() {
            ledger.insert(request_id.to_owned(), g);
        }
    }

    /// The remembered request `request_id` if `tenant` made it.
    fn find(&self, request_id: &str, tenant: Option<&str>) -> Option<Arc<Mutex<Graded>>> {
        let g = self.ledger.lock().by_id.get(request_id).cloned()?;
        let made_it = g.lock().tenant.as_deref() == tenant;
        made_it.then_some(g)
    }

    /// The task of the remembered request `request_id`, if `tenant` made it.
    pub fn task_of(&self, request_id: &str, tenant: Option<&str>) -> Option<String> {
        self.find(request_id, tenant).map(|g| g.lock().task.clone())
    }

    /// Regrades the answers of `request_id` by what its caller says. The right answer earns
    /// 1 and the others 0; `Bad` gives the answer returned 0 and the others their share of
    /// what is left of the posterior. Feedback again on the same request replaces the
    /// earlier.
    pub fn feedback(
        &self,
        request_id: &str,
        tenant: Option<&str>,
        truth: &Truth,
    ) -> Result<Vec<Regraded>, Refused> {
        let g = self.find(request_id, tenant).ok_or(Refused::Unknown)?;
        let mut g = g.lock();
        let winner = match (&g.winner, truth) {
            (Some(w), _) => w.clone(),
            (None, Truth::Answer(_)) => String::new(),
            (None, Truth::Good | Truth::Bad) => return Err(Refused::Unanswered),
        };
        let p_winner = g
            .answers
            .iter()
            .find(|a| a.answer == winner)
            .and_then(|a| a.probability)
            .unwrap_or(1.0);
        let task = g.task.clone();
        let mut out = Vec::with_capacity(g.answers.len());
        for a in &mut g.answers {
            let now = match truth {
                Truth::Answer(t) => f64::from(u8::from(a.answer == *t)),
                Truth::Good => f64::from(u8::from(a.answer == winner)),
                Truth::Bad if a.answer == winner => 0.0,
                Truth::Bad if 1.0 - p_winner > 1e-9 => {
                    (a.probability.unwrap_or(0.0) / (1.0 - p_winner)).clamp(0.0, 1.0)
                }
                Truth::Bad => 0.0,
            };
            match a.credit {
                Some(was) => self.regrade(&task, &a.provider, was, now),
                None => self.grade(&task, &a.provider, now),
            }
            out.push(Regraded {
                provider: a.provider.clone(),
                answer: a.answer.clone(),
                credit_before: a.credit,
                credit: now,
                accuracy: self.get(&task, &a.provider),
            });
            a.credit = Some(now);
        }
        Ok(out)
    }

    /// Every (task, provider) with evidence, sorted.
    pub fn all(&self) -> Vec<Row> {
        let by_task = self.by_task.read();
        let mut rows: Vec<Row> = by_task
            .iter()
            .flat_map(|(task, providers)| {
                providers.iter().map(move |(provider, cell)| {
                    let counts = cell.lock().counts();
                    Row {
                        task: task.clone(),
                        provider: provider.clone(),
                        estimate: Estimate::from_counts(counts),
                        correct: counts.correct,
                    }
                })
            })
            .collect();
        rows.sort_by(|a, b| (&a.task, &a.provider).cmp(&(&b.task, &b.provider)));
        rows
    }

    /// Keeps what `keep(task, provider)` allows (a reload drops removed tasks, and
    /// providers that were removed or now serve another model).
    pub fn retain(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut by_task = self.by_task.write();
        by_task.retain(|task, providers| {
            providers.retain(|provider, _| keep(task, provider));
            !providers.is_empty()
        });
    }

    /// This replica's sums not yet shared, taken (they are cleared): for the shared hash.
    pub fn take_unsent(&self) -> Vec<(String, String, Counts)> {
        let by_task = self.by_task.read();
        let mut out = Vec::new();
        for (task, providers) in by_task.iter() {
            for (provider, cell) in providers {
                let mut cell = cell.lock();
                if cell.unsent != Counts::default() {
                    out.push((
                        task.clone(),
                        provider.clone(),
                        std::mem::take(&mut cell.unsent),
                    ));
                }
            }
        }
        out
    }

    /// Puts back sums that could not be shared (Redis was unreachable).
    pub fn unsend(&self, task: &str, provider: &str, counts: Counts) {
        self.cell(task, provider).lock().unsent.add(counts);
    }

    /// The fleet's totals as read from the shared hash: what this replica did not add
    /// itself becomes the other replicas' share (`fleet − local`, never below zero).
    pub fn set_fleet(&self, task: &str, provider: &str, fleet: Counts) {
        let cell = self.cell(task, provider);
        let mut cell = cell.lock();
        // What this replica added and the hash already holds: local less what is unsent.
        let shared_local = Counts {
            correct: cell.local.correct - cell.unsent.correct,
            seen: cell.local.seen - cell.unsent.seen,
        };
        cell.remote = Counts {
            correct: (fleet.correct - shared_local.correct).max(0.0),
            seen: (fleet.seen - shared_local.seen).max(0.0),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_new_provider_starts_at_the_prior_and_one_answer_moves_it_little() {
        let a = Accuracy::default();
        assert_eq!(a.get("t", "p"), Estimate::PRIOR);
        a.grade("t", "p", 0.0);
        let after = a.get("t", "p").accuracy;
        assert!((after - 7.0 / 11.0).abs() < 1e-12, "{after}");
        assert!(PRIOR_MEAN - after <= 1.0 / (PRIOR_STRENGTH + 1.0) + 1e-12);
        assert_eq!(a.get("t", "other"), Estimate::PRIOR, "per provider");
        assert_eq!(a.get("u", "p"), Estimate::PRIOR, "per task");
    }

    #[test]
    fn regrading_replaces_the_credit_without_counting_twice() {
        let a = Accuracy::default();
        a.grade("t", "p", 0.9);
        a.regrade("t", "p", 0.9, 0.0);
        let e = a.get("t", "p");
        assert_eq!(e.evidence, 1.0);
        assert!((e.accuracy - 7.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn retain_drops_what_a_reload_removed() {
        let a = Accuracy::default();
        a.grade("t", "p", 1.0);
        a.grade("t", "q", 1.0);
        a.retain(|_, p| p == "p");
        assert_eq!(a.get("t", "q"), Estimate::PRIOR);
        assert!(a.get("t", "p").evidence == 1.0);
        assert_eq!(a.all().len(), 1);
    }

    #[test]
    fn fleet_totals_add_the_other_replicas_share_once() {
        let a = Accuracy::default();
        a.grade("t", "p", 1.0);
        let sent = a.take_unsent();
        assert_eq!(sent.len(), 1);
        assert!(a.take_unsent().is_empty(), "taken once");
        // The hash holds this replica's 1 answer and another replica's 3 (2 right).
        a.set_fleet(
            "t",
            "p",
            Counts {
                correct: 3.0,
                seen: 4.0,
            },
        );
        let e = a.get("t", "p");
        assert_eq!(e.evidence, 4.0);
        assert!((e.accuracy - (7.0 + 3.0) / 14.0).abs() < 1e-12);
        // A new local answer not yet sent is not counted twice when the old total comes back.
        a.grade("t", "p", 0.0);
        a.set_fleet(
            "t",
            "p",
            Counts {
                correct: 3.0,
                seen: 4.0,
            },
        );
        assert_eq!(a.get("t", "p").evidence, 5.0);
    }

    fn remembered(a: &Accuracy) {
        // A and B agreed (credit 0.9 each), C said D (0.1); A was returned.
        for (p, c) in [("a", 0.9), ("b", 0.9), ("c", 0.1)] {
            a.grade("t", p, c);
        }
        a.remember(
            "r1",
            Graded {
                tenant: Some(Arc::from("alice")),
                task: "t".into(),
                winner: Some("A".into()),
                answers: vec![
                    GradedAnswer {
                        provider: "a".into(),
                        answer: "A".into(),
                        probability: Some(0.9),
                        credit: Some(0.9),
                    },
                    GradedAnswer {
                        provider: "b".into(),
                        answer: "A".into(),
                        probability: Some(0.9),
                        credit: Some(0.9),
                    },
                    GradedAnswer {
                        provider: "c".into(),
                        answer: "D".into(),
                        probability: Some(0.1),
                        credit: Some(0.1),
                    },
                ],
            },
        );
    }

    #[test]
    fn feedback_replaces_the_inferred_credit_for_its_tenant_only() {
        let a = Accuracy::default();
        a.set_window(10);
        remembered(&a);
        assert_eq!(
            a.feedback("r1", Some("mallory"), &Truth::Bad).unwrap_err(),
            Refused::Unknown
        );
        assert!(a.feedback("r1", None, &Truth::Bad).is_err());
        assert!(a.feedback("nope", Some("alice"), &Truth::Bad).is_err());
        assert_eq!(a.task_of("r1", Some("alice")).as_deref(), Some("t"));

        let r = a
            .feedback("r1", Some("alice"), &Truth::Answer("D".into()))
            .expect("alice's");
        let credits: Vec<f64> = r.iter().map(|g| g.credit).collect();
        assert_eq!(credits, vec![0.0, 0.0, 1.0]);
        assert_eq!(r[2].credit_before, Some(0.1));
        // c: (7 + 1) / 11, one answer, not two.
        assert!((a.get("t", "c").accuracy - 8.0 / 11.0).abs() < 1e-12);
        assert_eq!(a.get("t", "c").evidence, 1.0);
        // Said again: replaces, does not add.
        let r = a
            .feedback("r1", Some("alice"), &Truth::Good)
            .expect("again");
        assert_eq!(
            r.iter().map(|g| g.credit).collect::<Vec<_>>(),
            vec![1.0, 1.0, 0.0]
        );
        assert!((a.get("t", "a").accuracy - 8.0 / 11.0).abs() < 1e-12);
        // Bad: the returned answer earns 0 and the rest share what is left.
        let r = a.feedback("r1", Some("alice"), &Truth::Bad).expect("bad");
        assert_eq!(
            r.iter().map(|g| g.credit).collect::<Vec<_>>(),
            vec![0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn the_ledger_forgets_the_oldest_and_follows_aliases() {
        let a = Accuracy::default();
        a.set_window(2);
        remembered(&a);
        a.alias("hit", "r1");
        assert_eq!(a.task_of("hit", Some("alice")).as_deref(), Some("t"));
        a.alias("hit2", "r1");
        assert!(a.task_of("r1", Some("alice")).is_none(), "the oldest went");
        assert!(a.task_of("hit2", Some("alice")).is_some());
        a.set_window(0);
        assert!(a.task_of("hit2", Some("alice")).is_none());
        remembered(&a);
        assert!(
            a.task_of("r1", Some("alice")).is_none(),
            "window 0 keeps nothing"
        );
    }

    proptest! {
        /// The estimate stays a probability, and more credit never lowers it.
        #[test]
        fn estimate_is_bounded_and_monotone(credits in prop::collection::vec(0.0f64..=1.0, 0..50), extra in 0.0f64..=1.0) {
            let a = Accuracy::default();
            for c in &credits {
                a.grade("t", "p", *c);
            }
            let before = a.get("t", "p");
            prop_assert!((0.0..=1.0).contains(&before.accuracy));
            let b = Accuracy::default();
            for c in &credits {
                b.grade("t", "p", *c);
            }
            b.grade("t", "p", extra);
            a.grade("t", "p", 0.0);
            prop_assert!(b.get("t", "p").accuracy >= a.get("t", "p").accuracy - 1e-12);
        }
    }
}
