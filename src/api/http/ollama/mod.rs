//! Ollama-compatible routes: `/api/generate` and `/api/chat` (NDJSON streaming by default,
//! as Ollama does; `"stream": false` for one object), `/api/tags`, `/api/show`,
//! `/api/version`. Errors are `{"error": "..."}`.

mod convert;
mod embed;
mod ndjson;
mod wire;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};

pub(crate) use self::embed::{embed, embeddings};
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, PoolRequest};
use crate::state::AppState;
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

pub(crate) async fn generate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded =
        super::decode::<wire::GenerateRequest, _, OllamaError>(&state, body, |b, snapshot| {
            convert::generate_request(b, snapshot, &headers)
        });
    let (snapshot, (req, model, stream, empty)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    if empty {
        return load(&snapshot, &req, &model, ndjson::Kind::Generate);
    }
    respond(
        &state,
        &snapshot,
        req.by(&caller),
        model,
        stream,
        ndjson::Kind::Generate,
    )
    .await
}

/// Ollama answers an empty prompt (or no messages) by loading the model and returning at
/// once with `done_reason: "load"`; clients use it to preload. Here: check the name.
fn load(
    snapshot: &crate::live::Snapshot,
    req: &PoolRequest,
    model: &str,
    kind: ndjson::Kind,
) -> Response {
    if snapshot
        .config
        .resolve_model(req.model.as_deref().unwrap_or_default())
        .is_none()
    {
        return OllamaError(PoolError::UnknownModel(model.to_owned())).into_response();
    }
    let mut resp = Response::new(Body::from(ndjson::line(
        kind,
        model,
        "",
        Some(ndjson::end_of(None, "load")),
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
            convert::chat_request(b, snapshot, &headers)
        });
    let (snapshot, (req, model, stream)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    if req.messages.is_empty() {
        return load(&snapshot, &req, &model, ndjson::Kind::Chat);
    }
    respond(
        &state,
        &snapshot,
        req.by(&caller),
        model,
        stream,
        ndjson::Kind::Chat,
    )
    .await
}

async fn respond(
    state: &AppState,
    snapshot: &crate::live::Snapshot,
    req: PoolRequest,
    model: String,
    stream: bool,
    kind: ndjson::Kind,
) -> Response {
    if !stream {
        return match orchestrator::handle_cached(state, snapshot, req).await {
            Ok(answer) => {
                let body = ndjson::line_with(
                    kind,
                    &model,
                    ndjson::Piece {
                        text: &answer.text,
                        calls: &answer.tool_calls,
                        thinking: answer.reasoning.as_deref(),
                    },
                    Some(ndjson::end_of(Some(&answer), ndjson::done_reason(&answer))),
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
    ndjson::stream(items, model, kind)
}

/// What `/api/show` says a model can do: completion, tools and embedding always (the pool
/// carries them; the model server decides), vision when every provider behind it has the
/// `vision` capability.
fn capabilities(
    snapshot: &crate::live::Snapshot,
    target: &crate::config::Target,
) -> Vec<&'static str> {
    let config = &snapshot.config;
    let providers: Vec<&str> = match target {
        crate::config::Target::Provider(p) => vec![p.as_str()],
        crate::config::Target::Task(t) => config
            .tasks()
            .get(t)
            .map(|t| t.providers().iter().map(String::as_str).collect())
            .unwrap_or_default(),
    };
    let mut out = vec!["completion", "tools", "embedding"];
    let vision = !providers.is_empty()
        && providers.iter().all(|p| {
            config
                .providers()
                .get(*p)
                .is_some_and(|c| c.capabilities().iter().any(|x| x == "vision"))
        });
    if vision {
        out.push("vision");
    }
    out
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
    let name = convert::model_name(&snapshot, &b.model);
    let Some(target) = snapshot.config.resolve_model(&name) else {
        return OllamaError(PoolError::UnknownModel(b.model)).into_response();
    };
    let (family, upstream) = match &target {
        crate::config::Target::Provider(p) => (
            "provider",
            snapshot
                .config
                .providers()
                .get(p)
                .map(|c| c.model().to_owned()),
        ),
        crate::config::Target::Task(_) => ("task", None),
    };
    let entry = model_entry(&name, family);
    let mut show = serde_json::json!({
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": entry["details"],
        "model_info": { "llm_pool.upstream_model": upstream },
        "capabilities": capabilities(&snapshot, &target),
        "modified_at": "1970-01-01T00:00:00Z",
    });
    // A provider's model: what its server says of it (Ollama's `/api/show`, llama-server's
    // `/props`), over the pool's own view.
    if let crate::config::Target::Provider(p) = &target
        && let Some((_, provider)) = snapshot.providers.entry(p)
        && let Some(serde_json::Value::Object(found)) = provider.describe().await
    {
        for (key, value) in found {
            match (show.get_mut(&key), value) {
                (Some(serde_json::Value::Object(ours)), serde_json::Value::Object(theirs)) => {
                    ours.extend(theirs);
                }
                (_, value) => {
                    show[key.as_str()] = value;
                }
            }
        }
        // The server's capabilities and the pool's together, except vision, which the
        // provider's configuration decides (without it images are refused).
        let ours = capabilities(&snapshot, &target);
        let mut all: Vec<serde_json::Value> =
            show["capabilities"].as_array().cloned().unwrap_or_default();
        all.retain(|c| c != "vision" || ours.contains(&"vision"));
        for c in ours {
            if !all.iter().any(|x| x == c) {
                all.push(c.into());
            }
        }
        show["capabilities"] = serde_json::Value::Array(all);
    }
    Json(show).into_response()
}

/// `GET /` and `HEAD /`: what Ollama answers, so clients that probe the root find a server.
pub(crate) async fn running() -> &'static str {
    "Ollama is running"
}

/// `/api/ps`: the models the pool serves now (every configured provider; the pool keeps
/// no model in memory itself, so sizes are 0 and nothing expires).
pub(crate) async fn ps(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let models: Vec<_> = snapshot
        .config
        .providers()
        .iter()
        .map(|(name, p)| {
            let mut entry = model_entry(name, "provider");
            entry["size"] = 0.into();
            entry["size_vram"] = 0.into();
            entry["expires_at"] = "0001-01-01T00:00:00Z".into();
            entry["details"]["parent_model"] = p.model().into();
            entry
        })
        .collect();
    Json(serde_json::json!({ "models": models })).into_response()
}

pub(crate) async fn version() -> Response {
    Json(serde_json::json!({ "version": OLLAMA_API_VERSION })).into_response()
}
