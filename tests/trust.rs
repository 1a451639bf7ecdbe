//! No silent success: every case where the pool used to say 200/OK for an answer that was
//! incomplete, cut by someone else's deadline or never properly attempted, and where it
//! cached or billed such an answer. Strategy cases run on tokio's paused clock against
//! scripted in-process providers; wire cases against scripted upstreams over real sockets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use llm_pool::error::PoolError;
use llm_pool::live::Snapshot;
use llm_pool::orchestrator::{self, PoolRequest};
use llm_pool::testing::{FakeProvider, FakeUpstream, ProviderCall, Reply, Step};
use llm_pool::types::CandidateStatus;
use serde_json::json;

fn request() -> PoolRequest {
    PoolRequest {
        task: Some("t".into()),
        input: Some("question?".into()),
        request_id: "r".into(),
        ..Default::default()
    }
}

fn fake(name: &str, ms: u64, text: &str) -> Arc<FakeProvider> {
    FakeProvider::new(name, ProviderCall::reply_after(ms, text))
}

const LABELS: &str = "output = \"label\"\nlabels = [\"A\", \"B\", \"C\"]\n";

/// The SSE body of a streamed chat completion of "hi" from `model`.
async fn stream_chat(pool: &Pool, model: &str) -> String {
    pool.post_json(
        "/v1/chat/completions",
        json!({"model": model, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .text()
    .await
    .expect("the SSE body")
}

/// Whether the answer to `request()` over `snap` would be stored in the cache.
async fn storable(snap: &Snapshot) -> bool {
    let plan = request().plan(snap).expect("plan");
    let answer = orchestrator::handle(snap, request())
        .await
        .expect("an answer");
    llm_pool::cache::storable(&plan, &answer)
}

// === upstream faults ===

const DELTA_HEL: &str =
    r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
const IN_BAND_ERROR: &str = r#"{"error":{"message":"CUDA out of memory","code":500}}"#;

fn chat_task(url: &str, extra: &str) -> String {
    format!(
        "[cache]\nenabled = true\n\n[providers.a]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{url}\"]\n{extra}\n\n[tasks.chat]\nproviders = [\"a\"]\ncache_ttl_secs = 60\n"
    )
}

#[tokio::test]
async fn an_error_event_inside_a_stream_is_a_failure_not_a_clean_finish() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("fine")), &["up-model"]).await;
    let pool = start_pool(&chat_task(&up.url(), "")).await;
    let body = json!({"model": "task:chat", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    up.push([Step::sse(&[DELTA_HEL, IN_BAND_ERROR, "[DONE]"])]);
    let text = pool
        .post_json("/v1/chat/completions", body.clone())
        .await
        .text()
        .await
        .unwrap();
    let events = sse_data(&text);
    assert!(
        !text.contains(r#""finish_reason":"stop""#),
        "a cut answer is not a clean finish: {text}"
    );
    let last: serde_json::Value = serde_json::from_str(
        events
            .iter()
            .rev()
            .find(|e| *e != "[DONE]")
            .expect("events"),
    )
    .unwrap();
    assert!(last["error"]["message"].is_string(), "{text}");
    // Not cached: the same request goes upstream again and gets the whole answer.
    let again: serde_json::Value = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat",
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], "fine");
    assert_eq!(again["llm_pool"]["cache_hit"], false);
    // Counted against the endpoint.
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    assert_eq!(health["providers"][0]["endpoints"][0]["failures"], 1);
}

#[tokio::test]
async fn a_stream_that_ends_without_a_finish_reason_is_a_failure() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("fine")), &["up-model"]).await;
    let pool = start_pool(&chat_task(&up.url(), "")).await;
    up.push([Step::sse(&[DELTA_HEL, "[DONE]"])]);
    let text = stream_chat(&pool, "task:chat").await;
    assert!(!text.contains(r#""finish_reason":"stop""#), "{text}");
    assert!(text.contains("broke off"), "{text}");
}

#[tokio::test]
async fn an_error_event_before_the_first_token_hands_over_to_the_next_provider() {
    let bad = FakeUpstream::start(Step::sse(&[IN_BAND_ERROR, "[DONE]"]), &["up-model"]).await;
    let good = FakeUpstream::start(Step::Reply(Reply::text("from b")), &["up-model"]).await;
    let config = format!(
        "[providers.a]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [providers.b]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [tasks.chat]\nproviders = [\"a\", \"b\"]\n",
        bad.url(),
        good.url()
    );
    let pool = start_pool(&config).await;
    let text = stream_chat(&pool, "task:chat").await;
    assert!(text.contains("from"), "{text}");
    assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
}

#[tokio::test]
async fn a_hung_provider_hands_over_instead_of_retrying_its_only_endpoint() {
    let hung = FakeUpstream::start(Step::Hang, &["up-model"]).await;
    let good = FakeUpstream::start(Step::Reply(Reply::text("from b")), &["up-model"]).await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\n[qos.retry]\nmax_attempts = 3\njitter = false\nbackoff_base_ms = 1\n\n\
         [providers.a]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\nfirst_byte_timeout_ms = 300\n\n\
         [providers.b]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [tasks.chat]\nproviders = [\"a\", \"b\"]\ndeadline_ms = 5000\n",
        hung.url(),
        good.url()
    );
    let pool = start_pool(&config).await;
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["text"], "from b");
    assert_eq!(body["decision"]["fallbacks"], json!(["failover:b"]));
    assert_eq!(
        hung.take_requests_count(),
        1,
        "no retry of the same endpoint"
    );
}

