//! Command line: `serve` and `check-config`; and, as a client of a running pool, `query`,
//! `feedback`, `health` and `tasks`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// One process in front of a pool of LLM servers.
#[derive(Debug, Parser)]
#[command(name = "llm-pool", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The Tokio runtime `serve` runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// Single-threaded when the process may use one core (`taskset`, a CPU limit of one),
    /// else `multi-thread`.
    #[default]
    Auto,
    /// One work-stealing runtime with a worker per core.
    MultiThread,
    /// A single-threaded runtime per core, each accepting on both ports (`SO_REUSEPORT`):
    /// a connection stays on the core that accepted it, with no work stealing.
    ThreadPerCore,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC and HTTP in front of the configured providers.
    Serve {
        /// The configuration file; watched for changes.
        #[arg(long, short, env = "LLM_POOL_CONFIG", default_value = "llm-pool.toml")]
        config: PathBuf,
        /// How requests are spread over the cores the process may use.
        #[arg(long, env = "LLM_POOL_RUNTIME", value_enum, default_value_t)]
        runtime: Runtime,
    },
    /// Validate a configuration file without serving; prints every error with its TOML path.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Ask a running pool: prints the answer (`--explain`: and how it was chosen).
    #[command(after_help = EXIT_CODES)]
    Query(QueryArgs),
    /// A running pool's providers, endpoints and breakers.
    #[command(after_help = EXIT_CODES)]
    Health {
        #[command(flatten)]
        remote: Remote,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tell a running pool what the right answer to an earlier request was (or whether the
    /// one returned was right); prints how its providers were regraded.
    #[command(after_help = EXIT_CODES)]
    Feedback(FeedbackArgs),
    /// A running pool's tasks (HTTP `GET /v1/tasks`; `--http`, default
    /// `http://127.0.0.1:7071`).
    #[command(after_help = EXIT_CODES)]
    Tasks {
        #[command(flatten)]
        remote: Remote,
    },
}

/// `llm-pool query`: one request to a running pool.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The task (`llm-pool tasks` lists them).
    #[arg(long)]
    pub task: String,
    /// The input the task's template sees as {{input}}.
    #[arg(long)]
    pub input: String,
    /// Another strategy, where the task and the caller's rights allow it.
    #[arg(long, value_parser = ["fastest", "voting", "weighted", "consensus", "judge", "cascade"])]
    pub strategy: Option<String>,
    /// Ensemble size, within the task's `max_n`.
    #[arg(long)]
    pub n: Option<u32>,
    /// Print the text as it streams.
    #[arg(long)]
    pub stream: bool,
    /// Print the whole Answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the Decision as a table after the answer.
    #[arg(long)]
    pub explain: bool,
    /// Request deadline, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    #[command(flatten)]
    pub remote: Remote,
}

