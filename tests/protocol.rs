//! Protocol details that decide whether a caller can trust what it is told: bodies with
//! trailing bytes, oversize bodies refused before they are sent, stalled bodies, the
//! in-flight gauge when callers disconnect, gRPC error details and health while draining,
//! and logs without colour codes when they go to a file.

mod common;

use std::time::Duration;

use common::*;
use llm_pool::api::grpc::pb;
use llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use prost::Message as _;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes to the HTTP port and reads what comes back within `wait`.
async fn raw_exchange(pool: &Pool, request: &[u8], wait: Duration) -> String {
    let addr = pool.http.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(wait, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_json_body_with_trailing_bytes_is_refused() {
    let up = fake("hi").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    for (path, body) in [
        ("/v1/query", r#"{"task": "chat", "input": "x"} trailing"#),
        (
            "/v1/chat/completions",
            r#"{"model": "up", "messages": [{"role": "user", "content": "x"}]}{}"#,
        ),
        ("/api/chat", r#"{"model": "up", "messages": []} ]"#),
    ] {
        let resp = pool
            .client
            .post(pool.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("trailing"), "{path}: {text}");
    }
    assert_eq!(up.take_requests_count(), 0);
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_it_is_sent() {
    let up = fake("hi").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    // The limit in tests is 64 KiB; the client announces 10 MB and waits for 100 Continue.
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 10000000\r\nexpect: 100-continue\r\n\r\n";
    let answer = raw_exchange(&pool, head.as_bytes(), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("x-request-id: "), "{answer}");
}

#[tokio::test]
async fn a_body_that_stalls_gets_408() {
    let up = fake("hi").await;
    let pool = start_pool_server(
        "header_read_timeout_ms = 300",
        &basic_config("openai", &up.url()),
    )
    .await;
    let head = "POST /v1/query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n{\"task\": ";
    let answer = raw_exchange(&pool, head.as_bytes(), WAIT).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn the_in_flight_gauge_goes_down_when_a_caller_disconnects() {
    let up = FakeUpstream::start(Step::Hang, &["up-model"]).await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let request = pool
        .client
        .post(pool.url("/v1/query"))
        .json(&json!({"task": "chat", "input": "x"}))
        .send();
    // The caller gives up while the upstream hangs.
    let _ = tokio::time::timeout(Duration::from_millis(300), request).await;
    let settled = tokio::time::timeout(WAIT, async {
        loop {
            let text = pool.get("/metrics").await.text().await.unwrap();
            // The scrape itself is in flight.
            if gauge(&text, "llm_pool_in_flight_requests") == Some(1.0)
                && text.contains("llm_pool_requests_cancelled_total{route=\"/v1/query\"}")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "the gauge stayed up after the disconnect");
}

#[tokio::test]
async fn grpc_errors_carry_the_candidates_and_retry_info_in_their_details() {
    let (a, b) = (fake("A").await, fake("B").await);
    let config = format!(
        "[providers.a]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [providers.b]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [tasks.vote]\nproviders = [\"a\", \"b\"]\nstrategy = \"consensus\"\noutput = \"label\"\nlabels = [\"A\", \"B\"]\n",
        a.url(),
        b.url()
    );
    let pool = start_pool(&config).await;
    let mut client = LlmPoolClient::connect(pool.grpc.clone()).await.unwrap();
    let status = client
        .query(pb::QueryRequest {
            task: "vote".into(),
            input: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("no consensus");
    assert_eq!(status.code(), tonic::Code::Aborted);
    let rich = tonic_types::pb::Status::decode(status.details()).expect("google.rpc.Status");
    let any = rich
        .details
        .iter()
        .find(|d| d.type_url == llm_pool::api::grpc::DECISION_TYPE_URL)
        .expect("the Decision in the details");
    let decision = pb::Decision::decode(any.value.as_slice()).unwrap();
    assert_eq!(decision.candidates.len(), 2);
}

#[tokio::test]
async fn rate_limited_grpc_calls_carry_a_standard_retry_info() {
    let up = fake("hi").await;
    let config = format!(
        "[auth]\ninference = true\nadmin = false\n\n[tenants.t]\napi_key_sha256 = [\"{}\"]\nrequests_per_minute = 1\n\n{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"secret")),
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    let mut client = LlmPoolClient::connect(pool.grpc.clone()).await.unwrap();
    let ask = || {
        let mut r = tonic::Request::new(pb::QueryRequest {
            task: "chat".into(),
            input: "x".into(),
            ..Default::default()
        });
        r.metadata_mut()
            .insert("authorization", "Bearer secret".parse().unwrap());
        r
    };
    client.query(ask()).await.expect("the first is admitted");
    let status = client
        .query(ask())
        .await
        .expect_err("the second is limited");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let rich = tonic_types::pb::Status::decode(status.details()).expect("google.rpc.Status");
    let any = rich
        .details
        .iter()
        .find(|d| d.type_url == "type.googleapis.com/google.rpc.RetryInfo")
        .expect("RetryInfo");
    let info = tonic_types::pb::RetryInfo::decode(any.value.as_slice()).unwrap();
    assert!(info.retry_delay.unwrap().seconds >= 1);
}

#[tokio::test]
async fn grpc_health_says_degraded_and_not_serving_while_draining() {
    let up = FakeUpstream::start(
        Step::Reply(Reply::text("a b c").chunk_delay(Duration::from_millis(300))),
        &["up-model"],
    )
    .await;
    let mut pool = start_pool(&basic_config("openai", &up.url())).await;
    let channel = tonic::transport::Channel::from_shared(pool.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = LlmPoolClient::new(channel.clone());
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    // A broken config file on disk: degraded.
    std::fs::write(pool.config_path(), "[providers.x\n").unwrap();
    let degraded = tokio::time::timeout(WAIT, async {
        loop {
            let h = client
                .health(pb::HealthRequest {})
                .await
                .unwrap()
                .into_inner();
            if h.status == "DEGRADED" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(degraded.is_ok(), "Health never said DEGRADED");
    // A stream keeps the pool draining while the connection stays open.
    let mut stream = client
        .stream_query(pb::QueryRequest {
            task: "chat".into(),
            input: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // A health watcher on the open connection sees the change.
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let first = tokio_stream::StreamExt::next(&mut watch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, serving);
    let running = pool.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(10)));
    let next = tokio::time::timeout(WAIT, tokio_stream::StreamExt::next(&mut watch))
        .await
        .expect("a status change while draining")
        .unwrap()
        .unwrap();
    assert_eq!(
        next.status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );
    drop(watch);
    while let Some(chunk) = tokio_stream::StreamExt::next(&mut stream).await {
        chunk.expect("the stream finishes");
    }
    assert!(shutdown.await.unwrap());
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes_and_upstream_5xx_are_no_errors() {
    let up = FakeUpstream::start(Step::Status(500, "down".into()), &["up-model"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    std::fs::write(
        dir.path().join("prompts/classify.md"),
        "Classify: {{input}}",
    )
    .unwrap();
    let path = dir.path().join("llm-pool.toml");
    std::fs::write(&path, with_server(&basic_config("openai", &up.url()))).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-pool"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the pool");
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains("istening") {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    // A request an upstream fails: one INFO line from the orchestrator, no ERROR.
    let text = String::from_utf8_lossy(&seen).into_owned();
    let addr = text
        .split("http_addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the HTTP address in the log")
        .to_owned();
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/query"))
        .json(&json!({"task": "chat", "input": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 503);
    let _ = tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains("Request failed.") {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let _ = child.kill().await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("istening"), "{text}");
    assert!(text.contains("Request failed."), "{text}");
    assert!(
        !text.contains("ERROR"),
        "an upstream 5xx logged as an ERROR: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "ANSI codes in piped logs: {text:?}"
    );
}
