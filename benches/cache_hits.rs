//! Cache hit latency and throughput through HTTP, for the in-process (moka) and the Redis
//! backend. The pool runs as its own process (the release binary), pinned to core 0 with
//! `taskset` when available; this load generator, the tiny upstream and redis-server run
//! beside it. c = 1 for latency (p50/p99 of 5,000 hits), c = 32 for throughput.
//!
//! `scripts/bench-cache.sh` runs it; under `cargo test` it runs a short smoke version.

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::process::{Child, Command};
use tokio::time::Instant;

async fn upstream() -> String {
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(|| async {
                axum::Json(serde_json::json!({
                    "choices": [{"message": {"role": "assistant", "content": "a cached answer"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3}
                }))
            }),
        )
        .route("/v1/models", get(|| async { axum::Json(serde_json::json!({"data": [{"id": "m"}]})) }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn pinned(core: &str, program: &str) -> Command {
    let has_taskset = std::process::Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok();
    if has_taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", core, program]);
        c
    } else {
        Command::new(program)
    }
}

async fn wait_http(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not ready: {url}");
}

async fn start_pool(upstream: &str, cache: &str) -> (Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "[server]\ngrpc_addr = \"127.0.0.1:{}\"\nhttp_addr = \"127.0.0.1:{port}\"\n\n[auth]\ninference = false\n\n[qos]\nhealth_check_interval_ms = 0\n\n{cache}\n\n\
         [providers.up]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{upstream}\"]\n\n\
         [tasks.chat]\nproviders = [\"up\"]\ncache_ttl_secs = 3600\n",
        free_port()
    );
    let path = dir.path().join("llm-pool.toml");
    std::fs::write(&path, config).expect("write config");
    let child = pinned("0", env!("CARGO_BIN_EXE_llm-pool"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start llm-pool");
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{base}/readyz")).await;
    (child, base, dir)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((p / 100.0) * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

async fn measure(name: &str, base: &str, hits: usize, seconds: f64) {
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/query");
    let body = serde_json::json!({"task": "chat", "input": "the same question"});
    let first: serde_json::Value = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("warm-up")
        .json()
        .await
        .expect("json");
    assert_eq!(first["text"], "a cached answer");
    let mut lat = Vec::with_capacity(hits);
    for _ in 0..hits {
        let t0 = Instant::now();
        let r = client.post(&url).json(&body).send().await.expect("hit");
        let bytes = r.bytes().await.expect("body");
        lat.push(t0.elapsed());
        assert!(
            bytes.windows(15).any(|w| w == b"\"cache_hit\":tru"),
            "every request is a hit"
        );
    }
    lat.sort_unstable();
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (client, url, body, done) =
            (client.clone(), url.clone(), body.clone(), Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                if client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let rps = done.load(Ordering::Relaxed) as f64 / seconds;
    println!(
        "{name:8} c=1: p50 {:>8.1?}  p99 {:>8.1?}   c=32: {rps:>8.0} hits/s",
        pct(&lat, 50.0),
        pct(&lat, 99.0)
    );
}

#[tokio::main]
async fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (hits, seconds) = if smoke { (200, 0.5) } else { (5_000, 5.0) };
    let upstream = upstream().await;
    println!(
        "cache hits through HTTP /v1/query (pool pinned to core 0 when taskset exists){}",
        if smoke { " (smoke run)" } else { "" }
    );
    let (_pool, base, _dir) = start_pool(&upstream, "").await;
    measure("memory", &base, hits, seconds).await;

    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("redis    skipped: no redis-server on PATH");
        return;
    }
    let port = free_port();
    let _redis = pinned("1", "redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cache = format!("[cache]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"");
    let (_pool, base, _dir) = start_pool(&upstream, &cache).await;
    measure("redis", &base, hits, seconds).await;
}
