//! The thread-per-core runtime (`serve --runtime thread-per-core`): accept threads with
//! listeners of their own on the same ports (`SO_REUSEPORT`), each serving requests and
//! draining them on shutdown like the main thread.

mod common;

use std::time::Duration;

use common::*;
use llm_pool::testing::{Reply, Step};
use serde_json::json;

/// A client of its own: a connection of its own (the kernel picks a listener per
/// connection).
fn own_connection() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

#[tokio::test]
async fn every_accept_thread_serves_and_drains_its_connections_on_shutdown() {
    const STREAMS: usize = 12;
    let up = fake("x").await;
    up.push(
        (0..STREAMS)
            .map(|_| Step::Reply(Reply::text("a b c d e").chunk_delay(Duration::from_millis(100)))),
    );
    let mut pool = start_pool_threads("", &basic_config("openai", &up.url()), 3).await;

    // Twelve connections spread over three listeners by the kernel's hash of each
    // connection's ports: that none reaches another thread's listener has odds of 1 in
    // 3^11. Each starts a stream that is still going at shutdown.
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        // A connection handed to a listener nobody accepts on would hang: bounded.
        let resp = tokio::time::timeout(
            WAIT,
            own_connection()
                .post(pool.url("/v1/query"))
                .json(&json!({"task": "chat", "input": "x", "stream": true}))
                .send(),
        )
        .await
        .expect("answered in time")
        .expect("request");
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    // New connections all answer while those streams are open.
    for _ in 0..STREAMS {
        let health = tokio::time::timeout(WAIT, own_connection().get(pool.url("/health")).send())
            .await
            .expect("answered in time")
            .expect("health");
        assert_eq!(health.status(), 200);
    }

    let running = pool.running.take().expect("running");
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(10)));
    for resp in streams {
        let body = resp.text().await.expect("the stream completes");
        let lines = ndjson(&body);
        let text: String = lines.iter().filter_map(|l| l["delta"].as_str()).collect();
        assert_eq!(text, "a b c d e");
        assert_eq!(lines.last().expect("lines")["done"], true);
    }
    assert!(
        shutdown.await.expect("join"),
        "drained within the grace period"
    );
    assert!(
        own_connection()
            .get(pool.url("/health"))
            .send()
            .await
            .is_err(),
        "no thread listens any more"
    );
}

#[tokio::test]
async fn the_grpc_port_is_served_by_every_thread() {
    let up = fake("hello").await;
    let pool = start_pool_threads("", &basic_config("openai", &up.url()), 2).await;
    for _ in 0..8 {
        // A channel of its own is a connection of its own.
        let mut client =
            llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient::connect(pool.grpc.clone())
                .await
                .expect("connect");
        let query = client.query(llm_pool::api::grpc::pb::QueryRequest {
            task: "chat".into(),
            input: "hi".into(),
            ..Default::default()
        });
        let answer = tokio::time::timeout(WAIT, query)
            .await
            .expect("answered in time")
            .expect("query")
            .into_inner();
        assert_eq!(answer.text, "hello");
    }
}

/// `max_connections` caps the port, not each accept thread: with every allowed connection
/// busy, a new one is refused whichever thread's listener the kernel hands it to. (Were the
/// cap per thread, a new connection would be refused only on the threads holding both busy
/// ones: all twelve would be with odds of at most (2/3)^12, 1 in 130.)
#[tokio::test]
async fn the_connection_cap_counts_every_thread_s_connections() {
    let up = fake("x").await;
    up.set_default(Step::Reply(
        Reply::text("slow").after(Duration::from_secs(3)),
    ));
    let pool =
        start_pool_threads("max_connections = 2", &basic_config("openai", &up.url()), 3).await;
    let ask = || {
        own_connection()
            .post(pool.url("/v1/query"))
            .json(&json!({"task": "chat", "input": "x"}))
            .send()
    };
    let _busy: Vec<_> = (0..2)
        .map(|_| {
            let req = ask();
            tokio::spawn(async move { req.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::timeout(WAIT, async {
        while up.in_flight() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("both slow calls reached the upstream");
    for _ in 0..12 {
        let r = tokio::time::timeout(WAIT, ask())
            .await
            .expect("answered in time")
            .expect("refused with an answer");
        assert_eq!(r.status(), 503);
    }
}
