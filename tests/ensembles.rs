//! VOTING, WEIGHTED, CONSENSUS, JUDGE and CASCADE on tokio's paused clock against scripted
//! in-process providers: winners, ties, early stop with cancellation, invalid answers,
//! partial failures, deadlines mid-vote, garbage from the judge, disagreement handling.

use std::sync::Arc;
use std::time::Duration;

use llm_pool::config::raw::StrategyKind;
use llm_pool::error::PoolError;
use llm_pool::live::Snapshot;
use llm_pool::orchestrator::{self, PoolRequest};
use llm_pool::providers::{Prompt, Provider, ProviderRequest};
use llm_pool::testing::{FakeProvider, ProviderCall as Call};
use llm_pool::types::{Answer, CandidateStatus};
use tokio::time::Instant;

fn snapshot(
    task: &str,
    providers: &[(&Arc<FakeProvider>, &str)],
    judge: Option<&Arc<FakeProvider>>,
) -> Snapshot {
    llm_pool::testing::snapshot(task, providers, judge)
}

fn request() -> PoolRequest {
    PoolRequest {
        task: Some("t".into()),
        input: Some("question?".into()),
        request_id: "r".into(),
        ..Default::default()
    }
}

fn fake(name: &str, ms: u64, text: &str) -> Arc<FakeProvider> {
    FakeProvider::new(name, Call::reply_after(ms, text))
}

const LABELS: &str = "output = \"label\"\nlabels = [\"A\", \"B\", \"C\"]\n";

