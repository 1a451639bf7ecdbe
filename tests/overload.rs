//! Overload through the real listeners: with every slot of the provider taken, a request
//! that cannot queue is refused at once, in each surface's shape, with `Retry-After`; 429
//! when its class is over its bounds, 503 when every class is full; priorities within what
//! the tenant may use; `/health` shows the queue and `/readyz` turns unready.

mod common;

use std::time::Duration;
use tokio::time::Instant;

use common::*;
use llm_pool::api::grpc::pb;
use llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use serde_json::json;

/// One provider of one slot in front of an upstream that answers after `delay`, and the
/// `[qos.overload]` classes given.
fn config(url: &str, overload: &str) -> String {
    format!(
        r#"
[providers.up]
kind = "openai"
model = "up-model"
endpoints = ["{url}"]
max_concurrency = 1

[tasks.chat]
providers = ["up"]

[qos]
health_check_interval_ms = 0

{overload}
"#
    )
}

/// `default` may not queue; `batch` may.
const CLASS_FULL: &str = r#"
[qos.overload]
default_class = "default"
[[qos.overload.classes]]
name = "default"
max_queue = 0
[[qos.overload.classes]]
name = "batch"
max_queue = 8
"#;

/// The only class may not queue: the provider is saturated.
const ALL_FULL: &str = r#"
[qos.overload]
default_class = "default"
unready_queue_depth = 1
[[qos.overload.classes]]
name = "default"
max_queue = 0
[[qos.overload.classes]]
name = "batch"
max_queue = 1
"#;

async fn slow_upstream() -> FakeUpstream {
    FakeUpstream::start(
        Step::Reply(Reply::text("slow").after(Duration::from_secs(3))),
        &["up-model"],
    )
    .await
}

/// Holds the provider's only slot with a slow request; returns once the upstream has it.
async fn hold_slot(pool: &Pool, up: &FakeUpstream) -> tokio::task::JoinHandle<Option<u16>> {
    let held = query_later(pool, "chat", None);
    until_true("the slow call reached the upstream", || {
        std::future::ready(up.in_flight() > 0)
    })
    .await;
    held
}

/// `POST /v1/query` for `task` in the background (with `x-llm-pool-priority` when given);
/// the status it answers with.
fn query_later(
    pool: &Pool,
    task: &'static str,
    priority: Option<&'static str>,
) -> tokio::task::JoinHandle<Option<u16>> {
    let mut req = pool
        .client
        .post(pool.url("/v1/query"))
        .json(&json!({"task": task, "input": "hi"}));
    if let Some(class) = priority {
        req = req.header("x-llm-pool-priority", class);
    }
    tokio::spawn(async move { req.send().await.ok().map(|r| r.status().as_u16()) })
}

