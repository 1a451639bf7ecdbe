//! Hot reload under a running server: atomic renames, Kubernetes-style symlink swaps,
//! rejected files, in-flight requests finishing on their snapshot, provider state kept.

mod common;

use std::time::Duration;

use common::*;
use llm_pool::live::store::ReloadStatus;
use llm_pool::testing::{Reply, Step};
use serde_json::json;
use tokio::sync::watch;

/// Replaces the file the way editors do: write a temporary file, rename it over.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn next_status(rx: &mut watch::Receiver<ReloadStatus>) -> ReloadStatus {
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("a reload within 10 s")
        .expect("store alive");
    rx.borrow_and_update().clone()
}

#[tokio::test]
async fn reload_applies_new_config_and_rejects_invalid_files() {
    let up = fake("hi").await;
    let base = basic_config("openai", &up.url());
    let pool = start_pool(&base).await;
    let mut rx = pool.state().config.subscribe();

    // Warm the provider so its state has something to keep.
    let ok = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(ok.status(), 200);

    // 1. A valid change: a new task appears without restart.
    let added = format!(
        "{base}\n[tasks.fresh]\ntemplate = \"Fresh {{{{input}}}}\"\nproviders = [\"up\"]\n"
    );
    replace(&pool.config_path(), &with_server(&added));
    let status = next_status(&mut rx).await;
    assert_eq!(status.version, 2);
    assert_eq!(status.last_error, None);
    let resp = pool
        .post_json("/v1/query", json!({"task": "fresh", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 200);
    // The unchanged provider kept its state (one call before the reload, one after).
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    assert_eq!(health["providers"][0]["endpoints"][0]["calls"], 2);

    // 2. An invalid file: rejected whole, the old config keeps serving, the error is shown.
    replace(
        &pool.config_path(),
        &with_server(&format!(
            "{added}\n[tasks.broken]\nproviders = [\"ghost\"]\n"
        )),
    );
    let status = next_status(&mut rx).await;
    assert_eq!(status.version, 2);
    let error = status.last_error.expect("rejection recorded");
    assert!(
        error.contains("tasks.broken.providers[0]: unknown provider `ghost`"),
        "{error}"
    );
    let admin: serde_json::Value = pool.get("/admin/config").await.json().await.unwrap();
    assert!(admin["last_error"].as_str().unwrap().contains("ghost"));
    assert_eq!(admin["reloads_rejected"], 1);
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert!(
        health["config"]["last_error"]
            .as_str()
            .unwrap()
            .contains("ghost")
    );
    let resp = pool
        .post_json("/v1/query", json!({"task": "fresh", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 200, "the previous snapshot still serves");

    // 3. Not TOML at all: also rejected.
    replace(&pool.config_path(), "[[[ nonsense");
    let status = next_status(&mut rx).await;
    assert!(status.last_error.unwrap().contains("line 1"));
    assert_eq!(
        pool.post_json("/v1/query", json!({"task": "fresh", "input": "x"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn in_flight_requests_finish_on_their_snapshot() {
    let up = fake("x").await;
    up.push([Step::Reply(
        Reply::text("slow answer").after(Duration::from_millis(400)),
    )]);
    let base = basic_config("openai", &up.url());
    let pool = start_pool(&base).await;
    let mut rx = pool.state().config.subscribe();
    let client = pool.client.clone();
    let url = pool.url("/v1/query");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"task": "echo", "input": "a", "variables": {"lang": "en"}}))
            .send()
            .await
    });
    // Wait until the request reached the upstream, then remove its task.
    while up.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let without_echo = base.replace("[tasks.echo]", "[tasks.echo_gone]");
    replace(&pool.config_path(), &with_server(&without_echo));
    assert_eq!(next_status(&mut rx).await.version, 2);
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["text"], "slow answer");
    let gone = pool
        .post_json(
            "/v1/query",
            json!({"task": "echo", "input": "a", "variables": {"lang": "en"}}),
        )
        .await;
    assert_eq!(gone.status(), 404);
}

#[cfg(unix)]
#[tokio::test]
async fn follows_a_configmap_style_symlink_swap() {
    use std::os::unix::fs::symlink;
    let up = fake("x").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let v1 = root.join("..2026_v1");
    let v2 = root.join("..2026_v2");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::create_dir_all(root.join("prompts")).unwrap();
    std::fs::write(root.join("prompts/classify.md"), "Classify: {{input}}").unwrap();
    let base = with_server(&basic_config("openai", &up.url()));
    std::fs::write(v1.join("llm-pool.toml"), &base).unwrap();
    std::fs::write(
        v2.join("llm-pool.toml"),
        format!("{base}\n[tasks.swapped]\ntemplate = \"{{{{input}}}}\"\nproviders = [\"up\"]\n"),
    )
    .unwrap();
    symlink("..2026_v1", root.join("..data")).unwrap();
    symlink("..data/llm-pool.toml", root.join("llm-pool.toml")).unwrap();
    let path = root.join("llm-pool.toml");
    let config = llm_pool::config::load(&path).unwrap();
    let running = llm_pool::app::start(Some(path), config).await.unwrap();
    let mut rx = running.state.config.subscribe();
    // Kubernetes: a new `..data_tmp` link renamed over `..data`.
    symlink("..2026_v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    let status = next_status(&mut rx).await;
    assert_eq!(status.version, 2, "{status:?}");
    assert!(
        running
            .state
            .config
            .load()
            .config
            .tasks()
            .contains_key("swapped")
    );
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn editing_weight_or_qos_keeps_breakers_latency_and_one_concurrency_limit() {
    let up =
        llm_pool::testing::FakeUpstream::start(Step::Status(500, "down".into()), &["up-model"])
            .await;
    let provider = |weight: f64, qos: &str| {
        format!(
            "[qos]\nhealth_check_interval_ms = 0\n[qos.breaker]\nconsecutive_failures = 2\ncooldown_ms = 60000\nmax_cooldown_ms = 60000\n{qos}\n\
             [providers.up]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\nmax_concurrency = 1\nweight = {weight}\n\n\
             [tasks.chat]\nproviders = [\"up\"]\n",
            up.url()
        )
    };
    let pool = start_pool(&provider(1.0, "")).await;
    let mut rx = pool.state().config.subscribe();
    for _ in 0..2 {
        pool.post_json("/v1/query", json!({"task": "chat", "input": "x"}))
            .await;
    }
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    assert_eq!(health["providers"][0]["endpoints"][0]["breaker"], "open");

    // A new weight and a [qos] retry setting: the open breaker stays open.
    replace(
        &pool.config_path(),
        &with_server(&provider(3.0, "[qos.retry]\nmax_attempts = 1\n")),
    );
    let status = next_status(&mut rx).await;
    assert_eq!(status.last_error, None);
    let health: serde_json::Value = pool.get("/health").await.json().await.unwrap();
    let e = &health["providers"][0]["endpoints"][0];
    assert_eq!(e["breaker"], "open", "{e}");
    assert_eq!(e["trips"], 1);
    assert_eq!(e["calls"], 2);
    let resp = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "x"}))
        .await;
    assert_eq!(resp.status(), 503, "still failing fast");
    assert_eq!(
        up.take_requests_count(),
        2,
        "no call went to the open endpoint"
    );
}

#[tokio::test]
async fn a_reload_does_not_double_the_concurrency_limit() {
    let up = fake("x").await;
    up.set_default(Step::Reply(
        Reply::text("slow").after(Duration::from_millis(300)),
    ));
    let config = |weight: f64| {
        format!(
            "[providers.up]\nkind = \"openai\"\nmodel = \"up-model\"\nendpoints = [\"{}\"]\nmax_concurrency = 1\nweight = {weight}\n\n[tasks.chat]\nproviders = [\"up\"]\n",
            up.url()
        )
    };
    let pool = start_pool(&config(1.0)).await;
    let mut rx = pool.state().config.subscribe();
    let ask = |input: &'static str| {
        let req = pool
            .client
            .post(pool.url("/v1/query"))
            .json(&json!({"task": "chat", "input": input}));
        async move { req.send().await.expect("request").status().as_u16() }
    };
    // One call in flight on the old snapshot ...
    let first = tokio::spawn(ask("a"));
    while up.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    // ... a reload that changes only the weight ...
    replace(&pool.config_path(), &with_server(&config(2.0)));
    next_status(&mut rx).await;
    // ... and two more calls on the new snapshot: one slot for all of them.
    let (b, c) = tokio::join!(ask("b"), ask("c"));
    assert_eq!((first.await.unwrap(), b, c), (200, 200, 200));
    assert_eq!(up.max_in_flight(), 1, "never two at once upstream");
}