#[tokio::test]
async fn a_healthy_stream_may_outlive_the_first_byte_timeout() {
    let reply = Reply::text("one two three four five six seven eight")
        .chunk_delay(Duration::from_millis(100));
    let up = FakeUpstream::start(Step::Reply(reply), &["up-model"]).await;
    let pool = start_pool(&chat_task(
        &up.url(),
        "first_byte_timeout_ms = 300\nidle_timeout_ms = 400",
    ))
    .await;
    for _ in 0..3 {
        let text = stream_chat(&pool, "a").await;
        assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
        assert!(text.contains("eight"), "{text}");
    }
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    let e = &health["providers"][0]["endpoints"][0];
    assert_eq!(e["failures"], 0, "{e}");
    assert_eq!(e["breaker"], "closed");

    // A stream that goes silent for longer than the idle timeout is cut.
    up.push([Step::Reply(
        Reply::text("one two").chunk_delay(Duration::from_millis(1_500)),
    )]);
    let text = stream_chat(&pool, "a").await;
    assert!(!text.contains(r#""finish_reason":"stop""#), "{text}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn no_valid_answer_is_its_own_error_not_unavailable() {
    let (a, b) = (fake("a", 10, "no idea"), fake("b", 10, "maybe"));
    let snap = llm_pool::testing::snapshot(
        &format!("strategy = \"voting\"\n{LABELS}"),
        &[(&a, ""), (&b, "")],
        None,
    );
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("nothing valid");
    assert!(matches!(err, PoolError::InvalidAnswer { .. }), "{err:?}");
    assert_eq!(err.kind().http_status(), 502);
    assert_eq!(err.kind().as_str(), "invalid_answer");
    assert_eq!(err.kind().grpc_code(), tonic::Code::FailedPrecondition);
    let mut headers = http::HeaderMap::new();
    err.http_headers(&mut headers);
    assert_eq!(headers["x-should-retry"], "false");
    // FASTEST too.
    let snap = llm_pool::testing::snapshot(LABELS, &[(&a, ""), (&b, "")], None);
    let err = orchestrator::handle(&snap, request()).await.expect_err("x");
    assert_eq!(err.kind().as_str(), "invalid_answer", "{err:?}");
    // An invalid answer does not touch the breaker: the fakes have none, but the real
    // endpoint does; see `invalid_answers_leave_the_breaker_closed`.
}

#[tokio::test]
async fn invalid_answers_leave_the_breaker_closed_and_say_why() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("POETRY")), &["up-model"]).await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\n[qos.breaker]\nconsecutive_failures = 2\n\n{}",
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    for _ in 0..3 {
        let resp = pool
            .post_json("/v1/query", json!({"task": "classify", "input": "x"}))
            .await;
        assert_eq!(resp.status(), 502);
        assert_eq!(resp.headers()["x-should-retry"], "false");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_answer");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not one of the task's labels"),
            "{body}"
        );
        assert!(body["error"]["decision"]["total_usage"]["total_tokens"].as_u64() > Some(0));
    }
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    assert_eq!(health["providers"][0]["endpoints"][0]["breaker"], "closed");
}