/// `llm-pool feedback`: one feedback on an earlier answer.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("truth").required(true).args(["answer", "good", "bad"])))]
pub struct FeedbackArgs {
    /// The answer's request id (`request_id` of the answer; `--json` prints it).
    #[arg(long)]
    pub request_id: String,
    /// The right answer.
    #[arg(long)]
    pub answer: Option<String>,
    /// The answer returned was right.
    #[arg(long)]
    pub good: bool,
    /// The answer returned was wrong.
    #[arg(long)]
    pub bad: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// Runs `llm-pool feedback`.
pub async fn feedback(args: FeedbackArgs) -> u8 {
    use llm_pool_client::pb;
    let truth = match (&args.answer, args.good) {
        (Some(a), _) => pb::feedback_request::Truth::Answer(a.clone()),
        (None, true) => pb::feedback_request::Truth::Verdict(pb::Verdict::Good as i32),
        (None, false) => pb::feedback_request::Truth::Verdict(pb::Verdict::Bad as i32),
    };
    let mut client = match connect(&args.remote).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let reply = match client
        .feedback(pb::FeedbackRequest {
            request_id: args.request_id,
            truth: Some(truth),
        })
        .await
    {
        Ok(r) => r,
        Err(status) => return failed(&status),
    };
    let mut text = format!("task {}\n", reply.task);
    text.push_str(&format!(
        "{:<16} {:<24} {:>8} {:>8} {:>9} {:>9}\n",
        "provider", "answer", "was", "credit", "accuracy", "evidence"
    ));
    for g in &reply.graded {
        let answer: String = g.answer.chars().take(24).collect();
        text.push_str(&format!(
            "{:<16} {:<24} {:>8} {:>8.3} {:>9.3} {:>9.1}\n",
            g.provider,
            answer,
            g.credit_before
                .map_or("-".to_owned(), |c| format!("{c:.3}")),
            g.credit,
            g.accuracy,
            g.evidence
        ));
    }
    out(&text, false);
    0
}

/// Where the pool is, and the caller's key.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The pool's gRPC address.
    #[arg(long, env = "LLM_POOL_ADDR", default_value = "http://127.0.0.1:7070")]
    pub addr: String,
    /// Talk HTTP to this base URL instead (`http://127.0.0.1:7071`).
    #[arg(long, env = "LLM_POOL_HTTP")]
    pub http: Option<String>,
    /// API key (or JWT), sent as `authorization: Bearer <key>`.
    #[arg(long, env = "LLM_POOL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// gRPC: sign each call with HMAC-SHA256 as this tenant, with the secret in
    /// `LLM_POOL_HMAC_SECRET`.
    #[arg(long, env = "LLM_POOL_HMAC_TENANT")]
    pub hmac_tenant: Option<String>,
    /// gRPC over TLS: the CA (PEM file) that signed the pool's certificate.
    #[arg(long, env = "LLM_POOL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// gRPC over mutual TLS: the client certificate and its key (PEM files).
    #[arg(long, env = "LLM_POOL_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    #[arg(long, env = "LLM_POOL_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// Exit codes of the client commands (the error classes of shared/DESIGN.md).
pub const EXIT_CODES: &str = "exit codes: 0 ok; 1 other; 2 invalid argument; 3 not found; \
4 unauthenticated or permission denied; 5 rate limited or overloaded; 6 unavailable; \
7 deadline exceeded; 8 no consensus or no valid answer; 9 cannot connect";

/// Runs `llm-pool query`; the exit code by the error's class.
pub async fn query(args: QueryArgs) -> u8 {
    let strategy = match args.strategy.as_deref() {
        None => 0,
        Some(s) => llm_pool_client::pb::Strategy::from_str_name(&format!(
            "STRATEGY_{}",
            s.to_ascii_uppercase()
        ))
        .map_or(0, |s| s as i32),
    };
    let request = llm_pool_client::pb::QueryRequest {
        task: args.task.clone(),
        input: args.input.clone(),
        strategy,
        n: args.n,
        timeout_ms: args.timeout_ms,
        ..Default::default()
    };
    if let Some(base) = &args.remote.http {
        if args.stream {
            // Not silently answered whole: the HTTP path of this command does not stream.
            eprintln!("--stream is for gRPC; leave out --http, or --stream");
            return 2;
        }
        return query_http(base, &args).await;
    }
    let mut client = match connect(&args.remote).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let answer = if args.stream {
        let mut stream = match client.stream_query(request).await {
            Ok(s) => s,
            Err(status) => return failed(&status),
        };
        let mut last = None;
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    if !args.json {
                        out(&chunk.delta, false);
                    }
                    if chunk.done {
                        last = chunk.answer;
                    }
                }
                Ok(None) => break,
                Err(status) => return failed(&status),
            }
        }
        if !args.json {
            out("", true);
        }
        match last {
            Some(a) => a,
            None => return 1,
        }
    } else {
        match client.query(request).await {
            Ok(a) => a,
            Err(status) => return failed(&status),
        }
    };
    if args.json {
        out(&answer_json(&answer).to_string(), true);
    } else if !args.stream {
        out(&answer.text, true);
    }
    if args.explain {
        out(&llm_pool_client::explain(&answer), false);
    }
    0
}

/// Runs `llm-pool health`: providers, endpoints and breakers.
pub async fn health(remote: Remote, json: bool) -> u8 {
    let mut client = match connect(&remote).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let h = match client.health().await {
        Ok(h) => h,
        Err(status) => return failed(&status),
    };
    if json {
        let providers: Vec<serde_json::Value> = h
            .providers
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name, "kind": p.kind, "model": p.model,
                    "endpoints": p.endpoints.iter().map(|e| serde_json::json!({
                        "url": e.url, "state": e.state, "breaker": e.breaker,
                        "outstanding": e.outstanding, "calls": e.calls, "failures": e.failures,
                        "trips": e.trips, "last_error": e.last_error,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let body = serde_json::json!({
            "status": h.status, "config_version": h.config_version,
            "config_error": h.config_error, "providers": providers,
        });
        out(&body.to_string(), true);
        return 0;
    }
    let mut text = format!("status {}  config version {}", h.status, h.config_version);
    if !h.config_error.is_empty() {
        text.push_str(&format!("  last reload error: {}", h.config_error));
    }
    text.push('\n');
    text.push_str(&format!(
        "{:<16} {:<8} {:<14} {:<40} {:<10} {:<10} {:>6} {:>8} {:>8}\n",
        "provider", "kind", "model", "endpoint", "state", "breaker", "busy", "calls", "failed"
    ));
    for p in &h.providers {
        for e in &p.endpoints {
            text.push_str(&format!(
                "{:<16} {:<8} {:<14} {:<40} {:<10} {:<10} {:>6} {:>8} {:>8}\n",
                p.name,
                p.kind,
                p.model,
                e.url,
                e.state,
                e.breaker,
                e.outstanding,
                e.calls,
                e.failures
            ));
        }
    }
    out(&text, false);
    0
}

/// Runs `llm-pool tasks` (HTTP `GET /v1/tasks`).
pub async fn tasks(remote: Remote) -> u8 {
    let base = remote
        .http
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:7071".to_owned());
    let req = reqwest::Client::new().get(format!("{}/v1/tasks", base.trim_end_matches('/')));
    let body = match send_http(req, &base, remote.api_key.as_deref()).await {
        Ok(body) => body,
        Err(code) => return code,
    };
    let mut text = String::new();
    for t in body["tasks"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "{:<24} {:<10} {}\n",
            t["name"].as_str().unwrap_or_default(),
            t["strategy"].as_str().unwrap_or_default(),
            t["providers"]
                .as_array()
                .map(|ps| ps
                    .iter()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ));
    }
    out(&text, false);
    0
}

async fn connect(remote: &Remote) -> Result<llm_pool_client::Client, u8> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| {
            eprintln!("{}: {e}", path.display());
            2
        })
    };
    let mut builder = llm_pool_client::Client::builder(&remote.addr);
    if let Some(key) = &remote.api_key {
        builder = builder.api_key(key.as_str());
    }
    if let Some(tenant) = &remote.hmac_tenant {
        let Ok(secret) = std::env::var("LLM_POOL_HMAC_SECRET") else {
            eprintln!("--hmac-tenant needs the secret in LLM_POOL_HMAC_SECRET");
            return Err(2);
        };
        builder = builder.hmac(tenant.as_str(), secret);
    }
    if let Some(ca) = &remote.ca_cert {
        builder = builder.ca_certificate(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&remote.client_cert, &remote.client_key) {
        builder = builder.identity(read(cert)?, read(key)?);
    }
    builder.connect().await.map_err(|e| {
        eprintln!("{e}");
        match e {
            llm_pool_client::ClientError::Connect { .. } => 9,
            _ => 2,
        }
    })
}

