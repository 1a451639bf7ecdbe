//! Feedback over real sockets: `POST /v1/feedback` and the `Feedback` RPC regrade a recent
//! answer's providers, only for the tenant that made the request; the accuracies show on
//! `/health`, `/admin/accuracy` and `/metrics`.

mod common;

use common::*;
use llm_pool::api::grpc::pb;
use llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use serde_json::{Value, json};

const ALICE: &str = "alice-key-0123456789";
const BOB: &str = "bob-key-0123456789";

/// Three providers on a VOTING label task: `a` and `b` answer A, `c` answers B.
async fn pool() -> (Pool, Vec<FakeUpstream>) {
    let mut ups = Vec::new();
    let mut providers = String::new();
    for (name, text) in [("a", "A"), ("b", "A"), ("c", "B")] {
        let up = FakeUpstream::start(Step::Reply(Reply::text(text)), &["m"]).await;
        providers.push_str(&format!(
            "[providers.{name}]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{}\"]\n\n",
            up.url()
        ));
        ups.push(up);
    }
    let config = format!(
        r#"
[auth]
admin = false
operations = false

[tenants.alice]
api_key_sha256 = ["{alice}"]

[tenants.bob]
api_key_sha256 = ["{bob}"]

{providers}
[tasks.t]
providers = ["a", "b", "c"]
strategy = "voting"
early_stop = false
cache_ttl_secs = 60
output = "label"
labels = ["A", "B", "C"]
"#,
        alice = sha(ALICE),
        bob = sha(BOB),
    );
    (start_pool(&config).await, ups)
}

