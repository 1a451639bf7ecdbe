//! Authentication, authorisation and tenant limits over real sockets, on both protocols.
//!
//! The route test enumerates the HTTP router (`route_table`, the list the router is built
//! from) and the gRPC service's methods (from its descriptor), so a new route or method
//! that is not protected fails here.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use llm_pool::api::grpc::pb;
use llm_pool::api::grpc::pb::llm_pool_client::LlmPoolClient;
use llm_pool::config::security::RouteGroup;
use llm_pool::testing::Step;
use prost::Message;
use tonic::Code;

const ALICE: &str = "alice-key-0123456789";
const OPS: &str = "ops-key-0123456789";
const METERED: &str = "metered-key-0123456789";
const HMAC_SECRET: &str = "alice-hmac-secret";
const HS256_SECRET: &str = "jwt-hs256-secret-for-tests";

fn fixtures(rel: &str) -> String {
    format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A pool with auth on (the defaults) in front of `url`, and the secrets' folder.
async fn secured(url: &str, extra: &str) -> (Pool, tempfile::TempDir) {
    let secrets = tempfile::tempdir().expect("tempdir");
    let hmac = secrets.path().join("hmac");
    let hs = secrets.path().join("hs256");
    std::fs::write(&hmac, format!("{HMAC_SECRET}\n")).expect("write");
    std::fs::write(&hs, HS256_SECRET).expect("write");
    let config = format!(
        r#"
[auth]
hmac_window_secs = 60

[auth.jwt]
algorithms = ["HS256", "RS256", "ES256"]
hs256_secret_file = "{hs}"
public_key_file = "{rsa}"
jwks_file = "{jwks}"
issuer = "https://issuer.test/"
audience = ["llm-pool"]
leeway_secs = 5

[tenants.alice]
api_key_sha256 = ["{alice}"]
hmac_secret_file = "{hmac}"
tasks = ["chat"]
providers = []

[tenants.ops]
api_key_sha256 = ["{ops}"]
admin = true

[tenants.metered]
api_key_sha256 = ["{metered}"]
requests_per_minute = 2

{extra}
{basic}"#,
        hs = hs.display(),
        rsa = fixtures("jwt/rsa.pub.pem"),
        jwks = fixtures("jwt/jwks.json"),
        alice = sha(ALICE),
        ops = sha(OPS),
        metered = sha(METERED),
        hmac = hmac.display(),
        basic = basic_config("openai", url),
    );
    (start_pool(&config).await, secrets)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn send(
    pool: &Pool,
    method: &http::Method,
    path: &str,
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = pool.client.request(method.clone(), pool.url(path));
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    if *method == http::Method::POST {
        req = req.header("content-type", "application/json").body("{}");
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn every_http_route_is_protected_by_its_group() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let table = llm_pool::api::http::route_table();
    assert!(table.len() >= 17, "the table is the whole router");
    for (method, path, group) in &table {
        let anonymous = send(&pool, method, path, None).await;
        let wrong = send(&pool, method, path, Some(("x-api-key", "nope"))).await;
        let ops = send(&pool, method, path, Some(("authorization", &bearer(OPS)))).await;
        let alice = send(&pool, method, path, Some(("x-api-key", ALICE))).await;
        let (a, w, o, al) = (
            anonymous.status().as_u16(),
            wrong.status().as_u16(),
            ops.status().as_u16(),
            alice.status().as_u16(),
        );
        assert_ne!(o, 401, "{method} {path}: the admin tenant passes");
        assert_ne!(o, 403, "{method} {path}: the admin tenant passes");
        match group {
            RouteGroup::Inference => {
                assert_eq!(a, 401, "{method} {path}: inference needs credentials");
                assert_eq!(w, 401, "{method} {path}: a wrong key is refused");
                assert!(
                    anonymous.headers().contains_key("www-authenticate"),
                    "{method} {path}"
                );
                assert_ne!(al, 401, "{method} {path}");
                let body: serde_json::Value = anonymous.json().await.expect("JSON error");
                // In the route's own protocol.
                if path.starts_with("/api/") {
                    assert!(body["error"].is_string(), "{path}: Ollama shape");
                } else if path.starts_with("/v1/")
                    && !matches!(*path, "/v1/query" | "/v1/tasks" | "/v1/feedback")
                {
                    assert_eq!(body["error"]["type"], "authentication_error", "{path}");
                } else {
                    assert_eq!(body["error"]["code"], "unauthenticated", "{path}");
                }
            }
            RouteGroup::Admin => {
                assert_eq!(a, 401, "{method} {path}: admin needs credentials");
                assert_eq!(w, 401, "{method} {path}: a wrong key is refused");
                assert_eq!(al, 403, "{method} {path}: alice is no admin");
            }
            RouteGroup::Operations => {
                assert_ne!(a, 401, "{method} {path}: operations are open by default");
                assert_ne!(w, 401, "{method} {path}: and ignore wrong keys");
                assert_ne!(al, 401, "{method} {path}");
            }
        }
    }
}

/// The methods of `llmpool.v1.LlmPool`, from the served descriptor.
fn grpc_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(llm_pool::api::grpc::FILE_DESCRIPTOR_SET)
        .expect("descriptor");
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for m in &service.method {
                out.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    m.name()
                ));
            }
        }
    }
    out
}

