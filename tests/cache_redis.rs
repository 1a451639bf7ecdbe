//! The Redis cache backend against a real `redis-server` (installed by scripts/test.sh):
//! two pool instances share answers; Redis dying mid-test degrades to no cache, never to
//! failed requests, and shows on `/health`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

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

fn limited(upstream: &str, redis: &str, key_sha: &str) -> String {
    format!(
        "[auth]\n\n[tenants.t]\napi_key_sha256 = [\"{key_sha}\"]\nrequests_per_minute = 4\n\
         tokens_per_minute = 100000\n\n\
         [rate_limit]\nbackend = \"redis\"\nredis_url = \"{redis}\"\nredis_timeout_ms = 200\n\n\
         [providers.up]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{upstream}\"]\n\n\
         [tasks.chat]\nproviders = [\"up\"]\n"
    )
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs it and runs this"]
async fn three_pools_enforce_one_rate_limit_and_fail_open_without_redis() {
    const KEY: &str = "shared-limit-key";
    let mut redis = redis_server().await;
    let up = fake("ok").await;
    let sha = hex::encode(llm_pool::auth::digest(KEY.as_bytes()));
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(start_pool(&limited(&up.url(), &redis.url, &sha)).await);
    }
    let call = |pool: &Pool| {
        pool.client
            .post(pool.url("/v1/query"))
            .header("x-api-key", KEY)
            .json(&json!({"task": "chat", "input": "hi"}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = call(&pools[i % 3]).await.expect("request");
        statuses.push(r.status().as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (ok, limited),
        (4, 8),
        "one limit of 4/min across three replicas, not three: {statuses:?}"
    );

    // Redis gone: limits fail open, requests keep being answered.
    redis.child.kill().await.expect("kill redis");
    for pool in &pools {
        let r = call(pool).await.expect("request");
        assert_eq!(r.status(), 200, "a Redis outage is not a pool outage");
    }
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs it and runs this"]
async fn usage_is_summed_over_replicas_in_redis() {
    let redis = redis_server().await;
    let up = fake("ok").await;
    let config = format!(
        "[usage]\nredis_url = \"{}\"\nredis_timeout_ms = 200\n\n\
         [providers.up]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [tasks.chat]\nproviders = [\"up\"]\n",
        redis.url,
        up.url()
    );
    let a = start_pool(&config).await;
    let b = start_pool(&config).await;
    ask(&a, "one").await;
    ask(&b, "two").await;
    ask(&b, "three").await;
    // Writes to Redis run beside the answers: wait until all three are in.
    let report = tokio::time::timeout(WAIT, async {
        loop {
            let r: serde_json::Value = a.get("/v1/usage").await.json().await.expect("json");
            if r["tenants"]["anonymous"]["total"]["calls"] == 3 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both replicas' usage in Redis");
    assert_eq!(report["source"], "redis");
    assert_eq!(
        report["tenants"]["anonymous"]["providers"]["up"]["prompt_tokens"],
        21
    );
}