async fn post(pool: &Pool, key: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut req = pool.client.post(pool.url(path)).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn credits(reply: &Value) -> Vec<(String, f64)> {
    reply["graded"]
        .as_array()
        .expect("graded")
        .iter()
        .map(|g| {
            (
                g["provider"].as_str().unwrap_or_default().to_owned(),
                g["credit"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect()
}

#[tokio::test]
async fn feedback_regrades_the_providers_for_the_tenant_that_asked() {
    let (pool, _ups) = pool().await;
    let (status, answer) = post(
        &pool,
        Some(ALICE),
        "/v1/query",
        json!({"task": "t", "input": "q"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["text"], "A");
    let id = answer["request_id"].as_str().expect("an id").to_owned();
    let inferred_c = answer["decision"]["candidates"][2]["credit"]
        .as_f64()
        .expect("graded");
    assert!(inferred_c < 0.5);
    let before_c = pool.state().config.load().accuracy.get("t", "c");
    // The native body carries `top_k`.
    let (status, top) = post(
        &pool,
        Some(ALICE),
        "/v1/query",
        json!({"task": "t", "input": "q2", "top_k": 2}),
    )
    .await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["top_k"][0]["label"], "A");
    assert_eq!(top["top_k"].as_array().map(Vec::len), Some(2));
    let before_c = {
        let now = pool.state().config.load().accuracy.get("t", "c");
        assert!(now.evidence > before_c.evidence);
        now
    };

    // Another tenant, or nobody, cannot.
    let (status, body) = post(
        &pool,
        Some(BOB),
        "/v1/feedback",
        json!({"request_id": id, "verdict": "bad"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = post(
        &pool,
        None,
        "/v1/feedback",
        json!({"request_id": id, "verdict": "bad"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        pool.state().config.load().accuracy.get("t", "c"),
        before_c,
        "refused feedback changes nothing"
    );

    // Bad input is a 400 naming the field.
    let (status, body) = post(
        &pool,
        Some(ALICE),
        "/v1/feedback",
        json!({"request_id": id, "answer": "Z"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "answer");
    let (status, body) = post(
        &pool,
        Some(ALICE),
        "/v1/feedback",
        json!({"request_id": id, "verdict": "maybe"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "verdict");
    let (status, _) = post(
        &pool,
        Some(ALICE),
        "/v1/feedback",
        json!({"request_id": id}),
    )
    .await;
    assert_eq!(status, 400);

    // The caller says B was right: c earns 1 in place of what it was inferred to earn.
    let (status, reply) = post(
        &pool,
        Some(ALICE),
        "/v1/feedback",
        json!({"request_id": id, "answer": "b"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["task"], "t");
    assert_eq!(reply["answer"], "B", "normalised as the task's answers are");
    assert_eq!(
        credits(&reply),
        vec![("a".into(), 0.0), ("b".into(), 0.0), ("c".into(), 1.0)]
    );
    let after_c = pool.state().config.load().accuracy.get("t", "c");
    assert_eq!(
        after_c.evidence, before_c.evidence,
        "regraded, not counted twice"
    );
    let moved = (1.0 - inferred_c) / (10.0 + before_c.evidence);
    assert!((after_c.accuracy - (before_c.accuracy + moved)).abs() < 1e-9);

    // Over gRPC, a verdict: the answer returned (A) was right after all.
    let mut client = LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect");
    let mut req = tonic::Request::new(pb::FeedbackRequest {
        request_id: id.clone(),
        truth: Some(pb::feedback_request::Truth::Verdict(
            pb::Verdict::Good as i32,
        )),
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {ALICE}").parse().expect("ascii"),
    );
    let reply = client.feedback(req).await.expect("feedback").into_inner();
    let got: Vec<(String, f64)> = reply
        .graded
        .iter()
        .map(|g| (g.provider.clone(), g.credit))
        .collect();
    assert_eq!(
        got,
        vec![("a".into(), 1.0), ("b".into(), 1.0), ("c".into(), 0.0)]
    );
    assert_eq!(reply.graded[2].credit_before, Some(1.0));

    let mut req = tonic::Request::new(pb::FeedbackRequest {
        request_id: id.clone(),
        truth: Some(pb::feedback_request::Truth::Verdict(
            pb::Verdict::Bad as i32,
        )),
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {BOB}").parse().expect("ascii"),
    );
    let err = client.feedback(req).await.expect_err("bob's is refused");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // The estimates are visible.
    let health: Value = pool.get("/health").await.json().await.expect("json");
    let rows = health["accuracy"].as_array().expect("accuracy on /health");
    assert!(
        rows.iter()
            .any(|r| r["task"] == "t" && r["provider"] == "c"),
        "{rows:?}"
    );
    let admin: Value = pool
        .get("/admin/accuracy")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(admin["prior"]["mean"], 0.7);
    assert_eq!(admin["feedback_window"], 10000);
    let metrics = pool.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("llm_pool_provider_accuracy{") && l.contains("provider=\"c\"")),
        "{metrics}"
    );
    assert!(metrics.contains("llm_pool_feedback_total{"));
    assert!(metrics.contains("llm_pool_ensemble_calls_bucket{"));
}

#[tokio::test]
async fn feedback_on_a_cached_answer_regrades_the_original() {
    let (pool, _ups) = pool().await;
    let ask = || {
        post(
            &pool,
            Some(ALICE),
            "/v1/query",
            json!({"task": "t", "input": "same"}),
        )
    };
    let (_, first) = ask().await;
    let (_, hit) = ask().await;
    assert_eq!(hit["cache_hit"], true, "{hit}");
    let hit_id = hit["request_id"].as_str().expect("id");
    assert_ne!(hit_id, first["request_id"].as_str().expect("id"));
    let (status, reply) = post(
        &pool,
        Some(ALICE),
        "/v1/feedback",
        json!({"request_id": hit_id, "verdict": "good"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(credits(&reply).len(), 3);
}

/// Polls `done` until it holds (at most 10 s).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
#[ignore = "needs redis-server; scripts/test.sh installs it and runs this"]
async fn replicas_share_what_they_learn_through_redis() {
    let redis = redis_server().await;
    let config = format!(
        "[learning]\nredis_url = \"{}\"\nsync_interval_ms = 20\nredis_timeout_ms = 500\n\n\
         [providers.a]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n\n\
         [tasks.t]\nproviders = [\"a\"]\noutput = \"label\"\nlabels = [\"A\", \"B\"]\n",
        redis.url
    );
    let (one, two) = (start_pool(&config).await, start_pool(&config).await);
    let of = |p: &Pool| p.state().config.load().accuracy.get("t", "a");
    for _ in 0..3 {
        one.state().config.load().accuracy.grade("t", "a", 1.0);
    }
    until("the second replica to see the first's evidence", || {
        of(&two).evidence == 3.0
    })
    .await;
    two.state().config.load().accuracy.grade("t", "a", 0.0);
    until("the first replica to see the second's", || {
        of(&one).evidence == 4.0
    })
    .await;
    let both = (7.0 + 3.0) / 14.0;
    assert!((of(&one).accuracy - both).abs() < 1e-9);
    assert!((of(&two).accuracy - both).abs() < 1e-9);
    // A replica started later begins with what the fleet learned.
    let three = start_pool(&config).await;
    until("a new replica to read the fleet's totals", || {
        of(&three).evidence == 4.0
    })
    .await;
    assert!((of(&three).accuracy - both).abs() < 1e-9);
}

#[tokio::test]
async fn top_k_of_a_single_answer_comes_from_the_models_log_probabilities() {
    let mut up = FakeUpstream::start(
        Step::Reply(Reply::text("A").with_top_logprobs(&[
            ("A", 0.6f64.ln()),
            (" b", 0.3f64.ln()),
            ("xyz", 0.1f64.ln()),
        ])),
        &["m"],
    )
    .await;
    let config = format!(
        "[providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{}\"]\n\n\
         [tasks.t]\nproviders = [\"p\"]\noutput = \"label\"\nlabels = [\"A\", \"B\", \"C\"]\n",
        up.url()
    );
    let pool = start_pool(&config).await;
    let resp = pool
        .post_json("/v1/query", json!({"task": "t", "input": "q", "top_k": 3}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let top: Vec<(String, f64)> = body["top_k"]
        .as_array()
        .expect("top_k")
        .iter()
        .map(|l| {
            (
                l["label"].as_str().unwrap_or_default().to_owned(),
                l["probability"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    // "xyz" begins no label and is left out: A 0.6/0.9, B 0.3/0.9, C 0.
    assert_eq!(
        top.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
    assert!(
        (top[0].1 - 2.0 / 3.0).abs() < 1e-9 && (top[1].1 - 1.0 / 3.0).abs() < 1e-9,
        "{top:?}"
    );
    assert!(
        body.get("logprobs").is_none(),
        "the caller did not ask for them: {body}"
    );
    let sent = up.next_request().await;
    assert_eq!(sent.body["logprobs"], true, "the pool asked the upstream");
}
