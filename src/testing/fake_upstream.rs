//! `FakeUpstream`: an axum app on `127.0.0.1:0` that speaks the OpenAI and Ollama APIs,
//! answers from a script (replies, latency, error statuses, hangs, mid-stream cuts,
//! malformed bodies) and records every request it receives.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, Uri};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What the upstream does with the next request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer normally.
    Reply(Reply),
    /// Answer with this status and body.
    Status(u16, String),
    /// Answer with this status and body after a delay.
    SlowStatus(Duration, u16, String),
    /// Accept the request, then drop the connection without an answer.
    Reset,
    /// Never answer.
    Hang,
    /// Stream the first `n` pieces of the reply, then break the connection.
    CutAfter(usize, Reply),
    /// Answer 200 with a body that is not valid for the API.
    Malformed,
    /// Answer 200 with this content type and body, sent in pieces: each after its delay.
    Raw {
        content_type: &'static str,
        pieces: Vec<(Duration, String)>,
    },
}

impl Step {
    /// An SSE body made of these `data:` payloads, sent at once.
    pub fn sse(events: &[&str]) -> Self {
        Self::Raw {
            content_type: "text/event-stream",
            pieces: events
                .iter()
                .map(|e| (Duration::ZERO, format!("data: {e}\n\n")))
                .collect(),
        }
    }
}

/// A normal answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    /// Before the response headers.
    pub delay: Duration,
    /// Between streamed pieces.
    pub chunk_delay: Duration,
    pub finish_reason: String,
    pub prompt_tokens: u32,
    /// Tool calls of the answer: (name, arguments as JSON text).
    pub tool_calls: Vec<(String, String)>,
    /// Answer with log probabilities (OpenAI), one entry per piece.
    pub logprobs: bool,
    /// The alternatives of the first piece (token, log probability), with `logprobs`.
    pub top_logprobs: Vec<(String, f64)>,
    /// Reasoning before the answer (OpenAI-compatible `reasoning_content`, Ollama
    /// `thinking`), streamed in one piece ahead of the text.
    pub reasoning: Option<String>,
}

impl Reply {
    pub fn text(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            finish_reason: "stop".to_owned(),
            prompt_tokens: 7,
            tool_calls: Vec::new(),
            logprobs: false,
            top_logprobs: Vec::new(),
            reasoning: None,
        }
    }
    pub fn with_reasoning(mut self, reasoning: &str) -> Self {
        self.reasoning = Some(reasoning.to_owned());
        self
    }
    /// An answer that calls `name` with `arguments` (JSON text) and says nothing else;
    /// streamed OpenAI calls arrive in pieces (the name, then the arguments in halves).
    pub fn tool_call(name: &str, arguments: &str) -> Self {
        Self {
            tool_calls: vec![(name.to_owned(), arguments.to_owned())],
            finish_reason: "tool_calls".to_owned(),
            ..Self::text("")
        }
    }
    pub fn with_logprobs(mut self) -> Self {
        self.logprobs = true;
        self
    }
    /// Log probabilities whose first piece has these alternatives.
    pub fn with_top_logprobs(mut self, alternatives: &[(&str, f64)]) -> Self {
        self.logprobs = true;
        self.top_logprobs = alternatives
            .iter()
            .map(|(t, l)| ((*t).to_owned(), *l))
            .collect();
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }
    /// Streamed pieces: words with their leading space.
    fn pieces(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.text.is_empty() {
            return out;
        }
        for (i, w) in self.text.split(' ').enumerate() {
            out.push(if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            });
        }
        out
    }
    fn completion_tokens(&self) -> u32 {
        self.pieces().len() as u32
    }
}

/// A request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<VecDeque<Step>>>,
    default: Arc<Mutex<Step>>,
    requests: mpsc::UnboundedSender<Recorded>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    models: Arc<Vec<String>>,
    models_down: Arc<std::sync::atomic::AtomicBool>,
}

