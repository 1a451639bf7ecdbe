//! The Redis cache backend against a real `redis-server` (installed by scripts/test.sh):
//! two pool instances share answers; Redis dying mid-test degrades to no cache, never to
//! failed requests, and shows on `/health`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::process::{Child, Command};

struct Redis {
    url: String,
    child: Child,
}

async fn redis_server() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server on PATH (scripts/test.sh installs it)");
    tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("redis-server listening");
    Redis {
        url: format!("redis://127.0.0.1:{port}/0"),
        child,
    }
}

fn config(upstream: &str, redis: &str, backend: &str) -> String {
    format!(
        "[cache]\nbackend = \"{backend}\"\nredis_url = \"{redis}\"\nredis_timeout_ms = 200\n\n\
         [providers.up]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{upstream}\"]\n\n\
         [tasks.chat]\nproviders = [\"up\"]\ncache_ttl_secs = 600\n"
    )
}

async fn ask(pool: &Pool, input: &str) -> serde_json::Value {
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": input}))
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON")
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs it and runs this"]
async fn two_pools_share_answers_and_survive_redis_dying() {
    let mut redis = redis_server().await;
    let up = fake("shared answer").await;
    let a = start_pool(&config(&up.url(), &redis.url, "redis")).await;
    let b = start_pool(&config(&up.url(), &redis.url, "two_level")).await;

    assert_eq!(ask(&a, "q").await["cache_hit"], false);
    let from_b = ask(&b, "q").await;
    assert_eq!(from_b["cache_hit"], true, "pool b hit what pool a stored");
    assert_eq!(from_b["text"], "shared answer");
    assert_eq!(up.take_requests_count(), 1);
    let stats: serde_json::Value = b.get("/admin/cache").await.json().await.unwrap();
    assert_eq!(stats["stats"]["redis_hits"], 1);
    assert_eq!(stats["stats"]["redis"]["connected"], true);
    // two_level: the second hit on b comes from memory.
    assert_eq!(ask(&b, "q").await["cache_hit"], true);
    let stats: serde_json::Value = b.get("/admin/cache").await.json().await.unwrap();
    assert_eq!(stats["stats"]["redis_hits"], 1);

    // Clearing through one pool clears Redis for both.
    let resp = a.post_json("/admin/cache/clear", json!({})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(ask(&a, "q").await["cache_hit"], false);

    // Redis dies: requests keep succeeding (without the shared cache), and /health says so.
    redis.child.kill().await.expect("kill redis");
    for i in 0..5 {
        let answer = ask(&a, &format!("after {i}")).await;
        assert_eq!(answer["text"], "shared answer");
    }
    let health: serde_json::Value = a.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["cache"]["redis"]["connected"], false);
    assert!(health["cache"]["redis"]["errors"].as_u64().unwrap() >= 1);
}
