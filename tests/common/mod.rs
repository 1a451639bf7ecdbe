//! Shared set-up for the black-box tests: a pool on `127.0.0.1:0` in front of fake upstreams.

#![allow(dead_code, clippy::allow_attributes, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use llm_pool::app::Running;
use llm_pool::testing::{FakeUpstream, Reply, Step};

/// A running pool and the folder holding its config.
pub struct Pool {
    pub running: Option<Running>,
    pub http: String,
    pub grpc: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Pool {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("llm-pool.toml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub fn state(&self) -> &llm_pool::state::AppState {
        &self.running.as_ref().expect("running").state
    }
}

/// Writes `config` (with listeners on port 0 prepended) and a `prompts/` folder, and starts
/// the pool.
pub async fn start_pool(config: &str) -> Pool {
    start_pool_server("", config).await
}

/// Like [`start_pool`], with more `[server]` keys (`server` is TOML placed in `[server]`).
pub async fn start_pool_server(server: &str, config: &str) -> Pool {
    start_pool_threads(server, config, 1).await
}

/// Like [`start_pool_server`], with `threads` accept threads (thread-per-core).
pub async fn start_pool_threads(server: &str, config: &str, threads: usize) -> Pool {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("prompts")).expect("prompts dir");
    std::fs::write(
        dir.path().join("prompts/classify.md"),
        "<!-- variables: input -->\nClassify: {{input}}",
    )
    .expect("prompt");
    let text = with_server_keys(server, config);
    let path = dir.path().join("llm-pool.toml");
    std::fs::write(&path, &text).expect("write config");
    let loaded = llm_pool::config::load(&path).expect("valid test config");
    let running = llm_pool::app::start_threads(Some(path), loaded, threads)
        .await
        .expect("start");
    let http = format!("http://{}", running.http_addr);
    let grpc = format!("http://{}", running.grpc_addr);
    Pool {
        running: Some(running),
        http,
        grpc,
        dir,
        client: reqwest::Client::new(),
    }
}

/// Listeners on port 0; active health checks off (they race with what a test asserts)
/// unless the test configures `[qos]` itself.
pub fn with_server(config: &str) -> String {
    with_server_keys("", config)
}

fn with_server_keys(server: &str, config: &str) -> String {
    let qos = if config.contains("[qos]") {
        ""
    } else {
        "[qos]\nhealth_check_interval_ms = 0\n\n"
    };
    // Authentication is on by default; tests about other things turn it off, tests about
    // it configure `[auth]` themselves.
    let auth = if config.contains("[auth]") {
        ""
    } else {
        "[auth]\ninference = false\nadmin = false\n\n"
    };
    format!(
        "[server]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\nmax_body_bytes = 65536\nshutdown_grace_secs = 5\n{server}\n\n{qos}{auth}{config}"
    )
}

/// One provider `up` of `kind` at `url`, and tasks `chat` (pass-through), `echo` (inline
/// template with a variable) and `classify` (label task from a prompt file).
pub fn basic_config(kind: &str, url: &str) -> String {
    format!(
        r#"
[limits]
max_input_chars = 1000
max_tokens = 512

[providers.up]
kind = "{kind}"
model = "up-model"
endpoints = ["{url}"]

[tasks.chat]
providers = ["up"]

[tasks.echo]
template = "Say {{{{input}}}} in {{{{lang}}}}"
variables = ["lang"]
providers = ["up"]
max_tokens = 32
temperature = 0.5

[tasks.classify]
prompt = "classify.md"
output = "label"
labels = ["MEDICINE", "LAW"]
providers = ["up"]

[aliases]
default = "task:chat"
"#
    )
}

/// SHA-256 (hex) of an API key, as `api_key_sha256` takes it.
pub fn sha(s: &str) -> String {
    hex::encode(llm_pool::auth::digest(s.as_bytes()))
}

pub async fn fake(text: &str) -> FakeUpstream {
    FakeUpstream::start(Step::Reply(Reply::text(text)), &["up-model"]).await
}

/// Reads an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

/// Reads an NDJSON body.
pub fn ndjson(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

pub const WAIT: Duration = Duration::from_secs(10);

/// A `redis-server` of the test's own on a free port (scripts/test.sh installs it); killed
/// when dropped.
pub struct Redis {
    pub url: String,
    pub child: tokio::process::Child,
}

pub async fn redis_server() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server on PATH (scripts/test.sh installs it)");
    tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("redis-server listening");
    Redis {
        url: format!("redis://127.0.0.1:{port}/0"),
        child,
    }
}