/// The running fake. Dropping it stops the server.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Shared,
    requests: mpsc::UnboundedReceiver<Recorded>,
    counted: AtomicUsize,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Decrements the in-flight count when the handler or its body stream is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(n: &Arc<AtomicUsize>, max: &AtomicUsize) -> Self {
        let now = n.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(n))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeUpstream {
    /// Starts a fake that answers `default` to every request not scripted otherwise, and
    /// lists `models` on `/v1/models` and `/api/tags`.
    pub async fn start(default: Step, models: &[&str]) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            script: Arc::new(Mutex::new(VecDeque::new())),
            default: Arc::new(Mutex::new(default)),
            requests: tx,
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
            received: Arc::new(AtomicUsize::new(0)),
            models_down: Arc::default(),
            models: Arc::new(models.iter().map(|s| (*s).to_owned()).collect()),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/completions", post(openai_text))
            .route("/v1/models", get(openai_models))
            .route("/api/chat", post(ollama_chat))
            .route("/api/generate", post(ollama_generate))
            .route("/api/tags", get(ollama_tags))
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/api/show", post(ollama_show))
            .route("/props", get(llama_props))
            .route("/api/embed", post(ollama_embed))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake upstream");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            requests: rx,
            counted: AtomicUsize::new(0),
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues steps for the next requests, in order.
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.shared.script.lock().extend(steps);
    }

    /// Replaces the answer for unscripted requests.
    pub fn set_default(&self, step: Step) {
        *self.shared.default.lock() = step;
    }

    /// Requests currently being answered (handlers and body streams not yet dropped).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// The next recorded request, waiting up to 10 s.
    pub async fn next_request(&mut self) -> Recorded {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("the upstream received no request within 10 s")
            .expect("recorder closed")
    }

    /// Makes `/v1/models` and `/api/tags` answer 503 (a failing health check) or not.
    pub fn set_models_down(&self, down: bool) {
        self.shared.models_down.store(down, Ordering::SeqCst);
    }

    /// How many requests arrived since the last call to this method.
    pub fn take_requests_count(&self) -> usize {
        let total = self.shared.received.load(Ordering::SeqCst);
        total - self.counted.swap(total, Ordering::SeqCst)
    }

    /// Requests recorded so far and not yet taken.
    pub fn take_requests(&mut self) -> Vec<Recorded> {
        let mut out = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            out.push(r);
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    OpenAiChat,
    OpenAiText,
    OllamaChat,
    OllamaGenerate,
}

async fn openai_chat(s: State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    answer(s.0, uri, h, body, Dialect::OpenAiChat).await
}
async fn openai_text(s: State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    answer(s.0, uri, h, body, Dialect::OpenAiText).await
}
async fn ollama_chat(s: State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    answer(s.0, uri, h, body, Dialect::OllamaChat).await
}
async fn ollama_generate(s: State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    answer(s.0, uri, h, body, Dialect::OllamaGenerate).await
}

async fn ollama_show() -> Response {
    axum::Json(serde_json::json!({
        "modelfile": "FROM fake", "parameters": "temperature 0.7", "template": "{{ .Prompt }}",
        "details": {"family": "llama", "parameter_size": "135M", "quantization_level": "Q4_1"},
        "model_info": {"general.architecture": "llama"},
        "capabilities": ["completion", "thinking"],
    }))
    .into_response()
}

async fn llama_props() -> Response {
    axum::Json(serde_json::json!({
        "chat_template": "{{ messages }}", "model_path": "/models/fake.gguf", "model_ftype": "Q4_1",
        "default_generation_settings": {"n_ctx": 2048}, "modalities": {"vision": false},
        "build_info": "fake",
    }))
    .into_response()
}

/// A text's fake vector: its length, its first byte, and 1.
fn vector(text: &str) -> serde_json::Value {
    serde_json::json!([
        text.len() as f32,
        f32::from(text.bytes().next().unwrap_or(0)),
        1.0
    ])
}