// === concurrency and shared state ===

#[tokio::test]
async fn a_joiner_with_a_longer_deadline_is_not_failed_by_the_leader_s() {
    let up = FakeUpstream::start(
        Step::Reply(Reply::text("slow answer").after(Duration::from_millis(600))),
        &["up-model"],
    )
    .await;
    let pool = start_pool(&chat_task(&up.url(), "")).await;
    let ask = |timeout: &'static str| {
        let req = pool
            .client
            .post(pool.url("/v1/query"))
            .header("x-request-timeout", timeout)
            .json(&json!({"task": "chat", "input": "same"}));
        async move { req.send().await.expect("request") }
    };
    let (short, long) = tokio::join!(ask("200ms"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ask("5s").await
    });
    assert_eq!(short.status(), 504);
    assert_eq!(long.status(), 200);
    let body: serde_json::Value = long.json().await.unwrap();
    assert_eq!(body["text"], "slow answer");
}

#[tokio::test]
async fn joiners_and_cache_hits_are_not_billed_for_the_calls_they_did_not_make() {
    let up = FakeUpstream::start(
        Step::Reply(Reply::text("shared answer").after(Duration::from_millis(300))),
        &["up-model"],
    )
    .await;
    let pool = start_pool(&chat_task(&up.url(), "")).await;
    let ask = || pool.post_json("/v1/query", json!({"task": "chat", "input": "same"}));
    let (first, second) = tokio::join!(ask(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ask().await
    });
    let first: serde_json::Value = first.json().await.unwrap();
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(up.take_requests_count(), 1, "one upstream call");
    assert!(first["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(second["usage"]["total_tokens"], 0, "{second}");
    assert_eq!(
        second["decision"]["total_usage"], first["decision"]["total_usage"],
        "the original usage stays in the Decision"
    );
    // A cache hit reports zero upstream usage to an OpenAI client too.
    let hit: serde_json::Value = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat",
            "messages": [{"role": "user", "content": "same"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hit["llm_pool"]["cache_hit"], true, "{hit}");
    assert_eq!(hit["usage"]["total_tokens"], 0, "{hit}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fallbacks_start_only_once_every_main_call_failed() {
    let a = FakeProvider::new("a", ProviderCall::fail_after(10, 500));
    let b = fake("b", 500, "from b");
    let f = fake("f", 10, "from the priced fallback");
    let snap = llm_pool::testing::snapshot_with(
        "fanout = 2\nfallback = [\"f\"]",
        &[(&a, ""), (&b, "")],
        &[&f],
    );
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(answer.text, "from b");
    assert_eq!(f.calls(), 0, "the fallback was not asked while b ran");

    // Every main call failed: now the fallback answers (and is not cached).
    let b = FakeProvider::new("b", ProviderCall::fail_after(20, 503));
    let snap = llm_pool::testing::snapshot_with(
        "fanout = 2\nfallback = [\"f\"]",
        &[(&a, ""), (&b, "")],
        &[&f],
    );
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(answer.provider, "f");
    assert_eq!(answer.decision.degraded, vec!["fallback"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn consensus_refuses_an_even_split_by_default() {
    let (a, b, c, d) = (
        fake("a", 10, "A"),
        fake("b", 20, "A"),
        fake("c", 30, "B"),
        fake("d", 40, "B"),
    );
    let providers = [(&a, ""), (&b, ""), (&c, ""), (&d, "")];
    let snap = llm_pool::testing::snapshot(
        &format!("strategy = \"consensus\"\nn = 4\n{LABELS}"),
        &providers,
        None,
    );
    let err = orchestrator::handle(&snap, request())
        .await
        .expect_err("2–2 is no consensus");
    assert!(matches!(err, PoolError::NoConsensus { .. }), "{err:?}");
    // A strict majority passes.
    let d = fake("d", 40, "A");
    let providers = [(&a, ""), (&b, ""), (&c, ""), (&d, "")];
    let snap = llm_pool::testing::snapshot(
        &format!("strategy = \"consensus\"\nn = 4\nearly_stop = false\n{LABELS}"),
        &providers,
        None,
    );
    assert_eq!(
        orchestrator::handle(&snap, request())
            .await
            .expect("3 of 4")
            .text,
        "A"
    );
    // An explicit `min_agreement = 0.5` means "at least half".
    let d = fake("d", 40, "B");
    let providers = [(&a, ""), (&b, ""), (&c, ""), (&d, "")];
    let snap = llm_pool::testing::snapshot(
        &format!("strategy = \"consensus\"\nn = 4\nmin_agreement = 0.5\n{LABELS}"),
        &providers,
        None,
    );
    assert!(orchestrator::handle(&snap, request()).await.is_ok());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn only_complete_normal_answers_are_cacheable_per_strategy() {
    let ttl = "cache_ttl_secs = 60\ndeadline_ms = 1000\n";
    // FASTEST: a normal answer is; a fallback's is not.
    let a = fake("a", 10, "A");
    let snap = llm_pool::testing::snapshot(&format!("{ttl}{LABELS}"), &[(&a, "")], None);
    assert!(storable(&snap).await);

    // VOTING decided at the deadline on fewer answers than asked for.
    let h = FakeProvider::new("h", ProviderCall::Hang);
    let (a, b) = (fake("a", 10, "A"), fake("b", 20, "A"));
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"voting\"\nearly_stop = false\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&h, "")],
        None,
    );
    assert!(!storable(&snap).await);

    // VOTING where one member failed.
    let x = FakeProvider::new("x", ProviderCall::fail_after(5, 500));
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"voting\"\nearly_stop = false\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&x, "")],
        None,
    );
    assert!(!storable(&snap).await);

    // VOTING over repeated samples: not without `cache_sampled`.
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"voting\"\nn = 3\n{LABELS}"),
        &[(&a, "")],
        None,
    );
    assert!(!storable(&snap).await);
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"voting\"\nn = 3\ncache_sampled = true\n{LABELS}"),
        &[(&a, "")],
        None,
    );
    assert!(storable(&snap).await);

    // JUDGE decided on a gathering the deadline cut short.
    let judge = fake(
        "j",
        10,
        r#"{"winner": 1, "scores": {"1": 9, "2": 3}, "rationale": "r"}"#,
    );
    let (a, b) = (fake("a", 10, "A"), fake("b", 20, "B"));
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"judge\"\n{LABELS}"),
        &[(&a, ""), (&b, ""), (&h, "")],
        Some(&judge),
    );
    assert!(!storable(&snap).await);
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"judge\"\n{LABELS}"),
        &[(&a, ""), (&b, "")],
        Some(&judge),
    );
    assert!(storable(&snap).await);

    // CASCADE with no tier accepted (the samples of every tier disagree).
    let flip = FakeProvider::new("flip", ProviderCall::reply_after(10, "A"));
    flip.push(ProviderCall::reply_after(10, "A"));
    flip.push(ProviderCall::reply_after(10, "B"));
    let snap = llm_pool::testing::snapshot(
        &format!("{ttl}strategy = \"cascade\"\ncache_sampled = true\n{LABELS}"),
        &[(&flip, "")],
        None,
    );
    let plan = request().plan(&snap).unwrap();
    let answer = orchestrator::handle(&snap, request())
        .await
        .expect("answer");
    assert_eq!(answer.decision.degraded, vec!["no_tier_accepted"]);
    assert!(!llm_pool::cache::storable(&plan, &answer));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_caller_s_short_deadline_does_not_lower_a_provider_s_reliability() {
    let slow = fake("slow", 2_000, "A");
    let snap = llm_pool::testing::snapshot(
        &format!("strategy = \"weighted\"\n{LABELS}"),
        &[(&slow, "")],
        None,
    );
    for _ in 0..5 {
        let req = PoolRequest {
            timeout: Some(Duration::from_millis(100)),
            ..request()
        };
        let err = orchestrator::handle(&snap, req).await.expect_err("cut");
        assert!(matches!(err, PoolError::DeadlineExceeded { .. }));
    }
    assert_eq!(snap.reliability.get("slow"), 1.0);
    // FASTEST too.
    let snap = llm_pool::testing::snapshot(LABELS, &[(&slow, "")], None);
    let req = PoolRequest {
        timeout: Some(Duration::from_millis(100)),
        ..request()
    };
    let _ = orchestrator::handle(&snap, req).await;
    assert_eq!(snap.reliability.get("slow"), 1.0);
    let d = orchestrator::handle(&snap, request())
        .await
        .expect("in time");
    assert_eq!(d.decision.candidates[0].status, CandidateStatus::Ok);
}

