//! Graceful shutdown: in-flight streams finish, new connections are refused, readiness fails.

mod common;

use std::time::Duration;

use common::*;
use llm_pool::testing::{Reply, Step};
use serde_json::json;

#[tokio::test]
async fn in_flight_streams_finish_before_exit() {
    let up = fake("x").await;
    up.push([Step::Reply(
        Reply::text("a b c d e").chunk_delay(Duration::from_millis(100)),
    )]);
    let mut pool = start_pool(&basic_config("openai", &up.url())).await;
    let resp = pool
        .post_json(
            "/v1/query",
            json!({"task": "chat", "input": "x", "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let state = pool.state().clone();
    let running = pool.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(10)));
    // Shutdown began: readiness fails at once.
    tokio::time::timeout(WAIT, async {
        while state.is_ready() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let body = resp.text().await.expect("the stream completes");
    let lines = ndjson(&body);
    let text: String = lines.iter().filter_map(|l| l["delta"].as_str()).collect();
    assert_eq!(text, "a b c d e");
    assert_eq!(lines.last().unwrap()["done"], true);
    assert!(shutdown.await.unwrap(), "drained within the grace period");
    assert!(
        pool.client.get(pool.url("/health")).send().await.is_err(),
        "no longer listening"
    );
}
