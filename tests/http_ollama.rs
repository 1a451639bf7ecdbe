//! Ollama-compatible routes through the pool.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn generate_streams_ndjson_by_default_and_answers_whole_on_request() {
    for kind in ["openai", "ollama"] {
        let mut up = fake("why not").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/api/generate",
                json!({"model": "up", "prompt": "why?", "system": "terse",
                "options": {"num_predict": 5, "temperature": 0}}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        let lines = ndjson(&resp.text().await.unwrap());
        assert!(lines.len() >= 2);
        assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));
        let text: String = lines
            .iter()
            .filter_map(|l| l["response"].as_str())
            .collect();
        assert_eq!(text, "why not");
        let last = lines.last().unwrap();
        assert_eq!(last["done"], true);
        assert_eq!(last["done_reason"], "stop");
        assert_eq!(last["eval_count"], 2);
        assert_eq!(last["model"], "up");
        let req = up.next_request().await;
        assert_eq!(
            req.body["messages"],
            json!([{"role": "system", "content": "terse"}, {"role": "user", "content": "why?"}])
        );

        let body: serde_json::Value = pool
            .post_json(
                "/api/generate",
                json!({"model": "up:latest", "prompt": "why?", "stream": false}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["response"], "why not");
        assert_eq!(body["done"], true);
        assert_eq!(body["prompt_eval_count"], 7);
    }
}

#[tokio::test]
async fn chat_both_ways() {
    let up = fake("fine thanks").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let msgs = json!([{"role": "user", "content": "how are you"}]);
    let body: serde_json::Value = pool
        .post_json(
            "/api/chat",
            json!({"model": "default", "messages": msgs, "stream": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["message"]["role"], "assistant");
    assert_eq!(body["message"]["content"], "fine thanks");
    assert_eq!(body["done"], true);
    let resp = pool
        .post_json("/api/chat", json!({"model": "default", "messages": msgs}))
        .await;
    let lines = ndjson(&resp.text().await.unwrap());
    let text: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(text, "fine thanks");
    assert_eq!(lines.last().unwrap()["done"], true);
}

#[tokio::test]
async fn model_listing_routes() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let tags: serde_json::Value = pool.get("/api/tags").await.json().await.unwrap();
    let names: Vec<_> = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["up", "task:chat", "task:classify", "task:echo", "default"]
    );
    let show = pool.post_json("/api/show", json!({"model": "up"})).await;
    assert_eq!(show.status(), 200);
    let show: serde_json::Value = show.json().await.unwrap();
    assert_eq!(show["model_info"]["llm_pool.upstream_model"], "up-model");
    let version: serde_json::Value = pool.get("/api/version").await.json().await.unwrap();
    assert!(version["version"].is_string());
}

#[tokio::test]
async fn ollama_errors_have_ollama_shape() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    let cases = [
        (
            "/api/generate",
            json!({"model": "nope", "prompt": "x"}),
            404,
        ),
        (
            "/api/chat",
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
        ),
        ("/api/show", json!({"model": "nope"}), 404),
        ("/api/chat", json!({"model": "nope", "messages": []}), 404),
        (
            "/api/chat",
            json!({"model": "up", "messages": [{"role": "robot", "content": "x"}]}),
            400,
        ),
        ("/api/generate", json!({"prompt": "x"}), 400),
        (
            "/api/generate",
            json!({"model": "up", "prompt": "x", "options": {"temperature": "hot"}}),
            400,
        ),
        (
            "/api/generate",
            json!({"model": "up", "prompt": "x", "format": 7}),
            400,
        ),
    ];
    for (path, body, status) in cases {
        let resp = pool.post_json(path, body.clone()).await;
        assert_eq!(resp.status(), status, "{path} {body}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert!(
            err["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{path} {body}: {err}"
        );
    }
    let missing = pool.get("/api/nothing").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<serde_json::Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn empty_prompt_or_messages_load_the_model_without_calling_upstream() {
    let mut up = fake("x").await;
    let pool = start_pool(&basic_config("ollama", &up.url())).await;
    for (path, body) in [
        ("/api/generate", json!({"model": "up"})),
        ("/api/chat", json!({"model": "up", "messages": []})),
    ] {
        let resp = pool.post_json(path, body).await;
        assert_eq!(resp.status(), 200, "{path}");
        let reply: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(reply["done"], true, "{path}");
        assert_eq!(reply["done_reason"], "load", "{path}");
    }
    assert!(up.take_requests().is_empty(), "loading calls no upstream");
}