async fn answer(snap: &Snapshot) -> Answer {
    orchestrator::handle(snap, request())
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn voting_majority_wins_with_the_votes_in_the_decision() {
    let (a, b, c) = (
        fake("a", 10, "A"),
        fake("b", 20, "b."),
        fake("c", 30, "The answer: A"),
    );
    let snap = snapshot(
        &format!("strategy = \"voting\"\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&c, "")],
        None,
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    assert_eq!(ans.provider, "a", "the winning group's first answer");
    let d = &ans.decision;
    assert_eq!(d.strategy, "voting");
    assert_eq!(d.votes.get("A"), Some(&2.0));
    assert_eq!(d.votes.get("B"), Some(&1.0));
    assert!((d.agreement.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(d.groups[0].members, vec![0, 2]);
    assert_eq!(d.candidates[1].group, Some(1));
    assert_eq!(
        d.total_usage.completion_tokens, 5,
        "every call's tokens are counted (1 + 1 + 3)"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn voting_stops_early_and_cancels_the_rest() {
    let fast: Vec<_> = (0..3)
        .map(|i| fake(&format!("f{i}"), 10 * (i + 1), "B"))
        .collect();
    let slow: Vec<_> = (0..2).map(|i| fake(&format!("s{i}"), 5_000, "A")).collect();
    let all: Vec<_> = fast.iter().chain(&slow).map(|p| (p, "")).collect();
    let snap = snapshot(&format!("strategy = \"voting\"\n{LABELS}"), &all, None);
    let t0 = Instant::now();
    let ans = answer(&snap).await;
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(30),
        "decided at the third vote"
    );
    assert_eq!(ans.text, "B");
    for s in &slow {
        assert_eq!(s.cancelled(), 1, "{} was cancelled", s.name());
    }
    let statuses: Vec<_> = ans.decision.candidates.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses[3..],
        [CandidateStatus::Cancelled, CandidateStatus::Cancelled]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn ties_go_to_the_group_that_answered_first() {
    let (a, b) = (fake("a", 50, "B"), fake("b", 10, "A"));
    let snap = snapshot(
        &format!("strategy = \"voting\"\n{LABELS}"),
        &[(&a, ""), (&b, "")],
        None,
    );
    assert_eq!(answer(&snap).await.text, "A");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn invalid_answers_are_failed_candidates_not_votes() {
    let (a, b, c) = (
        fake("a", 10, "no idea"),
        fake("b", 20, "no idea"),
        fake("c", 30, "C"),
    );
    let snap = snapshot(
        &format!("strategy = \"voting\"\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&c, "")],
        None,
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "C");
    assert_eq!(ans.decision.candidates[0].status, CandidateStatus::Invalid);
    assert_eq!(ans.decision.agreement, Some(1.0));

    let (a, b) = (fake("a", 10, "no idea"), fake("b", 10, "maybe"));
    let snap = snapshot(
        &format!("strategy = \"voting\"\n{LABELS}"),
        &[(&a, ""), (&b, "")],
        None,
    );
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("nothing valid");
    // Every candidate answered, none validly: not "unavailable" (the servers work).
    assert_eq!(err.kind().http_status(), 502);
    let d = err.decision().expect("decision with the candidates");
    assert!(
        d.candidates
            .iter()
            .all(|c| c.status == CandidateStatus::Invalid)
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn partial_failures_and_a_deadline_mid_vote() {
    let a = FakeProvider::new("a", Call::fail_after(5, 500));
    let (b, c) = (fake("b", 10, "A"), fake("c", 20, "A"));
    let snap = snapshot(
        &format!("strategy = \"voting\"\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&c, "")],
        None,
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    assert_eq!(ans.decision.candidates[0].status, CandidateStatus::Error);

    // Two answered, one hangs: at the deadline the vote is decided on what arrived.
    let (a, b) = (fake("a", 10, "B"), fake("b", 20, "A"));
    let h = FakeProvider::new("h", Call::Hang);
    let task = format!("strategy = \"voting\"\ndeadline_ms = 1000\n{LABELS}");
    let snap = snapshot(&task, &[(&a, ""), (&b, ""), (&h, "")], None);
    let t0 = Instant::now();
    let ans = answer(&snap).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(1000));
    assert_eq!(ans.text, "B", "tie broken by arrival");
    assert_eq!(ans.decision.fallbacks, vec!["deadline:decided_on_2_of_3"]);
    assert_eq!(ans.decision.candidates[2].status, CandidateStatus::Timeout);

    // Nothing arrived by the deadline: 504.
    let (h1, h2) = (
        FakeProvider::new("h1", Call::Hang),
        FakeProvider::new("h2", Call::Hang),
    );
    let snap = snapshot(&task, &[(&h1, ""), (&h2, "")], None);
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("deadline");
    assert!(matches!(err, PoolError::DeadlineExceeded { .. }), "{err:?}");
}

/// The WEIGHTED vote of a provider with operator weight `w`, reliability `r` and accuracy
/// `p` among three labels.
fn vote(w: f64, r: f64, p: f64) -> f64 {
    w * r * (p * 2.0 / (1.0 - p)).ln()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn weighted_counts_weight_times_reliability_times_log_odds_across_requests() {
    let (a, b) = (fake("a", 10, "A"), fake("b", 20, "A"));
    let c = fake("c", 30, "B");
    let task = format!("strategy = \"weighted\"\nearly_stop = false\n{LABELS}");
    let snap = snapshot(&task, &[(&a, ""), (&b, ""), (&c, "weight = 3.0")], None);
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "B", "3 votes of the prior's log-odds > 1 + 1");
    let d = &ans.decision;
    assert!((d.candidates[2].weight.unwrap() - vote(3.0, 1.0, 0.7)).abs() < 1e-9);
    assert_eq!(
        d.candidates[2].accuracy,
        Some(0.7),
        "the prior, before evidence"
    );
    assert_eq!(d.candidates[2].evidence, Some(0.0));
    assert!(d.formula.as_deref().unwrap().contains("reliability"));
    assert!(d.formula.as_deref().unwrap().contains("log(p·(k−1)/(1−p))"));
    // The answer was graded: a and b agreed, so c (alone on B) lost accuracy.
    let credit_c = d.candidates[2].credit.unwrap();
    assert!(credit_c < 0.5, "{credit_c}");
    let acc_c = snap.accuracy.get("t", "c");
    assert!((acc_c.accuracy - (7.0 + credit_c) / 11.0).abs() < 1e-9);
    assert!(snap.accuracy.get("t", "a").accuracy > 0.7);

    // c keeps failing: its reliability (EWMA, alpha 0.1) falls until A wins. Failures say
    // nothing of its accuracy.
    for _ in 0..10 {
        c.push(Call::fail_after(1, 500));
        let _ = orchestrator::handle(&snap, request()).await;
    }
    let r = snap.reliability.get("c");
    assert!((r - 0.9f64.powi(10)).abs() < 1e-9, "{r}");
    assert_eq!(snap.accuracy.get("t", "c"), acc_c);
    let (pa, pb) = (
        snap.accuracy.get("t", "a").accuracy,
        snap.accuracy.get("t", "b").accuracy,
    );
    let ans = answer(&snap).await;
    let wc = vote(3.0, r, acc_c.accuracy);
    assert_eq!(ans.text, "A", "{wc:.2} < the votes of a and b");
    let d = &ans.decision;
    assert!((d.candidates[2].weight.unwrap() - wc).abs() < 1e-9);
    assert!((d.candidates[0].weight.unwrap() - vote(1.0, 1.0, pa)).abs() < 1e-9);
    assert!((d.candidates[1].weight.unwrap() - vote(1.0, 1.0, pb)).abs() < 1e-9);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn consensus_not_reached_under_each_rule() {
    let make = || (fake("a", 10, "A"), fake("b", 20, "B"), fake("c", 30, "C"));
    let base = format!("strategy = \"consensus\"\nmin_agreement = 0.6\nmin_votes = 2\n{LABELS}");

    let (a, b, c) = make();
    let snap = snapshot(&base, &[(&a, ""), (&b, ""), (&c, "")], None);
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("no consensus");
    assert_eq!(err.kind().http_status(), 409);
    assert_eq!(err.kind().grpc_code(), tonic::Code::Aborted);
    assert_eq!(
        err.decision().unwrap().candidates.len(),
        3,
        "the error carries the candidates"
    );

    let (a, b, c) = make();
    let snap = snapshot(
        &format!("{base}on_disagreement = \"best\"\n"),
        &[(&a, ""), (&b, ""), (&c, "")],
        None,
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    assert_eq!(ans.decision.fallbacks, vec!["no_consensus:best"]);
    assert!(ans.decision.agreement.unwrap() < 0.6);

    let (a, b, c) = make();
    let judge = judge_preferring("judge", "B");
    let snap = snapshot(
        &format!("{base}on_disagreement = \"judge\"\n"),
        &[(&a, ""), (&b, ""), (&c, "")],
        Some(&judge),
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "B");
    assert_eq!(ans.decision.fallbacks, vec!["no_consensus:judge"]);

    // Reached: two of three agree.
    let (a, b, c) = (fake("a", 10, "A"), fake("b", 20, "A"), fake("c", 30, "C"));
    let snap = snapshot(&base, &[(&a, ""), (&b, ""), (&c, "")], None);
    assert_eq!(answer(&snap).await.text, "A");
}

/// A judge that prefers `preferred` (after 40 ms).
fn judge_preferring(name: &str, preferred: &'static str) -> Arc<FakeProvider> {
    llm_pool::testing::judge_preferring(name, preferred, Duration::from_millis(40))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn judge_picks_records_its_verdict_and_the_shuffle() {
    let (a, b, c) = (fake("a", 10, "A"), fake("b", 20, "B"), fake("c", 30, "C"));
    let judge = judge_preferring("judge", "B");
    let snap = snapshot(
        &format!("strategy = \"judge\"\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&c, "")],
        Some(&judge),
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "B");
    assert_eq!(ans.provider, "b");
    let d = &ans.decision;
    assert_eq!(d.rationale.as_deref(), Some("B is right"));
    let j = d.judge.as_ref().unwrap();
    assert_eq!(j.attempts, 1);
    assert_eq!(j.winner, Some(1));
    let mut order = j.order.clone();
    order.sort_unstable();
    assert_eq!(order, vec![0, 1, 2], "every distinct answer shown once");
    // The recorded seed reproduces the order shown.
    let mut again = vec![0, 1, 2];
    fastrand::Rng::with_seed(j.seed).shuffle(&mut again);
    assert_eq!(again, j.order);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn garbage_from_the_judge_is_retried_once_then_weighted_decides() {
    let (a, b, c) = (fake("a", 10, "A"), fake("b", 20, "B"), fake("c", 30, "B"));
    let judge = FakeProvider::new("judge", Call::reply_after(5, "I like the second one"));
    let snap = snapshot(
        &format!("strategy = \"judge\"\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&c, "")],
        Some(&judge),
    );
    let ans = answer(&snap).await;
    let j = ans.decision.judge.as_ref().unwrap();
    assert_eq!(j.attempts, 2);
    assert_eq!(j.errors.len(), 2);
    assert_eq!(ans.decision.fallbacks, vec!["judge_invalid:weighted"]);
    assert_eq!(ans.text, "B", "weighted: two votes for B");
    assert_eq!(judge.calls(), 2);

    // Garbage once, then a valid verdict.
    let (a, b) = (fake("a", 10, "A"), fake("b", 20, "B"));
    let judge = judge_preferring("judge", "A");
    judge.push(Call::reply_after(5, "{\"winner\": 7}"));
    let snap = snapshot(
        &format!("strategy = \"judge\"\n{LABELS}"),
        &[(&a, ""), (&b, "")],
        Some(&judge),
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "A");
    assert_eq!(ans.decision.judge.as_ref().unwrap().attempts, 2);
    assert!(ans.decision.fallbacks.is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cascade_escalates_until_two_samples_agree() {
    let cheap = fake("cheap", 10, "A");
    cheap.push(Call::reply_after(10, "A"));
    cheap.push(Call::reply_after(10, "B"));
    let mid = fake("mid", 50, "C");
    let pricey = fake("pricey", 100, "C");
    let task = format!("strategy = \"cascade\"\n{LABELS}");
    let snap = snapshot(
        &task,
        &[
            (&pricey, "cost_per_1k_tokens = 5.0"),
            (&cheap, ""),
            (&mid, "cost_per_1k_tokens = 0.5"),
        ],
        None,
    );
    let ans = answer(&snap).await;
    assert_eq!(ans.text, "C");
    assert_eq!(ans.provider, "mid");
    let tiers = &ans.decision.tiers;
    assert_eq!(tiers.len(), 2);
    assert_eq!(
        (tiers[0].provider.as_str(), tiers[0].accepted),
        ("cheap", false)
    );
    assert_eq!(tiers[0].reason, "samples disagree");
    assert_eq!(
        (tiers[1].provider.as_str(), tiers[1].accepted),
        ("mid", true)
    );
    assert_eq!(ans.decision.fallbacks, vec!["escalate:mid"]);
    assert_eq!(pricey.calls(), 0, "the expensive tier was never asked");
    assert_eq!((cheap.calls(), mid.calls()), (2, 2));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn repeated_samples_of_one_provider_differ_in_seed_and_temperature() {
    let a = fake("a", 10, "A");
    let snap = snapshot(
        &format!("strategy = \"voting\"\nn = 3\nearly_stop = false\n{LABELS}"),
        &[(&a, "")],
        None,
    );
    let ans = answer(&snap).await;
    assert_eq!(a.calls(), 3);
    let reqs = a.requests.lock().clone();
    let seeds: Vec<_> = reqs.iter().map(|r| r.params.seed).collect();
    assert_eq!(seeds, vec![None, Some(1), Some(2)]);
    assert_eq!(reqs[1].params.temperature, Some(0.7));
    let samples: Vec<_> = ans.decision.candidates.iter().map(|c| c.sample).collect();
    assert_eq!(samples, vec![0, 1, 2]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn requests_may_choose_strategy_and_n_within_bounds() {
    let (a, b) = (fake("a", 10, "A"), fake("b", 20, "A"));
    let snap = snapshot(&format!("max_n = 4\n{LABELS}"), &[(&a, ""), (&b, "")], None);
    let mut req = request();
    req.strategy = Some(StrategyKind::Voting);
    req.n = Some(4);
    let ans = orchestrator::handle(&snap, req).await.unwrap();
    assert_eq!(ans.decision.strategy, "voting");
    let mut req = request();
    req.n = Some(5);
    let err = orchestrator::handle(&snap, req)
        .await
        .expect_err("over max_n");
    assert_eq!(err.field(), Some("n"));
    let mut req = request();
    req.strategy = Some(StrategyKind::Judge);
    let err = orchestrator::handle(&snap, req)
        .await
        .expect_err("no judge configured");
    assert_eq!(err.kind().http_status(), 400);
}

fn tool_request() -> PoolRequest {
    PoolRequest {
        tools: vec![llm_pool::providers::Tool {
            name: "get_weather".into(),
            description: None,
            parameters: None,
            strict: None,
        }],
        ..request()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn voting_over_tool_calls_groups_by_the_canonical_call() {
    // Two models call the same function with the same arguments (written differently);
    // one picks another city; one calls a tool that was never offered.
    let (a, b, c, d) = (
        fake("a", 10, r#"tool:get_weather:{"city": "Rome"}"#),
        fake("b", 20, r#"tool:get_weather:{"units":"C","city":"Paris"}"#),
        fake(
            "c",
            30,
            r#"tool:get_weather:{ "city" : "Paris", "units": "C" }"#,
        ),
        fake("d", 5, r#"tool:rm_rf:{}"#),
    );
    let snap = snapshot(
        "strategy = \"voting\"\noutput = \"tool_call\"\nearly_stop = false\n",
        &[(&a, ""), (&b, ""), (&c, ""), (&d, "")],
        None,
    );
    let ans = orchestrator::handle(&snap, tool_request())
        .await
        .expect("an answer");
    assert_eq!(ans.provider, "b", "the larger group's first answer");
    assert_eq!(ans.tool_calls.len(), 1);
    assert_eq!(ans.tool_calls[0].name, "get_weather");
    assert_eq!(ans.finish_reason.as_deref(), Some("tool_calls"));
    let groups = &ans.decision.groups;
    let paris = groups
        .iter()
        .find(|g| g.members.len() == 2)
        .expect("a group of two");
    assert_eq!(
        paris.answer,
        r#"[{"arguments":{"city":"Paris","units":"C"},"name":"get_weather"}]"#
    );
    assert_eq!(ans.decision.candidates[3].status, CandidateStatus::Invalid);
    assert!(
        ans.decision.candidates[3]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("rm_rf")),
        "{:?}",
        ans.decision.candidates[3].error
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_tool_call_task_refuses_answers_that_call_nothing() {
    let (a, b) = (
        fake("a", 10, "I would check the weather."),
        fake("b", 20, r#"tool:get_weather:{"city":"Paris"}"#),
    );
    let snap = snapshot(
        "strategy = \"fastest\"\noutput = \"tool_call\"\nfanout = 2\n",
        &[(&a, ""), (&b, "")],
        None,
    );
    let ans = orchestrator::handle(&snap, tool_request())
        .await
        .expect("an answer");
    assert_eq!(ans.provider, "b");
    assert_eq!(ans.decision.candidates[0].status, CandidateStatus::Invalid);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_judge_is_shown_the_candidates_tool_calls() {
    let (a, b) = (
        fake("a", 10, r#"tool:get_weather:{"city":"Rome"}"#),
        fake("b", 20, r#"tool:get_weather:{"city":"Paris"}"#),
    );
    // A judge that picks the candidate whose call goes to Paris.
    let respond: llm_pool::testing::Responder = Arc::new(|req: &ProviderRequest| {
        let Prompt::Chat(messages) = &req.prompt else {
            return "{}".into();
        };
        let paris = r#"] [{"arguments":{"city":"Paris"},"name":"get_weather"}]"#;
        let pos = messages
            .last()
            .expect("a message")
            .content
            .lines()
            .find_map(|l| l.strip_prefix('[')?.strip_suffix(paris).map(str::to_owned))
            .unwrap_or_else(|| "0".into());
        format!(r#"{{"winner": {pos}, "scores": {{}}, "rationale": "Paris it is"}}"#)
    });
    let judge = FakeProvider::new(
        "judge",
        Call::With {
            delay: Duration::from_millis(40),
            respond,
        },
    );
    let snap = snapshot(
        "strategy = \"judge\"\noutput = \"tool_call\"\n",
        &[(&a, ""), (&b, "")],
        Some(&judge),
    );
    let ans = orchestrator::handle(&snap, tool_request())
        .await
        .expect("an answer");
    assert_eq!(ans.provider, "b", "the judge chose the call it was shown");
    assert_eq!(ans.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
    assert_eq!(ans.decision.rationale.as_deref(), Some("Paris it is"));
}