/// Polls until `done` holds, for 5 s at most (a condition, not a sleep, is what is waited
/// for).
async fn until_true<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let until = Instant::now() + Duration::from_secs(5);
    while !done().await {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `/health`'s `queue` of provider `name`.
async fn queue_of(pool: &Pool, name: &str) -> serde_json::Value {
    let health: serde_json::Value = pool.get("/health").await.json().await.expect("json");
    health["providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| p["queue"].clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_class_over_its_bounds_is_refused_at_once_on_every_surface() {
    let up = slow_upstream().await;
    let pool = start_pool(&config(&up.url(), CLASS_FULL)).await;
    let held = hold_slot(&pool, &up).await;

    let t0 = Instant::now();
    let r = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some(), "Retry-After");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    let r = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    let r = pool
        .post_json(
            "/api/chat",
            json!({"model": "task:chat", "stream": false, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 429);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("overloaded")),
        "{body}"
    );

    let mut grpc = LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect");
    let status = grpc
        .query(pb::QueryRequest {
            task: "chat".into(),
            input: "hi".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.metadata().get("retry-after").is_some(),
        "retry-after metadata: {status:?}"
    );

    // Each refusal came at once, not after the 3 s the held call takes.
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        up.take_requests_count(),
        1,
        "nothing refused reached the upstream"
    );
    held.abort();
}

/// A caller with less time than the provider's median call is refused at once (too late),
/// not queued to wait in vain. The expected service time is the median of recent calls; it
/// was read as the 0.5th percentile (the fastest call), so such a caller queued and timed
/// out. Two slots; half the recent calls are fast, half take 200 ms, two at a time: slots
/// come free about every 50 ms, so the queue's own wait estimate would let a caller with
/// 185 ms wait, but not for a 200 ms call.
#[tokio::test]
async fn a_caller_with_less_time_than_the_median_call_is_refused_not_queued() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("ok")), &["up-model"]).await;
    let config =
        config(&up.url(), CLASS_FULL).replace("max_concurrency = 1", "max_concurrency = 2");
    let pool = start_pool(&config).await;
    let query = || pool.post_json("/v1/query", json!({"task": "chat", "input": "hi"}));
    for pair in 0..10 {
        let delay = Duration::from_millis(if pair % 2 == 0 { 0 } else { 200 });
        up.push((0..2).map(|_| Step::Reply(Reply::text("ok").after(delay))));
        let (a, b) = tokio::join!(query(), query());
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    }
    up.set_default(Step::Reply(
        Reply::text("slow").after(Duration::from_secs(3)),
    ));
    let _held = [
        query_later(&pool, "chat", None),
        query_later(&pool, "chat", None),
    ];
    until_true("both slots are taken", || {
        std::future::ready(up.in_flight() == 2)
    })
    .await;

    let r = pool
        .client
        .post(pool.url("/v1/query"))
        .header("x-llm-pool-priority", "batch")
        .json(&json!({"task": "chat", "input": "hi", "timeout_ms": 185}))
        .send()
        .await
        .expect("request");
    let status = r.status();
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded", "{status} {body}");
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn every_class_full_is_a_503_and_readyz_turns_unready() {
    let up = slow_upstream().await;
    let pool = start_pool(&config(&up.url(), ALL_FULL)).await;
    let held = hold_slot(&pool, &up).await;
    // One batch caller queues (the batch queue holds one).
    let queued = query_later(&pool, "chat", Some("batch"));
    until_true("the batch caller queued", || async {
        queue_of(&pool, "up").await["queued"] == 1
    })
    .await;
    let queue = queue_of(&pool, "up").await;
    assert_eq!(queue["capacity"], 1, "{queue}");
    assert_eq!(queue["in_flight"], 1, "{queue}");
    assert_eq!(queue["classes"][1]["class"], "batch");
    assert_eq!(queue["classes"][1]["queued"], 1);
    assert_eq!(
        queue["tenants"],
        json!([{"tenant": "anonymous", "class": "batch", "queued": 1}])
    );
    let ready = pool.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["reason"], "overloaded");
    assert_eq!(body["queued"]["up"], 1);

    let r = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("overloaded")),
        "{body}"
    );
    // The same 503 on the other surfaces.
    let r = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let r = pool
        .post_json(
            "/api/generate",
            json!({"model": "task:chat", "stream": false, "prompt": "hi"}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let mut grpc = LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect");
    let status = grpc
        .query(pb::QueryRequest {
            task: "chat".into(),
            input: "hi".into(),
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
    held.abort();
    // The held call's slot goes to the queued caller once the held call ends.
    assert_eq!(queued.await.expect("task"), Some(200));
    assert_eq!(pool.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn a_request_may_ask_for_a_class_only_within_its_tenant_s_rights() {
    let up = FakeUpstream::start(Step::Reply(Reply::text("ok")), &["up-model"]).await;
    let tenants = format!(
        r#"
[auth]
inference = true
admin = false

[tenants.nightly]
api_key_sha256 = ["{}"]
priority = "batch"

[tenants.app]
api_key_sha256 = ["{}"]
priority = "default"
max_priority = "interactive"
"#,
        sha("k-nightly"),
        sha("k-app")
    );
    let pool = start_pool(&format!("{}{tenants}", config(&up.url(), ""))).await;
    let ask = |key: &'static str, class: &'static str| {
        pool.client
            .post(pool.url("/v1/query"))
            .bearer_auth(key)
            .header("x-llm-pool-priority", class)
            .json(&json!({"task": "chat", "input": "hi"}))
            .send()
    };
    assert_eq!(
        ask("k-app", "interactive").await.expect("sent").status(),
        200
    );
    assert_eq!(ask("k-nightly", "batch").await.expect("sent").status(), 200);
    let r = ask("k-nightly", "interactive").await.expect("sent");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nightly") && m.contains("interactive")),
        "{body}"
    );
    let r = ask("k-app", "urgent").await.expect("sent");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["field"], "priority", "{body}");
    // The native body's field works as the header does.
    let r = pool
        .client
        .post(pool.url("/v1/query"))
        .bearer_auth("k-nightly")
        .json(&json!({"task": "chat", "input": "hi", "priority": "interactive"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn config_refuses_bad_classes() {
    let bad = [
        (
            "[qos.overload]\ndefault_class = \"nope\"\n",
            "qos.overload.default_class",
        ),
        (
            "[qos.overload]\ndefault_class = \"a\"\n[[qos.overload.classes]]\nname = \"a\"\nreserved = 0.6\n[[qos.overload.classes]]\nname = \"b\"\nreserved = 0.5\n",
            "qos.overload.classes",
        ),
        (
            "[tenants.t]\napi_key_sha256 = []\npriority = \"vip\"\n",
            "tenants.t.priority",
        ),
    ];
    for (toml, field) in bad {
        let text = format!(
            "[providers.up]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n\n[tasks.chat]\nproviders = [\"up\"]\n\n{toml}"
        );
        let errors = llm_pool::config::load_str(&text, std::path::Path::new("."))
            .expect_err("refused")
            .to_string();
        assert!(errors.contains(field), "{field}: {errors}");
    }
}

#[tokio::test]
async fn a_listener_at_its_in_flight_cap_refuses_inference_at_once_but_not_probes() {
    let up = slow_upstream().await;
    let pool = start_pool_server("max_in_flight = 1", &config(&up.url(), "")).await;
    let held = hold_slot(&pool, &up).await;
    let t0 = Instant::now();
    let r = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("server.max_in_flight")),
        "{body}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(pool.get("/health").await.status(), 200, "probes pass");
    assert_eq!(pool.get("/readyz").await.status(), 200);
    let mut grpc = LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect");
    // The gRPC listener has its own cap: one call there is admitted (and queues for the
    // provider's one slot, then fails its short deadline).
    let mut req = tonic::Request::new(pb::QueryRequest {
        task: "chat".into(),
        input: "hi".into(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_millis(300));
    let status = grpc.query(req).await.expect_err("no slot in time");
    assert_ne!(status.code(), tonic::Code::Unavailable, "{status:?}");
    held.abort();
}

#[tokio::test]
async fn a_listener_at_its_connection_cap_closes_an_idle_connection_first() {
    let up = slow_upstream().await;
    up.set_default(Step::Reply(Reply::text("quick")));
    let pool = start_pool_server("max_connections = 1", &config(&up.url(), "")).await;
    let client = || {
        reqwest::Client::builder()
            .http1_only()
            .build()
            .expect("client")
    };
    let ask = |c: &reqwest::Client| {
        c.post(pool.url("/v1/query"))
            .json(&json!({"task": "chat", "input": "hi"}))
            .send()
    };
    // A's connection stays open, idle, after its answer.
    let a = client();
    assert_eq!(ask(&a).await.expect("a").status(), 200);
    // B needs room: A's idle connection is closed for it.
    let b = client();
    assert_eq!(ask(&b).await.expect("b").status(), 200);
    // While B's connection carries a slow call, C is refused with a 503.
    up.set_default(Step::Reply(
        Reply::text("slow").after(Duration::from_secs(3)),
    ));
    let slow = tokio::spawn({
        let req = ask(&b);
        async move { req.await.map(|r| r.status().as_u16()) }
    });
    until_true("the slow call started", || {
        std::future::ready(up.in_flight() > 0)
    })
    .await;
    let r = ask(&client()).await.expect("c answered");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(slow.await.expect("task").expect("b's slow call"), 200);
}

#[tokio::test]
async fn an_ensemble_takes_its_members_slots_together_or_waits_holding_none() {
    let up = slow_upstream().await;
    let config = format!(
        r#"
[providers.up]
kind = "openai"
model = "up-model"
endpoints = ["{}"]
max_concurrency = 3

[tasks.chat]
providers = ["up"]

[tasks.vote]
providers = ["up"]
strategy = "voting"
n = 3

[qos]
health_check_interval_ms = 0
"#,
        up.url()
    );
    let pool = start_pool(&config).await;
    // One of the three slots is taken.
    let held = hold_slot(&pool, &up).await;
    let voting = {
        let client = pool.client.clone();
        let url = pool.url("/v1/query");
        tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"task": "vote", "input": "hi"}))
                .send()
                .await
                .expect("sent");
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("json");
            (status, body)
        })
    };
    // The ensemble queues as one caller needing three slots; it takes none of the two free.
    until_true("the ensemble queued", || async {
        queue_of(&pool, "up").await["queued"] == 1
    })
    .await;
    assert_eq!(queue_of(&pool, "up").await["in_flight"], 1);
    assert_eq!(
        up.in_flight(),
        1,
        "no member started while the ensemble waits"
    );
    // A single caller does not overtake it.
    let single = query_later(&pool, "chat", None);
    until_true("the single caller queued", || async {
        queue_of(&pool, "up").await["queued"] == 2
    })
    .await;
    assert_eq!(up.in_flight(), 1);
    // The held call ends: all three members start together.
    held.abort();
    let (status, body) = voting.await.expect("task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["decision"]["candidates"].as_array().map(Vec::len),
        Some(3),
        "{body}"
    );
    assert_eq!(single.await.expect("task"), Some(200));
}

#[tokio::test]
async fn an_ensemble_over_two_providers_starts_on_neither_until_both_have_room() {
    let busy = slow_upstream().await;
    let free = slow_upstream().await;
    let config = format!(
        r#"
[providers.busy]
kind = "openai"
model = "up-model"
endpoints = ["{}"]
max_concurrency = 1

[providers.free]
kind = "openai"
model = "up-model"
endpoints = ["{}"]
max_concurrency = 1

[tasks.chat]
providers = ["busy"]

[tasks.vote]
providers = ["busy", "free"]
strategy = "voting"
n = 2

[qos]
health_check_interval_ms = 0
"#,
        busy.url(),
        free.url()
    );
    let pool = start_pool(&config).await;
    let held = hold_slot(&pool, &busy).await;
    let voting = query_later(&pool, "vote", None);
    // The ensemble waits in `busy`'s queue, holding nothing of `free`'s.
    until_true("the ensemble queued", || async {
        queue_of(&pool, "busy").await["queued"] == 1
    })
    .await;
    assert_eq!(free.in_flight(), 0, "nothing started on the free provider");
    assert_eq!(free.take_requests_count(), 0);
    held.abort();
    assert_eq!(voting.await.expect("task"), Some(200));
    assert_eq!(free.take_requests_count(), 1);
}
