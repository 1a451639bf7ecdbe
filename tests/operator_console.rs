//! The operator console's routes (`/ui`): behind admin auth with HTTP Basic for browsers,
//! the overview's data and its live stream (SSE), the recent requests' Decisions, the
//! last reload's diff and error. `tests/console` drives the page itself in Chromium.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use llm_pool::testing::{Reply, Step};

const ADMIN: &str = "console-admin-key-0123456789";
const USER: &str = "console-user-key-0123456789";

fn basic(key: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ops:{key}"))
    )
}

fn secured(url: &str, extra: &str) -> String {
    format!(
        "[auth]\ninference = false\nadmin = true\n\n[tenants.ops]\napi_key_sha256 = [\"{}\"]\nadmin = true\n\n[tenants.user]\napi_key_sha256 = [\"{}\"]\n{extra}\n{}",
        sha(ADMIN),
        sha(USER),
        basic_config("openai", url)
    )
}

async fn get(pool: &Pool, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = pool.client.get(pool.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn the_console_is_for_admins_and_asks_browsers_for_the_key() {
    let up = fake("hello").await;
    let pool = start_pool(&secured(&up.url(), "")).await;
    let anonymous = get(&pool, "/ui", None).await;
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic realm="),
        "a browser is asked for credentials"
    );
    // Only the console asks for Basic: an API route's 401 asks for a bearer token.
    assert_eq!(
        get(&pool, "/admin/config", None).await.headers()["www-authenticate"],
        "Bearer realm=\"llm-pool\""
    );
    assert_eq!(get(&pool, "/ui", Some(&basic(USER))).await.status(), 403);
    assert_eq!(get(&pool, "/ui", Some(&basic("wrong"))).await.status(), 401);

    let page = get(&pool, "/ui", Some(&basic(ADMIN))).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.expect("html");
    assert!(html.contains("/ui/assets/console.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    for (path, kind) in [
        ("/ui/assets/console.js", "text/javascript; charset=utf-8"),
        ("/ui/assets/console.css", "text/css; charset=utf-8"),
    ] {
        let r = get(&pool, path, Some(&format!("Bearer {ADMIN}"))).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], kind);
    }
    // The explorer's page is the same page; its data is the request's record.
    assert_eq!(
        get(&pool, "/ui/requests/abc", Some(&basic(ADMIN)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn recent_requests_keep_their_decisions_with_timings() {
    let up = fake("MEDICINE").await;
    let pool = start_pool(&secured(&up.url(), "")).await;
    let answer: serde_json::Value = pool
        .post_json(
            "/v1/query",
            serde_json::json!({"task": "classify", "input": "x"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let id = answer["request_id"].as_str().expect("id");
    let failed = pool
        .post_json(
            "/v1/query",
            serde_json::json!({"task": "chat", "input": "x", "max_tokens": 100000}),
        )
        .await;
    assert_eq!(failed.status(), 400);

    let admin = Some(format!("Bearer {ADMIN}"));
    let record: serde_json::Value =
        get(&pool, &format!("/ui/requests/{id}/data"), admin.as_deref())
            .await
            .json()
            .await
            .expect("json");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["task"], "classify");
    let c = &record["decision"]["candidates"][0];
    assert_eq!(c["provider"], "up");
    assert!(c["started_ms"].is_u64() && c["latency_ms"].is_u64(), "{c}");
    assert_eq!(
        get(&pool, "/ui/requests/nope/data", admin.as_deref())
            .await
            .status(),
        404
    );

    let state: serde_json::Value = get(&pool, "/ui/state", admin.as_deref())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(state["recent_capacity"], 128);
    let recent = state["recent"].as_array().expect("recent");
    // The refused request never got a plan: only answered (or failed) plans are kept.
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0]["request_id"], id);
    assert_eq!(recent[0]["winner"], "up");
    assert_eq!(state["providers"][0]["name"], "up");
    assert!(state["providers"][0]["completion_tokens"].as_u64() > Some(0));
    assert_eq!(
        state["providers"][0]["endpoints"][0]["breaker"], "closed",
        "{state}"
    );
    assert_eq!(state["tasks"][0]["name"], "chat");
    assert_eq!(state["config"]["version"], 1);
    assert!(state["config"]["diff"].is_null(), "no reload yet");
}

/// The overview's p50 and p95 are the 50th and 95th percentiles of recent latency (they
/// were read on a 0..1 scale from a 0..100 window: the minimum, whatever the latencies).
#[tokio::test]
async fn the_overview_shows_the_median_and_p95_latency() {
    let up = fake("hello").await;
    // Half the answers at once, half after 80 ms: the median and p95 are slow, the
    // minimum is fast.
    up.push((0..20).map(|i| {
        let delay = if i % 2 == 0 { 0 } else { 80 };
        Step::Reply(Reply::text("hello").after(Duration::from_millis(delay)))
    }));
    let pool = start_pool(&secured(&up.url(), "")).await;
    for _ in 0..20 {
        let r = pool
            .post_json(
                "/v1/query",
                serde_json::json!({"task": "chat", "input": "x"}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let admin = format!("Bearer {ADMIN}");
    let state: serde_json::Value = get(&pool, "/ui/state", Some(&admin))
        .await
        .json()
        .await
        .expect("json");
    let p = &state["providers"][0];
    let (p50, p95) = (
        p["p50_ms"].as_f64().expect("p50"),
        p["p95_ms"].as_f64().expect("p95"),
    );
    assert!((80.0..1000.0).contains(&p50), "{p}");
    assert!((80.0..1000.0).contains(&p95), "{p}");
}

#[tokio::test]
async fn streamed_requests_are_kept_when_they_end() {
    let up = fake("streamed words").await;
    let pool = start_pool(&secured(&up.url(), "")).await;
    let resp = pool
        .post_json(
            "/v1/query",
            serde_json::json!({"task": "chat", "input": "x", "stream": true}),
        )
        .await;
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    resp.bytes().await.expect("the whole stream");
    let record = pool.state().recent.get(&id).expect("kept");
    assert_eq!(record.status, "ok");
    assert_eq!(record.task.as_deref(), Some("chat"));
    let d = record.decision.as_ref().expect("decision");
    assert_eq!(d.candidates[0].provider, "up");
}

#[tokio::test]
async fn nothing_is_kept_when_recent_requests_is_zero() {
    let up = fake("hello").await;
    let pool = start_pool(&secured(&up.url(), "[console]\nrecent_requests = 0\n")).await;
    pool.post_json(
        "/v1/query",
        serde_json::json!({"task": "chat", "input": "x"}),
    )
    .await;
    assert!(pool.state().recent.is_empty());
}

#[tokio::test]
async fn the_live_view_streams_breakers_and_reloads() {
    let up = fake("hello").await;
    let extra = "[console]\npush_interval_ms = 100\n\n[qos.breaker]\nconsecutive_failures = 1\n";
    let pool = start_pool(&secured(&up.url(), extra)).await;
    let resp = get(&pool, "/ui/events", Some(&basic(ADMIN))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut buffer = String::new();
    // The first event also tells the browser how soon to reconnect.
    let head = tokio::time::timeout(WAIT, body.next())
        .await
        .expect("in time")
        .expect("an event")
        .expect("bytes");
    buffer.push_str(std::str::from_utf8(&head).expect("utf-8"));
    assert!(buffer.contains("retry: 1000"), "{buffer}");
    // The next `state` event that satisfies `pred`.
    let mut next_state = async |pred: &dyn Fn(&serde_json::Value) -> bool| loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if event.contains("event: state") {
                let v: serde_json::Value = serde_json::from_str(&data).expect("state JSON");
                if pred(&v) {
                    return v;
                }
            }
        }
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("bytes");
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    };
    let first = next_state(&|_| true).await;
    assert_eq!(first["config"]["version"], 1);
    assert!(first["now_ms"].is_u64());

    // An endpoint that fails: its breaker opens, and the stream says so.
    up.push([Step::Status(500, "down".into())]);
    pool.post_json(
        "/v1/query",
        serde_json::json!({"task": "chat", "input": "x"}),
    )
    .await;
    let open = next_state(&|v| v["providers"][0]["endpoints"][0]["breaker"] == "open").await;
    assert!(
        open["providers"][0]["endpoints"][0]["probe_in_ms"].is_u64(),
        "{open}"
    );

    // An accepted reload, then a rejected one: the diff, then the error with its path.
    let path = pool.config_path();
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("max_tokens = 32", "max_tokens = 48")).expect("write");
    pool.state().config.reload_from_disk().expect("valid");
    let reloaded = next_state(&|v| v["config"]["version"] == 2).await;
    let diff = reloaded["config"]["diff"].as_str().expect("diff");
    assert!(
        diff.contains("-max_tokens = 32") && diff.contains("+max_tokens = 48"),
        "{diff}"
    );
    std::fs::write(
        &path,
        text.replace("max_tokens = 32", "max_tokens = 48\nstrategy = \"loudest\""),
    )
    .expect("write");
    assert!(pool.state().config.reload_from_disk().is_err());
    let rejected = next_state(&|v| v["config"]["last_error"].is_string()).await;
    let error = rejected["config"]["last_error"].as_str().expect("error");
    assert!(error.contains("tasks.echo.strategy"), "{error}");
    assert_eq!(rejected["config"]["version"], 2, "the old version serves");
    up.push([Step::Reply(Reply::text("back"))]);
}

#[tokio::test]
async fn the_stream_ends_when_the_pool_shuts_down() {
    let up = fake("hello").await;
    let mut pool = start_pool(&secured(&up.url(), "")).await;
    let resp = get(&pool, "/ui/events", Some(&basic(ADMIN))).await;
    let mut body = resp.bytes_stream();
    assert!(body.next().await.is_some(), "the first event");
    let running = pool.running.take().expect("running");
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(5)));
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an open console does not hold up shutdown");
    assert!(shutdown.await.expect("join"), "a clean shutdown");
}
