//! Ollama-compatible routes: `/api/generate` and `/api/chat` (NDJSON streaming by default,
//! as Ollama does; `"stream": false` for one object), `/api/tags`, `/api/show`,
//! `/api/version`. Errors are `{"error": "..."}`.

mod wire;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue};

use crate::api::convert::{Stop, message};
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, PoolRequest, StreamItem};
use crate::state::AppState;
use crate::types::Answer;
use axum::Extension;

/// The Ollama API version this surface follows.
const OLLAMA_API_VERSION: &str = "0.6.0";

/// A [`PoolError`] in Ollama's shape.
pub(crate) struct OllamaError(pub(crate) PoolError);

impl From<PoolError> for OllamaError {
    fn from(e: PoolError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let status = self.0.kind().http_status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.0.to_string() })),
        )
            .into_response();
        self.0.http_headers(response.headers_mut());
        response
    }
}

fn options(o: wire::Options, req: &mut PoolRequest) -> Result<(), PoolError> {
    req.temperature = o.temperature;
    req.top_p = o.top_p;
    // Ollama: -1 = no limit, -2 = fill the context; both mean "the pool's default".
    req.max_tokens = match o.num_predict {
        None | Some(-1 | -2) => None,
        Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(_) => {
            return Err(PoolError::invalid(
                "options.num_predict",
                "must be positive",
            ));
        }
    };
    req.seed = o.seed.map(|s| s.unsigned_abs());
    req.stop = o.stop.map(Stop::into_vec).unwrap_or_default();
    Ok(())
}

fn wants_json(format: Option<&serde_json::Value>) -> Result<bool, PoolError> {
    match format {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(false),
        Some(serde_json::Value::String(s)) if s == "json" => Ok(true),
        // A JSON Schema: ask for JSON.
        Some(serde_json::Value::Object(_)) => Ok(true),
        Some(_) => Err(PoolError::invalid(
            "format",
            "must be \"json\" or a JSON Schema",
        )),
    }
}

/// Ollama model names may carry `:latest`; a name configured without it still matches.
fn model_name(snapshot: &crate::live::Snapshot, model: &str) -> String {
    let config = &snapshot.config;
    if config.resolve_model(model).is_none()
        && let Some(base) = model.strip_suffix(":latest")
        && config.resolve_model(base).is_some()
    {
        return base.to_owned();
    }
    model.to_owned()
}

pub(crate) async fn generate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded =
        super::decode::<wire::GenerateRequest, _, OllamaError>(&state, body, |b, snapshot| {
            let model = model_name(snapshot, &b.model);
            let empty = b.prompt.as_deref().is_none_or(str::is_empty);
            let mut req = PoolRequest {
                model: Some(model),
                input: b.prompt,
                system: b.system,
                raw: b.raw,
                json: wants_json(b.format.as_ref())?,
                timeout: super::header_timeout(&headers)?,
                cache: super::header_cache_mode(&headers)?,
                request_id: super::request_id(&headers),
                ..Default::default()
            };
            options(b.options, &mut req)?;
            Ok((req, b.model, b.stream.unwrap_or(true), empty))
        });
    let (snapshot, (req, model, stream, empty)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    if empty {
        return load(&snapshot, &req, &model, Kind::Generate);
    }
    respond(
        &state,
        &snapshot,
        req.by(&caller),
        model,
        stream,
        Kind::Generate,
    )
    .await
}

/// Ollama answers an empty prompt (or no messages) by loading the model and returning at
/// once with `done_reason: "load"`; clients use it to preload. Here: check the name.
fn load(snapshot: &crate::live::Snapshot, req: &PoolRequest, model: &str, kind: Kind) -> Response {
    if snapshot
        .config
        .resolve_model(req.model.as_deref().unwrap_or_default())
        .is_none()
    {
        return OllamaError(PoolError::UnknownModel(model.to_owned())).into_response();
    }
    let mut resp = Response::new(Body::from(line(
        kind,
        model,
        "",
        Some(end_of(None, "load")),
    )));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded =
        super::decode::<wire::ChatRequest, _, OllamaError>(&state, body, |b, snapshot| {
            let messages = b
                .messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| message(i, &m.role, m.content))
                .collect::<Result<Vec<_>, _>>()?;
            let mut req = PoolRequest {
                model: Some(model_name(snapshot, &b.model)),
                messages,
                json: wants_json(b.format.as_ref())?,
                timeout: super::header_timeout(&headers)?,
                cache: super::header_cache_mode(&headers)?,
                request_id: super::request_id(&headers),
                ..Default::default()
            };
            options(b.options, &mut req)?;
            Ok((req, b.model, b.stream.unwrap_or(true)))
        });
    let (snapshot, (req, model, stream)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    if req.messages.is_empty() {
        return load(&snapshot, &req, &model, Kind::Chat);
    }
    respond(
        &state,
        &snapshot,
        req.by(&caller),
        model,
        stream,
        Kind::Chat,
    )
    .await
}

