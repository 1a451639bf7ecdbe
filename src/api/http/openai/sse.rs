//! OpenAI's server-sent events: answers streamed as `chat.completion.chunk` or
//! `text_completion` events ending `data: [DONE]`.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::convert::ChatShape;
use super::{error, finish, wire};
use crate::orchestrator::{AnswerStream, StreamItem};
use crate::types::Answer;

/// A chat completion as SSE: the role, each piece of text, the finish chunk (with the
/// Decision as `llm_pool`), the usage chunk when asked for, `[DONE]`; an error after the
/// first token as an OpenAI error event.
pub(super) fn chat(items: AnswerStream, id: String, shape: ChatShape) -> Response {
    let ChatShape {
        model,
        include_usage,
        legacy_functions,
        ..
    } = shape;
    let created = crate::api::http::unix_now();
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
            ..Default::default()
        },
        None,
    );
    let mut calls = 0;
    let events = futures::stream::once(async move { first })
        .chain(items.flat_map(move |item| {
            let lines: Vec<String> = match item {
                StreamItem::Delta(d) => {
                    vec![chunk(
                        wire::Delta {
                            content: Some(&d),
                            ..Default::default()
                        },
                        None,
                    )]
                }
                StreamItem::Reasoning(r) => vec![chunk(
                    wire::Delta {
                        reasoning_content: Some(&r),
                        ..Default::default()
                    },
                    None,
                )],
                // A whole call in one delta: its index, id, name and all its arguments
                // (the SDKs' accumulators take arguments in any number of pieces).
                StreamItem::ToolCall(call) => {
                    let index = calls;
                    calls += 1;
                    let delta = if legacy_functions && index == 0 {
                        wire::Delta {
                            function_call: Some(wire::OutFunction {
                                name: &call.name,
                                arguments: &call.arguments,
                            }),
                            ..Default::default()
                        }
                    } else {
                        wire::Delta {
                            tool_calls: Some([super::out_call(&call, Some(index))]),
                            ..Default::default()
                        }
                    };
                    vec![chunk(delta, None)]
                }
                StreamItem::Done(answer) => {
                    let mut v = vec![finish_chunk(
                        &answer,
                        legacy_functions,
                        &tail_id,
                        &tail_model,
                        created,
                    )];
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

/// A text completion as SSE: each piece, the finish chunk (with usage when asked for),
/// `[DONE]`; an error after the first token as an OpenAI error event.
pub(super) fn text(
    items: AnswerStream,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
) -> Response {
    let events = items
        .flat_map(move |item| {
            let chunk = |text: &str, finish: Option<&str>, usage, logprobs| {
                serde_json::to_string(&wire::TextResponse {
                    id: &id,
                    object: "text_completion",
                    created,
                    model: &model,
                    choices: vec![wire::TextChoice {
                        index: 0,
                        text,
                        finish_reason: finish,
                        logprobs,
                    }],
                    usage,
                    llm_pool: None,
                })
                .unwrap_or_default()
            };
            let lines = match item {
                StreamItem::Delta(d) => vec![chunk(&d, None, None, None)],
                // A raw prompt is never offered tools (refused when planned), and text
                // completions have no field for reasoning.
                StreamItem::ToolCall(_) | StreamItem::Reasoning(_) => Vec::new(),
                StreamItem::Done(answer) => vec![
                    chunk(
                        "",
                        Some(finish(&answer)),
                        include_usage.then_some(answer.usage),
                        answer.logprobs.as_ref(),
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

/// The last chunk with a choice: the finish reason, and the Decision as the extension field
/// `llm_pool` (SDKs ignore unknown fields).
fn finish_chunk(answer: &Answer, legacy: bool, id: &str, model: &str, created: u64) -> String {
    let c = wire::ChatChunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: vec![wire::ChunkChoice {
            index: 0,
            delta: wire::Delta::default(),
            finish_reason: Some(super::chat_finish(answer.finish_reason.as_deref(), legacy)),
            // The whole answer's log probabilities, in one piece.
            logprobs: answer.logprobs.as_ref(),
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
