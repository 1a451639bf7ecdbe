//! Quality of service against scripted upstreams over real sockets: breakers trip and
//! recover, retries and their budget, health checks steering traffic, hedging to another
//! endpoint, fallback providers. (The breaker's state machine and backoff are tested on a
//! paused clock in `src/qos`; here the real clock runs with short settings, and tests wait
//! for conditions, never for fixed sleeps.)

mod common;

use std::time::Duration;

use common::*;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use serde_json::json;

const QOS: &str = r#"
[qos]
health_check_interval_ms = 0
[qos.breaker]
consecutive_failures = 3
cooldown_ms = 300
max_cooldown_ms = 2000
[qos.retry]
max_attempts = 1
"#;

fn two_endpoints(a: &FakeUpstream, b: &FakeUpstream, qos: &str) -> String {
    format!(
        "{qos}\n[providers.p]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\", \"{}\"]\n\n[tasks.chat]\nproviders = [\"p\"]\n",
        a.url(),
        b.url()
    )
}

async fn endpoint_state(pool: &Pool, url: &str) -> serde_json::Value {
    let health: serde_json::Value = pool.get("/health").await.json().await.expect("health");
    health["providers"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["url"] == url)
        .cloned()
        .expect("the endpoint")
}

async fn ask(pool: &Pool) -> reqwest::Response {
    pool.post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await
}

#[tokio::test]
async fn a_failing_endpoint_is_ejected_and_readmitted_after_recovery() {
    let bad = FakeUpstream::start(Step::Status(500, "down".into()), &["up-model"]).await;
    let good = fake("fine").await;
    let pool = start_pool(&two_endpoints(&bad, &good, QOS)).await;
    // Drive traffic until the bad endpoint's breaker opens (3 failures in a row).
    let mut failed = 0;
    for _ in 0..50 {
        if ask(&pool).await.status() != 200 {
            failed += 1;
        }
        if endpoint_state(&pool, &bad.url()).await["breaker"] == "open" {
            break;
        }
    }
    let state = endpoint_state(&pool, &bad.url()).await;
    assert_eq!(state["breaker"], "open", "{state}");
    assert_eq!(state["trips"], 1);
    assert!(
        failed <= 3,
        "only calls that hit the bad endpoint before it tripped failed: {failed}"
    );
    // While open, every request goes to the good endpoint.
    bad.take_requests_count();
    for _ in 0..10 {
        assert_eq!(ask(&pool).await.status(), 200);
    }
    assert_eq!(
        bad.take_requests_count(),
        0,
        "no call reached the open endpoint"
    );
    // The endpoint recovers; after the cool-down a probe closes the breaker.
    bad.set_default(Step::Reply(Reply::text("back")));
    tokio::time::timeout(WAIT, async {
        loop {
            let _ = ask(&pool).await;
            if endpoint_state(&pool, &bad.url()).await["breaker"] == "closed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("readmitted after recovery");
}

#[tokio::test]
async fn every_circuit_open_fails_fast_naming_the_providers() {
    let bad = FakeUpstream::start(Step::Status(503, "down".into()), &["up-model"]).await;
    let config = format!(
        "{QOS}\n[providers.only]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n[tasks.chat]\nproviders = [\"only\"]\n",
        bad.url()
    );
    let pool = start_pool(&config).await;
    for _ in 0..3 {
        assert_eq!(ask(&pool).await.status(), 503);
    }
    bad.take_requests_count();
    let resp = ask(&pool).await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("only") && msg.contains("circuit is open"),
        "{msg}"
    );
    assert_eq!(
        bad.take_requests_count(),
        0,
        "failed fast without calling upstream"
    );
}

#[tokio::test]
async fn retries_recover_from_a_5xx_on_another_endpoint_but_never_repeat_a_refusal() {
    let (a, b) = (fake("ok").await, fake("ok").await);
    let qos = "[qos]\nhealth_check_interval_ms = 0\n[qos.retry]\nmax_attempts = 3\njitter = false\nbackoff_base_ms = 10\n";
    let pool = start_pool(&two_endpoints(&a, &b, qos)).await;
    // Whichever endpoint is tried first fails, the retry goes to the other (which fails
    // too), and the third attempt goes back to the first.
    a.push([Step::Status(502, "hiccup".into())]);
    b.push([Step::Status(503, "hiccup".into())]);
    let resp = ask(&pool).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        a.take_requests_count() + b.take_requests_count(),
        3,
        "two retries"
    );
    // The Decision says so: the call answered after two failed attempts.
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["decision"]["candidates"][0]["retries"], 2, "{body}");
    a.push([Step::Status(400, "bad request".into())]);
    b.push([Step::Status(400, "bad request".into())]);
    assert_eq!(ask(&pool).await.status(), 400);
    assert_eq!(
        a.take_requests_count() + b.take_requests_count(),
        1,
        "a refusal is not retried"
    );
}