// === tenants and accounting ===

#[tokio::test]
async fn answers_and_errors_name_no_upstream_url_and_no_upstream_body() {
    let up = FakeUpstream::start(
        Step::Status(500, "stack trace at /srv/internal, key sk-secret".into()),
        &["up-model"],
    )
    .await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let host = up.url().trim_start_matches("http://").to_owned();
    for (path, body) in [
        ("/v1/query", json!({"task": "chat", "input": "x"})),
        (
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/api/chat",
            json!({"model": "task:chat", "stream": false,
            "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        let text = pool.post_json(path, body).await.text().await.unwrap();
        assert!(!text.contains(&host), "{path}: {text}");
        assert!(!text.contains("sk-secret"), "{path}: {text}");
        assert!(
            text.contains("500"),
            "{path} still says what happened: {text}"
        );
    }
    up.set_default(Step::Reply(Reply::text("fine")));
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "y"}))
        .await;
    let decision = resp.headers()["x-llm-pool-decision"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&host), "{text}");
    assert!(!decision.contains(&host), "{decision}");
    assert!(
        text.contains("up#0"),
        "the endpoint is named by position: {text}"
    );
    // Operators still see the URL and the upstream's words on /health.
    let health = pool.get("/health").await.text().await.unwrap();
    assert!(health.contains(&host));
}