/// Calls `path` with an empty message over h2c; the `grpc-status` of a trailers-only
/// answer (errors), or `None` when the call got past the auth layer into a real answer.
async fn grpc_status(pool: &Pool, path: &str, key: Option<&str>) -> Option<String> {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let mut req = client
        .post(format!("{}{path}", pool.grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0]);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = req.send().await.expect("h2c call");
    resp.headers()
        .get("grpc-status")
        .map(|v| v.to_str().expect("ascii").to_owned())
}

#[tokio::test]
async fn every_grpc_method_is_protected() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let methods = grpc_methods();
    assert!(methods.len() >= 3, "{methods:?}");
    for m in &methods {
        assert_eq!(
            grpc_status(&pool, m, None).await.as_deref(),
            Some("16"),
            "{m}: UNAUTHENTICATED without credentials"
        );
        assert_eq!(
            grpc_status(&pool, m, Some("wrong")).await.as_deref(),
            Some("16")
        );
        assert_ne!(
            grpc_status(&pool, m, Some(OPS)).await.as_deref(),
            Some("16"),
            "{m}: a valid key passes"
        );
    }
    // Health is an operations route: open by default.
    assert_ne!(
        grpc_status(&pool, "/grpc.health.v1.Health/Check", None)
            .await
            .as_deref(),
        Some("16")
    );
}

#[tokio::test]
async fn grpc_takes_credentials_from_metadata() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let mut c = LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect");
    let query = || pb::QueryRequest {
        task: "chat".into(),
        input: "hi".into(),
        ..Default::default()
    };
    let err = c.query(query()).await.expect_err("no credentials");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(query());
    req.metadata_mut()
        .insert("authorization", bearer(ALICE).parse().expect("ascii"));
    let answer = c.query(req).await.expect("alice may use chat").into_inner();
    assert_eq!(answer.text, "hello");
    // Authorisation on gRPC too: alice may not use `echo`.
    let mut req = tonic::Request::new(pb::QueryRequest {
        task: "echo".into(),
        ..query()
    });
    req.metadata_mut()
        .insert("x-api-key", ALICE.parse().expect("ascii"));
    assert_eq!(
        c.query(req).await.expect_err("denied").code(),
        Code::PermissionDenied
    );
}

async fn query_with(pool: &Pool, headers: &[(&str, String)], body: &str) -> reqwest::Response {
    let mut req = pool
        .client
        .post(pool.url("/v1/query"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("request")
}

const CHAT: &str = r#"{"task":"chat","input":"hi"}"#;

#[tokio::test]
async fn api_keys_by_bearer_or_header() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    for h in [
        ("authorization", bearer(ALICE)),
        ("x-api-key", ALICE.to_owned()),
    ] {
        let r = query_with(&pool, &[h], CHAT).await;
        assert_eq!(r.status(), 200);
    }
    let r = query_with(&pool, &[("authorization", bearer("alice-key"))], CHAT).await;
    assert_eq!(r.status(), 401, "a prefix of a key is not the key");
    let r = query_with(&pool, &[], CHAT).await;
    assert_eq!(r.status(), 401);
    // Two credentials must both check out and agree.
    let r = query_with(
        &pool,
        &[
            ("authorization", bearer(ALICE)),
            ("x-api-key", "wrong".to_owned()),
        ],
        CHAT,
    )
    .await;
    assert_eq!(
        r.status(),
        401,
        "a valid bearer does not vouch for a wrong key"
    );
    let r = query_with(
        &pool,
        &[
            ("authorization", bearer(ALICE)),
            ("x-api-key", OPS.to_owned()),
        ],
        CHAT,
    )
    .await;
    assert_eq!(r.status(), 401, "credentials of two tenants");
    let r = query_with(
        &pool,
        &[
            ("authorization", bearer(ALICE)),
            ("x-api-key", ALICE.to_owned()),
        ],
        CHAT,
    )
    .await;
    assert_eq!(r.status(), 200, "the same tenant twice");
}

fn signed(secret: &str, ts: u64, body: &str) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    let sig = llm_pool::auth::sign(
        secret.as_bytes(),
        "POST",
        "/v1/query",
        &ts,
        None,
        body.as_bytes(),
    );
    vec![
        ("x-llm-pool-tenant", "alice".to_owned()),
        ("x-llm-pool-timestamp", ts),
        ("x-llm-pool-signature", sig),
    ]
}

