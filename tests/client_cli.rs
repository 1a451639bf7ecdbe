//! `llm-pool query`, `health` and `tasks` against a running pool, over gRPC and HTTP: the
//! answer on stdout, `--explain`'s Decision table, `--json`, `--stream`, and exit codes by
//! error class.

mod common;

use common::*;

/// Runs the binary with `args`; (exit code, stdout, stderr).
async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-pool"))
        .args(args)
        .env_remove("LLM_POOL_API_KEY")
        .output()
        .await
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn query_prints_the_answer_and_explains_the_decision() {
    let up = fake("Bonjour").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let addr = pool.grpc.as_str();

    let (code, stdout, stderr) =
        run(&["query", "--addr", addr, "--task", "chat", "--input", "hi"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "Bonjour\n");

    let (code, stdout, _) = run(&[
        "query",
        "--addr",
        addr,
        "--task",
        "chat",
        "--input",
        "hi",
        "--explain",
    ])
    .await;
    assert_eq!(code, 0);
    assert!(stdout.starts_with("Bonjour\n"), "{stdout}");
    assert!(stdout.contains("strategy fastest  winner up"), "{stdout}");
    assert!(
        stdout.contains("provider") && stdout.contains("status"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("0 ") && l.contains(" ok ") && l.contains("Bonjour")),
        "one row per candidate: {stdout}"
    );

    let (code, stdout, _) = run(&[
        "query", "--addr", addr, "--task", "chat", "--input", "hi", "--json",
    ])
    .await;
    assert_eq!(code, 0);
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(answer["text"], "Bonjour");
    assert_eq!(answer["provider"], "up");
    assert_eq!(answer["decision"]["candidates"][0]["status"], "ok");

    let (code, stdout, _) = run(&[
        "query", "--addr", addr, "--task", "chat", "--input", "hi", "--stream",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(stdout, "Bonjour\n");

    let http = pool.http.as_str();
    let (code, stdout, _) =
        run(&["query", "--http", http, "--task", "chat", "--input", "hi"]).await;
    assert_eq!(code, 0);
    assert_eq!(stdout, "Bonjour\n");
}

#[tokio::test]
async fn errors_exit_by_class() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let addr = pool.grpc.as_str();
    let (code, _, stderr) =
        run(&["query", "--addr", addr, "--task", "nope", "--input", "hi"]).await;
    assert_eq!(code, 3, "not found: {stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    let (code, _, _) = run(&[
        "query",
        "--http",
        pool.http.as_str(),
        "--task",
        "nope",
        "--input",
        "hi",
    ])
    .await;
    assert_eq!(code, 3, "the same class over HTTP");
    // A flag the HTTP path cannot honour is refused, not ignored.
    let (code, stdout, stderr) = run(&[
        "query",
        "--http",
        pool.http.as_str(),
        "--task",
        "chat",
        "--input",
        "hi",
        "--stream",
    ])
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty() && stderr.contains("--stream"), "{stderr}");
    let (code, _, stderr) = run(&["health", "--addr", "http://127.0.0.1:9"]).await;
    assert_eq!(code, 9, "cannot connect: {stderr}");
}

#[tokio::test]
async fn health_and_tasks_list_the_pool() {
    let up = fake("x").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let (code, stdout, stderr) = run(&["health", "--addr", pool.grpc.as_str()]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("status SERVING"), "{stdout}");
    assert!(
        stdout.lines().any(
            |l| l.starts_with("up ") && l.contains(&up.url().trim_end_matches('/').to_string())
        ),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["health", "--addr", pool.grpc.as_str(), "--json"]).await;
    assert_eq!(code, 0);
    let h: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(h["providers"][0]["name"], "up");

    let (code, stdout, stderr) = run(&["tasks", "--http", pool.http.as_str()]).await;
    assert_eq!(code, 0, "{stderr}");
    for task in ["chat", "classify", "echo"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(task) && l.contains("fastest") && l.contains("up")),
            "{task}: {stdout}"
        );
    }
}

#[tokio::test]
async fn feedback_regrades_an_answer_from_the_command_line() {
    let up = fake("LAW").await;
    let pool = start_pool(&basic_config("openai", &up.url())).await;
    let addr = pool.grpc.as_str();
    let (code, stdout, stderr) = run(&[
        "query",
        "--addr",
        addr,
        "--task",
        "classify",
        "--input",
        "a contract",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    let id = answer["request_id"].as_str().expect("an id");

    let (code, stdout, stderr) = run(&[
        "feedback",
        "--addr",
        addr,
        "--request-id",
        id,
        "--answer",
        "medicine",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("task classify\n"), "{stdout}");
    // FASTEST's one answer was never graded: it is now, wrong (credit 0).
    let row = stdout
        .lines()
        .find(|l| l.starts_with("up "))
        .expect("a row for up");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..4], ["LAW", "-", "0.000"], "{row}");
    assert_eq!(cols[4], format!("{:.3}", 7.0 / 11.0), "{row}");

    // Unknown id: exit 3 (not found); no truth given: clap refuses it (exit 2).
    let (code, _, _) = run(&["feedback", "--addr", addr, "--request-id", "nope", "--good"]).await;
    assert_eq!(code, 3);
    let (code, _, _) = run(&["feedback", "--addr", addr, "--request-id", id]).await;
    assert_eq!(code, 2);
}

#[tokio::test]
async fn query_over_mutual_tls_and_signed_with_hmac() {
    let fixture = |rel: &str| format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    let secrets = tempfile::tempdir().expect("tempdir");
    let hmac = secrets.path().join("hmac");
    std::fs::write(&hmac, "cli-hmac-secret").expect("write");
    let up = fake("signed").await;
    let server = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\ngrpc_client_ca_file = \"{}\"\n",
        fixture("tls/server.crt"),
        fixture("tls/server.key"),
        fixture("tls/ca.crt")
    );
    let config = format!(
        "[auth]\ninference = true\n\n[tenants.app]\nhmac_secret_file = \"{}\"\n{}",
        hmac.display(),
        basic_config("openai", &up.url())
    );
    let pool = start_pool_server(&server, &config).await;
    let addr = pool.grpc.replace("http://127.0.0.1", "https://localhost");
    let cli = |secret: &str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-pool"));
        cmd.args(["query", "--addr", &addr, "--task", "chat", "--input", "hi"])
            .args(["--ca-cert", &fixture("tls/ca.crt")])
            .args(["--client-cert", &fixture("tls/client.crt")])
            .args(["--client-key", &fixture("tls/client.key")])
            .args(["--hmac-tenant", "app"])
            .env_remove("LLM_POOL_API_KEY")
            .env("LLM_POOL_HMAC_SECRET", secret);
        cmd
    };
    let out = cli("cli-hmac-secret").output().await.expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "signed\n");
    let out = cli("wrong").output().await.expect("run");
    assert_eq!(out.status.code(), Some(4), "unauthenticated: exit 4");
}
