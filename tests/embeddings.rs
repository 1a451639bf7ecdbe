//! Embeddings on both surfaces (`/v1/embeddings`, `/api/embed`, `/api/embeddings`) in front
//! of both upstream kinds: what the upstream received, vectors in input order, base64
//! encoding, the cache, failover and hedging to another provider, refused fields.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use serde_json::{Value, json};

const KINDS: [&str; 2] = ["openai", "ollama"];

/// The fake upstream's vector of a text: its length, its first byte, 1.
fn vector(text: &str) -> Value {
    json!([text.len() as f32, f32::from(text.as_bytes()[0]), 1.0])
}

#[tokio::test]
async fn openai_embeddings_reach_both_kinds_in_order() {
    for kind in KINDS {
        let mut up = fake("unused").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/embeddings",
                json!({"model": "up", "input": ["hello world", "bye"], "dimensions": 3}),
            )
            .await;
        assert_eq!(resp.status(), 200, "{kind}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][0]["index"], 0);
        assert_eq!(body["data"][0]["embedding"], vector("hello world"));
        assert_eq!(body["data"][1]["embedding"], vector("bye"));
        assert_eq!(body["usage"]["prompt_tokens"], 3, "{kind}");
        assert_eq!(body["llm_pool"]["provider"], "up");
        let sent = up.next_request().await;
        assert_eq!(sent.body["input"], json!(["hello world", "bye"]));
        assert_eq!(sent.body["dimensions"], 3);
        assert_eq!(sent.body["model"], "up-model");
        assert_eq!(
            sent.path,
            if kind == "openai" {
                "/v1/embeddings"
            } else {
                "/api/embed"
            }
        );
    }
}

#[tokio::test]
async fn base64_vectors_are_little_endian_floats() {
    let up = fake("unused").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/embeddings",
            json!({"model": "up", "input": "hey", "encoding_format": "base64"}),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, [3.0, f32::from(b'h'), 1.0]);
}

#[tokio::test]
async fn identical_embeddings_are_served_from_the_cache() {
    let up = fake("unused").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let ask = json!({"model": "up", "input": ["same text"]});
    let first: Value = pool
        .post_json("/v1/embeddings", ask.clone())
        .await
        .json()
        .await
        .unwrap();
    let second: Value = pool
        .post_json("/v1/embeddings", ask)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["llm_pool"]["cache_hit"], false);
    assert_eq!(second["llm_pool"]["cache_hit"], true);
    assert_eq!(first["data"], second["data"]);
    assert_eq!(up.take_requests_count(), 1, "one upstream call for both");
    // Other dimensions are another answer.
    let third: Value = pool
        .post_json(
            "/v1/embeddings",
            json!({"model": "up", "input": ["same text"], "dimensions": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(third["llm_pool"]["cache_hit"], false);
}

#[tokio::test]
async fn ollama_embed_routes_answer_in_their_shapes() {
    for kind in KINDS {
        let mut up = fake("unused").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let body: Value = pool
            .post_json(
                "/api/embed",
                json!({"model": "up", "input": ["one", "two"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["embeddings"], json!([vector("one"), vector("two")]));
        assert_eq!(body["prompt_eval_count"], 2);
        let _ = up.next_request().await;
        let body: Value = pool
            .post_json("/api/embeddings", json!({"model": "up", "prompt": "solo"}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["embedding"], vector("solo"), "{kind}");
        assert_eq!(up.next_request().await.body["input"], json!(["solo"]));
    }
}

#[tokio::test]
async fn ollama_embed_options_reach_ollama_and_are_refused_by_openai_kinds() {
    let mut up = fake("unused").await;
    let ask = json!({"model": "up", "input": "x", "truncate": false, "keep_alive": "1m",
        "options": {"num_ctx": 512}});
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    assert_eq!(
        pool.post_json("/api/embed", ask.clone()).await.status(),
        200
    );
    let sent = up.next_request().await.body;
    assert_eq!(sent["truncate"], false);
    assert_eq!(sent["keep_alive"], "1m");
    assert_eq!(sent["options"], json!({"num_ctx": 512}));

    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool.post_json("/api/embed", ask).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("keep_alive"),
        "{body}"
    );
    let resp = pool
        .post_json(
            "/v1/embeddings",
            json!({"model": "up", "input": [[1, 2, 3]]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input[0]"),
        "{body}"
    );
    assert_eq!(up.take_requests_count(), 1, "refusals reach no upstream");
}

fn two_providers(a: &str, b: &str, hedge: &str) -> String {
    format!(
        r#"
[providers.a]
kind = "openai"
model = "m"
endpoints = ["{a}"]

[providers.b]
kind = "openai"
model = "m"
endpoints = ["{b}"]

[tasks.vec]
providers = ["a", "b"]
{hedge}
"#
    )
}

#[tokio::test]
async fn a_failed_embedding_call_hands_over_to_the_next_provider() {
    let a = FakeUpstream::start(Step::Status(500, "down".into()), &["m"]).await;
    let b = FakeUpstream::start(Step::Reply(Reply::text("")), &["m"]).await;
    let pool = start_pool(&two_providers(&a.url(), &b.url(), "")).await;
    let resp = pool
        .post_json(
            "/v1/embeddings",
            json!({"model": "task:vec", "input": "hi"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["llm_pool"]["provider"], "b");
}

#[tokio::test]
async fn a_slow_embedding_call_is_hedged_to_the_next_provider() {
    let a = FakeUpstream::start(
        Step::Reply(Reply::text("").after(Duration::from_secs(30))),
        &["m"],
    )
    .await;
    let b = FakeUpstream::start(Step::Reply(Reply::text("")), &["m"]).await;
    let pool = start_pool(&two_providers(&a.url(), &b.url(), "hedge_delay_ms = 20")).await;
    let resp = pool
        .post_json(
            "/v1/embeddings",
            json!({"model": "task:vec", "input": "hi"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["llm_pool"]["provider"], "b", "the hedge won");
    assert_eq!(a.in_flight(), 0, "the slow call was dropped");
}

#[tokio::test]
async fn models_can_be_looked_up_one_by_one() {
    let up = fake("unused").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let body: Value = pool.get("/v1/models/task:chat").await.json().await.unwrap();
    assert_eq!(body["id"], "task:chat");
    assert_eq!(body["object"], "model");
    assert_eq!(pool.get("/v1/models/nope").await.status(), 404);
}
