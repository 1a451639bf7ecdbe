//! The listeners against hostile or careful clients: TLS on both ports (mTLS on gRPC),
//! certificate reload, slow-loris deadlines and header size limits. These use real sockets
//! and the real clock: each waits for an event (a closed connection) with a generous bound,
//! never sleeps and then asserts.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn fixture(rel: &str) -> String {
    format!("{}/tests/fixtures/tls/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).expect("fixture")
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().expect("port").parse().expect("port")
}

fn tls_server_keys() -> String {
    format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\ngrpc_client_ca_file = \"{}\"\n",
        fixture("server.crt"),
        fixture("server.key"),
        fixture("ca.crt")
    )
}

fn tls_client(identity: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&read("ca.crt")).expect("ca");
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false);
    if identity {
        let mut pem = read("client.crt");
        pem.extend(read("client.key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

#[tokio::test]
async fn https_and_grpc_over_mutual_tls() {
    let up = fake("hello").await;
    let pool = start_pool_server(&tls_server_keys(), &basic_config("openai", &up.url())).await;
    let (http_port, grpc_port) = (port(&pool.http), port(&pool.grpc));

    let r = tls_client(false)
        .get(format!("https://localhost:{http_port}/health"))
        .send()
        .await
        .expect("HTTPS");
    assert_eq!(r.status(), 200);
    let r = tls_client(false)
        .post(format!("https://localhost:{http_port}/v1/query"))
        .json(&serde_json::json!({"task": "chat", "input": "hi"}))
        .send()
        .await
        .expect("HTTPS query");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json")["text"],
        "hello"
    );
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::get(format!("http://127.0.0.1:{http_port}/health")).await;
    assert!(plain.is_err(), "plaintext is not served on a TLS port");

    // gRPC: the client certificate is required.
    let health = |client: reqwest::Client| async move {
        client
            .post(format!(
                "https://localhost:{grpc_port}/grpc.health.v1.Health/Check"
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(vec![0u8, 0, 0, 0, 0])
            .send()
            .await
    };
    let ok = health(tls_client(true)).await.expect("mTLS call");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/grpc");
    assert!(ok.headers().get("grpc-status").is_none(), "not an error");
    assert!(
        health(tls_client(false)).await.is_err(),
        "no client certificate, no gRPC"
    );
}

#[test]
fn certificates_reload_when_their_files_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, read("server.crt")).expect("write");
    std::fs::write(&key, read("server.key")).expect("write");
    let cfg = llm_pool::config::security::TlsConfig::new(cert.clone(), key.clone(), None);
    let tls = llm_pool::tls::Reloading::new(cfg).expect("valid pair");
    let side = llm_pool::tls::Side::Http;
    let first = tls.config(side);
    assert!(!tls.reload_if_changed(), "nothing changed");
    assert!(std::sync::Arc::ptr_eq(&first, &tls.config(side)));

    std::fs::write(&cert, read("other.crt")).expect("write");
    std::fs::write(&key, read("other.key")).expect("write");
    assert!(tls.reload_if_changed(), "a new valid pair is taken");
    let second = tls.config(side);
    assert!(!std::sync::Arc::ptr_eq(&first, &second));

    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n").expect("write");
    assert!(!tls.reload_if_changed(), "a broken file is refused");
    assert!(
        std::sync::Arc::ptr_eq(&second, &tls.config(side)),
        "and the previous pair kept"
    );
}

/// Reads until the server closes the connection; what it said before closing.
async fn until_closed(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server closed the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off_on_both_ports() {
    let up = fake("hello").await;
    let pool = start_pool_server(
        "header_read_timeout_ms = 300",
        &basic_config("openai", &up.url()),
    )
    .await;
    for url in [&pool.http, &pool.grpc] {
        let addr = format!("127.0.0.1:{}", port(url));
        // Connects and says nothing.
        let silent = TcpStream::connect(&addr).await.expect("connect");
        assert_eq!(
            until_closed(silent).await,
            "",
            "{addr}: closed without a word"
        );
        // Starts a request head and never finishes it.
        let mut slow = TcpStream::connect(&addr).await.expect("connect");
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        let said = until_closed(slow).await;
        assert!(
            said.is_empty() || said.starts_with("HTTP/1.1 408"),
            "{addr}: {said}"
        );
    }
    // A prompt client on the same listener is served.
    assert_eq!(pool.get("/health").await.status(), 200);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let up = fake("hello").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let big = "x".repeat(20_000);
    let r = pool
        .client
        .get(pool.url("/health"))
        .header("x-big", big)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 431);
    let ok = pool
        .client
        .get(pool.url("/health"))
        .header("x-small", "x".repeat(4_000))
        .send()
        .await
        .expect("answered");
    assert_eq!(ok.status(), 200, "headers under the limit pass");
}

#[tokio::test]
async fn deep_json_is_refused_before_parsing() {
    let up = fake("hello").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let body = format!(r#"{{"task":"chat","input":"hi","metadata":{deep}}}"#);
    let r = pool
        .client
        .post(pool.url("/v1/query"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.expect("json");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested deeper than 64")),
        "{e}"
    );
}