#[tokio::test]
async fn a_connection_reset_is_retried_on_another_endpoint() {
    let (a, b) = (fake("after reset").await, fake("after reset").await);
    let qos = "[qos]\nhealth_check_interval_ms = 0\n[qos.retry]\nmax_attempts = 3\njitter = false\nbackoff_base_ms = 5\n";
    let pool = start_pool(&two_endpoints(&a, &b, qos)).await;
    a.push([Step::Reset]);
    b.push([Step::Reset]);
    let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
    assert_eq!(body["text"], "after reset");
    assert_eq!(a.take_requests_count() + b.take_requests_count(), 3);
    assert_eq!(body["decision"]["candidates"][0]["retries"], 2, "{body}");
    // A call that answered at once has no `retries`.
    let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
    assert!(
        body["decision"]["candidates"][0].get("retries").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn a_single_endpoint_is_not_retried_the_call_hands_over() {
    let up = fake("ok").await;
    let qos = "[qos]\nhealth_check_interval_ms = 0\n[qos.retry]\nmax_attempts = 3\njitter = false\nbackoff_base_ms = 5\n";
    let pool = start_pool(&format!("{qos}\n{}", basic_config("openai", &up.url()))).await;
    up.push([Step::Status(502, "hiccup".into())]);
    assert_eq!(ask(&pool).await.status(), 503);
    assert_eq!(up.take_requests_count(), 1);
}

#[tokio::test]
async fn hedges_and_retries_stay_within_their_budgets_when_everything_fails() {
    let a = FakeUpstream::start(
        Step::SlowStatus(Duration::from_millis(30), 500, "down".into()),
        &["up-model"],
    )
    .await;
    let b = FakeUpstream::start(
        Step::SlowStatus(Duration::from_millis(30), 500, "down".into()),
        &["up-model"],
    )
    .await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\nhedge_budget_percent = 5\nhedge_budget_min_per_sec = 0\n\
         [qos.breaker]\nconsecutive_failures = 1000\nmin_calls = 1000\n\
         [qos.retry]\nmax_attempts = 3\njitter = false\nbackoff_base_ms = 1\nbackoff_max_ms = 1\nbudget_percent = 20\nbudget_min_per_sec = 0\n\n\
         [providers.p]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\", \"{}\"]\n\n\
         [tasks.chat]\nproviders = [\"p\"]\nhedge_delay_ms = 5\n",
        a.url(),
        b.url()
    );
    let pool = start_pool(&config).await;
    let requests = 40;
    let mut hedged = 0;
    for _ in 0..requests {
        let resp = ask(&pool).await;
        assert_eq!(resp.status(), 503);
        let body: serde_json::Value = resp.json().await.unwrap();
        hedged += body["error"]["decision"]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["hedged"] == true)
            .count();
    }
    let calls = a.take_requests_count() + b.take_requests_count();
    assert!(
        hedged <= requests * 5 / 100 + 1,
        "{hedged} hedges for {requests} requests at 5 %"
    );
    // Every call (first, hedge, retry) deposits; extras are bounded by 20 % + 5 %.
    assert!(
        calls <= requests + requests / 4 + 2,
        "{calls} upstream calls for {requests} requests"
    );
}

#[tokio::test]
async fn retries_stay_within_their_budget_when_everything_fails() {
    let a = FakeUpstream::start(Step::Status(500, "down".into()), &["up-model"]).await;
    let b = FakeUpstream::start(Step::Status(500, "down".into()), &["up-model"]).await;
    let qos = "[qos]\nhealth_check_interval_ms = 0\n[qos.breaker]\nconsecutive_failures = 1000\nmin_calls = 1000\n[qos.retry]\nmax_attempts = 5\njitter = false\nbackoff_base_ms = 1\nbackoff_max_ms = 1\nbudget_percent = 20\nbudget_min_per_sec = 0\n";
    let pool = start_pool(&two_endpoints(&a, &b, qos)).await;
    let requests = 50;
    for _ in 0..requests {
        assert_eq!(ask(&pool).await.status(), 503);
    }
    let calls = a.take_requests_count() + b.take_requests_count();
    assert!(calls > requests, "some retries: {calls}");
    assert!(
        calls <= requests + requests / 5,
        "{calls} upstream calls for {requests} requests at a 20 % budget"
    );
}

