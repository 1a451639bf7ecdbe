//! Ensembles that learn, on tokio's paused clock against scripted in-process providers:
//! the adaptive stopping rule (exact call counts), the order of the waves, `min_confidence`
//! under each rule, accuracies learned from a simulated stream, and what a reload keeps.

use std::sync::Arc;

use llm_pool::config::load_str;
use llm_pool::error::PoolError;
use llm_pool::live::Snapshot;
use llm_pool::orchestrator::{self, PoolRequest};
use llm_pool::providers::{Prompt, ProviderRequest};
use llm_pool::testing::{FakeProvider, ProviderCall as Call, Responder};
use llm_pool::types::{Answer, CandidateStatus};

fn request(input: &str) -> PoolRequest {
    PoolRequest {
        task: Some("t".into()),
        input: Some(input.into()),
        request_id: "r".into(),
        ..Default::default()
    }
}

fn fake(name: &str, ms: u64, text: &str) -> Arc<FakeProvider> {
    FakeProvider::new(name, Call::reply_after(ms, text))
}

const LABELS: &str = "output = \"label\"\nlabels = [\"A\", \"B\", \"C\"]\n";

fn snapshot(task: &str, providers: &[Arc<FakeProvider>]) -> Snapshot {
    let with: Vec<(&Arc<FakeProvider>, &str)> = providers.iter().map(|p| (p, "")).collect();
    llm_pool::testing::snapshot(task, &with, None)
}

async fn answer(snap: &Snapshot) -> Answer {
    orchestrator::handle(snap, request("question?"))
        .await
        .expect("an answer")
}

