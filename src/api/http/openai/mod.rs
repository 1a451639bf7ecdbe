//! OpenAI-compatible routes: `/v1/chat/completions` (plain and SSE), `/v1/completions`,
//! `/v1/models`. `model` may name a provider, `task:NAME` or an alias. Non-streamed answers
//! carry the Decision in the extension field `llm_pool`; every answer names the provider in
//! the `x-llm-pool-provider` header.

pub(crate) mod error;
mod wire;

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::HeaderMap;

use self::error::OpenAiError;
use crate::api::convert::{Stop, message};
use crate::auth::Caller;
use crate::error::PoolError;
use crate::orchestrator::{self, PoolRequest, StreamItem};
use crate::providers::Message;
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
        chat_request(b, &headers)
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
    let created = super::unix_now();
    let (tail_id, tail_model) = (id.clone(), model.clone());
    let chunk = move |delta: wire::Delta<'_>, finish: Option<&str>| {
        let c = wire::ChatChunk {
            id: &id,
            object: "chat.completion.chunk",
            created,
            model: &model,
            choices: vec![wire::ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
            usage: None,
            llm_pool: None,
        };
        serde_json::to_string(&c).unwrap_or_default()
    };
    let first = chunk(
        wire::Delta {
            role: Some("assistant"),
            content: Some(""),
        },
        None,
    );
    let events = futures::stream::once(async move { first })
        .chain(items.flat_map(move |item| {
            let lines: Vec<String> = match item {
                StreamItem::Delta(d) => {
                    vec![chunk(
                        wire::Delta {
                            role: None,
                            content: Some(&d),
                        },
                        None,
                    )]
                }
                StreamItem::Done(answer) => {
                    let mut v = vec![finish_chunk(&answer, &tail_id, &tail_model, created)];
                    if include_usage {
                        v.push(usage_chunk(&answer, &tail_id, &tail_model, created));
                    }
                    v.push("[DONE]".to_owned());
                    v
                }
                StreamItem::Error(e) => vec![error::body(&e).to_string()],
            };
            futures::stream::iter(lines)
        }))
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Sse::new(events).into_response()
}

/// The last chunk with a choice: the finish reason, and the Decision as the extension field
/// `llm_pool` (SDKs ignore unknown fields).
fn finish_chunk(answer: &Answer, id: &str, model: &str, created: u64) -> String {
    let c = wire::ChatChunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: vec![wire::ChunkChoice {
            index: 0,
            delta: wire::Delta::default(),
            finish_reason: Some(finish(answer)),
            logprobs: None,
        }],
        usage: None,
        llm_pool: Some(wire::Extension {
            provider: &answer.provider,
            cache_hit: answer.cache_hit,
            decision: &answer.decision,
        }),
    };
    serde_json::to_string(&c).unwrap_or_default()
}

fn usage_chunk(answer: &Answer, id: &str, model: &str, created: u64) -> String {
    let c = wire::ChatChunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: Vec::new(),
        usage: Some(answer.usage),
        llm_pool: None,
    };
    serde_json::to_string(&c).unwrap_or_default()
}

fn finish(answer: &Answer) -> &str {
    answer.finish_reason.as_deref().unwrap_or("stop")
}

fn with_decision(mut resp: Response, answer: &Answer) -> Response {
    super::answer_headers(resp.headers_mut(), &answer.provider, &answer.decision);
    resp
}

fn check_n(n: Option<u32>) -> Result<(), PoolError> {
    match n {
        None | Some(1) => Ok(()),
        Some(_) => Err(PoolError::invalid("n", "only n = 1 is supported")),
    }
}

fn chat_request(
    b: wire::ChatRequest,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool, bool), PoolError> {
    check_n(b.n)?;
    if b.messages.is_empty() {
        return Err(PoolError::invalid(
            "messages",
            "must hold at least one message",
        ));
    }
    let messages = b
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, &m.role, content_text(m.content)))
        .collect::<Result<Vec<Message>, _>>()?;
    let json = match b.response_format.as_ref().map(|f| f.kind.as_str()) {
        None | Some("text") => false,
        Some("json_object" | "json_schema") => true,
        Some(other) => {
            return Err(PoolError::invalid(
                "response_format.type",
                format!("`{other}` is not one of text, json_object, json_schema"),
            ));
        }
    };
    let req = PoolRequest {
        model: Some(b.model.clone()),
        messages,
        max_tokens: b.max_completion_tokens.or(b.max_tokens),
        temperature: b.temperature,
        top_p: b.top_p,
        seed: b.seed,
        stop: b.stop.map(Stop::into_vec).unwrap_or_default(),
        json,
        timeout: super::header_timeout(headers)?,
        cache: super::header_cache_mode(headers)?,
        request_id: super::request_id(headers),
        ..Default::default()
    };
    let include_usage = b.stream_options.is_some_and(|o| o.include_usage);
    Ok((req, b.model, b.stream, include_usage))
}

fn content_text(content: Option<wire::Content>) -> String {
    match content {
        None => String::new(),
        Some(wire::Content::Text(s)) => s,
        Some(wire::Content::Parts(parts)) => parts
            .into_iter()
            .filter(|p| p.kind == "text")
            .filter_map(|p| p.text)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

pub(crate) async fn completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let decoded = super::decode::<wire::CompletionRequest, _, OpenAiError>(&state, body, |b, _| {
        check_n(b.n)?;
        let prompt = match b.prompt {
            wire::Prompt::One(p) => p,
            wire::Prompt::Many(mut v) if v.len() == 1 => v.remove(0),
            wire::Prompt::Many(_) => {
                return Err(PoolError::invalid("prompt", "give one prompt string"));
            }
        };
        let include_usage = b.stream_options.is_some_and(|o| o.include_usage);
        let req = PoolRequest {
            model: Some(b.model.clone()),
            input: Some(prompt),
            raw: true,
            max_tokens: b.max_tokens,
            temperature: b.temperature,
            top_p: b.top_p,
            seed: b.seed,
            stop: b.stop.map(Stop::into_vec).unwrap_or_default(),
            timeout: super::header_timeout(&headers)?,
            cache: super::header_cache_mode(&headers)?,
            request_id: super::request_id(&headers),
            ..Default::default()
        };
        Ok((req, b.model, b.stream, include_usage))
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
    let events = items
        .flat_map(move |item| {
            let chunk = |text: &str, finish: Option<&str>, usage| {
                serde_json::to_string(&wire::TextResponse {
                    id: &id,
                    object: "text_completion",
                    created,
                    model: &model,
                    choices: [wire::TextChoice {
                        index: 0,
                        text,
                        finish_reason: finish,
                        logprobs: None,
                    }],
                    usage,
                    llm_pool: None,
                })
                .unwrap_or_default()
            };
            let lines = match item {
                StreamItem::Delta(d) => vec![chunk(&d, None, None)],
                StreamItem::Done(answer) => vec![
                    chunk(
                        "",
                        Some(finish(&answer)),
                        include_usage.then_some(answer.usage),
                    ),
                    "[DONE]".to_owned(),
                ],
                StreamItem::Error(e) => vec![error::body(&e).to_string()],
            };
            futures::stream::iter(lines)
        })
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Sse::new(events).into_response()
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
        .and_then(|b| chat_request(b, headers))
        .map(|(req, ..)| req)
}
