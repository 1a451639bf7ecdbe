//! "The Tail at Scale" against llm-pool: several upstream endpoints whose latency is heavy
//! tailed (by default 98 % answer in 10 ms, 2 % take 50× longer), and the pool in front
//! with hedging off, with a fixed hedge delay, and with an adaptive p95 delay. Prints
//! p50/p99/p99.9 latency and the share of extra upstream calls for each. A second run
//! kills one endpoint mid-way and brings it back, and reports how fast its breaker ejects
//! and readmits it and how many requests failed meanwhile.
//!
//! `scripts/bench-tail.sh` runs it (`cargo bench --bench tail -- [--requests N]
//! [--concurrency C] [--slow-share 0.02] [--slow-factor 50]`). Under `cargo test` it runs
//! a small smoke version, so the harness is known to work.

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports its figures on stdout"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::time::Instant;

#[derive(Clone)]
struct Upstream {
    fast: Duration,
    slow: Duration,
    slow_share: f64,
    calls: Arc<AtomicU64>,
    dead: Arc<AtomicBool>,
}

async fn chat(State(u): State<Upstream>) -> axum::response::Response {
    use axum::response::IntoResponse;
    u.calls.fetch_add(1, Ordering::Relaxed);
    if u.dead.load(Ordering::Relaxed) {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "dead").into_response();
    }
    let d = if fastrand::f64() < u.slow_share {
        u.slow
    } else {
        u.fast
    };
    tokio::time::sleep(d).await;
    axum::Json(serde_json::json!({
        "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1}
    }))
    .into_response()
}

async fn models() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"data": [{"id": "m"}]}))
}

