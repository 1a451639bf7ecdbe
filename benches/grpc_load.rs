//! A small gRPC load client for `llmpool.v1.LlmPool/Query`, used by
//! `scripts/bench-overhead.sh`: `grpc_load --addr URL --concurrency N --seconds S` runs N
//! callers over one HTTP/2 connection for S seconds against task `bench` and prints one JSON
//! line: requests, req/s, p50 and p99 in µs.
//!
//! Under `cargo test` (no `--addr`) it runs a short smoke version against an in-process pool
//! in front of a fake upstream, so the harness is known to work.

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::sync::Arc;
use std::time::Duration;

use llm_pool::api::grpc::pb;
use llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient;
use tokio::time::Instant;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn load(addr: String, concurrency: usize, seconds: f64) -> serde_json::Value {
    let channel = tonic::transport::Endpoint::from_shared(addr)
        .expect("a URL")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::<u64>::new()));
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        let mut client = LlmPoolClient::new(channel.clone());
        let latencies = Arc::clone(&latencies);
        callers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < end {
                let req = pb::QueryRequest {
                    task: "bench".into(),
                    input: "Say hello.".into(),
                    max_tokens: Some(16),
                    ..Default::default()
                };
                let t0 = Instant::now();
                client.query(req).await.expect("Query answered");
                mine.push(t0.elapsed().as_micros() as u64);
            }
            latencies.lock().extend(mine);
        }));
    }
    for c in callers {
        c.await.expect("caller");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    serde_json::json!({
        "requests": l.len(),
        "rps": l.len() as f64 / elapsed,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
    })
}

#[tokio::main]
async fn main() {
    if let Some(addr) = arg("--addr") {
        let concurrency = arg("--concurrency")
            .and_then(|c| c.parse().ok())
            .unwrap_or(32);
        let seconds = arg("--seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0);
        println!("{}", load(addr, concurrency, seconds).await);
        return;
    }
    // Smoke: an in-process pool in front of a fake upstream.
    let up = llm_pool::testing::FakeUpstream::start(
        llm_pool::testing::Step::Reply(llm_pool::testing::Reply::text("hello")),
        &["bench"],
    )
    .await;
    let config = format!(
        "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n\n\
         [auth]\ninference = false\n\n[qos]\nhealth_check_interval_ms = 0\n\n\
         [providers.bench]\nkind = \"openai\"\nmodel = \"bench\"\nendpoints = [\"{}\"]\n\n\
         [tasks.bench]\nproviders = [\"bench\"]\n",
        up.url()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = llm_pool::config::load_str(&config, dir.path()).expect("config");
    let running = llm_pool::app::start(None, config).await.expect("start");
    let report = load(format!("http://{}", running.grpc_addr), 4, 0.3).await;
    assert!(report["requests"].as_u64().is_some_and(|n| n > 0));
    println!("grpc_load smoke run: {report}");
    running.shutdown(Duration::from_secs(2)).await;
}
