//! `GET /metrics`: Prometheus text with HELP and TYPE for every family, labels from config
//! and route templates only.

mod common;

use common::*;
use serde_json::json;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn the_exposition_counts_requests_upstream_calls_cache_and_breakers() {
    let up = fake("hi there").await;
    let config = format!("{}\n", basic_config("openai", &up.url())).replace(
        "[tasks.chat]\nproviders = [\"up\"]",
        "[tasks.chat]\nproviders = [\"up\"]\ncache_ttl_secs = 60\n\n\
         [tasks.vote]\nproviders = [\"up\"]\nstrategy = \"voting\"\nn = 2\nearly_stop = false",
    );
    let pool = start_pool(&config).await;
    for _ in 0..3 {
        assert_eq!(
            pool.post_json("/v1/query", json!({"task": "chat", "input": "x"}))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        pool.post_json("/v1/query", json!({"task": "nope", "input": "x"}))
            .await
            .status(),
        404
    );
    let _ = pool.get("/definitely/not/a/route/12345").await;

    let resp = pool.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for family in [
        "llm_pool_requests_total",
        "llm_pool_request_duration_seconds",
        "llm_pool_upstream_calls_total",
        "llm_pool_upstream_duration_seconds",
        "llm_pool_tokens_total",
        "llm_pool_breaker_state",
        "llm_pool_cache_hits_total",
        "llm_pool_cache_entries",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }
    assert_eq!(
        value(
            &text,
            r#"llm_pool_requests_total{route="/v1/query",status="200"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            r#"llm_pool_requests_total{route="/v1/query",status="404"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains("12345"), "raw paths never become labels");
    let upstream = format!(
        r#"llm_pool_upstream_calls_total{{provider="up",endpoint="{}",outcome="ok"}}"#,
        up.url()
    );
    assert_eq!(
        value(&text, &upstream),
        Some(1.0),
        "two of three were cache hits:\n{text}"
    );
    assert_eq!(value(&text, "llm_pool_cache_hits_total"), Some(2.0));
    assert_eq!(
        value(
            &text,
            r#"llm_pool_tokens_total{provider="up",kind="completion"}"#
        ),
        Some(2.0)
    );
    let breaker = format!(
        r#"llm_pool_breaker_state{{provider="up",endpoint="{}"}}"#,
        up.url()
    );
    assert_eq!(value(&text, &breaker), Some(0.0));
    let vote = pool
        .post_json("/v1/query", json!({"task": "vote", "input": "x"}))
        .await;
    assert_eq!(vote.status(), 200);
    let streamed = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "up", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(streamed.status(), 200);
    let _ = streamed.text().await.unwrap();
    let text = pool.get("/metrics").await.text().await.unwrap();
    // Per task and strategy, from config only; a failed request's task is not a label.
    assert_eq!(
        value(
            &text,
            r#"llm_pool_answers_total{task="chat",strategy="fastest",outcome="ok"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            r#"llm_pool_answers_total{task="_",strategy="_",outcome="not_found"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains("task=\"nope\""));
    assert_eq!(
        value(
            &text,
            r#"llm_pool_ensemble_votes_total{strategy="voting",provider="up",vote="winner"}"#
        ),
        Some(2.0),
        "both samples agreed:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"llm_pool_stream_tokens_per_second_count{provider="up"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"llm_pool_upstream_time_to_first_token_seconds_count{provider="up"}"#
        ),
        Some(1.0),
        "one stream, one first token:\n{text}"
    );
}