fn failed(status: &tonic::Status) -> u8 {
    eprintln!("{:?}: {}", status.code(), status.message());
    llm_pool_client::exit_code(status.code())
}

/// The exit code of an HTTP error status (the same classes as gRPC's).
fn http_exit_code(status: u16) -> u8 {
    match status {
        400 | 413 | 422 => 2,
        404 => 3,
        401 | 403 => 4,
        429 => 5,
        503 => 6,
        504 => 7,
        409 | 502 => 8,
        _ => 1,
    }
}

/// Sends an HTTP request of a client command: the JSON body of a success, or the exit code
/// of the failure (its class; a success whose body is not JSON is a failure, not an empty
/// answer).
async fn send_http(
    mut req: reqwest::RequestBuilder,
    base: &str,
    api_key: Option<&str>,
) -> Result<serde_json::Value, u8> {
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| {
        eprintln!("cannot reach {base}: {e}");
        9
    })?;
    let status = resp.status();
    let body = resp.json::<serde_json::Value>().await;
    if !status.is_success() {
        let message = body
            .as_ref()
            .ok()
            .and_then(|b| b["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        eprintln!("{status}: {message}");
        return Err(http_exit_code(status.as_u16()));
    }
    body.map_err(|e| {
        eprintln!("{status}, but the body is not JSON: {e}");
        1
    })
}

async fn query_http(base: &str, args: &QueryArgs) -> u8 {
    let mut body = serde_json::json!({"task": args.task, "input": args.input});
    if let Some(s) = &args.strategy {
        body["strategy"] = s.clone().into();
    }
    if let Some(n) = args.n {
        body["n"] = n.into();
    }
    if let Some(t) = args.timeout_ms {
        body["timeout_ms"] = t.into();
    }
    let req = reqwest::Client::new()
        .post(format!("{}/v1/query", base.trim_end_matches('/')))
        .json(&body);
    let answer = match send_http(req, base, args.remote.api_key.as_deref()).await {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    if args.json {
        out(&answer.to_string(), true);
    } else {
        out(answer["text"].as_str().unwrap_or_default(), true);
        if args.explain {
            out(
                &serde_json::to_string_pretty(&answer["decision"]).unwrap_or_default(),
                true,
            );
        }
    }
    0
}

fn answer_json(a: &llm_pool_client::pb::Answer) -> serde_json::Value {
    let d = a.decision.as_ref();
    serde_json::json!({
        "text": a.text, "provider": a.provider, "model": a.model, "task": a.task,
        "latency_ms": a.latency_ms, "cache_hit": a.cache_hit, "finish_reason": a.finish_reason,
        "request_id": a.request_id,
        "usage": a.usage.as_ref().map(|u| serde_json::json!({
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
        })),
        "decision": d.map(|d| serde_json::json!({
            "winner": d.winner, "agreement": d.agreement, "confidence": d.confidence,
            "stopped": d.stopped, "degraded": d.degraded,
            "candidates": d.candidates.iter().map(|c| serde_json::json!({
                "provider": c.provider, "status": c.status, "text": c.text,
                "error": c.error, "latency_ms": c.latency_ms, "accuracy": c.accuracy,
            })).collect::<Vec<_>>(),
        })),
    })
}

/// Writes to stdout (the answer is the command's output; logs and errors go to stderr).
fn out(text: &str, newline: bool) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if newline {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}
