//! FASTEST on tokio's paused clock against scripted in-process providers: hedging, fan-out,
//! failover, deadlines and cancellation of the losers, asserted to the millisecond.

use std::sync::Arc;
use std::time::Duration;

use llm_pool::error::PoolError;
use llm_pool::live::Snapshot;
use llm_pool::orchestrator::{self, PoolRequest};
use llm_pool::testing::{FakeProvider, ProviderCall as Call};
use llm_pool::types::CandidateStatus;
use tokio::time::Instant;

fn snapshot(task_extra: &str, providers: &[Arc<FakeProvider>]) -> Snapshot {
    let with: Vec<(&Arc<FakeProvider>, &str)> = providers.iter().map(|p| (p, "")).collect();
    llm_pool::testing::snapshot(task_extra, &with, None)
}

fn request() -> PoolRequest {
    PoolRequest {
        task: Some("t".into()),
        input: Some("hi".into()),
        request_id: "r".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hedges_after_the_delay_and_cancels_the_loser() {
    let slow = FakeProvider::new("slow", Call::reply_after(5_000, "late"));
    let quick = FakeProvider::new("quick", Call::reply_after(100, "early"));
    let snap = snapshot(
        "hedge_delay_ms = 1000",
        &[Arc::clone(&slow), Arc::clone(&quick)],
    );
    let t0 = Instant::now();
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(t0.elapsed(), Duration::from_millis(1_100));
    assert_eq!(answer.text, "early");
    assert_eq!(answer.provider, "quick");
    let d = &answer.decision;
    assert_eq!(d.candidates.len(), 2);
    assert_eq!(d.candidates[0].status, CandidateStatus::Cancelled);
    assert!(!d.candidates[0].hedged);
    assert_eq!(d.candidates[1].status, CandidateStatus::Ok);
    assert!(d.candidates[1].hedged);
    assert_eq!(d.candidates[1].latency_ms, 100);
    assert_eq!(slow.cancelled(), 1, "the losing call was dropped");
    assert_eq!(quick.cancelled(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn adaptive_hedging_waits_for_the_latency_percentile() {
    let slow = FakeProvider::new("slow", Call::reply_after(5_000, "late"));
    let quick = FakeProvider::new("quick", Call::reply_after(100, "early"));
    slow.set_latency_percentile(Some(Duration::from_millis(300)));
    let snap = snapshot(
        "hedge_percentile = 95\nhedge_delay_ms = 2000",
        &[Arc::clone(&slow), Arc::clone(&quick)],
    );
    let t0 = Instant::now();
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(400),
        "hedged at p95 = 300 ms"
    );
    assert_eq!(answer.provider, "quick");

    // Until the percentile is known, the fixed delay applies.
    slow.set_latency_percentile(None);
    let t0 = Instant::now();
    orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(t0.elapsed(), Duration::from_millis(2_100));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn no_hedge_when_the_budget_is_spent() {
    let slow = FakeProvider::new("slow", Call::reply_after(1_000, "late"));
    let quick = FakeProvider::new("quick", Call::reply_after(10, "early"));
    slow.set_hedges_allowed(false);
    let snap = snapshot(
        "hedge_delay_ms = 100",
        &[Arc::clone(&slow), Arc::clone(&quick)],
    );
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "slow");
    assert_eq!(quick.calls(), 0);
    assert_eq!(answer.decision.fallbacks, vec!["hedge_budget_exhausted"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn no_hedge_when_the_first_answers_in_time() {
    let a = FakeProvider::new("a", Call::reply_after(500, "a"));
    let b = FakeProvider::new("b", Call::reply_after(10, "b"));
    let snap = snapshot("hedge_delay_ms = 1000", &[Arc::clone(&a), Arc::clone(&b)]);
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "a");
    assert_eq!(b.calls(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fanout_asks_all_at_once_and_takes_the_first() {
    let a = FakeProvider::new("a", Call::reply_after(300, "a"));
    let b = FakeProvider::new("b", Call::reply_after(200, "b"));
    let c = FakeProvider::new("c", Call::reply_after(900, "c"));
    let snap = snapshot(
        "fanout = 3",
        &[Arc::clone(&a), Arc::clone(&b), Arc::clone(&c)],
    );
    let t0 = Instant::now();
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    assert_eq!(answer.provider, "b");
    assert_eq!((a.calls(), b.calls(), c.calls()), (1, 1, 1));
    assert_eq!((a.cancelled(), c.cancelled()), (1, 1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fails_over_at_once_when_a_call_fails() {
    let a = FakeProvider::new("a", Call::fail_after(50, 503));
    let b = FakeProvider::new("b", Call::reply_after(70, "b"));
    let snap = snapshot("", &[Arc::clone(&a), Arc::clone(&b)]);
    let t0 = Instant::now();
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(t0.elapsed(), Duration::from_millis(120));
    assert_eq!(answer.provider, "b");
    assert_eq!(answer.decision.fallbacks, vec!["failover:b"]);
    assert_eq!(answer.decision.candidates[0].status, CandidateStatus::Error);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_deadline_ends_the_request_and_every_call() {
    let a = FakeProvider::new("a", Call::Hang);
    let b = FakeProvider::new("b", Call::Hang);
    let snap = snapshot(
        "hedge_delay_ms = 100\ndeadline_ms = 2000",
        &[Arc::clone(&a), Arc::clone(&b)],
    );
    let t0 = Instant::now();
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("deadline");
    assert_eq!(t0.elapsed(), Duration::from_millis(2_000));
    let PoolError::DeadlineExceeded { decision, .. } = &err else {
        panic!("expected DeadlineExceeded, got {err:?}");
    };
    let d = decision.as_ref().expect("decision");
    assert!(
        d.candidates
            .iter()
            .all(|c| c.status == CandidateStatus::Timeout)
    );
    assert_eq!(err.kind().http_status(), 504);
    assert_eq!(err.kind().grpc_code(), tonic::Code::DeadlineExceeded);

    // A shorter requested timeout wins; a longer one is capped by the task's maximum.
    let mut req = request();
    req.timeout = Some(Duration::from_millis(300));
    let t0 = Instant::now();
    orchestrator::handle(&snap, req)
        .await
        .expect_err("deadline");
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_provider_failing_is_unavailable_with_every_reason() {
    let a = FakeProvider::new("a", Call::fail_after(10, 500));
    let b = FakeProvider::new("b", Call::fail_after(10, 502));
    let snap = snapshot("", &[a, b]);
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("unavailable");
    assert_eq!(err.kind().http_status(), 503);
    let msg = err.to_string();
    assert!(
        msg.contains("a: ") && msg.contains("b: ") && msg.contains("502"),
        "{msg}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn streams_race_on_the_first_token() {
    use futures::StreamExt;
    let slow = FakeProvider::new("slow", Call::reply_after(3_000, "late"));
    let quick = FakeProvider::new("quick", Call::reply_after(50, "early bird"));
    let snap = snapshot(
        "hedge_delay_ms = 500",
        &[Arc::clone(&slow), Arc::clone(&quick)],
    );
    let t0 = Instant::now();
    let mut items = orchestrator::stream(&snap, request())
        .await
        .expect("stream");
    assert_eq!(t0.elapsed(), Duration::from_millis(550));
    let mut text = String::new();
    let mut done = None;
    while let Some(item) = items.next().await {
        match item {
            orchestrator::StreamItem::Delta(d) => text.push_str(&d),
            orchestrator::StreamItem::Done(a) => done = Some(a),
            orchestrator::StreamItem::Error(e) => panic!("{e}"),
            orchestrator::StreamItem::ToolCall(c) => panic!("unexpected tool call {c:?}"),
            orchestrator::StreamItem::Reasoning(r) => panic!("unexpected reasoning {r:?}"),
        }
    }
    assert_eq!(text, "early bird");
    let done = done.expect("done");
    assert_eq!(done.provider, "quick");
    assert_eq!(done.usage.completion_tokens, 2);
    assert_eq!(slow.cancelled(), 1);
}
