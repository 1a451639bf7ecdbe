//! OpenAI-compatible routes through the pool, in front of both upstream kinds.

mod common;

use common::*;
use llm_pool::testing::{Reply, Step};
use serde_json::json;

#[tokio::test]
async fn chat_completion_plain() {
    for kind in ["openai", "ollama"] {
        let mut up = fake("Hello there").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "up", "messages": [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                    "max_tokens": 9, "temperature": 0.2, "stop": "\n", "seed": 4}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "up");
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 7);
        assert_eq!(body["usage"]["completion_tokens"], 2);
        assert_eq!(body["llm_pool"]["provider"], "up");
        let req = up.next_request().await;
        assert_eq!(
            req.body["messages"],
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi"}])
        );
        if kind == "openai" {
            assert_eq!(req.body["max_tokens"], 9);
            assert_eq!(req.body["seed"], 4);
            assert_eq!(req.body["stop"], json!(["\n"]));
        } else {
            assert_eq!(req.body["options"]["num_predict"], 9);
            assert_eq!(req.body["options"]["seed"], 4);
        }
    }
}

#[tokio::test]
async fn chat_completion_streams_sse_ending_with_done() {
    for kind in ["openai", "ollama"] {
        let up = fake("a b c").await;
        let pool = start_pool(&basic_config(kind, &up.url())).await;
        let resp = pool
            .post_json(
                "/v1/chat/completions",
                json!({"model": "task:chat", "messages": [{"role": "user", "content": "go"}],
                    "stream": true, "stream_options": {"include_usage": true}}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let data = sse_data(&resp.text().await.unwrap());
        assert_eq!(data.last().unwrap(), "[DONE]");
        let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "a b c");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 3);
    }
}

#[tokio::test]
async fn a_stream_cut_after_the_first_token_ends_with_an_error_event() {
    let up = fake("x").await;
    let reply = Reply::text("one two three four").chunk_delay(std::time::Duration::from_millis(20));
    up.push([Step::CutAfter(2, reply)]);
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "go"}], "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_ne!(
        data.last().unwrap(),
        "[DONE]",
        "a cut stream must not look complete"
    );
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(last["error"]["message"].as_str().unwrap().contains("up"));
}

#[tokio::test]
async fn text_completions_use_the_raw_prompt() {
    let mut up = fake("upon a time").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let body: serde_json::Value = pool
        .post_json(
            "/v1/completions",
            json!({"model": "up", "prompt": "Once", "max_tokens": 4}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "upon a time");
    let req = up.next_request().await;
    assert_eq!(req.path, "/v1/completions");
    assert_eq!(req.body["prompt"], "Once");

    let resp = pool
        .post_json(
            "/v1/completions",
            json!({"model": "up", "prompt": ["Once"], "stream": true}),
        )
        .await;
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let text: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "upon a time");
}

#[tokio::test]
async fn models_lists_providers_tasks_and_aliases() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let body: serde_json::Value = pool.get("/v1/models").await.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["up", "task:chat", "task:classify", "task:echo", "default"]
    );
}

#[tokio::test]
async fn openai_errors_have_openai_shape() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let cases = [
        (
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "model_not_found",
            None,
        ),
        (
            json!({"model": "up", "messages": []}),
            400,
            "invalid_argument",
            Some("messages"),
        ),
        (
            json!({"model": "up", "messages": [{"role": "user", "content": "x"}], "temperature": 5}),
            400,
            "invalid_argument",
            Some("temperature"),
        ),
        (
            json!({"model": "up", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "invalid_argument",
            Some("messages[0].role"),
        ),
        (
            json!({"model": "up", "messages": [{"role": "user", "content": "x"}], "n": 0}),
            400,
            "invalid_argument",
            Some("n"),
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_argument",
            Some("body"),
        ),
        (
            json!({"model": 5, "messages": []}),
            400,
            "invalid_argument",
            Some("model"),
        ),
    ];
    for (body, status, code, param) in cases {
        let resp = pool.post_json("/v1/chat/completions", body.clone()).await;
        assert_eq!(resp.status(), status, "{body}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{body}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(err["error"]["type"].is_string());
        if let Some(p) = param {
            assert_eq!(err["error"]["param"], p, "{body}");
        }
    }
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_call() {
    let up = fake("x").await;
    let slow = Reply::text("one two three four five six")
        .chunk_delay(std::time::Duration::from_millis(200));
    up.push([Step::Reply(slow)]);
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "go"}], "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    assert_eq!(up.in_flight(), 1);
    drop(resp);
    tokio::time::timeout(WAIT, async {
        while up.in_flight() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the upstream stream was dropped after the client left");
}

#[tokio::test]
async fn a_deadline_that_passes_mid_stream_ends_it_with_a_timeout_event() {
    let up = fake("x").await;
    let slow = Reply::text("a b c d e f").chunk_delay(std::time::Duration::from_millis(150));
    up.push([Step::Reply(slow)]);
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .client
        .post(pool.url("/v1/chat/completions"))
        .header("x-request-timeout", "400ms")
        .json(&json!({"model": "up", "messages": [{"role": "user", "content": "go"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "timeout", "{last}");
    assert_eq!(last["error"]["code"], "deadline_exceeded");
}