#[derive(Clone, Copy)]
enum Kind {
    Generate,
    Chat,
}

fn line(kind: Kind, model: &str, text: &str, end: Option<wire::End<'_>>) -> Bytes {
    let now = rfc3339_now();
    let reply = wire::Reply {
        model,
        created_at: &now,
        response: matches!(kind, Kind::Generate).then_some(text),
        message: matches!(kind, Kind::Chat).then_some(wire::OutMessage {
            role: "assistant",
            content: text,
        }),
        done: end.is_some(),
        end,
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn end_of<'a>(answer: Option<&'a Answer>, reason: &'a str) -> wire::End<'a> {
    let total = answer.map_or(0, |a| a.latency_ms.saturating_mul(1_000_000));
    wire::End {
        done_reason: reason,
        total_duration: total,
        load_duration: 0,
        prompt_eval_count: answer.map_or(0, |a| a.usage.prompt_tokens),
        prompt_eval_duration: 0,
        eval_count: answer.map_or(0, |a| a.usage.completion_tokens),
        eval_duration: total,
        llm_pool: answer
            .map(|a| serde_json::json!({ "provider": a.provider, "cache_hit": a.cache_hit, "decision": a.decision })),
    }
}

async fn respond(
    state: &AppState,
    snapshot: &crate::live::Snapshot,
    req: PoolRequest,
    model: String,
    stream: bool,
    kind: Kind,
) -> Response {
    if !stream {
        return match orchestrator::handle_cached(state, snapshot, req).await {
            Ok(answer) => {
                let reason = answer.finish_reason.as_deref().unwrap_or("stop");
                let body = line(
                    kind,
                    &model,
                    &answer.text,
                    Some(end_of(Some(&answer), reason)),
                );
                let mut resp = Response::new(Body::from(body));
                let h = resp.headers_mut();
                h.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                super::answer_headers(h, &answer.provider, &answer.decision);
                resp
            }
            Err(e) => OllamaError(e).into_response(),
        };
    }
    let items = match orchestrator::stream_cached(state, snapshot, req).await {
        Ok(items) => items,
        Err(e) => return OllamaError(e).into_response(),
    };
    let lines = items.map(move |item| {
        let bytes = match item {
            StreamItem::Delta(d) => line(kind, &model, &d, None),
            StreamItem::Done(answer) => {
                let reason = answer.finish_reason.as_deref().unwrap_or("stop");
                line(kind, &model, "", Some(end_of(Some(&answer), reason)))
            }
            StreamItem::Error(e) => {
                let mut v = serde_json::to_vec(&serde_json::json!({ "error": e.to_string() }))
                    .unwrap_or_default();
                v.push(b'\n');
                Bytes::from(v)
            }
        };
        Ok::<_, std::convert::Infallible>(bytes)
    });
    let mut resp = Response::new(Body::from_stream(lines));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

fn model_entry(name: &str, family: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "model": name,
        "modified_at": "1970-01-01T00:00:00Z",
        "size": 0,
        "digest": "",
        "details": {
            "parent_model": "",
            "format": "llm-pool",
            "family": family,
            "families": [family],
            "parameter_size": "",
            "quantization_level": ""
        }
    })
}

pub(crate) async fn tags(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let config = &snapshot.config;
    let mut models: Vec<_> = config
        .providers()
        .keys()
        .map(|p| model_entry(p, "provider"))
        .collect();
    models.extend(
        config
            .tasks()
            .keys()
            .map(|t| model_entry(&format!("task:{t}"), "task")),
    );
    models.extend(config.aliases().keys().map(|a| model_entry(a, "alias")));
    Json(serde_json::json!({ "models": models })).into_response()
}

pub(crate) async fn show(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let snapshot = state.config.load();
    let limit = super::BodyLimits::of(&snapshot.config);
    let b = match super::parse_json::<wire::ShowRequest>(body, limit) {
        Ok(b) => b,
        Err(e) => return OllamaError(e).into_response(),
    };
    let name = model_name(&snapshot, &b.model);
    let Some(target) = snapshot.config.resolve_model(&name) else {
        return OllamaError(PoolError::UnknownModel(b.model)).into_response();
    };
    let (family, upstream) = match &target {
        crate::config::Target::Provider(p) => (
            "provider",
            snapshot.config.providers().get(p).map(|c| c.model.clone()),
        ),
        crate::config::Target::Task(_) => ("task", None),
    };
    let entry = model_entry(&name, family);
    Json(serde_json::json!({
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": entry["details"],
        "model_info": { "llm_pool.upstream_model": upstream },
        "capabilities": ["completion"],
        "modified_at": "1970-01-01T00:00:00Z",
    }))
    .into_response()
}

pub(crate) async fn version() -> Response {
    Json(serde_json::json!({ "version": OLLAMA_API_VERSION })).into_response()
}

fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