#[tokio::test]
async fn changing_strategy_or_n_is_a_tenant_s_right() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("fine")), &["up-model"]).await;
    let sha = |k: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(k));
    let config = format!(
        "[auth]\ninference = true\nadmin = false\n\n\
         [tenants.plain]\napi_key_sha256 = [\"{}\"]\n\n\
         [tenants.power]\napi_key_sha256 = [\"{}\"]\nmay_override = true\n\n{}",
        sha(b"plain-key"),
        sha(b"power-key"),
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    let ask = |key: &'static str| {
        pool.client
            .post(pool.url("/v1/query"))
            .header("x-api-key", key)
            .json(&json!({"task": "chat", "input": "x", "strategy": "voting", "n": 3}))
            .send()
    };
    let plain: serde_json::Value = ask("plain-key").await.unwrap().json().await.unwrap();
    assert_eq!(plain["decision"]["strategy"], "fastest", "{plain}");
    assert_eq!(
        plain["decision"]["fallbacks"],
        json!(["override_refused:strategy", "override_refused:n"])
    );
    assert_eq!(up.take_requests_count(), 1, "one call, not three");
    let power: serde_json::Value = ask("power-key").await.unwrap().json().await.unwrap();
    assert_eq!(power["decision"]["strategy"], "voting", "{power}");
    assert_eq!(up.take_requests_count(), 3);
}