/// Records an embeddings request and answers it by the script's status steps (a reply
/// step answers vectors).
async fn embed_answer(
    s: &Shared,
    uri: &Uri,
    headers: HeaderMap,
    body: &Bytes,
) -> (serde_json::Value, Option<Response>) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    s.received.fetch_add(1, Ordering::SeqCst);
    let _ = s.requests.send(Recorded {
        path: uri.path().to_owned(),
        headers,
        body: json.clone(),
    });
    let step = s
        .script
        .lock()
        .pop_front()
        .unwrap_or_else(|| s.default.lock().clone());
    let failed = match step {
        Step::Status(code, body) => Some(
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                axum::Json(serde_json::json!({ "error": body })),
            )
                .into_response(),
        ),
        Step::Reply(r) => {
            tokio::time::sleep(r.delay).await;
            None
        }
        Step::Hang => {
            std::future::pending::<()>().await;
            None
        }
        _ => None,
    };
    (json, failed)
}

fn inputs(json: &serde_json::Value) -> Vec<String> {
    match &json["input"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(v) => v
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

async fn openai_embeddings(
    State(s): State<Shared>,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let (json, failed) = embed_answer(&s, &uri, h, &body).await;
    if let Some(r) = failed {
        return r;
    }
    let data: Vec<_> = inputs(&json)
        .iter()
        .enumerate()
        .map(
            |(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": vector(t)}),
        )
        .collect();
    let n = inputs(&json)
        .iter()
        .map(|t| t.split_whitespace().count())
        .sum::<usize>();
    axum::Json(serde_json::json!({"object": "list", "data": data, "model": json["model"], "usage": {"prompt_tokens": n, "total_tokens": n}})).into_response()
}

async fn ollama_embed(State(s): State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> Response {
    let (json, failed) = embed_answer(&s, &uri, h, &body).await;
    if let Some(r) = failed {
        return r;
    }
    let texts = inputs(&json);
    let vectors: Vec<_> = texts.iter().map(|t| vector(t)).collect();
    let n = texts
        .iter()
        .map(|t| t.split_whitespace().count())
        .sum::<usize>();
    axum::Json(
        serde_json::json!({"model": json["model"], "embeddings": vectors, "prompt_eval_count": n}),
    )
    .into_response()
}

async fn openai_models(State(s): State<Shared>) -> Response {
    if s.models_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response();
    }
    let data: Vec<_> = s
        .models
        .iter()
        .map(|m| serde_json::json!({"id": m, "object": "model"}))
        .collect();
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

async fn ollama_tags(State(s): State<Shared>) -> Response {
    if s.models_down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "loading").into_response();
    }
    let models: Vec<_> = s
        .models
        .iter()
        .map(|m| serde_json::json!({"name": m, "model": m}))
        .collect();
    axum::Json(serde_json::json!({"models": models})).into_response()
}

async fn answer(s: Shared, uri: Uri, headers: HeaderMap, body: Bytes, d: Dialect) -> Response {
    let guard = InFlight::new(&s.in_flight, &s.max_in_flight);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let stream = json
        .get("stream")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(matches!(d, Dialect::OllamaChat | Dialect::OllamaGenerate));
    let model = json
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("fake")
        .to_owned();
    s.received.fetch_add(1, Ordering::SeqCst);
    let _ = s.requests.send(Recorded {
        path: uri.path().to_owned(),
        headers,
        body: json,
    });
    let step = s
        .script
        .lock()
        .pop_front()
        .unwrap_or_else(|| s.default.lock().clone());
    let step = match step {
        Step::SlowStatus(delay, code, body) => {
            tokio::time::sleep(delay).await;
            Step::Status(code, body)
        }
        other => other,
    };
    match step {
        Step::SlowStatus(..) => unreachable!("resolved above"),
        Step::Reset => {
            let body = futures::stream::once(async {
                Err::<Bytes, _>(std::io::Error::other("reset by the script"))
            });
            Response::new(Body::from_stream(body))
        }
        Step::Status(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if d == Dialect::OllamaChat || d == Dialect::OllamaGenerate {
                serde_json::json!({ "error": body })
            } else {
                serde_json::json!({ "error": { "message": body, "type": "server_error" } })
            };
            (status, axum::Json(body)).into_response()
        }
        Step::Hang => {
            std::future::pending::<()>().await;
            unreachable!("pending never resolves")
        }
        Step::Malformed => (StatusCode::OK, "{\"choices\": not json").into_response(),
        Step::Raw {
            content_type,
            pieces,
        } => {
            let body = async_stream::stream! {
                let _guard = guard;
                for (delay, piece) in pieces {
                    tokio::time::sleep(delay).await;
                    yield Ok::<_, std::io::Error>(Bytes::from(piece));
                }
            };
            Response::builder()
                .header(http::header::CONTENT_TYPE, content_type)
                .body(Body::from_stream(body))
                .unwrap_or_default()
        }
        Step::Reply(reply) => {
            tokio::time::sleep(reply.delay).await;
            if stream {
                stream_reply(guard, reply, model, d, None)
            } else {
                drop(guard);
                whole_reply(&reply, &model, d)
            }
        }
        Step::CutAfter(n, reply) => {
            tokio::time::sleep(reply.delay).await;
            stream_reply(guard, reply, model, d, Some(n))
        }
    }
}

fn whole_reply(r: &Reply, model: &str, d: Dialect) -> Response {
    let usage = serde_json::json!({
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens(),
        "total_tokens": r.prompt_tokens + r.completion_tokens(),
    });
    let openai_calls: Vec<_> = r
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| serde_json::json!({"id": format!("call_up{i}"), "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    let ollama_calls: Vec<_> = r
        .tool_calls
        .iter()
        .map(|(name, args)| serde_json::json!({"function": {"name": name, "arguments": serde_json::from_str::<serde_json::Value>(args).unwrap_or_default()}}))
        .collect();
    let logprobs = r.logprobs.then(|| {
        let content: Vec<_> = r
            .pieces()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let top: Vec<_> = if i == 0 {
                    r.top_logprobs
                        .iter()
                        .map(|(t, l)| serde_json::json!({"token": t, "logprob": l, "bytes": null}))
                        .collect()
                } else {
                    Vec::new()
                };
                serde_json::json!({"token": p, "logprob": -0.5, "bytes": null, "top_logprobs": top})
            })
            .collect();
        serde_json::json!({ "content": content })
    });
    let body = match d {
        Dialect::OpenAiChat => {
            let mut message = serde_json::json!({"role": "assistant", "content": if r.text.is_empty() && !openai_calls.is_empty() { serde_json::Value::Null } else { r.text.clone().into() }});
            if !openai_calls.is_empty() {
                message["tool_calls"] = openai_calls.into();
            }
            if let Some(r) = &r.reasoning {
                message["reasoning_content"] = r.as_str().into();
            }
            serde_json::json!({
                "id": "x", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": r.finish_reason, "logprobs": logprobs}],
                "usage": usage,
                // llama-server's extension.
                "timings": {"prompt_ms": 3.0, "predicted_ms": 4.0},
            })
        }
        Dialect::OpenAiText => serde_json::json!({
            "id": "x", "object": "text_completion", "model": model,
            "choices": [{"index": 0, "text": r.text, "finish_reason": r.finish_reason}],
            "usage": usage,
        }),
        Dialect::OllamaChat => serde_json::json!({
            "model": model, "message": {"role": "assistant", "content": r.text, "tool_calls": ollama_calls, "thinking": r.reasoning}, "done": true,
            "done_reason": "stop", "prompt_eval_count": r.prompt_tokens, "eval_count": r.completion_tokens(),
            "prompt_eval_duration": 1_000_000, "eval_duration": 2_000_000,
        }),
        Dialect::OllamaGenerate => serde_json::json!({
            "model": model, "response": r.text, "done": true,
            "done_reason": r.finish_reason, "prompt_eval_count": r.prompt_tokens, "eval_count": r.completion_tokens(),
        }),
    };
    axum::Json(body).into_response()
}

fn stream_reply(
    guard: InFlight,
    r: Reply,
    model: String,
    d: Dialect,
    cut: Option<usize>,
) -> Response {
    let pieces = r.pieces();
    let body = async_stream::stream! {
        let _guard = guard;
        if let Some(reasoning) = &r.reasoning {
            let line = match d {
                Dialect::OpenAiChat => format!("data: {}\n\n", serde_json::json!({
                    "id": "x", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"reasoning_content": reasoning}, "finish_reason": null}]})),
                Dialect::OllamaChat => format!("{}\n", serde_json::json!({
                    "model": model, "message": {"role": "assistant", "content": "", "thinking": reasoning}, "done": false})),
                _ => String::new(),
            };
            yield Ok::<_, std::io::Error>(Bytes::from(line));
        }
        for (i, piece) in pieces.iter().enumerate() {
            if cut == Some(i) {
                yield Err(std::io::Error::other("cut by the script"));
                return;
            }
            if i > 0 && !r.chunk_delay.is_zero() {
                tokio::time::sleep(r.chunk_delay).await;
            }
            let logprobs = r.logprobs.then(|| serde_json::json!({"content": [{"token": piece, "logprob": -0.5, "bytes": null, "top_logprobs": []}]}));
            let line = match d {
                Dialect::OpenAiChat => format!("data: {}\n\n", serde_json::json!({
                    "id": "x", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null, "logprobs": logprobs}]})),
                Dialect::OpenAiText => format!("data: {}\n\n", serde_json::json!({
                    "id": "x", "object": "text_completion", "model": model,
                    "choices": [{"index": 0, "text": piece, "finish_reason": null}]})),
                Dialect::OllamaChat => format!("{}\n", serde_json::json!({
                    "model": model, "message": {"role": "assistant", "content": piece}, "done": false})),
                Dialect::OllamaGenerate => format!("{}\n", serde_json::json!({
                    "model": model, "response": piece, "done": false})),
            };
            yield Ok::<_, std::io::Error>(Bytes::from(line));
        }
        for (i, (name, args)) in r.tool_calls.iter().enumerate() {
            let lines = match d {
                Dialect::OpenAiChat => {
                    let (a, b) = args.split_at(args.len() / 2);
                    [
                        serde_json::json!({"index": i, "id": format!("call_up{i}"), "type": "function", "function": {"name": name, "arguments": ""}}),
                        serde_json::json!({"index": i, "function": {"arguments": a}}),
                        serde_json::json!({"index": i, "function": {"arguments": b}}),
                    ]
                    .into_iter()
                    .map(|c| format!("data: {}\n\n", serde_json::json!({
                        "id": "x", "object": "chat.completion.chunk", "model": model,
                        "choices": [{"index": 0, "delta": {"tool_calls": [c]}, "finish_reason": null}]})))
                    .collect::<String>()
                }
                Dialect::OllamaChat => format!("{}\n", serde_json::json!({
                    "model": model, "message": {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": name, "arguments": serde_json::from_str::<serde_json::Value>(args).unwrap_or_default()}}
                    ]}, "done": false})),
                _ => String::new(),
            };
            yield Ok::<_, std::io::Error>(Bytes::from(lines));
        }
        let n = pieces.len() as u32;
        let done_reason = if matches!(d, Dialect::OllamaChat | Dialect::OllamaGenerate) && !r.tool_calls.is_empty() { "stop".to_owned() } else { r.finish_reason.clone() };
        let tail = match d {
            Dialect::OpenAiChat | Dialect::OpenAiText => format!(
                "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
                serde_json::json!({"id": "x", "model": model, "choices": [{"index": 0, "delta": {}, "text": "", "finish_reason": r.finish_reason}]}),
                serde_json::json!({"id": "x", "model": model, "choices": [], "usage": {"prompt_tokens": r.prompt_tokens, "completion_tokens": n, "total_tokens": r.prompt_tokens + n}}),
            ),
            Dialect::OllamaChat => format!("{}\n", serde_json::json!({
                "model": model, "message": {"role": "assistant", "content": ""}, "done": true,
                "done_reason": done_reason, "prompt_eval_count": r.prompt_tokens, "eval_count": n})),
            Dialect::OllamaGenerate => format!("{}\n", serde_json::json!({
                "model": model, "response": "", "done": true,
                "done_reason": r.finish_reason, "prompt_eval_count": r.prompt_tokens, "eval_count": n})),
        };
        yield Ok(Bytes::from(tail));
    };
    let content_type = match d {
        Dialect::OpenAiChat | Dialect::OpenAiText => "text/event-stream",
        _ => "application/x-ndjson",
    };
    Response::builder()
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .unwrap_or_default()
}