#[tokio::test]
async fn health_checks_steer_traffic_away_from_endpoints_without_the_model() {
    let wrong = FakeUpstream::start(Step::Reply(Reply::text("from wrong")), &["other-model"]).await;
    let right = FakeUpstream::start(Step::Reply(Reply::text("from right")), &["up-model"]).await;
    let qos = "[qos]\nhealth_check_interval_ms = 3600000\n";
    let pool = start_pool(&two_endpoints(&wrong, &right, qos)).await;
    // One round of checks, awaited (the background one may not have run yet).
    llm_pool::live::health::check_once(&pool.state().config, &pool.state().shutdown).await;
    assert_eq!(
        endpoint_state(&pool, &wrong.url()).await["state"],
        "model_missing"
    );
    let right_state = endpoint_state(&pool, &right.url()).await;
    assert_eq!(right_state["state"], "serving");
    assert_eq!(right_state["models"], json!(["up-model"]));
    for _ in 0..10 {
        let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
        assert_eq!(body["text"], "from right");
    }
    // An endpoint that fails its check is taken out of rotation, unless every endpoint
    // failed (then they are tried anyway, and a success brings the endpoint back).
    let spare = FakeUpstream::start(Step::Reply(Reply::text("from spare")), &["up-model"]).await;
    let pool = start_pool(&two_endpoints(&spare, &right, qos)).await;
    let right_url = right.url();
    drop(right);
    llm_pool::live::health::check_once(&pool.state().config, &pool.state().shutdown).await;
    assert_eq!(
        endpoint_state(&pool, &right_url).await["state"],
        "unhealthy"
    );
    for _ in 0..5 {
        let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
        assert_eq!(
            body["text"], "from spare",
            "only the healthy endpoint gets traffic"
        );
    }

    // Every endpoint failed its check (say, the server was still starting): requests are
    // tried anyway, and the success clears the stale verdict.
    let late = FakeUpstream::start(Step::Reply(Reply::text("late starter")), &["up-model"]).await;
    let config = format!(
        "{qos}\n[providers.p]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n[tasks.chat]\nproviders = [\"p\"]\n",
        late.url()
    );
    let pool = start_pool(&config).await;
    late.set_models_down(true);
    llm_pool::live::health::check_once(&pool.state().config, &pool.state().shutdown).await;
    assert_eq!(
        endpoint_state(&pool, &late.url()).await["state"],
        "unhealthy"
    );
    let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
    assert_eq!(body["text"], "late starter");
    assert_eq!(endpoint_state(&pool, &late.url()).await["state"], "serving");
    // And if it is really down, the request fails on the connection, not on the check.
    drop(late);
    llm_pool::live::health::check_once(&pool.state().config, &pool.state().shutdown).await;
    let resp = ask(&pool).await;
    assert_eq!(resp.status(), 503, "the endpoint is really down");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{body}"
    );
}

#[tokio::test]
async fn a_slow_call_is_hedged_to_another_endpoint() {
    let slow = FakeUpstream::start(
        Step::Reply(Reply::text("slow").after(Duration::from_secs(5))),
        &["up-model"],
    )
    .await;
    let quick = FakeUpstream::start(Step::Reply(Reply::text("quick")), &["up-model"]).await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\nhedge_budget_percent = 100\n\n[providers.p]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\", \"{}\"]\n\n[tasks.chat]\nproviders = [\"p\"]\nhedge_delay_ms = 100\n",
        slow.url(),
        quick.url()
    );
    let pool = start_pool(&config).await;
    // The balancer picks at random between two idle endpoints: ask until a call lands on
    // `slow` first; every answer must come back quickly either way.
    for _ in 0..40 {
        let t0 = tokio::time::Instant::now();
        let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
        assert_eq!(body["text"], "quick");
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "the hedge answered, not the slow call"
        );
        let candidates = body["decision"]["candidates"].as_array().unwrap();
        if candidates.len() == 2 {
            assert_eq!(candidates[0]["status"], "cancelled");
            assert_eq!(candidates[1]["hedged"], true);
            // Another endpoint (callers see it by position, not by URL).
            assert_ne!(candidates[1]["endpoint"], candidates[0]["endpoint"]);
            return;
        }
    }
    panic!("no request was ever routed to the slow endpoint first");
}

#[tokio::test]
async fn priced_fallbacks_are_used_only_when_local_providers_fail() {
    let local = fake("local answer").await;
    let cloud = fake("cloud answer").await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\n[qos.retry]\nmax_attempts = 1\n\n\
         [providers.local]\nkind = \"ollama\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [providers.cloud]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\ncost_per_1k_tokens = 0.5\n\n\
         [tasks.chat]\nproviders = [\"local\"]\nfallback = [\"cloud\"]\nhedge_delay_ms = 10\n",
        local.url(),
        cloud.url()
    );
    let pool = start_pool(&config).await;
    let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
    assert_eq!(body["text"], "local answer");
    local.set_default(Step::Reply(
        Reply::text("slow local").after(Duration::from_millis(300)),
    ));
    let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
    assert_eq!(body["text"], "slow local", "fallbacks are never hedged to");
    assert_eq!(cloud.take_requests_count(), 0);
    local.set_default(Step::Status(503, "overloaded".into()));
    let body: serde_json::Value = ask(&pool).await.json().await.unwrap();
    assert_eq!(body["text"], "cloud answer");
    assert_eq!(body["provider"], "cloud");
    assert_eq!(body["decision"]["fallbacks"], json!(["fallback:cloud"]));
}
