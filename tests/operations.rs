//! Usage and cost per tenant (`GET /v1/usage`, metrics) and the agent registry (register,
//! re-register on reload, deregister on shutdown, outages never block serving).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{delete, post};
use common::*;
use serde_json::{Value, json};

const ALICE: &str = "alice-usage-key";
const BOB: &str = "bob-usage-key";
const OPS: &str = "ops-usage-key";

fn usage_config(url: &str) -> String {
    format!(
        r#"
[auth]

[usage]
reference_cost_per_1k_tokens = 10.0

[tenants.alice]
api_key_sha256 = ["{alice}"]

[tenants.bob]
api_key_sha256 = ["{bob}"]

[tenants.ops]
api_key_sha256 = ["{ops}"]
admin = true

[providers.up]
kind = "openai"
model = "up-model"
endpoints = ["{url}"]
cost_per_1k_tokens = 2.0

[tasks.chat]
providers = ["up"]
temperature = 0.0
cache_ttl_secs = 600
"#,
        alice = sha(ALICE),
        bob = sha(BOB),
        ops = sha(OPS),
    )
}

async fn ask(pool: &Pool, key: &str, input: &str) -> Value {
    let r = pool
        .client
        .post(pool.url("/v1/query"))
        .header("x-api-key", key)
        .json(&json!({"task": "chat", "input": input}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn usage(pool: &Pool, query: &str) -> Value {
    let r = pool
        .client
        .get(pool.url(&format!("/v1/usage{query}")))
        .header("x-api-key", OPS)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test]
async fn usage_and_cost_per_tenant_and_provider() {
    // 7 prompt + 1 completion tokens per answer.
    let up = fake("hello").await;
    let pool = start_pool(&usage_config(&up.url())).await;
    ask(&pool, ALICE, "one").await;
    ask(&pool, ALICE, "two").await;
    ask(&pool, BOB, "three").await;
    // A cache hit costs nothing and saves the reference price of its tokens.
    let hit = ask(&pool, BOB, "three").await;
    assert_eq!(hit["cache_hit"], true);

    let all = usage(&pool, "").await;
    assert_eq!(all["source"], "memory");
    let alice = &all["tenants"]["alice"]["providers"]["up"];
    assert_eq!(alice["calls"], 2);
    assert_eq!(alice["prompt_tokens"], 14);
    assert_eq!(alice["completion_tokens"], 2);
    assert!(close(&alice["cost"], 16.0 / 1000.0 * 2.0), "{alice}");
    assert!(close(&alice["cost_saved"], 16.0 / 1000.0 * 8.0), "{alice}");
    let bob = &all["tenants"]["bob"]["total"];
    assert_eq!(bob["calls"], 1);
    assert_eq!(bob["cached_tokens"], 8);
    assert!(close(&bob["cost"], 8.0 / 1000.0 * 2.0), "{bob}");
    assert!(
        close(&bob["cost_saved"], 8.0 / 1000.0 * 8.0 + 8.0 / 1000.0 * 10.0),
        "{bob}"
    );

    let only_bob = usage(&pool, "?tenant=bob").await;
    let names: Vec<_> = only_bob["tenants"]
        .as_object()
        .expect("object")
        .keys()
        .collect();
    assert_eq!(names, ["bob"]);

    // Admin only.
    let r = pool
        .client
        .get(pool.url("/v1/usage"))
        .header("x-api-key", ALICE)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);

    // `/metrics` is open here (operations routes need no credentials): what each tenant
    // spends is not shown there, only the sum over tenants.
    let metrics = pool.get("/metrics").await.text().await.expect("metrics");
    let tenant_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("llm_pool_tenant_tokens_total"))
        .collect();
    assert!(
        tenant_lines
            .iter()
            .any(|l| l.contains("tenant=\"*\"") && l.contains("provider=\"up\"")),
        "{tenant_lines:?}"
    );
    assert!(
        !metrics.contains("tenant=\"alice\"") && !metrics.contains("tenant=\"bob\""),
        "no tenant's spend on an open /metrics"
    );
}

/// A fake agent registry: records every call.
#[derive(Clone, Default)]
struct Registry {
    calls: Arc<parking_lot::Mutex<Vec<(String, String, Value)>>>,
}

impl Registry {
    fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(
                "/agents",
                post(
                    |State(r): State<Registry>, axum::Json(body): axum::Json<Value>| async move {
                        r.calls.lock().push(("POST".into(), "/agents".into(), body));
                        axum::http::StatusCode::CREATED
                    },
                ),
            )
            .route(
                "/agents/{id}",
                delete(
                    |State(r): State<Registry>,
                     axum::extract::Path(id): axum::extract::Path<String>| async move {
                        r.calls.lock().push((
                            "DELETE".into(),
                            format!("/agents/{id}"),
                            Value::Null,
                        ));
                        axum::http::StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(self.clone())
    }

    async fn serve_on(&self, listener: tokio::net::TcpListener) {
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    async fn wait_for(&self, n: usize) -> Vec<(String, String, Value)> {
        let calls = Arc::clone(&self.calls);
        tokio::time::timeout(WAIT, async move {
            loop {
                if calls.lock().len() >= n {
                    return calls.lock().clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("registry called in time")
    }
}

fn registry_config(registry: &str, up: &str) -> String {
    format!(
        "[registry]\nurl = \"{registry}\"\nagent_id = \"pool-a\"\nendpoint = \"http://pool-a:7071\"\n\
         timeout_ms = 500\n\n{}",
        basic_config("openai", up)
    )
}

#[tokio::test]
async fn registers_reregisters_on_reload_and_deregisters_on_shutdown() {
    let registry = Registry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    registry.serve_on(listener).await;
    let up = fake("hello").await;
    let mut pool = start_pool(&registry_config(&url, &up.url())).await;

    let calls = registry.wait_for(1).await;
    let (method, path, body) = &calls[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/agents"));
    assert_eq!(body["id"], "pool-a");
    assert_eq!(body["endpoint"], "http://pool-a:7071");
    let tasks: Vec<_> = body["capabilities"]["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(tasks, ["chat", "classify", "echo"]);
    assert_eq!(body["capabilities"]["providers"][0]["model"], "up-model");

    // A reload that adds a task is announced.
    let path = pool.config_path();
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("{text}\n[tasks.extra]\nproviders = [\"up\"]\n"),
    )
    .expect("write");
    let calls = registry.wait_for(2).await;
    let tasks = calls[1].2["capabilities"]["tasks"]
        .as_array()
        .expect("tasks")
        .len();
    assert_eq!(tasks, 4);

    let running = pool.running.take().expect("running");
    assert!(running.shutdown(Duration::from_secs(5)).await);
    let calls = registry.wait_for(3).await;
    assert_eq!(calls[2].0, "DELETE");
    assert_eq!(calls[2].1, "/agents/pool-a");
}

#[tokio::test]
async fn a_registry_outage_never_blocks_serving() {
    // Reserve a port for the registry, but nobody listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let up = fake("hello").await;
    let pool = start_pool(&registry_config(&url, &up.url())).await;
    // Serving at once.
    let r = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 200);
    // The registry comes up; the retries find it.
    let registry = Registry::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the reserved port");
    registry.serve_on(listener).await;
    let calls = registry.wait_for(1).await;
    assert_eq!(calls[0].2["id"], "pool-a");
}

#[tokio::test]
async fn usage_metrics_are_per_tenant_only_when_asked_for() {
    let up = fake("hello").await;
    let key_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"carol-key"));
    let config = format!(
        "[auth]\ninference = true\nadmin = false\n\n[usage]\ntenant_metrics = true\n\n\
         [tenants.carol]\napi_key_sha256 = [\"{key_sha}\"]\n\n{}",
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    for input in ["one", "two"] {
        let r = pool
            .client
            .post(pool.url("/v1/query"))
            .header("x-api-key", "carol-key")
            .json(&json!({"task": "chat", "input": input}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = pool.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("llm_pool_tenant_tokens_total")
                && l.contains("tenant=\"carol\"")
                && l.ends_with(" 16")),
        "per-tenant tokens are exported when asked for"
    );
}
