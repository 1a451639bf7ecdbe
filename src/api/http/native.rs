//! Native routes: `POST /v1/query` (the QueryRequest of the gRPC API, as JSON) and
//! `GET /v1/tasks`. Errors are `{"error": {"code", "message", "field"?, "decision"?}}`.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use crate::api::convert::{Stop, message};
use crate::auth::Caller;
use crate::config::raw::StrategyKind;
use crate::error::PoolError;
use crate::orchestrator::{self, PoolRequest, StreamItem};
use crate::state::AppState;
use crate::types::CacheMode;
use axum::Extension;

/// The body of `POST /v1/query`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    messages: Vec<WireMessage>,
    #[serde(default)]
    variables: HashMap<String, String>,
    #[serde(default)]
    strategy: Option<String>,
    /// Ensemble size, within the task's `max_n`.
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    cache: Option<String>,
    /// The priority class (else `x-llm-pool-priority`, else the tenant's).
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// Stream the answer as NDJSON: `{"delta": "..."}` lines, then `{"done": true, "answer"}`.
    #[serde(default)]
    stream: bool,
    /// Label tasks: the k most probable labels with their probabilities (`top_k` of the
    /// answer).
    #[serde(default)]
    top_k: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireMessage {
    role: String,
    content: String,
}

impl QueryBody {
    pub(super) fn into_request(
        self,
        headers: &HeaderMap,
    ) -> Result<(PoolRequest, bool), PoolError> {
        let messages = self
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(i, &m.role, m.content))
            .collect::<Result<Vec<_>, _>>()?;
        let strategy = match self.strategy.as_deref() {
            None | Some("") => None,
            Some(s) => Some(StrategyKind::parse(s).ok_or_else(|| {
                PoolError::invalid("strategy", format!("unknown strategy `{s}`"))
            })?),
        };
        let cache = match self.cache.as_deref() {
            None => super::header_cache_mode(headers)?,
            Some(c) => CacheMode::parse(c).ok_or_else(|| {
                PoolError::invalid("cache", "must be one of default, bypass, refresh, only")
            })?,
        };
        let timeout = match self.timeout_ms {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => super::header_timeout(headers)?,
        };
        let req = PoolRequest {
            task: self.task,
            model: self.model,
            input: self.input,
            messages,
            variables: self.variables,
            strategy,
            n: self.n,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: self.stop.map(Stop::into_vec).unwrap_or_default(),
            timeout,
            cache,
            metadata: self.metadata,
            request_id: super::request_id(headers),
            priority: self.priority.map(std::sync::Arc::from),
            top_k: self.top_k,
            ..Default::default()
        };
        Ok((req, self.stream))
    }
}

pub(crate) async fn query(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded =
        super::decode::<QueryBody, _, NativeError>(&state, body, |b, _| b.into_request(&headers));
    let (snapshot, (req, stream)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    if !stream {
        return match orchestrator::handle_cached(&state, &snapshot, req.by(&caller)).await {
            Ok(answer) => {
                let mut resp = Json(&answer).into_response();
                super::answer_headers(resp.headers_mut(), &answer.provider, &answer.decision);
                resp
            }
            Err(e) => NativeError(e).into_response(),
        };
    }
    match orchestrator::stream_cached(&state, &snapshot, req.by(&caller)).await {
        Ok(items) => {
            let lines = items.map(|item| {
                let value = match item {
                    StreamItem::Delta(d) => serde_json::json!({ "delta": d }),
                    StreamItem::ToolCall(c) => serde_json::json!({ "tool_call": c }),
                    StreamItem::Reasoning(r) => serde_json::json!({ "reasoning": r }),
                    StreamItem::Done(answer) => {
                        serde_json::json!({ "done": true, "answer": answer })
                    }
                    StreamItem::Error(e) => {
                        serde_json::json!({ "done": true, "error": error_body(&e) })
                    }
                };
                let mut line = serde_json::to_vec(&value).unwrap_or_default();
                line.push(b'\n');
                Ok::<_, std::convert::Infallible>(Bytes::from(line))
            });
            let mut resp = Response::new(Body::from_stream(lines));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            resp
        }
        Err(e) => NativeError(e).into_response(),
    }
}

/// The body of `POST /v1/feedback`: the request, and either the right answer or a verdict
/// on the one returned.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackBody {
    request_id: String,
    #[serde(default)]
    answer: Option<String>,
    /// `good` or `bad`.
    #[serde(default)]
    verdict: Option<String>,
}

