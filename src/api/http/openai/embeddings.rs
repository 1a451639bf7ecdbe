//! `POST /v1/embeddings`: one text or a list of texts; vectors as floats or, with
//! `encoding_format: "base64"`, as little-endian `f32` bytes in base64 (as OpenAI sends
//! them); `dimensions` and `user` are carried upstream.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::OpenAiError;
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, EmbedCall};
use crate::providers::EmbedRequest;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
struct EmbeddingsBody {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    user: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `input`: a string or a list of strings (token arrays cannot be carried).
pub(crate) fn texts(input: Value, field: &str) -> Result<Vec<String>, PoolError> {
    match input {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(PoolError::invalid(
                    format!("{field}[{i}]"),
                    "must be a string (token arrays cannot be carried)",
                )),
            })
            .collect(),
        _ => Err(PoolError::invalid(
            field,
            "must be a string or a list of strings",
        )),
    }
}

fn call(b: EmbeddingsBody, headers: &HeaderMap) -> Result<(EmbedCall, bool), PoolError> {
    if let Some((key, _)) = b.extra.iter().find(|(_, v)| !v.is_null()) {
        return Err(PoolError::invalid(
            key.as_str(),
            "the pool cannot carry this field to an embeddings call",
        ));
    }
    let base64 = match b.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(PoolError::invalid(
                "encoding_format",
                format!("`{other}` is not one of float, base64"),
            ));
        }
    };
    let call = EmbedCall {
        model: b.model,
        request: EmbedRequest {
            input: texts(b.input, "input")?,
            dimensions: b.dimensions,
            user: b.user,
            ..Default::default()
        },
        cache: crate::api::http::header_cache_mode(headers)?,
        timeout: crate::api::http::header_timeout(headers)?,
        tenant: None,
        priority: None,
    };
    Ok((call, base64))
}

fn encode(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded =
        crate::api::http::decode::<EmbeddingsBody, _, OpenAiError>(&state, body, |b, _| {
            call(b, &headers)
        });
    let (snapshot, (mut call, base64)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    call.tenant = caller.tenant.clone();
    call.priority = caller.priority.clone();
    let model = call.model.clone();
    match orchestrator::embed(&state, &snapshot, call).await {
        Ok(answer) => {
            let e = &answer.embeddings;
            let data: Vec<Value> = e
                .vectors
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let embedding = if base64 { json!(encode(v)) } else { json!(v) };
                    json!({"object": "embedding", "index": i, "embedding": embedding})
                })
                .collect();
            let mut resp = Json(json!({
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens},
                "llm_pool": {"provider": answer.provider, "cache_hit": answer.cache_hit, "endpoint": &*e.endpoint},
            }))
            .into_response();
            crate::api::http::provider_header(resp.headers_mut(), &answer.provider);
            resp
        }
        Err(e) => OpenAiError(e).into_response(),
    }
}
