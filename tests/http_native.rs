//! `/v1/query`, `/v1/tasks` and the operations routes against a fake upstream.

mod common;

use common::*;
use llm_pool::testing::{Reply, Step};
use serde_json::json;

#[tokio::test]
async fn query_renders_the_template_and_returns_the_decision() {
    for kind in ["openai", "ollama"] {
        let mut up = fake("Hola mundo").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/query",
                json!({"task": "echo", "input": "hello", "variables": {"lang": "Spanish"}}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{kind}");
        assert_eq!(resp.headers()["x-llm-pool-provider"], "up");
        assert!(resp.headers().contains_key("x-request-id"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["text"], "Hola mundo");
        assert_eq!(body["provider"], "up");
        assert_eq!(body["task"], "echo");
        assert_eq!(body["usage"]["completion_tokens"], 2);
        assert_eq!(body["usage"]["total_tokens"], 9);
        assert_eq!(body["decision"]["strategy"], "fastest");
        assert_eq!(body["decision"]["winner"], "up");
        assert_eq!(body["decision"]["candidates"][0]["status"], "ok");

        let req = up.next_request().await;
        let (path, messages, max_tokens) = if kind == "openai" {
            (
                "/v1/chat/completions",
                &req.body["messages"],
                &req.body["max_tokens"],
            )
        } else {
            (
                "/api/chat",
                &req.body["messages"],
                &req.body["options"]["num_predict"],
            )
        };
        assert_eq!(req.path, path);
        assert_eq!(req.body["model"], "up-model");
        assert_eq!(req.body["stream"], false);
        assert_eq!(
            messages,
            &json!([{"role": "user", "content": "Say hello in Spanish"}])
        );
        assert_eq!(max_tokens, 32, "the task's default reaches the upstream");
    }
}

#[tokio::test]
async fn label_answers_are_normalised_and_invalid_ones_fail() {
    let mut up = fake("The answer is: medicine.").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let body: serde_json::Value = pool
        .post_json("/v1/query", json!({"task": "classify", "input": "aspirin"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["text"], "MEDICINE");
    let req = up.next_request().await;
    assert_eq!(req.body["messages"][0]["content"], "Classify: aspirin");

    up.set_default(Step::Reply(Reply::text("no idea")));
    let resp = pool
        .post_json("/v1/query", json!({"task": "classify", "input": "aspirin"}))
        .await;
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_answer");
    assert_eq!(
        body["error"]["decision"]["candidates"][0]["status"],
        "invalid"
    );
}

#[tokio::test]
async fn query_streams_ndjson() {
    let up = fake("one two three").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/query",
            json!({"task": "chat", "input": "count", "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let lines = ndjson(&resp.text().await.unwrap());
    let text: String = lines.iter().filter_map(|l| l["delta"].as_str()).collect();
    assert_eq!(text, "one two three");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["answer"]["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn tasks_and_operations_routes() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let tasks: serde_json::Value = pool.get("/v1/tasks").await.json().await.unwrap();
    let names: Vec<_> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["chat", "classify", "echo"]);
    assert_eq!(tasks["tasks"][2]["variables"], json!(["input", "lang"]));

    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["providers"][0]["name"], "up");
    assert_eq!(health["providers"][0]["endpoints"][0]["state"], "unknown");
    assert_eq!(pool.get("/readyz").await.status(), 200);
    let info: serde_json::Value = pool.get("/info").await.json().await.unwrap();
    assert_eq!(info["name"], "llm-pool");
    let admin: serde_json::Value = pool.get("/admin/config").await.json().await.unwrap();
    assert_eq!(admin["version"], 1);
    assert_eq!(admin["last_error"], serde_json::Value::Null);
}

#[tokio::test]
async fn failover_to_the_next_provider_is_recorded() {
    let bad = FakeUpstreamPair::new().await;
    let config = format!(
        r#"
[providers.a]
kind = "openai"
model = "m"
endpoints = ["{}"]

[providers.b]
kind = "ollama"
model = "m"
endpoints = ["{}"]

[tasks.chat]
providers = ["a", "b"]
"#,
        bad.a.url(),
        bad.b.url()
    );
    let pool = start_pool(&config).await;
    let body: serde_json::Value = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["provider"], "b");
    assert_eq!(body["text"], "from b");
    assert_eq!(body["decision"]["fallbacks"], json!(["failover:b"]));
    assert_eq!(body["decision"]["candidates"][0]["status"], "error");
    assert!(
        body["decision"]["candidates"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
}

struct FakeUpstreamPair {
    a: llm_pool::testing::FakeUpstream,
    b: llm_pool::testing::FakeUpstream,
}

impl FakeUpstreamPair {
    async fn new() -> Self {
        let a =
            llm_pool::testing::FakeUpstream::start(Step::Status(500, "boom".into()), &["m"]).await;
        let b = fake("from b").await;
        Self { a, b }
    }
}

#[tokio::test]
async fn a_dead_replica_is_skipped_for_another_endpoint_of_the_provider() {
    let up = fake("alive").await;
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let config = format!(
        "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{dead}\", \"{}\"]\n\n[tasks.chat]\nproviders = [\"p\"]\n",
        up.url()
    );
    let pool = start_pool(&config).await;
    for _ in 0..8 {
        let resp = pool
            .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
            .await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        // The live replica, named by its position: callers do not see upstream URLs.
        assert_eq!(body["decision"]["candidates"][0]["endpoint"], "p#1");
    }
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    let endpoints = health["providers"][0]["endpoints"].as_array().unwrap();
    let dead_state = endpoints.iter().find(|e| e["url"] == dead).unwrap();
    assert!(dead_state["failures"].as_u64().unwrap() >= 1);
    assert!(
        dead_state["last_error"]
            .as_str()
            .unwrap()
            .contains("connect")
    );
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_wait_for_a_slot() {
    let up = fake("x").await;
    up.set_default(Step::Reply(
        Reply::text("queued").after(std::time::Duration::from_millis(100)),
    ));
    let config = format!(
        "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{}\"]\nmax_concurrency = 1\n\n[tasks.chat]\nproviders = [\"p\"]\n",
        up.url()
    );
    let pool = start_pool(&config).await;
    let mut calls = Vec::new();
    for _ in 0..3 {
        calls.push(pool.post_json("/v1/query", json!({"task": "chat", "input": "x"})));
    }
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.max_in_flight(), 1, "never two at once upstream");
}

#[tokio::test]
async fn a_model_missing_upstream_is_unavailable_not_a_bad_request() {
    let up = fake("x").await;
    up.set_default(Step::Status(
        404,
        "model 'up-model' not found, try pulling it first".into(),
    ));
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("404"));
}