impl FeedbackBody {
    fn into_call(self, caller: &Caller) -> Result<orchestrator::FeedbackCall, PoolError> {
        let verdict = match (self.answer, self.verdict.as_deref()) {
            (Some(a), None) => orchestrator::Verdict::Answer(a),
            (None, Some("good")) => orchestrator::Verdict::Good,
            (None, Some("bad")) => orchestrator::Verdict::Bad,
            (None, Some(_)) => {
                return Err(PoolError::invalid("verdict", "must be `good` or `bad`"));
            }
            (Some(_), Some(_)) => {
                return Err(PoolError::invalid(
                    "verdict",
                    "give either `answer` (the right answer) or `verdict`, not both",
                ));
            }
            (None, None) => {
                return Err(PoolError::invalid(
                    "answer",
                    "give `answer` (the right answer) or `verdict` (`good` or `bad`)",
                ));
            }
        };
        Ok(orchestrator::FeedbackCall {
            request_id: self.request_id,
            verdict,
            tenant: caller.tenant.clone(),
        })
    }
}

/// `POST /v1/feedback`: regrades a recent answer's providers by what the caller says.
pub(crate) async fn feedback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded =
        super::decode::<FeedbackBody, _, NativeError>(&state, body, |b, _| b.into_call(&caller));
    let (snapshot, call) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    match orchestrator::feedback(&snapshot, call) {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => NativeError(e).into_response(),
    }
}

#[derive(Serialize)]
struct TaskInfo<'a> {
    name: &'a str,
    description: &'a str,
    output: crate::config::raw::OutputKind,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    labels: &'a [String],
    strategy: crate::config::raw::StrategyKind,
    providers: &'a [String],
    variables: Vec<&'a str>,
    deadline_ms: u64,
    max_deadline_ms: u64,
}

pub(crate) async fn tasks(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let tasks: Vec<TaskInfo<'_>> = snapshot
        .config
        .tasks()
        .values()
        .map(|t| TaskInfo {
            name: t.name(),
            description: t.description(),
            output: t.output(),
            labels: t.labels(),
            strategy: t.strategy(),
            providers: t.providers(),
            variables: t
                .template()
                .as_ref()
                .map(|tpl| tpl.variables())
                .unwrap_or_default(),
            deadline_ms: t.deadline().as_millis() as u64,
            max_deadline_ms: t.max_deadline().as_millis() as u64,
        })
        .collect();
    Json(serde_json::json!({ "tasks": tasks })).into_response()
}

/// Unknown paths: 404 in the shape of the API family the path belongs to.
pub(crate) async fn not_found(uri: Uri) -> Response {
    let message = format!("no route for {}", uri.path());
    if uri.path().starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": message })),
        )
            .into_response();
    }
    let body = serde_json::json!({
        "error": { "code": "not_found", "message": message, "type": "invalid_request_error" }
    });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// A [`PoolError`] in the native shape.
pub(crate) struct NativeError(pub(crate) PoolError);

impl From<PoolError> for NativeError {
    fn from(e: PoolError) -> Self {
        Self(e)
    }
}

fn error_body(e: &PoolError) -> serde_json::Value {
    let mut body = serde_json::json!({
        "code": e.kind().as_str(),
        "message": e.to_string(),
    });
    if let Some(field) = e.field() {
        body["field"] = field.into();
    }
    if let Some(decision) = e.decision() {
        body["decision"] = serde_json::to_value(decision).unwrap_or_default();
    }
    body
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        let status = self.0.kind().http_status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": error_body(&self.0) })),
        )
            .into_response();
        self.0.http_headers(response.headers_mut());
        response
    }
}
