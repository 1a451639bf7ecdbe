//! OpenAI-compatible routes: `/v1/chat/completions` (plain and SSE), `/v1/completions`,
//! `/v1/models`. `model` may name a provider, `task:NAME` or an alias. Non-streamed answers
//! carry the Decision in the extension field `llm_pool`; every answer names the provider in
//! the `x-llm-pool-provider` header.

mod convert;
pub(crate) mod error;
mod sse;
mod wire;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use self::error::OpenAiError;
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, PoolRequest};
use crate::state::AppState;
use crate::types::Answer;
use axum::Extension;

pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded = super::decode::<wire::ChatRequest, _, OpenAiError>(&state, body, |b, _| {
        convert::chat_request(b, &headers)
    });
    let (snapshot, (req, model, stream, include_usage)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    let id = format!("chatcmpl-{}", req.request_id);
    if !stream {
        return match orchestrator::handle_cached(&state, &snapshot, req.by(&caller)).await {
            Ok(answer) => with_decision(
                Json(wire::ChatResponse {
                    id: &id,
                    object: "chat.completion",
                    created: super::unix_now(),
                    model: &model,
                    choices: [wire::ChatChoice {
                        index: 0,
                        message: wire::OutMessage {
                            role: "assistant",
                            content: &answer.text,
                        },
                        finish_reason: finish(&answer),
                        logprobs: None,
                    }],
                    usage: answer.usage,
                    llm_pool: wire::Extension {
                        provider: &answer.provider,
                        cache_hit: answer.cache_hit,
                        decision: &answer.decision,
                    },
                })
                .into_response(),
                &answer,
            ),
            Err(e) => OpenAiError(e).into_response(),
        };
    }
    let items = match orchestrator::stream_cached(&state, &snapshot, req.by(&caller)).await {
        Ok(items) => items,
        Err(e) => return OpenAiError(e).into_response(),
    };
    sse::chat(items, id, model, include_usage)
}

/// The answer's finish reason (`stop` when the upstream gave none).
pub(super) fn finish(answer: &Answer) -> &str {
    answer.finish_reason.as_deref().unwrap_or("stop")
}

fn with_decision(mut resp: Response, answer: &Answer) -> Response {
    super::answer_headers(resp.headers_mut(), &answer.provider, &answer.decision);
    resp
}

pub(crate) async fn completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded = super::decode::<wire::CompletionRequest, _, OpenAiError>(&state, body, |b, _| {
        convert::completion_request(b, &headers)
    });
    let (snapshot, (req, model, stream, include_usage)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    let id = format!("cmpl-{}", req.request_id);
    let created = super::unix_now();
    if !stream {
        return match orchestrator::handle_cached(&state, &snapshot, req.by(&caller)).await {
            Ok(answer) => with_decision(
                Json(wire::TextResponse {
                    id: &id,
                    object: "text_completion",
                    created,
                    model: &model,
                    choices: [wire::TextChoice {
                        index: 0,
                        text: &answer.text,
                        finish_reason: Some(finish(&answer)),
                        logprobs: None,
                    }],
                    usage: Some(answer.usage),
                    llm_pool: Some(wire::Extension {
                        provider: &answer.provider,
                        cache_hit: answer.cache_hit,
                        decision: &answer.decision,
                    }),
                })
                .into_response(),
                &answer,
            ),
            Err(e) => OpenAiError(e).into_response(),
        };
    }
    let items = match orchestrator::stream_cached(&state, &snapshot, req.by(&caller)).await {
        Ok(items) => items,
        Err(e) => return OpenAiError(e).into_response(),
    };
    sse::text(items, id, model, created, include_usage)
}

pub(crate) async fn models(State(state): State<AppState>) -> Response {
    let snapshot = state.config.load();
    let created = super::unix_now();
    let config = &snapshot.config;
    let ids = config
        .providers()
        .keys()
        .cloned()
        .chain(config.tasks().keys().map(|t| format!("task:{t}")))
        .chain(config.aliases().keys().cloned());
    let data: Vec<_> = ids
        .map(|id| serde_json::json!({ "id": id, "object": "model", "created": created, "owned_by": "llm-pool" }))
        .collect();
    Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

/// The chat completion decoder alone (for `api::http::decode`).
pub(super) fn decode_chat(
    body: axum::body::Bytes,
    headers: &HeaderMap,
    limits: super::BodyLimits,
) -> Result<PoolRequest, PoolError> {
    super::parse_json::<wire::ChatRequest>(Ok(body), limits)
        .and_then(|b| convert::chat_request(b, headers))
        .map(|(req, ..)| req)
}
