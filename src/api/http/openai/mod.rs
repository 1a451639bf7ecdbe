//! OpenAI-compatible routes: `/v1/chat/completions` (plain and SSE), `/v1/completions`,
//! `/v1/models`. `model` may name a provider, `task:NAME` or an alias. Non-streamed answers
//! carry the Decision in the extension field `llm_pool`; every answer names the provider in
//! the `x-llm-pool-provider` header.

mod convert;
mod embeddings;
pub(crate) mod error;
mod sse;
mod verbatim;
mod wire;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

pub(crate) use self::embeddings::{embeddings, texts as embedding_texts};
use self::error::OpenAiError;
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, PoolRequest};
use crate::providers::Wire;
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
    let (snapshot, (req, shape)) = match decoded {
        Ok(d) => d,
        Err(refused) => return *refused,
    };
    let id = format!("chatcmpl-{}", req.request_id);
    if !shape.stream {
        return match orchestrator::handle_cached(&state, &snapshot, req.by(&caller)).await {
            Ok(answer)
                if !shape.legacy_functions
                    && let Some(body) =
                        verbatim::body(&answer, Wire::OpenAiChat, &id, &shape.model) =>
            {
                with_decision(json_body(body), &answer)
            }
            Ok(answer) => with_decision(
                Json(wire::ChatResponse {
                    id: &id,
                    object: "chat.completion",
                    created: super::unix_now(),
                    model: &shape.model,
                    choices: chat_choices(&answer, shape.legacy_functions),
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
    sse::chat(items, id, shape)
}

/// The answer's finish reason (`stop` when the upstream gave none).
pub(super) fn finish(answer: &Answer) -> &str {
    answer.finish_reason.as_deref().unwrap_or("stop")
}

/// A chat answer's finish reason: `tool_calls` (or, for legacy callers, `function_call`)
/// when it calls tools.
fn chat_finish(reason: Option<&str>, legacy: bool) -> &str {
    match reason.unwrap_or("stop") {
        "tool_calls" | "function_call" if legacy => "function_call",
        "function_call" => "tool_calls",
        r => r,
    }
}

/// The answer, then its alternatives (when the caller asked for several choices).
fn chat_choices(answer: &Answer, legacy: bool) -> Vec<wire::ChatChoice<'_>> {
    let first = wire::ChatChoice {
        index: 0,
        message: out_message(
            &answer.text,
            &answer.tool_calls,
            answer.reasoning.as_deref(),
            legacy,
        ),
        finish_reason: chat_finish(answer.finish_reason.as_deref(), legacy),
        logprobs: answer.logprobs.as_ref(),
    };
    let others = answer
        .alternatives
        .iter()
        .zip(1..)
        .map(|(a, index)| wire::ChatChoice {
            index,
            message: out_message(&a.text, &a.tool_calls, a.reasoning.as_deref(), legacy),
            finish_reason: chat_finish(a.finish_reason.as_deref(), legacy),
            logprobs: a.logprobs.as_ref(),
        });
    std::iter::once(first).chain(others).collect()
}

/// The answer as an assistant message: its text (`null` when it only calls tools) and its
/// tool calls, or the legacy `function_call` for callers that used `functions`.
fn out_message<'a>(
    text: &'a str,
    calls: &'a [crate::providers::ToolCall],
    reasoning: Option<&'a str>,
    legacy: bool,
) -> wire::OutMessage<'a> {
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    if legacy {
        return wire::OutMessage {
            role: "assistant",
            content,
            // A legacy caller expects one call; more are not dropped.
            tool_calls: (calls.len() > 1)
                .then(|| calls.iter().map(|c| out_call(c, None)).collect()),
            function_call: calls.first().map(|c| wire::OutFunction {
                name: &c.name,
                arguments: &c.arguments,
            }),
            reasoning_content: reasoning,
        };
    }
    wire::OutMessage {
        role: "assistant",
        content,
        tool_calls: (!calls.is_empty()).then(|| calls.iter().map(|c| out_call(c, None)).collect()),
        function_call: None,
        reasoning_content: reasoning,
    }
}

fn out_call(c: &crate::providers::ToolCall, index: Option<usize>) -> wire::OutToolCall<'_> {
    wire::OutToolCall {
        index,
        id: &c.id,
        kind: "function",
        function: wire::OutFunction {
            name: &c.name,
            arguments: &c.arguments,
        },
    }
}

/// A JSON body written elsewhere.
fn json_body(body: Vec<u8>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
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
            Ok(answer)
                if let Some(body) = verbatim::body(&answer, Wire::OpenAiText, &id, &model) =>
            {
                with_decision(json_body(body), &answer)
            }
            Ok(answer) => {
                with_decision(
                    Json(wire::TextResponse {
                        id: &id,
                        object: "text_completion",
                        created,
                        model: &model,
                        choices: std::iter::once(wire::TextChoice {
                            index: 0,
                            text: &answer.text,
                            finish_reason: Some(finish(&answer)),
                            logprobs: answer.logprobs.as_ref(),
                        })
                        .chain(answer.alternatives.iter().zip(1..).map(|(a, index)| {
                            wire::TextChoice {
                                index,
                                text: &a.text,
                                finish_reason: Some(a.finish_reason.as_deref().unwrap_or("stop")),
                                logprobs: a.logprobs.as_ref(),
                            }
                        }))
                        .collect(),
                        usage: Some(answer.usage),
                        llm_pool: Some(wire::Extension {
                            provider: &answer.provider,
                            cache_hit: answer.cache_hit,
                            decision: &answer.decision,
                        }),
                    })
                    .into_response(),
                    &answer,
                )
            }
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

/// `GET /v1/models/{id}`: one model (a provider, `task:NAME` or an alias), or 404.
pub(crate) async fn model(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let snapshot = state.config.load();
    if snapshot.config.resolve_model(&id).is_none() {
        return OpenAiError(PoolError::UnknownModel(id)).into_response();
    }
    Json(serde_json::json!({
        "id": id, "object": "model", "created": super::unix_now(), "owned_by": "llm-pool",
    }))
    .into_response()
}

/// The chat completion decoder alone (for `api::http::decode`).
pub(super) fn decode_chat(
    body: axum::body::Bytes,
    headers: &HeaderMap,
    limits: super::BodyLimits,
) -> Result<PoolRequest, PoolError> {
    super::parse_json::<wire::ChatRequest>(Ok(body), limits)
        .and_then(|b| convert::chat_request(b, headers))
        .map(|(req, _)| req)
}
