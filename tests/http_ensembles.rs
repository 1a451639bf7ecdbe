//! Ensembles over real HTTP against fake upstreams: the Decision on every surface, 409 /
//! ABORTED with the candidates, JSON Schema validation.

mod common;

use common::*;
use llm_pool::api::grpc::pb;
use llm_pool::testing::{FakeUpstream, Reply, Step};
use serde_json::json;

async fn three(texts: [&str; 3]) -> Vec<FakeUpstream> {
    let mut ups = Vec::new();
    for t in texts {
        ups.push(FakeUpstream::start(Step::Reply(Reply::text(t)), &["m"]).await);
    }
    ups
}

fn config(ups: &[FakeUpstream], task: &str) -> String {
    let mut s = String::new();
    for (i, u) in ups.iter().enumerate() {
        s.push_str(&format!(
            "[providers.p{i}]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"{}\"]\n\n",
            u.url()
        ));
    }
    s.push_str(&format!(
        "[tasks.vote]\nproviders = [\"p0\", \"p1\", \"p2\"]\noutput = \"label\"\nlabels = [\"YES\", \"NO\"]\ntemplate = \"{{{{input}}}}\"\n{task}\n"
    ));
    s
}

#[tokio::test]
async fn the_decision_reaches_every_surface() {
    let ups = three(["yes", "No.", "YES"]).await;
    let pool = start_pool(&config(&ups, "strategy = \"voting\"\nearly_stop = false")).await;

    let resp = pool
        .post_json("/v1/query", json!({"task": "vote", "input": "?"}))
        .await;
    let header: serde_json::Value =
        serde_json::from_str(resp.headers()["x-llm-pool-decision"].to_str().unwrap()).unwrap();
    assert_eq!(header["strategy"], "voting");
    assert_eq!(header["candidates"].as_array().unwrap().len(), 3);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["text"], "YES");
    assert_eq!(body["decision"]["votes"]["YES"], 2.0);
    assert_eq!(body["decision"]["groups"].as_array().unwrap().len(), 2);

    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:vote", "messages": [{"role": "user", "content": "?"}]}),
        )
        .await;
    assert!(resp.headers().contains_key("x-llm-pool-decision"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "YES");
    assert_eq!(
        body["llm_pool"]["decision"]["agreement"].as_f64().unwrap(),
        2.0 / 3.0
    );

    // Streamed: the whole chosen answer, then the finish chunk carrying the Decision.
    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:vote", "stream": true, "messages": [{"role": "user", "content": "?"}]}),
        )
        .await;
    let data = sse_data(&resp.text().await.unwrap());
    let finish: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(finish["llm_pool"]["decision"]["strategy"], "voting");

    let resp = pool
        .post_json("/api/chat", json!({"model": "task:vote", "stream": false, "messages": [{"role": "user", "content": "?"}]}))
        .await;
    assert!(resp.headers().contains_key("x-llm-pool-decision"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["message"]["content"], "YES");
    assert_eq!(body["llm_pool"]["decision"]["winner"], "p0");

    let mut c = pb::llm_pool_client::LlmPoolClient::connect(pool.grpc.clone())
        .await
        .unwrap();
    let answer = c
        .query(pb::QueryRequest {
            task: "vote".into(),
            input: "?".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let d = answer.decision.unwrap();
    assert_eq!(d.strategy, pb::Strategy::Voting as i32);
    assert_eq!(d.votes["YES"], 2.0);
    assert_eq!(d.groups.len(), 2);
    assert_eq!(d.total_usage.unwrap().completion_tokens, 3);
}

#[tokio::test]
async fn no_consensus_is_409_and_aborted_with_the_candidates() {
    let ups = three(["yes", "no", "maybe not"]).await;
    let pool = start_pool(&config(&ups, "strategy = \"consensus\"\nmin_votes = 2")).await;
    let resp = pool
        .post_json("/v1/query", json!({"task": "vote", "input": "?"}))
        .await;
    assert_eq!(resp.status(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_consensus");
    let candidates = body["error"]["decision"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    assert_eq!(candidates[2]["status"], "invalid");

    let resp = pool
        .post_json(
            "/v1/chat/completions",
            json!({"model": "task:vote", "messages": [{"role": "user", "content": "?"}]}),
        )
        .await;
    assert_eq!(resp.status(), 409);

    let mut c = pb::llm_pool_client::LlmPoolClient::connect(pool.grpc.clone())
        .await
        .unwrap();
    let err = c
        .query(pb::QueryRequest {
            task: "vote".into(),
            input: "?".into(),
            ..Default::default()
        })
        .await
        .expect_err("no consensus");
    assert_eq!(err.code(), tonic::Code::Aborted);
    assert!(err.message().contains("no consensus"));
}

#[tokio::test]
async fn json_answers_must_satisfy_the_schema() {
    let good = r#"{"queries": ["a", "b"]}"#;
    let mut ups = [
        FakeUpstream::start(
            Step::Reply(Reply::text(r#"{"queries": "not a list"}"#)),
            &["m"],
        )
        .await,
        FakeUpstream::start(
            Step::Reply(Reply::text(&format!("```json\n{good}\n```"))),
            &["m"],
        )
        .await,
    ];
    let text = format!(
        r#"
[providers.p0]
kind = "openai"
model = "m"
endpoints = ["{}"]

[providers.p1]
kind = "ollama"
model = "m"
endpoints = ["{}"]

[tasks.expand]
providers = ["p0", "p1"]
output = "json"
template = "{{{{input}}}}"

[tasks.expand.schema]
type = "object"
required = ["queries"]
properties = {{ queries = {{ type = "array", items = {{ type = "string" }} }} }}
"#,
        ups[0].url(),
        ups[1].url()
    );
    let pool = start_pool(&text).await;
    let body: serde_json::Value = pool
        .post_json("/v1/query", json!({"task": "expand", "input": "x"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["text"], r#"{"queries":["a","b"]}"#);
    let first = &body["decision"]["candidates"][0];
    assert_eq!(first["status"], "invalid");
    assert!(
        first["error"].as_str().unwrap().contains("schema"),
        "{first}"
    );
    let seen = ups[1].take_requests();
    assert_eq!(
        seen[0].body["format"], "json",
        "JSON output asks the model server for JSON"
    );
}
