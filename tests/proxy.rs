//! Endpoints behind a forward proxy (the provider's `proxy`): HTTP endpoints through the
//! proxy in absolute form with `Proxy-Authorization`, HTTPS endpoints through a CONNECT
//! tunnel; `proxy = ""` goes direct.

mod common;

use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A forward proxy: records each request head's first line and `proxy-authorization`,
/// then relays (CONNECT: a tunnel; absolute form: to the named host, head included).
async fn forward_proxy() -> (String, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.ok() != Some(1) {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let first = text.lines().next().unwrap_or_default().to_owned();
                let auth = text.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("proxy-authorization")
                        .then(|| value.trim().to_owned())
                });
                log.lock().push((first.clone(), auth));
                let mut parts = first.split(' ');
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (host, connect) = if method == "CONNECT" {
                    (target.to_owned(), true)
                } else {
                    let rest = target.strip_prefix("http://").unwrap_or(target);
                    (rest.split('/').next().unwrap_or("").to_owned(), false)
                };
                let Ok(mut upstream) = TcpStream::connect(&host).await else {
                    return;
                };
                if connect {
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                } else if upstream.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("127.0.0.1:{}", addr.port()), seen)
}

fn config(endpoint: &str, proxy: &str) -> String {
    format!(
        r#"
[providers.up]
kind = "openai"
model = "up-model"
endpoints = ["{endpoint}"]
proxy = "{proxy}"

[tasks.chat]
providers = ["up"]
"#
    )
}

#[tokio::test]
async fn an_http_endpoint_is_reached_through_the_proxy_with_its_credentials() {
    let up = fake("through the proxy").await;
    let (proxy, seen) = forward_proxy().await;
    let pool = start_pool(&config(&up.url(), &format!("http://user:pw@{proxy}"))).await;
    let r = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["text"], "through the proxy");
    let seen = seen.lock().clone();
    let (line, auth) = seen.first().expect("the proxy saw the call");
    let authority = up
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    assert_eq!(
        line,
        &format!("POST http://{authority}/v1/chat/completions HTTP/1.1"),
        "absolute form"
    );
    // base64("user:pw")
    assert_eq!(auth.as_deref(), Some("Basic dXNlcjpwdw=="));
}

#[tokio::test]
async fn an_https_endpoint_is_tunnelled_and_an_empty_proxy_goes_direct() {
    // The fake upstream speaks plain HTTP, so TLS through the tunnel fails; what matters
    // is that the tunnel was asked for, with the credentials.
    let up = fake("unused").await;
    let (proxy, seen) = forward_proxy().await;
    let authority = up
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let pool = start_pool(&config(
        &format!("https://{authority}"),
        &format!("http://user:pw@{proxy}"),
    ))
    .await;
    let r = pool
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 503, "no TLS at the far end");
    let seen = seen.lock().clone();
    let (line, auth) = seen.first().expect("the proxy saw the tunnel");
    assert_eq!(line, &format!("CONNECT {authority} HTTP/1.1"));
    assert_eq!(auth.as_deref(), Some("Basic dXNlcjpwdw=="));
    drop(pool);

    let direct = start_pool(&config(&up.url(), "")).await;
    let r = direct
        .post_json("/v1/query", json!({"task": "chat", "input": "hi"}))
        .await;
    assert_eq!(r.status(), 200);
}

#[test]
fn a_bad_proxy_is_refused_without_repeating_it() {
    let text = config("http://127.0.0.1:9", "socks5://user:secret@127.0.0.1:1080");
    let errors = llm_pool::config::load_str(&text, std::path::Path::new("."))
        .expect_err("refused")
        .to_string();
    assert!(errors.contains("providers.up.proxy"), "{errors}");
    assert!(!errors.contains("secret"), "credentials stay out: {errors}");
}