async fn start_upstream(u: Upstream) -> SocketAddr {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .with_state(u);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

struct Args {
    requests: usize,
    concurrency: usize,
    endpoints: usize,
    slow_share: f64,
    slow_factor: u32,
    fast_ms: u64,
    smoke: bool,
}

fn args() -> Args {
    let raw: Vec<String> = std::env::args().collect();
    let smoke = !raw.iter().any(|a| a == "--bench");
    let get = |name: &str| {
        raw.iter()
            .position(|a| a == name)
            .and_then(|i| raw.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Args {
        requests: get("--requests").map_or(if smoke { 300 } else { 20_000 }, |v| v as usize),
        concurrency: get("--concurrency").map_or(16, |v| v as usize),
        endpoints: get("--endpoints").map_or(3, |v| v as usize),
        slow_share: get("--slow-share").unwrap_or(0.02),
        slow_factor: get("--slow-factor").map_or(50, |v| v as u32),
        fast_ms: get("--fast-ms").map_or(10, |v| v as u64),
        smoke,
    }
}

fn config(urls: &[String], task: &str) -> String {
    let endpoints: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"
[server]
grpc_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"

[auth]
inference = false

[qos]
health_check_interval_ms = 0
hedge_budget_percent = 5

[providers.p]
kind = "openai"
model = "m"
endpoints = [{}]
max_concurrency = 64

[tasks.t]
template = "{{{{input}}}}"
providers = ["p"]
deadline_ms = 30000
{task}
"#,
        endpoints.join(", ")
    )
}

async fn start_pool(text: &str) -> llm_pool::app::Running {
    let config = llm_pool::config::load_str(text, std::path::Path::new(".")).expect("config");
    llm_pool::app::start(None, config).await.expect("start")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends `n` requests, `c` at a time; returns each latency and the number that failed.
async fn load(url: &str, n: usize, c: usize) -> (Vec<Duration>, usize) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..c {
        let (client, next, url) = (client.clone(), Arc::clone(&next), url.to_owned());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut failed = 0;
            while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let t0 = Instant::now();
                let ok = client
                    .post(&url)
                    .json(&serde_json::json!({"task": "t", "input": "hi"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                out.push(t0.elapsed());
                failed += usize::from(!ok);
            }
            (out, failed)
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut failed = 0;
    for w in workers {
        let (v, f) = w.await.expect("worker");
        all.extend(v);
        failed += f;
    }
    all.sort_unstable();
    (all, failed)
}

#[tokio::main]
async fn main() {
    let a = args();
    let fast = Duration::from_millis(a.fast_ms);
    let slow = fast * a.slow_factor;
    println!(
        "tail: {} requests, concurrency {}, {} endpoints, {:.1} % of calls take {:?} instead of {:?}{}",
        a.requests,
        a.concurrency,
        a.endpoints,
        a.slow_share * 100.0,
        slow,
        fast,
        if a.smoke { " (smoke run)" } else { "" }
    );
    println!(
        "{:22} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "mode", "p50", "p99", "p99.9", "max", "extra"
    );
    let modes = [
        ("hedging off", String::new()),
        ("fixed delay 20 ms", "hedge_delay_ms = 20".to_owned()),
        (
            "adaptive p95",
            "hedge_percentile = 95\nhedge_delay_ms = 20".to_owned(),
        ),
    ];
    for (name, task) in modes {
        let calls = Arc::new(AtomicU64::new(0));
        let mut urls = Vec::new();
        for _ in 0..a.endpoints {
            let u = Upstream {
                fast,
                slow,
                slow_share: a.slow_share,
                calls: Arc::clone(&calls),
                dead: Arc::default(),
            };
            urls.push(format!("http://{}", start_upstream(u).await));
        }
        let pool = start_pool(&config(&urls, &task)).await;
        let url = format!("http://{}/v1/query", pool.http_addr);
        let (lat, failed) = load(&url, a.requests, a.concurrency).await;
        let extra = calls.load(Ordering::Relaxed) as f64 / a.requests as f64 - 1.0;
        println!(
            "{:22} {:>9.1?} {:>9.1?} {:>9.1?} {:>9.1?} {:>7.1}%{}",
            name,
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            pct(&lat, 99.9),
            lat[lat.len() - 1],
            extra * 100.0,
            if failed > 0 {
                format!("  ({failed} failed)")
            } else {
                String::new()
            }
        );
        pool.shutdown(Duration::from_secs(5)).await;
    }
    breaker_run(&a, fast).await;
}

/// One of three endpoints dies for a while: how fast is it ejected and readmitted, and how
/// many requests fail meanwhile?
async fn breaker_run(a: &Args, fast: Duration) {
    let calls = Arc::new(AtomicU64::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let mut urls = Vec::new();
    for i in 0..3 {
        let u = Upstream {
            fast,
            slow: fast,
            slow_share: 0.0,
            calls: Arc::clone(&calls),
            dead: if i == 0 {
                Arc::clone(&dead)
            } else {
                Arc::default()
            },
        };
        urls.push(format!("http://{}", start_upstream(u).await));
    }
    let text = config(&urls, "").replace(
        "hedge_budget_percent = 5",
        "hedge_budget_percent = 5\n[qos.breaker]\ncooldown_ms = 500\nmax_cooldown_ms = 4000\n[qos.retry]\nmax_attempts = 1",
    );
    let pool = start_pool(&text).await;
    let url = format!("http://{}/v1/query", pool.http_addr);
    let phase = if a.smoke {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let state = pool.state.clone();
    let dead_url = urls[0].clone();
    let breaker = move || {
        let s = state.config.load();
        s.providers
            .get("p")
            .and_then(|p| p.health().into_iter().find(|e| e.url == dead_url))
            .map(|e| e.breaker)
    };
    let t0 = Instant::now();
    let mut failed = [0usize; 3];
    let mut ejected_after = None;
    let mut readmitted_after = None;
    let client = reqwest::Client::new();
    for (i, failed_in_phase) in failed.iter_mut().enumerate() {
        if i == 1 {
            dead.store(true, Ordering::Relaxed);
        }
        if i == 2 {
            dead.store(false, Ordering::Relaxed);
        }
        let phase_start = Instant::now();
        while phase_start.elapsed() < phase {
            let ok = client
                .post(&url)
                .json(&serde_json::json!({"task": "t", "input": "hi"}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            *failed_in_phase += usize::from(!ok);
            let b = breaker();
            if i == 1 && ejected_after.is_none() && b == Some(llm_pool::qos::BreakerState::Open) {
                ejected_after = Some(phase_start.elapsed());
            }
            if i == 2
                && readmitted_after.is_none()
                && b == Some(llm_pool::qos::BreakerState::Closed)
            {
                readmitted_after = Some(phase_start.elapsed());
            }
        }
    }
    println!(
        "breaker: endpoint dead for {phase:?}: ejected after {ejected_after:?} ({} failed requests while it tripped), \
         readmitted {readmitted_after:?} after recovery; failures before/during/after: {:?}; total {:?}",
        failed[1],
        failed,
        t0.elapsed()
    );
    pool.shutdown(Duration::from_secs(5)).await;
}
