//! End to end against a real model server: llama.cpp's `llama-server` serving
//! SmolLM2-135M-Instruct, started by this test. Real generated text must arrive through every
//! surface. Never asserts the model's exact words: only that real text came through with the
//! right shape, usage and finish reason.
//!
//! Needs `LLM_POOL_LLAMA_SERVER` and `LLM_POOL_MODEL` (printed by scripts/setup-models.sh);
//! scripts/test.sh sets them and runs this with `--include-ignored`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use llm_pool::api::grpc::pb;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio_stream::StreamExt;

struct LlamaServer {
    url: String,
    _child: Child,
}

async fn llama_server() -> LlamaServer {
    let bin = std::env::var("LLM_POOL_LLAMA_SERVER")
        .expect("LLM_POOL_LLAMA_SERVER: run scripts/setup-models.sh (scripts/test.sh does)");
    let model =
        std::env::var("LLM_POOL_MODEL").expect("LLM_POOL_MODEL: see scripts/setup-models.sh");
    // llama-server needs a concrete port: take a free one from the OS.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(bin)
        .args([
            "-m",
            &model,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["-t", "1", "-c", "2048", "--parallel", "4", "-a", "smollm2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start llama-server");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(r) = client.get(format!("{url}/health")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("llama-server became healthy within 60 s");
    LlamaServer { url, _child: child }
}

fn config(url: &str) -> String {
    format!(
        r#"
[providers.smollm2]
kind = "openai"
model = "smollm2"
endpoints = ["{url}"]
first_byte_timeout_ms = 120000

[tasks.chat]
providers = ["smollm2"]
max_tokens = 24
deadline_ms = 120000
"#
    )
}

fn assert_finish(reason: &str) {
    assert!(
        matches!(reason, "stop" | "length"),
        "finish reason {reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs llama-server and the SmolLM2 model; scripts/test.sh runs it"]
async fn real_text_flows_through_every_surface() {
    let llama = llama_server().await;
    let pool = start_pool(&config(&llama.url)).await;
    let user = json!([{"role": "user", "content": "Name three colors."}]);

    // Native /v1/query.
    let body: serde_json::Value = pool
        .post_json(
            "/v1/query",
            json!({"task": "chat", "input": "Name three colors.", "max_tokens": 16}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(!body["text"].as_str().unwrap().trim().is_empty(), "{body}");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(body["provider"], "smollm2");

    // OpenAI chat, plain.
    let body: serde_json::Value = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": user, "max_tokens": 16}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .trim()
            .is_empty()
    );
    assert_finish(body["choices"][0]["finish_reason"].as_str().unwrap());
    let completion = body["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion > 0 && completion <= 16, "{body}");

    // OpenAI chat, streamed.
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "smollm2", "messages": user, "max_tokens": 16, "stream": true,
                "stream_options": {"include_usage": true}}),
        )
        .await;
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert!(!text.trim().is_empty());
    assert!(chunks.len() > 3, "streamed in several chunks");
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Ollama generate and chat, streamed (default) and not.
    for (path, body, field) in [
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "Say hi.", "options": {"num_predict": 12}}),
            "response",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": user, "options": {"num_predict": 12}}),
            "message",
        ),
    ] {
        let lines = ndjson(
            &pool
                .post_json(path, body.clone())
                .await
                .text()
                .await
                .unwrap(),
        );
        let text: String = lines
            .iter()
            .filter_map(|l| {
                if field == "response" {
                    l["response"].as_str()
                } else {
                    l["message"]["content"].as_str()
                }
            })
            .collect();
        assert!(!text.trim().is_empty(), "{path}");
        let last = lines.last().unwrap();
        assert_eq!(last["done"], true);
        assert!(last["eval_count"].as_u64().unwrap() > 0);

        let mut whole = body;
        whole["stream"] = json!(false);
        let one: serde_json::Value = pool.post_json(path, whole).await.json().await.unwrap();
        assert_eq!(one["done"], true, "{path}");
        let text = if field == "response" {
            &one["response"]
        } else {
            &one["message"]["content"]
        };
        assert!(!text.as_str().unwrap().trim().is_empty(), "{path}: {one}");
        assert_finish(one["done_reason"].as_str().unwrap());
    }

    // gRPC Query and StreamQuery.
    let mut c = pb::llm_pool_client::LlmPoolClient::connect(pool.grpc.clone())
        .await
        .unwrap();
    let req = pb::QueryRequest {
        task: "chat".into(),
        input: "Name three colors.".into(),
        max_tokens: Some(16),
        ..Default::default()
    };
    let answer = c.query(req.clone()).await.unwrap().into_inner();
    assert!(!answer.text.trim().is_empty());
    assert!(answer.usage.unwrap().completion_tokens > 0);
    let mut stream = c.stream_query(req).await.unwrap().into_inner();
    let mut text = String::new();
    let mut deltas = 0;
    let mut done = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if !chunk.delta.is_empty() {
            deltas += 1;
        }
        text.push_str(&chunk.delta);
        if chunk.done {
            done = chunk.answer;
        }
    }
    assert!(!text.trim().is_empty());
    assert!(deltas > 1, "tokens arrived as they were generated");
    let done = done.expect("final chunk");
    assert_eq!(done.provider, "smollm2");
    assert_finish(&done.finish_reason);
}
