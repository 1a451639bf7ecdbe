//! `POST /api/embed` (a text or a list; `truncate`, `dimensions`, `options`, `keep_alive`)
//! and the older `POST /api/embeddings` (one `prompt`, one `embedding`).

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::OllamaError;
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, EmbedCall};
use crate::providers::EmbedRequest;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct EmbedBody {
    model: String,
    /// `/api/embed`.
    #[serde(default)]
    input: Option<Value>,
    /// `/api/embeddings`.
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    keep_alive: Option<Value>,
    #[serde(default)]
    options: Map<String, Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

fn call(
    b: EmbedBody,
    snapshot: &crate::live::Snapshot,
    headers: &HeaderMap,
    old: bool,
) -> Result<EmbedCall, PoolError> {
    if let Some((key, _)) = b.extra.iter().find(|(_, v)| !v.is_null()) {
        return Err(PoolError::invalid(
            key.as_str(),
            "the pool cannot carry this field to an embeddings call",
        ));
    }
    let input = if old {
        vec![
            b.prompt
                .ok_or_else(|| PoolError::invalid("prompt", "missing"))?,
        ]
    } else {
        let input = b
            .input
            .ok_or_else(|| PoolError::invalid("input", "missing"))?;
        crate::api::http::openai::embedding_texts(input, "input")?
    };
    let mut options = b.options;
    options.retain(|_, v| !v.is_null());
    Ok(EmbedCall {
        model: super::convert::model_name(snapshot, &b.model),
        request: EmbedRequest {
            input,
            dimensions: b.dimensions,
            truncate: b.truncate,
            keep_alive: b.keep_alive,
            options,
            ..Default::default()
        },
        cache: crate::api::http::header_cache_mode(headers)?,
        timeout: crate::api::http::header_timeout(headers)?,
        tenant: None,
        priority: None,
    })
}

async fn answer(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    old: bool,
) -> Response {
    let started = tokio::time::Instant::now();
    let decoded = crate::api::http::decode::<EmbedBody, _, OllamaError>(&state, body, |b, s| {
        call(b, s, &headers, old)
    });
    let (snapshot, mut call) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    call.tenant = caller.tenant.clone();
    call.priority = caller.priority.clone();
    let model = call.model.clone();
    match orchestrator::embed(&state, &snapshot, call).await {
        Ok(a) => {
            let e = &a.embeddings;
            let body = if old {
                json!({ "embedding": e.vectors.first() })
            } else {
                let nanos = started.elapsed().as_nanos() as u64;
                json!({
                    "model": model,
                    "embeddings": e.vectors,
                    "total_duration": nanos,
                    "load_duration": 0,
                    "prompt_eval_count": e.prompt_tokens,
                    "llm_pool": {"provider": a.provider, "cache_hit": a.cache_hit},
                })
            };
            let mut resp = Json(body).into_response();
            crate::api::http::provider_header(resp.headers_mut(), &a.provider);
            resp
        }
        Err(e) => OllamaError(e).into_response(),
    }
}

pub(crate) async fn embed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(state, caller, headers, body, false).await
}

pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(state, caller, headers, body, true).await
}