/// The posterior of an answer given by `m` voters of accuracy `p` among `k` labels, no other
/// answer given.
fn unanimous(m: i32, p: f64, k: f64) -> f64 {
    let s = (m as f64) * (p * (k - 1.0) / (1.0 - p)).ln();
    s.exp() / (s.exp() + (k - 1.0))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn adaptive_voting_stops_at_the_target_with_exact_call_counts() {
    // Three labels, every provider at the prior (0.7): two agreeing answers give 0.916,
    // three give 0.981. With a target of 0.95 the first wave is three calls, and they agree.
    assert!(unanimous(2, 0.7, 3.0) < 0.95 && unanimous(3, 0.7, 3.0) >= 0.95);
    let ps: Vec<_> = (0..5).map(|i| fake(&format!("p{i}"), 10, "A")).collect();
    let snap = snapshot(
        &format!("strategy = \"voting\"\nn = 5\nconfidence = 0.95\n{LABELS}"),
        &ps,
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    let d = &ans.decision;
    assert_eq!(d.candidates.len(), 3, "{:?}", d.candidates);
    assert_eq!(d.stopped.as_deref(), Some("confident"));
    assert!((d.confidence.unwrap() - unanimous(3, 0.7, 3.0)).abs() < 1e-9);
    let calls: Vec<usize> = ps.iter().map(|p| p.calls()).collect();
    assert_eq!(calls, vec![1, 1, 1, 0, 0], "the last two were never asked");

    // Without a target, all five are asked (early stop still ends it when decided).
    let ps: Vec<_> = (0..5).map(|i| fake(&format!("p{i}"), 10, "A")).collect();
    let snap = snapshot(
        &format!("strategy = \"voting\"\nn = 5\nearly_stop = false\n{LABELS}"),
        &ps,
    );
    let d = answer(&snap).await.decision;
    assert_eq!(d.candidates.len(), 5);
    assert_eq!(d.stopped.as_deref(), Some("all_answered"));
    assert!((d.confidence.unwrap() - unanimous(5, 0.7, 3.0)).abs() < 1e-9);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_disagreement_draws_the_fewest_calls_that_could_settle_it() {
    // A, A, B: the leader A is at 0.794. One more A would give 0.947, two 0.988: the second
    // wave is two calls, and then it stops, five of seven asked.
    let answers = ["A", "A", "B", "A", "A", "A", "A"];
    let ps: Vec<_> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| fake(&format!("p{i}"), 10 * (i as u64 + 1), a))
        .collect();
    let snap = snapshot(
        &format!("strategy = \"voting\"\nn = 7\nconfidence = 0.95\n{LABELS}"),
        &ps,
    );
    let d = answer(&snap).await.decision;
    assert_eq!(d.candidates.len(), 5, "{:?}", d.candidates);
    assert_eq!(d.stopped.as_deref(), Some("confident"));
    let calls: Vec<usize> = ps.iter().map(|p| p.calls()).collect();
    assert_eq!(calls, vec![1, 1, 1, 1, 1, 0, 0]);
    assert!(d.confidence.unwrap() >= 0.95);

    // When no target can be reached, every call is made: n is the most.
    let ps: Vec<_> = (0..4)
        .map(|i| fake(&format!("p{i}"), 10, ["A", "B", "C", "B"][i]))
        .collect();
    let snap = snapshot(
        &format!("strategy = \"voting\"\nn = 4\nconfidence = 0.99\nearly_stop = false\n{LABELS}"),
        &ps,
    );
    let d = answer(&snap).await.decision;
    assert_eq!(d.candidates.len(), 4);
    assert_eq!(d.stopped.as_deref(), Some("all_answered"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_most_accurate_provider_is_asked_first() {
    let ps: Vec<_> = (0..4).map(|i| fake(&format!("p{i}"), 10, "A")).collect();
    let snap = snapshot(
        &format!("strategy = \"weighted\"\nn = 4\nconfidence = 0.95\n{LABELS}"),
        &ps,
    );
    // p3 was right 40 times: (7 + 40) / (10 + 40) = 0.94.
    for _ in 0..40 {
        snap.accuracy.grade("t", "p3", 1.0);
    }
    let d = answer(&snap).await.decision;
    assert_eq!(d.candidates[0].provider, "p3");
    assert_eq!(d.candidates[0].accuracy, Some(0.94));
    assert_eq!(d.candidates[0].evidence, Some(40.0));
    // 0.94 alone is short of 0.95; with one more answer at the prior it is not: two calls.
    assert_eq!(d.candidates.len(), 2);
    assert_eq!(d.stopped.as_deref(), Some("confident"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn low_confidence_under_each_rule() {
    let make = || vec![fake("a", 10, "A"), fake("b", 20, "B"), fake("c", 30, "A")];
    let base = format!("strategy = \"voting\"\nmin_confidence = 0.9\n{LABELS}");
    // A, B, A at the prior: A's posterior is 0.794.
    let snap = snapshot(&base, &make());
    let err = orchestrator::handle(&snap, request("q"))
        .await
        .expect_err("abstains");
    assert!(
        matches!(err, PoolError::LowConfidence { confidence, min_confidence, .. }
            if (confidence - 0.794).abs() < 0.001 && min_confidence == 0.9),
        "{err:?}"
    );
    assert_eq!(err.kind().http_status(), 409);
    assert_eq!(err.kind().as_str(), "low_confidence");
    let d = err.decision().expect("carries the candidates");
    assert_eq!(d.candidates.len(), 3);
    assert_eq!(d.degraded, vec!["low_confidence"]);

    let snap = snapshot(&format!("{base}on_low_confidence = \"best\"\n"), &make());
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    assert_eq!(ans.decision.fallbacks, vec!["low_confidence:best"]);
    assert_eq!(ans.decision.degraded, vec!["low_confidence"]);

    // Escalate: the judge picks among the groups.
    let ps = make();
    let judge =
        llm_pool::testing::judge_preferring("judge", "B", std::time::Duration::from_millis(5));
    let with: Vec<(&Arc<FakeProvider>, &str)> = ps.iter().map(|p| (p, "")).collect();
    let snap = llm_pool::testing::snapshot(
        &format!("{base}on_low_confidence = \"escalate\"\n"),
        &with,
        Some(&judge),
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "B");
    assert_eq!(ans.decision.fallbacks, vec!["low_confidence:judge"]);
    let d = &ans.decision;
    assert!(
        d.confidence.unwrap() < 0.2,
        "the confidence is the chosen answer's"
    );

    // Escalate without a judge is refused when the config is loaded.
    let text = format!(
        "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n\
         [tasks.t]\nproviders = [\"a\"]\nstrategy = \"voting\"\nmin_confidence = 0.9\n\
         on_low_confidence = \"escalate\"\n{LABELS}"
    );
    let errors = load_str(&text, std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect_err("needs a judge")
        .to_string();
    assert!(errors.contains("tasks.t.judge"), "{errors}");
}

/// A provider of accuracy `p` on yes/no questions whose input ends with the right answer:
/// its answers are drawn from a seeded generator, not scripted per item.
fn simulated(name: &str, p: f64, seed: u64) -> Arc<FakeProvider> {
    let rng = Arc::new(parking_lot::Mutex::new(fastrand::Rng::with_seed(seed)));
    let respond: Responder = Arc::new(move |req: &ProviderRequest| {
        let Prompt::Chat(messages) = &req.prompt else {
            return String::new();
        };
        let truth = messages
            .last()
            .and_then(|m| m.content.rsplit(' ').next())
            .unwrap_or("yes")
            .to_owned();
        let right = rng.lock().f64() < p;
        match (right, truth.as_str()) {
            (true, t) => t.to_owned(),
            (false, "yes") => "no".into(),
            (false, _) => "yes".into(),
        }
    });
    FakeProvider::new(
        name,
        Call::With {
            delay: std::time::Duration::from_millis(10),
            respond,
        },
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn weighted_learns_which_providers_to_trust_from_its_own_answers() {
    // Three good providers and two that answer at random, on yes/no. Unsupervised, the
    // answers alone tell them apart: the good ones agree with each other.
    let accuracies = [0.90, 0.85, 0.80, 0.50, 0.50];
    let ps: Vec<_> = accuracies
        .iter()
        .enumerate()
        .map(|(i, p)| simulated(&format!("p{i}"), *p, 100 + i as u64))
        .collect();
    let snap = snapshot(
        "strategy = \"weighted\"\nearly_stop = false\noutput = \"label\"\nlabels = [\"yes\", \"no\"]\n",
        &ps,
    );
    let mut truth_rng = fastrand::Rng::with_seed(7);
    let (mut right, mut scored) = (0, 0);
    for item in 0..600 {
        let truth = if truth_rng.bool() { "yes" } else { "no" };
        let ans = orchestrator::handle(&snap, request(&format!("item {item}: {truth}")))
            .await
            .expect("an answer");
        assert!(
            ans.decision
                .candidates
                .iter()
                .all(|c| c.status == CandidateStatus::Ok)
        );
        if item >= 200 {
            scored += 1;
            right += usize::from(ans.text == truth);
        }
    }
    let learned: Vec<f64> = (0..5)
        .map(|i| snap.accuracy.get("t", &format!("p{i}")).accuracy)
        .collect();
    // Each estimate lands near its provider's accuracy, and the random ones below every
    // good one.
    for (p, truth) in learned.iter().zip(accuracies) {
        assert!((p - truth).abs() < 0.1, "{learned:?}");
    }
    assert!(
        learned[3].max(learned[4]) < learned[2] - 0.15,
        "{learned:?}"
    );
    // After the warm-up WEIGHTED beats plurality of the same five (by Monte Carlo, 0.94 with
    // log-odds weights and 0.87 by plurality).
    let accuracy = right as f64 / scored as f64;
    assert!(accuracy > 0.9, "{accuracy} ({learned:?})");
}

#[test]
fn a_reload_keeps_the_accuracies_of_the_providers_it_keeps() {
    let config = |model_b: &str, task_u: bool| {
        let mut text = format!(
            "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n\
             [providers.b]\nkind = \"openai\"\nmodel = \"{model_b}\"\nendpoints = [\"http://127.0.0.1:9\"]\n\
             [tasks.t]\nproviders = [\"a\", \"b\"]\nstrategy = \"voting\"\n{LABELS}"
        );
        if task_u {
            text.push_str("[tasks.u]\nproviders = [\"a\"]\n");
        }
        load_str(&text, std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).expect("valid")
    };
    let first = Snapshot::prepare(config("m", true), None).expect("prepares");
    first.accuracy.grade("t", "a", 1.0);
    first.accuracy.grade("t", "b", 1.0);
    first.accuracy.grade("u", "a", 1.0);
    // b now serves another model, and task u is gone.
    let second = Snapshot::prepare(config("m2", false), Some(&first)).expect("prepares");
    assert_eq!(second.accuracy.get("t", "a").evidence, 1.0, "kept");
    assert_eq!(second.accuracy.get("t", "b").evidence, 0.0, "another model");
    assert_eq!(
        second.accuracy.get("u", "a").evidence,
        0.0,
        "the task is gone"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_decided_vote_below_min_confidence_asks_on() {
    let make = || {
        ["A", "A", "A", "B", "A"]
            .iter()
            .enumerate()
            .map(|(i, a)| fake(&format!("p{i}"), 10 * (i as u64 + 1), a))
            .collect::<Vec<_>>()
    };
    // Three A's decide the vote (two calls left cannot tie it) at a posterior of 0.981.
    let ps = make();
    let snap = snapshot(
        &format!("strategy = \"voting\"\nmin_confidence = 0.98\n{LABELS}"),
        &ps,
    );
    let d = answer(&snap).await.decision;
    assert_eq!(d.candidates.len(), 5);
    assert_eq!(
        d.candidates
            .iter()
            .filter(|c| c.status == CandidateStatus::Ok)
            .count(),
        3
    );
    assert_eq!(d.stopped.as_deref(), Some("decided"));
    // Asked for 0.985, the vote goes on: B, then A, 0.988.
    let ps = make();
    let snap = snapshot(
        &format!("strategy = \"voting\"\nmin_confidence = 0.985\n{LABELS}"),
        &ps,
    );
    let ans = answer(&snap).await;
    let d = &ans.decision;
    assert!(
        d.candidates.iter().all(|c| c.status == CandidateStatus::Ok),
        "{:?}",
        d.candidates
    );
    assert_eq!(d.stopped.as_deref(), Some("all_answered"));
    assert!(d.confidence.unwrap() >= 0.985 && d.degraded.is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn weighted_asks_a_provider_alone_when_no_others_could_outvote_it() {
    // Yes/no; p0 at 0.94 (log-odds 2.75) outweighs three providers at the prior (0.847
    // each, 2.54 together): its answer alone decides the weighted vote.
    let ps: Vec<_> = (0..4).map(|i| fake(&format!("p{i}"), 10, "no")).collect();
    let snap = snapshot(
        "strategy = \"weighted\"\nconfidence = 0.99\noutput = \"label\"\nlabels = [\"yes\", \"no\"]\n",
        &ps,
    );
    for _ in 0..40 {
        snap.accuracy.grade("t", "p0", 1.0);
    }
    let d = answer(&snap).await.decision;
    assert_eq!(d.candidates.len(), 1, "{:?}", d.candidates);
    assert_eq!(d.candidates[0].provider, "p0");
    assert_eq!(d.stopped.as_deref(), Some("decided"));
    assert!((d.confidence.unwrap() - 0.94).abs() < 1e-9);
    let calls: Vec<usize> = ps.iter().map(|p| p.calls()).collect();
    assert_eq!(calls, vec![1, 0, 0, 0]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cascade_accepts_a_tier_on_its_learned_confidence() {
    let task =
        format!("strategy = \"cascade\"\naccept = \"confidence\"\nmin_confidence = 0.8\n{LABELS}");
    let tiers = || (fake("cheap", 10, "A"), fake("strong", 10, "B"));
    let with = |cheap: &Arc<FakeProvider>, strong: &Arc<FakeProvider>| {
        llm_pool::testing::snapshot(
            &task,
            &[(cheap, ""), (strong, "cost_per_1k_tokens = 1.0")],
            None,
        )
    };
    // At the prior (0.7) one answer is not enough; two that agree are (0.916).
    let (cheap, strong) = tiers();
    let snap = with(&cheap, &strong);
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    assert_eq!(ans.decision.candidates.len(), 2);
    assert!((ans.decision.confidence.unwrap() - unanimous(2, 0.7, 3.0)).abs() < 1e-9);
    assert!(ans.decision.tiers[0].accepted, "{:?}", ans.decision.tiers);
    assert_eq!(strong.calls(), 0);

    // A tier known to be right (0.94) is accepted on one answer.
    for _ in 0..40 {
        snap.accuracy.grade("t", "cheap", 1.0);
    }
    let ans = answer(&snap).await;
    assert_eq!(ans.decision.candidates.len(), 1);
    assert_eq!(cheap.calls(), 3);

    // One known to be wrong is passed on, and the next tier answers.
    let (cheap, strong) = tiers();
    let snap = with(&cheap, &strong);
    for _ in 0..40 {
        snap.accuracy.grade("t", "cheap", 0.0);
    }
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "B");
    assert!(!ans.decision.tiers[0].accepted);
    assert!(ans.decision.tiers[1].accepted);
    assert!(
        ans.decision.tiers[0].reason.starts_with("confidence 0.0"),
        "{:?}",
        ans.decision.tiers
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn top_k_returns_the_most_probable_labels_with_their_probabilities() {
    let top = |ans: &Answer| -> Vec<(String, f64)> {
        ans.top_k
            .iter()
            .map(|l| (l.label.clone(), l.probability))
            .collect()
    };
    let ask = |k: u32| PoolRequest {
        top_k: Some(k),
        ..request("q")
    };
    // A, A, B at the prior, three labels: A 0.794, B 0.170, C (nobody said it) 0.036.
    let ps = vec![fake("a", 10, "A"), fake("b", 20, "B"), fake("c", 30, "A")];
    let snap = snapshot(
        &format!("strategy = \"voting\"\nearly_stop = false\n{LABELS}"),
        &ps,
    );
    let ans = orchestrator::handle(&snap, ask(3)).await.expect("answer");
    let got = top(&ans);
    let s = (0.7f64 * 2.0 / 0.3).ln();
    let z = (2.0 * s).exp() + s.exp() + 1.0;
    let want = [
        ("A", (2.0 * s).exp() / z),
        ("B", s.exp() / z),
        ("C", 1.0 / z),
    ];
    assert_eq!(got.len(), 3);
    for ((label, p), (l, q)) in got.iter().zip(want) {
        assert_eq!(label, l);
        assert!((p - q).abs() < 1e-9, "{got:?}");
    }
    let ans = orchestrator::handle(&snap, ask(1)).await.expect("answer");
    assert_eq!(top(&ans).len(), 1);

    // One answer (FASTEST): the label at the provider's accuracy, the others sharing the rest.
    let snap = snapshot(
        &format!("strategy = \"fastest\"\n{LABELS}"),
        &[fake("a", 10, "B")],
    );
    let ans = orchestrator::handle(&snap, ask(2)).await.expect("answer");
    let got = top(&ans);
    assert_eq!(got[0].0, "B");
    assert!(
        (got[0].1 - 0.7).abs() < 1e-9 && (got[1].1 - 0.15).abs() < 1e-9,
        "{got:?}"
    );
    assert_eq!(got[1].0, "A", "ties in the task's label order");

    // Refused, never dropped: past the labels, on a text task, or with a stream.
    for (snap, k) in [
        (snapshot(LABELS, &[fake("a", 10, "A")]), 4),
        (snapshot("", &[fake("a", 10, "A")]), 1),
    ] {
        let err = orchestrator::handle(&snap, ask(k))
            .await
            .expect_err("refused");
        assert_eq!(err.field(), Some("top_k"), "{err:?}");
    }
    let snap = snapshot(LABELS, &[fake("a", 10, "A")]);
    let err = orchestrator::stream(&snap, ask(1))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.field(), Some("top_k"));
}

/// A routed task `t` (router `complexity`: FASTEST over `clf`, labels simple/complex;
/// routes simple → `small`, complex → `large`, the safe one) and its providers.
fn routed(
    clf: &Arc<FakeProvider>,
    small: &Arc<FakeProvider>,
    large: &Arc<FakeProvider>,
) -> Snapshot {
    let task = "router = \"complexity\"\nroutes = { simple = \"small\", complex = \"large\" }\n\
        route_confidence = 0.8\nsafe_route = \"complex\"\n\n\
        [tasks.complexity]\nproviders = [\"clf\"]\noutput = \"label\"\nlabels = [\"simple\", \"complex\"]\n\n\
        [tasks.small]\nproviders = [\"small\"]\n\n[tasks.large]\nproviders = [\"large\"]\n";
    llm_pool::testing::snapshot_with(task, &[], &[clf, small, large])
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_router_picks_the_task_and_an_unsure_one_takes_the_safe_route() {
    let (clf, small, large) = (
        fake("clf", 5, "simple"),
        fake("small", 10, "from small"),
        fake("large", 10, "from large"),
    );
    let snap = routed(&clf, &small, &large);
    // At the prior (0.7 < 0.8) the router is unsure: the safe route.
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "from large");
    let r = ans.decision.route.as_ref().expect("a route");
    assert_eq!(
        (
            r.router.as_str(),
            r.label.as_str(),
            r.route.as_str(),
            r.task.as_str(),
            &*r.reason
        ),
        ("complexity", "simple", "complex", "large", "unsure")
    );
    assert!((r.confidence - 0.7).abs() < 1e-9);
    // Once the router is known to be right (0.94), its label decides.
    for _ in 0..40 {
        snap.accuracy.grade("complexity", "clf", 1.0);
    }
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "from small");
    let r = ans.decision.route.as_ref().expect("a route");
    assert_eq!((r.route.as_str(), &*r.reason), ("simple", "confident"));
    assert!(ans.decision.degraded.is_empty());
    // Streams are routed too.
    let mut items = orchestrator::stream(&snap, request("q"))
        .await
        .expect("a stream");
    let mut done = None;
    while let Some(item) = futures::StreamExt::next(&mut items).await {
        if let orchestrator::StreamItem::Done(a) = item {
            done = Some(a);
        }
    }
    let done = done.expect("a final answer");
    assert_eq!(done.text, "from small");
    assert_eq!(
        done.decision.route.as_ref().map(|r| r.task.as_str()),
        Some("small")
    );
    // A router that fails: the safe route, and the answer says so.
    clf.push(Call::fail_after(1, 500));
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "from large");
    assert_eq!(
        ans.decision.route.as_ref().map(|r| &*r.reason),
        Some("router_failed")
    );
    assert_eq!(ans.decision.degraded, vec!["router_failed"]);
}

#[test]
fn routing_is_checked_when_the_config_loads() {
    let base = |routed: &str, router: &str| {
        format!(
            "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n\
             [tasks.t]\n{routed}\n[tasks.r]\nproviders = [\"p\"]\n{router}\n[tasks.a]\nproviders = [\"p\"]\n"
        )
    };
    let errors = |text: String| {
        load_str(&text, std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    };
    let labels = "output = \"label\"\nlabels = [\"x\", \"y\"]\n";
    let ok = "router = \"r\"\nroutes = { x = \"a\", y = \"a\" }\nsafe_route = \"y\"\n";
    assert_eq!(errors(base(ok, labels)), "");
    let e = errors(base(ok, ""));
    assert!(
        e.contains("tasks.t.router") && e.contains("label task"),
        "{e}"
    );
    let e = errors(base(
        "router = \"r\"\nroutes = { x = \"a\" }\nsafe_route = \"x\"\n",
        labels,
    ));
    assert!(e.contains("no route for the router's label `y`"), "{e}");
    let e = errors(base(
        "router = \"r\"\nroutes = { x = \"a\", y = \"a\" }\n",
        labels,
    ));
    assert!(e.contains("tasks.t.safe_route"), "{e}");
    let e = errors(base(
        "router = \"r\"\nroutes = { x = \"a\", y = \"nope\" }\nsafe_route = \"x\"\n",
        labels,
    ));
    assert!(e.contains("unknown task `nope`"), "{e}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn judge_and_cascade_report_the_confidence_of_their_answer() {
    // JUDGE picks B among A, B, A: what the candidates' accuracies (the prior) say of B.
    let ps = [fake("a", 10, "A"), fake("b", 20, "B"), fake("c", 30, "A")];
    let judge =
        llm_pool::testing::judge_preferring("judge", "B", std::time::Duration::from_millis(5));
    let with: Vec<(&Arc<FakeProvider>, &str)> = ps.iter().map(|p| (p, "")).collect();
    let snap = llm_pool::testing::snapshot(
        &format!("strategy = \"judge\"\n{LABELS}"),
        &with,
        Some(&judge),
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "B");
    let s = (0.7f64 * 2.0 / 0.3).ln();
    let b = s.exp() / ((2.0 * s).exp() + s.exp() + 1.0);
    assert!(
        (ans.decision.confidence.unwrap() - b).abs() < 1e-9,
        "{:?}",
        ans.decision.confidence
    );

    // CASCADE accepting a valid answer: one sample at the tier's accuracy.
    let snap = snapshot(
        &format!("strategy = \"cascade\"\naccept = \"valid\"\n{LABELS}"),
        &[fake("cheap", 10, "C")],
    );
    let ans = answer(&snap).await;
    assert!((ans.decision.confidence.unwrap() - 0.7).abs() < 1e-9);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_streamed_label_answer_can_be_given_feedback() {
    // Label answers are checked whole before they are sent, so a stream of one is
    // answered (and remembered) as a whole answer.
    let snap = snapshot(
        &format!("strategy = \"fastest\"\n{LABELS}"),
        &[fake("a", 10, "A")],
    );
    let mut items = orchestrator::stream(&snap, request("q"))
        .await
        .expect("a stream");
    while futures::StreamExt::next(&mut items).await.is_some() {}
    let reply = orchestrator::feedback(
        &snap,
        orchestrator::FeedbackCall {
            request_id: "r".into(),
            verdict: orchestrator::Verdict::Answer("B".into()),
            tenant: None,
        },
    )
    .expect("remembered");
    assert_eq!(reply.graded.len(), 1);
    assert_eq!(reply.graded[0].credit, 0.0);
    assert_eq!(snap.accuracy.get("t", "a").evidence, 1.0);
}
