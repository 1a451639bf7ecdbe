//! The Rust client crate (`llm-pool-client`) against a running pool: every typed call, the
//! deadline per call, and each credential it sends for the caller (API key, JWT, HMAC
//! signatures made per call, TLS with a client certificate).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use llm_pool::testing::{Reply, Step};
use llm_pool_client::{Client, EmbedRequest, FeedbackRequest, QueryRequest, pb};
use tonic::Code;

const KEY: &str = "client-key-0123456789";
const HMAC_SECRET: &str = "client-hmac-secret";
const JWT_SECRET: &str = "client-jwt-secret-for-tests";

fn fixture(rel: &str) -> String {
    format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).expect("fixture")
}

/// A pool with inference auth on: tenant `app` by API key, HMAC secret or HS256 JWT.
async fn secured(url: &str) -> (Pool, tempfile::TempDir) {
    let secrets = tempfile::tempdir().expect("tempdir");
    let hmac = secrets.path().join("hmac");
    let jwt = secrets.path().join("jwt");
    std::fs::write(&hmac, HMAC_SECRET).expect("write");
    std::fs::write(&jwt, JWT_SECRET).expect("write");
    let config = format!(
        r#"
[auth]
inference = true

[auth.jwt]
algorithms = ["HS256"]
hs256_secret_file = "{jwt}"

[tenants.app]
api_key_sha256 = ["{key}"]
hmac_secret_file = "{hmac}"
{basic}"#,
        jwt = jwt.display(),
        key = sha(KEY),
        hmac = hmac.display(),
        basic = basic_config("openai", url),
    );
    (start_pool(&config).await, secrets)
}

#[tokio::test]
async fn every_call_is_typed_and_answers() {
    let up = fake("Bonjour").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let mut client = Client::connect(&pool.grpc).await.expect("connect");

    let answer = client
        .query(QueryRequest::new("chat", "hi"))
        .await
        .expect("query");
    assert_eq!(answer.text, "Bonjour");
    let decision = answer.decision.as_ref().expect("a Decision");
    assert_eq!(decision.winner, "up");
    assert_eq!(decision.strategy, pb::Strategy::Fastest as i32);
    assert!(llm_pool_client::explain(&answer).contains("strategy fastest  winner up"));

    let mut stream = client
        .stream_query(QueryRequest::new("chat", "hi"))
        .await
        .expect("stream");
    let (mut text, mut last) = (String::new(), None);
    while let Some(chunk) = stream.message().await.expect("chunk") {
        text.push_str(&chunk.delta);
        if chunk.done {
            last = chunk.answer;
        }
    }
    assert_eq!(text, "Bonjour");
    assert_eq!(
        last.expect("the last chunk carries the Answer").text,
        "Bonjour"
    );

    let health = client.health().await.expect("health");
    assert_eq!(health.status, "SERVING");
    assert_eq!(health.providers[0].name, "up");

    let embedded = client
        .embed(EmbedRequest {
            model: "up".into(),
            input: vec!["abc".into()],
            ..Default::default()
        })
        .await
        .expect("embed");
    assert_eq!(embedded.embeddings.len(), 1);

    // Feedback on an answer the pool never gave is NOT_FOUND (a typed error, not a panic).
    let unknown = client
        .feedback(FeedbackRequest {
            request_id: "no-such-request".into(),
            truth: Some(pb::feedback_request::Truth::Answer("x".into())),
        })
        .await
        .expect_err("unknown request");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(llm_pool_client::exit_code(unknown.code()), 3);

    let bad = client
        .query(QueryRequest::new("no_such_task", "hi"))
        .await
        .expect_err("unknown task");
    assert_eq!(bad.code(), Code::NotFound);
}

#[tokio::test]
async fn the_deadline_is_per_call() {
    let up = fake("late").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let client = Client::builder(&pool.grpc)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("connect");
    up.push([Step::Hang]);
    // One call with a short deadline, on a clone that shares the connection.
    let err = client
        .clone()
        .with_timeout(Duration::from_millis(300))
        .query(QueryRequest::new("chat", "hi"))
        .await
        .expect_err("the upstream hangs");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // The client's own deadline is untouched: the next call answers.
    up.push([Step::Reply(Reply::text("on time"))]);
    let mut client = client;
    let answer = client
        .query(QueryRequest::new("chat", "hi"))
        .await
        .expect("answers");
    assert_eq!(answer.text, "on time");
}

#[tokio::test]
async fn credentials_are_sent_for_the_caller() {
    let up = fake("hello").await;
    let (pool, _secrets) = secured(&up.url()).await;
    let query = || QueryRequest::new("chat", "hi");

    let mut anonymous = Client::connect(&pool.grpc).await.expect("connect");
    let err = anonymous.query(query()).await.expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut keyed = Client::builder(&pool.grpc)
        .api_key(KEY)
        .connect()
        .await
        .expect("connect");
    assert_eq!(keyed.query(query()).await.expect("API key").text, "hello");

    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"tenant": "app", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("token");
    let mut jwt = Client::builder(&pool.grpc)
        .jwt(token)
        .connect()
        .await
        .expect("connect");
    assert_eq!(jwt.query(query()).await.expect("JWT").text, "hello");

    // HMAC: each call signed anew, so the same request twice in one second is no replay;
    // the streamed call is signed too.
    let mut signed = Client::builder(&pool.grpc)
        .hmac("app", HMAC_SECRET)
        .connect()
        .await
        .expect("connect");
    for _ in 0..3 {
        assert_eq!(signed.query(query()).await.expect("HMAC").text, "hello");
    }
    let mut stream = signed.stream_query(query()).await.expect("signed stream");
    while stream.message().await.expect("chunk").is_some() {}
    let mut forged = Client::builder(&pool.grpc)
        .hmac("app", "not-the-secret")
        .connect()
        .await
        .expect("connect");
    assert_eq!(
        forged
            .query(query())
            .await
            .expect_err("wrong secret")
            .code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let up = fake("hello").await;
    let server = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\ngrpc_client_ca_file = \"{}\"\n",
        fixture("tls/server.crt"),
        fixture("tls/server.key"),
        fixture("tls/ca.crt")
    );
    let pool = start_pool_server(&server, &basic_config("openai", &up.url())).await;
    let addr = pool.grpc.replace("http://127.0.0.1", "https://localhost");

    let mut mtls = Client::builder(&addr)
        .ca_certificate(read("tls/ca.crt"))
        .identity(read("tls/client.crt"), read("tls/client.key"))
        .connect()
        .await
        .expect("mTLS");
    let answer = mtls
        .query(QueryRequest::new("chat", "hi"))
        .await
        .expect("query over mTLS");
    assert_eq!(answer.text, "hello");

    // Without the client certificate the pool refuses the connection or the call.
    let refused = match Client::builder(&addr)
        .ca_certificate(read("tls/ca.crt"))
        .connect()
        .await
    {
        Err(_) => true,
        Ok(mut c) => c.health().await.is_err(),
    };
    assert!(refused, "no client certificate, no gRPC");
    // Nor does a client that trusts another CA reach it.
    let untrusted = match Client::builder(&addr)
        .ca_certificate(read("tls/other.crt"))
        .identity(read("tls/client.crt"), read("tls/client.key"))
        .connect()
        .await
    {
        Err(_) => true,
        Ok(mut c) => c.health().await.is_err(),
    };
    assert!(untrusted, "the pool's certificate is checked");
}
