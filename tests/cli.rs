//! The binary's command line: `check-config`, `--version`, and the shipped configs.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_llm-pool"))
}

#[test]
fn shipped_configs_are_valid() {
    for file in ["llm-pool.toml", "config/quickstart.toml"] {
        let out = bin().args(["check-config", file]).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(stderr.contains(": ok ("), "{stderr}");
    }
    let config = llm_pool::config::load(std::path::Path::new("llm-pool.toml")).unwrap();
    let tasks: Vec<_> = config.tasks().keys().map(String::as_str).collect();
    for t in [
        "chat",
        "classify_domain",
        "enrich_metadata",
        "expand_queries",
        "judge",
        "recovery_plan",
        "rerank_candidates",
        "site_tactics",
    ] {
        assert!(tasks.contains(&t), "missing task {t}");
    }
    assert_eq!(config.tasks()["classify_domain"].labels().len(), 21);
    let models: Vec<_> = config.providers().values().map(|p| p.model()).collect();
    assert_eq!(models.len(), 3);
    for m in ["phi3:mini", "llama3.1:8b", "gemma2:9b"] {
        assert!(models.contains(&m), "missing provider model {m}");
    }
}

#[test]
fn check_config_lists_every_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[providers.a]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = []\n\n[tasks.t]\nproviders = [\"zz\"]\nfanout = 0\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "providers.a.endpoints: give at least one endpoint URL",
        "tasks.t.providers[0]: unknown provider `zz`",
        "tasks.t.fanout: must be at least 1",
        "3 error(s)",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}

#[test]
fn version_and_serve_with_a_bad_file() {
    let out = bin().arg("--version").output().expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("llm-pool "));
    let out = bin()
        .args(["serve", "--config", "/nonexistent/llm-pool.toml"])
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "a missing config fails before binding"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn check_config_refuses_a_key_of_two_tenants_and_unloadable_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let sha = "a".repeat(64);
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    std::fs::write(
        &path,
        format!(
            "[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\n\
             [tenants.a]\napi_key_sha256 = [\"{sha}\"]\n[tenants.b]\napi_key_sha256 = [\"{sha}\"]\n\n\
             [providers.p]\nkind = \"openai\"\nmodel = \"m\"\nendpoints = [\"http://127.0.0.1:9\"]\n\n\
             [tasks.t]\nproviders = [\"p\"]\n"
        ),
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "tenants.b.api_key_sha256[0]: this API key is also a key of tenant `a`",
        "server.tls:",
        "2 error(s)",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}
