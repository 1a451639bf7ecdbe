//! Malformed and hostile input on every route family: the right status, a clear message in
//! the route's dialect, and a server that keeps serving.

mod common;

use common::*;
use serde_json::json;

async fn raw(pool: &Pool, path: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let resp = pool
        .client
        .post(pool.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, json)
}

fn message(dialect_path: &str, body: &serde_json::Value) -> String {
    if dialect_path.starts_with("/api/") {
        body["error"]
            .as_str()
            .expect("ollama error string")
            .to_owned()
    } else {
        body["error"]["message"]
            .as_str()
            .expect("error.message")
            .to_owned()
    }
}

#[tokio::test]
async fn malformed_bodies_get_400_in_each_dialect() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let routes = [
        "/v1/query",
        "/v1/chat/completions",
        "/v1/completions",
        "/api/generate",
        "/api/chat",
        "/api/show",
    ];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", b"{\"model\": \"up\", ".to_vec()),
        ("not an object", b"[1, 2, 3]".to_vec()),
        ("empty", Vec::new()),
        ("garbage", b"\x00\x01\x02 hello".to_vec()),
        (
            "invalid utf-8",
            b"{\"model\": \"\xff\xfe\", \"prompt\": \"\xff\"}".to_vec(),
        ),
        ("deep nesting", "[".repeat(10_000).into_bytes()),
    ];
    for route in routes {
        for (what, body) in &bodies {
            let (status, err) = raw(&pool, route, body.clone()).await;
            assert_eq!(status, 400, "{route} {what}: {err}");
            assert!(!message(route, &err).is_empty(), "{route} {what}");
        }
    }
    // Still serving.
    assert_eq!(pool.get("/health").await.status(), 200);
    let ok = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn native_errors_name_the_field() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let cases = [
        (
            json!({"task": "nope", "input": "x"}),
            404,
            "not_found",
            None,
        ),
        (
            json!({"model": "nope", "input": "x"}),
            404,
            "not_found",
            None,
        ),
        (
            json!({"task": "chat"}),
            400,
            "invalid_argument",
            Some("input"),
        ),
        (json!({"input": "x"}), 400, "invalid_argument", Some("task")),
        (
            json!({"task": "echo", "input": "x"}),
            400,
            "invalid_argument",
            Some("variables.lang"),
        ),
        (
            json!({"task": "chat", "input": 5}),
            400,
            "invalid_argument",
            Some("input"),
        ),
        (
            json!({"task": "chat", "input": "x", "max_tokens": 0}),
            400,
            "invalid_argument",
            Some("max_tokens"),
        ),
        (
            json!({"task": "chat", "input": "x", "max_tokens": 100000}),
            400,
            "invalid_argument",
            Some("max_tokens"),
        ),
        (
            json!({"task": "chat", "input": "x", "max_tokens": -1}),
            400,
            "invalid_argument",
            Some("max_tokens"),
        ),
        (
            json!({"task": "chat", "input": "x", "temperature": 2.5}),
            400,
            "invalid_argument",
            Some("temperature"),
        ),
        (
            json!({"task": "chat", "input": "x", "top_p": 0}),
            400,
            "invalid_argument",
            Some("top_p"),
        ),
        (
            json!({"task": "chat", "input": "x", "timeout_ms": 0}),
            400,
            "invalid_argument",
            Some("timeout"),
        ),
        (
            json!({"task": "chat", "input": "x", "strategy": "coinflip"}),
            400,
            "invalid_argument",
            Some("strategy"),
        ),
        (
            json!({"task": "chat", "input": "x", "strategy": "judge"}),
            400,
            "invalid_argument",
            Some("strategy"),
        ),
        (
            json!({"task": "chat", "input": "x", "cache": "maybe"}),
            400,
            "invalid_argument",
            Some("cache"),
        ),
        (
            json!({"task": "chat", "input": "x", "surprise": 1}),
            400,
            "invalid_argument",
            Some("surprise"),
        ),
        (
            json!({"task": "chat", "messages": [{"role": "user"}]}),
            400,
            "invalid_argument",
            Some("messages[0]"),
        ),
        (
            json!({"task": "chat", "input": "x".repeat(1001)}),
            400,
            "invalid_argument",
            Some("input"),
        ),
    ];
    for (body, status, code, field) in cases {
        let resp = pool.post_json("/v1/query", body.clone()).await;
        assert_eq!(resp.status(), status, "{body}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], code, "{body}");
        if let Some(f) = field {
            assert_eq!(err["error"]["field"], f, "{body}: {err}");
        }
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let big = json!({"task": "chat", "input": "x".repeat(70_000)})
        .to_string()
        .into_bytes();
    for route in ["/v1/query", "/v1/chat/completions", "/api/generate"] {
        let (status, err) = raw(&pool, route, big.clone()).await;
        assert_eq!(status, 413, "{route}");
        assert!(message(route, &err).contains("too large"), "{route}: {err}");
    }
}

#[tokio::test]
async fn bad_timeout_header_and_unknown_route() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .client
        .post(pool.url("/v1/query"))
        .header("x-request-timeout", "soon")
        .json(&json!({"task": "chat", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["field"], "x-request-timeout");
    let resp = pool.get("/v2/nothing").await;
    assert_eq!(resp.status(), 404);
    // Errors, unknown routes included, carry a request id too.
    assert!(resp.headers().contains_key("x-request-id"));
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
}

#[tokio::test]
async fn upstream_failures_map_to_503_and_400() {
    use llm_pool::testing::Step;
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    up.set_default(Step::Malformed);
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 503);
    up.set_default(Step::Status(400, "context length exceeded".into()));
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context length exceeded")
    );
}