#[tokio::test]
async fn hmac_signatures() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let headers = signed(HMAC_SECRET, now(), CHAT);
    assert_eq!(
        query_with(&pool, &headers, CHAT).await.status(),
        200,
        "valid"
    );
    let replay = query_with(&pool, &headers, CHAT).await;
    assert_eq!(replay.status(), 401, "replayed");
    let body: serde_json::Value = replay.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("replayed")),
        "{body}"
    );
    let wrong = signed("another-secret", now(), CHAT);
    assert_eq!(
        query_with(&pool, &wrong, CHAT).await.status(),
        401,
        "wrong secret"
    );
    let tampered = signed(HMAC_SECRET, now() + 1, CHAT);
    let other_body = r#"{"task":"chat","input":"HI"}"#;
    assert_eq!(
        query_with(&pool, &tampered, other_body).await.status(),
        401,
        "the body is covered"
    );
    let old = signed(HMAC_SECRET, now() - 120, CHAT);
    assert_eq!(query_with(&pool, &old, CHAT).await.status(), 401, "expired");
    let future = signed(HMAC_SECRET, now() + 120, CHAT);
    assert_eq!(
        query_with(&pool, &future, CHAT).await.status(),
        401,
        "from the future"
    );
    let mut missing = signed(HMAC_SECRET, now() + 2, CHAT);
    missing.remove(1);
    assert_eq!(
        query_with(&pool, &missing, CHAT).await.status(),
        401,
        "no timestamp"
    );
    // A nonce, signed, tells two identical requests of one second apart; it is covered.
    let with_nonce = |nonce: &str| {
        let ts = now().to_string();
        let sig = llm_pool::auth::sign(
            HMAC_SECRET.as_bytes(),
            "POST",
            "/v1/query",
            &ts,
            Some(nonce),
            CHAT.as_bytes(),
        );
        vec![
            ("x-llm-pool-tenant", "alice".to_owned()),
            ("x-llm-pool-timestamp", ts),
            ("x-llm-pool-nonce", nonce.to_owned()),
            ("x-llm-pool-signature", sig),
        ]
    };
    for nonce in ["n-1", "n-2"] {
        assert_eq!(
            query_with(&pool, &with_nonce(nonce), CHAT).await.status(),
            200,
            "nonce {nonce}"
        );
    }
    let mut swapped = with_nonce("n-3");
    swapped[2].1 = "n-4".to_owned();
    assert_eq!(
        query_with(&pool, &swapped, CHAT).await.status(),
        401,
        "the nonce is signed"
    );
}

fn jwt(alg: Algorithm, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS256_SECRET.as_bytes()),
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(fixtures("jwt/rsa.key")).expect("rsa key"))
                .expect("rsa")
        }
        _ => EncodingKey::from_ec_pem(&std::fs::read(fixtures("jwt/ec.key")).expect("ec key"))
            .expect("ec"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("encode")
}

fn claims(tenant: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({
        "tenant": tenant, "exp": exp, "iss": "https://issuer.test/", "aud": "llm-pool",
    })
}