#[tokio::test]
async fn a_caller_s_short_deadline_does_not_trip_a_healthy_endpoint_s_breaker() {
    let up = FakeUpstream::start(
        Step::Reply(Reply::text("slow").after(Duration::from_millis(400))),
        &["up-model"],
    )
    .await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\n[qos.breaker]\nconsecutive_failures = 2\n\n{}",
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    for _ in 0..4 {
        let r = pool
            .client
            .post(pool.url("/v1/query"))
            .header("x-request-timeout", "100ms")
            .json(&json!({"task": "chat", "input": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 504);
    }
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    let e = &health["providers"][0]["endpoints"][0];
    assert_eq!(e["breaker"], "closed", "{e}");
    assert_eq!(e["failures"], 0, "{e}");
    let r = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_ollama_error_line_inside_a_stream_is_a_failure() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("fine")), &["up-model"]).await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    up.push([Step::Raw {
        content_type: "application/x-ndjson",
        pieces: vec![
            (
                Duration::ZERO,
                "{\"model\":\"up-model\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n".into(),
            ),
            (Duration::ZERO, "{\"error\":\"model runner crashed\"}\n".into()),
        ],
    }]);
    let text = pool
        .post_json(
            "/api/chat",
            json!({"model": "task:chat",
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .text()
        .await
        .unwrap();
    let lines = ndjson(&text);
    assert!(lines.last().unwrap().get("error").is_some(), "{text}");
    assert!(!lines.iter().any(|l| l["done"] == true), "{text}");
}

const ADMIN_KEY: &str = "admin-usage-key";
const USER_KEY: &str = "user-usage-key";

fn tenants_config(url: &str, extra: &str) -> String {
    let sha = |k: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(k.as_bytes()));
    format!(
        "[auth]\ninference = true\nadmin = true\n\n\
         [tenants.ops]\napi_key_sha256 = [\"{}\"]\nadmin = true\n\n\
         [tenants.user]\napi_key_sha256 = [\"{}\"]\n\n{extra}\n{}",
        sha(ADMIN_KEY),
        sha(USER_KEY),
        basic_config("openai", url)
    )
}

/// The user tenant's usage at provider `up`, as `/v1/usage` reports it.
async fn user_usage(pool: &Pool) -> serde_json::Value {
    let r = pool
        .client
        .get(pool.url("/v1/usage?tenant=user"))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .expect("GET /v1/usage");
    let body: serde_json::Value = r.json().await.expect("usage JSON");
    body["tenants"]["user"]["providers"]["up"].clone()
}

#[tokio::test]
async fn a_failed_request_s_spent_tokens_are_counted() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("POETRY")), &["up-model"]).await;
    let pool = start_pool(&tenants_config(&up.url(), "")).await;
    let r = pool
        .client
        .post(pool.url("/v1/query"))
        .header("x-api-key", USER_KEY)
        .json(&json!({"task": "classify", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let usage = user_usage(&pool).await;
    assert_eq!(usage["calls"], 1, "{usage}");
    assert_eq!(usage["completion_tokens"], 1, "{usage}");
}

#[tokio::test]
async fn an_abandoned_stream_settles_the_tokens_it_generated() {
    let reply = Reply::text("one two three four five six seven eight nine ten")
        .chunk_delay(Duration::from_millis(100));
    let up = FakeUpstream::start(Step::Reply(reply), &["up-model"]).await;
    let pool = start_pool(&tenants_config(&up.url(), "")).await;
    let mut resp = pool
        .client
        .post(pool.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {USER_KEY}"))
        .json(&json!({"model": "task:chat", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    // Read until a few pieces of text arrived, then go away.
    let mut seen = String::new();
    while seen.matches("\"content\"").count() < 3 {
        let chunk = resp.chunk().await.unwrap().expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(resp);
    let settled = tokio::time::timeout(WAIT, async {
        loop {
            let usage = user_usage(&pool).await;
            if usage["calls"] == 1 {
                return usage;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the abandoned stream was settled");
    let completion = settled["completion_tokens"].as_u64().unwrap();
    assert!(
        (2..10).contains(&completion),
        "billed what was streamed, not nothing and not the whole answer: {settled}"
    );
}
