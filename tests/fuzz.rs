//! Property-based fuzzing of every request decoder (native, OpenAI and Ollama JSON bodies,
//! the gRPC protobuf) and of the config parser: arbitrary bytes, and structured inputs built
//! from the fields each decoder knows so that the deeper paths are reached. The properties:
//! no panic, no 5xx caused by the input itself, and an answer in bounded time.
//!
//! `cargo test` runs `FUZZ_CASES` cases per target (default 64); docs/SECURITY.md records a
//! longer run (`FUZZ_CASES=20000 cargo test --release --test fuzz`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// The HTTP app and the gRPC routes in process, in front of a fake upstream that answers.
struct App {
    http: axum::Router,
    grpc: axum::Router,
    _up: FakeUpstream,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let up = FakeUpstream::start(Step::Reply(Reply::text("fine")), &["up-model"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("prompts")).expect("prompts");
    std::fs::write(
        dir.path().join("prompts/classify.md"),
        "<!-- variables: input -->\nClassify: {{input}}",
    )
    .expect("prompt");
    let text = common::with_server(&common::basic_config("openai", &up.url()));
    let config = llm_pool::config::load_str(&text, dir.path()).expect("config");
    let snapshot = llm_pool::live::Snapshot::prepare(config, None).expect("a valid config");
    let state = llm_pool::state::AppState::new(llm_pool::live::ConfigStore::new(None, snapshot));
    let http = llm_pool::api::http::router(state.clone());
    let grpc = llm_pool::api::grpc::routes(state)
        .await
        .expect("routes")
        .into_axum_router();
    App {
        http,
        grpc,
        _up: up,
        _dir: dir,
    }
}

/// Sends one request in process; the status, within a bound.
async fn status(router: &axum::Router, req: Request<Body>) -> u16 {
    let resp = tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(req))
        .await
        .expect("answered in bounded time")
        .expect("infallible");
    let status = resp.status().as_u16();
    // Drain the body: streamed answers must end too.
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        axum::body::to_bytes(resp.into_body(), 16 << 20),
    )
    .await
    .expect("body ends in bounded time");
    assert!(body.is_ok(), "body readable");
    status
}

/// Every route that takes a body, from the router's own table (a new one is fuzzed too).
fn routes() -> Vec<&'static str> {
    llm_pool::api::http::route_table()
        .into_iter()
        .filter(|(method, ..)| method == http::Method::POST)
        .map(|(_, path, _)| path)
        .collect()
}

const FIELDS: &[&str] = &[
    "task",
    "model",
    "input",
    "messages",
    "role",
    "content",
    "prompt",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "strategy",
    "cache",
    "variables",
    "metadata",
    "options",
    "num_predict",
    "format",
    "system",
    "raw",
    "response_format",
    "type",
    "stream_options",
    "include_usage",
    "timeout_ms",
    "lang",
    "name",
];

/// JSON built from the decoders' field names and values of every type.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "chat",
            "echo",
            "classify",
            "up",
            "task:chat",
            "default",
            "user",
            "system",
            "assistant",
            "json",
            "voting",
            "judge",
            "bypass",
            "only",
            "",
            "\u{0}",
            "é",
        ])
        .prop_map(|s| json!(s)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..8).prop_map(
                |kv| { Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }
            ),
        ]
    })
}

fn post(path: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

#[test]
fn http_decoders_never_panic_or_fail_on_input() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = Arc::new(rt.block_on(app()));
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| serde_json::to_vec(&v).expect("json")),
    ];
    runner()
        .run(
            &(prop::sample::select(routes()), bodies),
            |(route, body)| {
                let code = rt.block_on(status(&app.http, post(route, body)));
                // 5xx only from the upstream side (503/504 are not the input's fault).
                prop_assert!(code != 500, "{route}: 500 from input");
                Ok(())
            },
        )
        .expect("no failing input");
}

#[test]
fn grpc_decoder_never_panics() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = Arc::new(rt.block_on(app()));
    let messages = prop::collection::vec(any::<u8>(), 0..512);
    let methods = prop::sample::select(vec![
        "/llmpool.v1.LlmPool/Query",
        "/llmpool.v1.LlmPool/StreamQuery",
        "/llmpool.v1.LlmPool/Health",
    ]);
    runner()
        .run(
            &(methods, messages, any::<bool>()),
            |(method, msg, frame)| {
                // Either a well-framed message with arbitrary content, or arbitrary framing.
                let body = if frame {
                    let mut b = vec![0u8];
                    b.extend(u32::try_from(msg.len()).expect("small").to_be_bytes());
                    b.extend(&msg);
                    b
                } else {
                    msg
                };
                let req = Request::post(method)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(Body::from(body))
                    .expect("request");
                let code = rt.block_on(status(&app.grpc, req));
                prop_assert_eq!(code, 200, "gRPC answers in-band");
                Ok(())
            },
        )
        .expect("no failing input");
}

#[test]
fn config_parser_never_panics() {
    let valid = common::with_server(&common::basic_config("openai", "http://127.0.0.1:1"));
    let lines: Vec<String> = valid.lines().map(str::to_owned).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().to_path_buf();
    // Arbitrary text, and the valid file with lines dropped, repeated or rewritten.
    let edits = prop::collection::vec((0..lines.len(), 0u8..4, ".{0,30}"), 0..6);
    let texts = prop_oneof![
        ".{0,400}".prop_map(|s: String| s),
        edits.prop_map(move |edits| {
            let mut l = lines.clone();
            for (i, op, text) in edits {
                let i = i.min(l.len().saturating_sub(1));
                if l.is_empty() {
                    break;
                }
                match op {
                    0 => {
                        l.remove(i);
                    }
                    1 => l.insert(i, l[i].clone()),
                    2 => l[i] = text,
                    _ => {
                        let key = l[i].split('=').next().unwrap_or_default().to_owned();
                        l[i] = format!("{key}= {text}");
                    }
                }
            }
            l.join("\n")
        }),
    ];
    runner()
        .run(&texts, |text| {
            let _ = llm_pool::config::load_str(&text, &base);
            Ok(())
        })
        .expect("the parser never panics");
}