#[tokio::test]
async fn json_web_tokens() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let status = |token: String| {
        let pool = &pool;
        async move {
            query_with(pool, &[("authorization", bearer(&token))], CHAT)
                .await
                .status()
                .as_u16()
        }
    };
    let exp = now() + 300;
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &claims("alice", exp))).await,
        200
    );
    assert_eq!(
        status(jwt(Algorithm::RS256, None, &claims("alice", exp))).await,
        200
    );
    assert_eq!(
        status(jwt(Algorithm::ES256, Some("ec-1"), &claims("alice", exp))).await,
        200,
        "ES256 key found in the JWKS by kid"
    );
    // Refusals.
    let expired = claims("alice", now() - 60);
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &expired)).await,
        401,
        "expired"
    );
    let within_leeway = claims("alice", now() - 2);
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &within_leeway)).await,
        200,
        "skew"
    );
    let mut aud = claims("alice", exp);
    aud["aud"] = "someone-else".into();
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &aud)).await,
        401,
        "audience"
    );
    let mut iss = claims("alice", exp);
    iss["iss"] = "https://evil.test/".into();
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &iss)).await,
        401,
        "issuer"
    );
    let mut no_exp = claims("alice", exp);
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &no_exp)).await,
        401,
        "exp required"
    );
    assert_eq!(
        status(jwt(Algorithm::HS256, None, &claims("mallory", exp))).await,
        401,
        "unknown tenant"
    );
    for claim in ["iss", "aud"] {
        let mut without = claims("alice", exp);
        without.as_object_mut().expect("object").remove(claim);
        assert_eq!(
            status(jwt(Algorithm::HS256, None, &without)).await,
            401,
            "{claim} required when configured"
        );
    }
    let mut no_tenant = claims("alice", exp);
    no_tenant.as_object_mut().expect("object").remove("tenant");
    assert_eq!(status(jwt(Algorithm::HS256, None, &no_tenant)).await, 401);
    let forged = jwt(Algorithm::HS256, None, &claims("ops", exp));
    let (head, rest) = forged.split_at(forged.rfind('.').expect("dot") + 1);
    let flipped = format!("{head}{}", rest.chars().rev().collect::<String>());
    assert_eq!(status(flipped).await, 401, "wrong signature");
    assert_eq!(
        status(jwt(
            Algorithm::ES256,
            Some("unknown"),
            &claims("alice", exp)
        ))
        .await,
        401,
        "unknown kid"
    );
}

#[tokio::test]
async fn tenants_are_held_to_their_tasks_providers_and_admin_rights() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let alice = [("x-api-key", ALICE.to_owned())];
    let r = query_with(
        &pool,
        &alice,
        r#"{"task":"echo","input":"x","variables":{"lang":"en"}}"#,
    )
    .await;
    assert_eq!(r.status(), 403, "alice may use chat only");
    let r = pool
        .client
        .post(pool.url("/v1/chat/completions"))
        .header("x-api-key", ALICE)
        .json(&serde_json::json!({"model": "up", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403, "alice may not call provider `up` directly");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["type"], "permission_error");
    let r = pool
        .client
        .get(pool.url("/admin/config"))
        .header("x-api-key", OPS)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    for secret in [ALICE, OPS, HMAC_SECRET, HS256_SECRET, &sha(ALICE)] {
        assert!(
            !text.contains(secret),
            "/admin/config must not show secrets"
        );
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_on_both_protocols() {
    let up = fake("hello").await;
    let (pool, _s) = secured(&up.url(), "").await;
    let metered = [("x-api-key", METERED.to_owned())];
    for _ in 0..2 {
        assert_eq!(query_with(&pool, &metered, CHAT).await.status(), 200);
    }
    let r = query_with(&pool, &metered, CHAT).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers()["retry-after"],
        "30",
        "2/min refill one every 30 s"
    );
    // gRPC shares the tenant's bucket.
    let mut c = LlmPoolClient::connect(pool.grpc.clone())
        .await
        .expect("connect");
    let mut req = tonic::Request::new(pb::QueryRequest {
        task: "chat".into(),
        input: "hi".into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("x-api-key", METERED.parse().expect("ascii"));
    let status = c.query(req).await.expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.metadata().get("retry-after").is_some());
    // Other tenants are not affected.
    let alice = [("x-api-key", ALICE.to_owned())];
    assert_eq!(query_with(&pool, &alice, CHAT).await.status(), 200);
}

#[tokio::test]
async fn concurrent_requests_are_limited_per_tenant() {
    const SINGLE: &str = "single-key-0123456789";
    let up = fake("hello").await;
    up.set_default(Step::Hang);
    let extra = format!(
        "[tenants.single]\napi_key_sha256 = [\"{}\"]\nmax_concurrent = 1\n",
        sha(SINGLE)
    );
    let (pool, _s) = secured(&up.url(), &extra).await;
    let single = [("x-api-key", SINGLE.to_owned())];
    let first = {
        let (client, url) = (pool.client.clone(), pool.url("/v1/query"));
        tokio::spawn(async move {
            client
                .post(url)
                .header("x-api-key", SINGLE)
                .header("x-request-timeout", "30s")
                .header("content-type", "application/json")
                .body(CHAT)
                .send()
                .await
        })
    };
    let waited = tokio::time::timeout(WAIT, async {
        while up.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the first request reached the upstream");
    let second = query_with(&pool, &single, CHAT).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    first.abort();
}
