//! The answer cache through every surface against a fake upstream: hits across surfaces,
//! single flight, modes, what is never stored, streamed replays, admin clear and stats.

mod common;

use std::time::Duration;

use common::*;
use llm_pool::api::grpc::pb;
use llm_pool::testing::{Reply, Step};
use serde_json::json;

fn cached_config(url: &str, extra: &str) -> String {
    format!(
        "[providers.up]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{url}\"]\n\n\
         [tasks.chat]\nproviders = [\"up\"]\ncache_ttl_secs = 600\n{extra}\n\n\
         [tasks.other]\ntemplate = \"{{{{input}}}}\"\nproviders = [\"up\"]\ncache_ttl_secs = 600\n"
    )
}

async fn query(pool: &Pool, body: serde_json::Value) -> serde_json::Value {
    let resp = pool.post_json("/v1/query", body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("JSON")
}

#[tokio::test]
async fn equal_requests_on_every_surface_share_one_answer() {
    let up = fake("cached words").await;
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    let first = query(&pool, json!({"task": "chat", "input": "hello"})).await;
    assert_eq!(first["cache_hit"], false);
    assert_eq!(up.take_requests_count(), 1);

    let again = query(&pool, json!({"task": "chat", "input": "hello"})).await;
    assert_eq!(again["cache_hit"], true);
    assert_eq!(again["text"], "cached words");
    assert_ne!(again["request_id"], first["request_id"]);

    let msgs = json!([{"role": "user", "content": "hello"}]);
    let openai: serde_json::Value = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": msgs}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(openai["choices"][0]["message"]["content"], "cached words");
    assert_eq!(openai["llm_pool"]["cache_hit"], true);

    let ollama: serde_json::Value = pool
        .post_json(
            "/api/chat",
            json!({"model": "task:chat", "messages": msgs, "stream": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ollama["message"]["content"], "cached words");
    assert_eq!(ollama["llm_pool"]["cache_hit"], true);

    let mut c = pb::llm_pool_client::LlmPoolClient::connect(pool.grpc.clone())
        .await
        .unwrap();
    let answer = c
        .query(pb::QueryRequest {
            task: "chat".into(),
            input: "hello".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.cache_hit);
    assert_eq!(
        up.take_requests_count(),
        0,
        "every surface hit the one stored answer"
    );

    // A different input, task, or parameter is a different answer.
    query(&pool, json!({"task": "chat", "input": "hello!"})).await;
    query(&pool, json!({"task": "other", "input": "hello"})).await;
    query(
        &pool,
        json!({"task": "chat", "input": "hello", "max_tokens": 3}),
    )
    .await;
    assert_eq!(up.take_requests_count(), 3);
}

#[tokio::test]
async fn a_hundred_concurrent_identical_misses_make_one_upstream_call() {
    let up = fake("x").await;
    up.set_default(Step::Reply(
        Reply::text("shared").after(Duration::from_millis(200)),
    ));
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    let calls: Vec<_> = (0..100)
        .map(|_| pool.post_json("/v1/query", json!({"task": "chat", "input": "same"})))
        .collect();
    let answers = futures::future::join_all(calls).await;
    for r in answers {
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["text"], "shared");
    }
    assert_eq!(up.take_requests_count(), 1, "single flight");
    let stats: serde_json::Value = pool.get("/admin/cache").await.json().await.unwrap();
    assert_eq!(stats["stats"]["stores"], 1);
    assert!(stats["stats"]["single_flight_joins"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn joiners_share_the_error_too() {
    let up = fake("x").await;
    up.set_default(Step::SlowStatus(
        Duration::from_millis(150),
        400,
        "bad prompt".into(),
    ));
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    let calls: Vec<_> = (0..10)
        .map(|_| pool.post_json("/v1/query", json!({"task": "chat", "input": "same"})))
        .collect();
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), 400);
    }
    assert_eq!(up.take_requests_count(), 1);
    // Errors are never stored.
    up.set_default(Step::Reply(Reply::text("now fine")));
    assert_eq!(
        query(&pool, json!({"task": "chat", "input": "same"})).await["text"],
        "now fine"
    );
}

#[tokio::test]
async fn modes_bypass_refresh_and_only() {
    let up = fake("v1").await;
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    let only = pool
        .post_json(
            "/v1/query",
            json!({"task": "chat", "input": "q", "cache": "only"}),
        )
        .await;
    assert_eq!(only.status(), 404, "only: a miss is 404");
    assert_eq!(up.take_requests_count(), 0);

    query(&pool, json!({"task": "chat", "input": "q"})).await;
    up.set_default(Step::Reply(Reply::text("v2")));
    let bypass = query(
        &pool,
        json!({"task": "chat", "input": "q", "cache": "bypass"}),
    )
    .await;
    assert_eq!(
        (bypass["text"].as_str(), bypass["cache_hit"].as_bool()),
        (Some("v2"), Some(false))
    );
    let hit = query(&pool, json!({"task": "chat", "input": "q"})).await;
    assert_eq!(hit["text"], "v1", "bypass did not store");

    let refresh = pool
        .client
        .post(pool.url("/v1/chat/completions"))
        .header("x-llm-pool-cache", "refresh")
        .json(&json!({"model": "task:chat", "messages": [{"role": "user", "content": "q"}]}))
        .send()
        .await
        .unwrap();
    let refresh: serde_json::Value = refresh.json().await.unwrap();
    assert_eq!(refresh["choices"][0]["message"]["content"], "v2");
    let hit = query(
        &pool,
        json!({"task": "chat", "input": "q", "cache": "only"}),
    )
    .await;
    assert_eq!(hit["text"], "v2", "refresh stored the new answer");

    let bad = pool
        .client
        .post(pool.url("/api/chat"))
        .header("x-llm-pool-cache", "sometimes")
        .json(&json!({"model": "task:chat", "messages": [{"role": "user", "content": "q"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn sampled_and_degraded_answers_are_not_stored() {
    let up = fake("x").await;
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    for _ in 0..2 {
        query(
            &pool,
            json!({"task": "chat", "input": "q", "temperature": 0.8}),
        )
        .await;
    }
    assert_eq!(
        up.take_requests_count(),
        2,
        "temperature > 0 is not cached by default"
    );

    let up2 = fake("y").await;
    let pool2 = start_pool(&cached_config(&up2.url(), "cache_sampled = true")).await;
    for _ in 0..2 {
        query(
            &pool2,
            json!({"task": "chat", "input": "q", "temperature": 0.8}),
        )
        .await;
    }
    assert_eq!(up2.take_requests_count(), 1, "the task opted in");

    // An answer from a fallback provider is not stored under the request.
    let local =
        llm_pool::testing::FakeUpstream::start(Step::Status(503, "down".into()), &["up-model"])
            .await;
    let cloud = fake("from the fallback").await;
    let config = format!(
        "[qos]\nhealth_check_interval_ms = 0\n[qos.retry]\nmax_attempts = 1\n\n\
         [providers.local]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [providers.cloud]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\n\n\
         [tasks.chat]\nproviders = [\"local\"]\nfallback = [\"cloud\"]\ncache_ttl_secs = 600\n",
        local.url(),
        cloud.url()
    );
    let pool3 = start_pool(&config).await;
    for _ in 0..2 {
        let a = query(&pool3, json!({"task": "chat", "input": "q"})).await;
        assert_eq!(a["text"], "from the fallback");
        assert_eq!(a["cache_hit"], false);
    }
}

#[tokio::test]
async fn a_streamed_hit_is_replayed_in_each_dialect() {
    let up = fake("one two three").await;
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    let msgs = json!([{"role": "user", "content": "count"}]);
    // A streamed miss stores the complete answer.
    let first = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": msgs, "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(sse_data(&first).last().unwrap(), "[DONE]");
    assert_eq!(up.take_requests_count(), 1);

    let replay = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": msgs, "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    let data = sse_data(&replay);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three");
    assert_eq!(chunks.last().unwrap()["llm_pool"]["cache_hit"], true);

    let lines = ndjson(
        &pool
            .post_json("/api/chat", json!({"model": "task:chat", "messages": msgs}))
            .await
            .text()
            .await
            .unwrap(),
    );
    let text: String = lines
        .iter()
        .filter_map(|l| l["message"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three");
    assert_eq!(lines.last().unwrap()["llm_pool"]["cache_hit"], true);
    assert_eq!(up.take_requests_count(), 0);

    // A stream cut mid-way is never stored.
    let cut = Reply::text("a b c d").chunk_delay(Duration::from_millis(20));
    up.push([Step::CutAfter(2, cut)]);
    let other = json!([{"role": "user", "content": "cut me"}]);
    let _ = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:chat", "messages": other, "stream": true}),
        )
        .await
        .text()
        .await;
    let only = pool
        .client
        .post(pool.url("/v1/chat/completions"))
        .header("x-llm-pool-cache", "only")
        .json(&json!({"model": "task:chat", "messages": other}))
        .send()
        .await
        .unwrap();
    assert_eq!(only.status(), 404);
}

#[tokio::test]
async fn admin_clears_all_by_task_or_by_key_prefix() {
    let up = fake("x").await;
    let pool = start_pool(&cached_config(&up.url(), "")).await;
    query(&pool, json!({"task": "chat", "input": "a"})).await;
    query(&pool, json!({"task": "other", "input": "a"})).await;
    let stats: serde_json::Value = pool.get("/admin/cache").await.json().await.unwrap();
    assert_eq!(stats["stats"]["entries"], 2);

    let resp = pool
        .post_json("/admin/cache/clear", json!({"task": "chat"}))
        .await;
    assert_eq!(resp.status(), 200);
    let miss = pool
        .post_json(
            "/v1/query",
            json!({"task": "chat", "input": "a", "cache": "only"}),
        )
        .await;
    assert_eq!(miss.status(), 404);
    let hit = pool
        .post_json(
            "/v1/query",
            json!({"task": "other", "input": "a", "cache": "only"}),
        )
        .await;
    assert_eq!(hit.status(), 200);

    let b = query(&pool, json!({"task": "other", "input": "b"})).await;
    let key = b["cache_key"].as_str().expect("the cache key").to_owned();
    let resp = pool
        .post_json("/admin/cache/clear", json!({"prefix": &key[..8]}))
        .await;
    assert_eq!(resp.status(), 200);
    let miss = pool
        .post_json(
            "/v1/query",
            json!({"task": "other", "input": "b", "cache": "only"}),
        )
        .await;
    assert_eq!(miss.status(), 404, "cleared by its key prefix");
    let bad = pool
        .post_json("/admin/cache/clear", json!({"prefix": "xyz"}))
        .await;
    assert_eq!(bad.status(), 400);
    let all = pool
        .client
        .post(pool.url("/admin/cache/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    let miss = pool
        .post_json(
            "/v1/query",
            json!({"task": "other", "input": "a", "cache": "only"}),
        )
        .await;
    assert_eq!(miss.status(), 404);
}
