//! OpenAI's server-sent events: answers streamed as `chat.completion.chunk` or
//! `text_completion` events ending `data: [DONE]`.
//!
//! Each item of the answer becomes one buffer holding its whole `data:` frames. A piece of
//! text, the stream's commonest event, is written from the stream's constant head (id,
//! object, created, model, rendered once) and its escaped text: byte for byte what
//! serialising the whole chunk writes, without encoding its constant members again.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;

use super::convert::ChatShape;
use super::{error, finish, wire};
use crate::orchestrator::{AnswerStream, StreamItem};
use crate::types::Answer;

/// Bytes around an SSE frame's data.
const DATA: &[u8] = b"data: ";
const END: &[u8] = b"\n\n";

/// Appends `data: <value as JSON>\n\n` (compact JSON holds no newline).
fn frame(buf: &mut Vec<u8>, value: &impl Serialize) {
    buf.extend_from_slice(DATA);
    // Serialising the pool's own types into memory does not fail.
    let _ = serde_json::to_writer(&mut *buf, value);
    buf.extend_from_slice(END);
}

/// Appends a frame of text: `head`, the text as a JSON string, `tail`.
fn text_frame(buf: &mut Vec<u8>, head: &[u8], text: &str, tail: &[u8]) {
    buf.reserve(DATA.len() + head.len() + text.len() + 2 + tail.len() + END.len());
    buf.extend_from_slice(DATA);
    buf.extend_from_slice(head);
    let _ = serde_json::to_writer(&mut *buf, text);
    buf.extend_from_slice(tail);
    buf.extend_from_slice(END);
}

/// A chat chunk of text: after the head, before and after the text.
const CHAT_TEXT: (&str, &[u8]) = (
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":",
    b"},\"finish_reason\":null,\"logprobs\":null}]}",
);
/// A text completion chunk: after the head, before and after the text.
const COMPLETION_TEXT: (&str, &[u8]) = (
    "\"choices\":[{\"index\":0,\"text\":",
    b",\"finish_reason\":null,\"logprobs\":null}]}",
);

/// A stream of SSE buffers as the response.
fn sse(frames: impl futures::Stream<Item = Vec<u8>> + Send + 'static) -> Response {
    (
        [
            (http::header::CONTENT_TYPE, "text/event-stream"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames.map(|b| Ok::<_, Infallible>(Bytes::from(b)))),
    )
        .into_response()
}

/// A chunk's members before its varying part: `{"id":…,"object":…,"created":…,"model":…,`
/// then `rest` (`"choices":[{"index":0,"delta":` or `…"text":`).
fn head(id: &str, object: &str, created: u64, model: &str, rest: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(id.len() + model.len() + 96);
    h.extend_from_slice(b"{\"id\":");
    let _ = serde_json::to_writer(&mut h, id);
    h.extend_from_slice(b",\"object\":");
    let _ = serde_json::to_writer(&mut h, object);
    h.extend_from_slice(b",\"created\":");
    h.extend_from_slice(itoa::Buffer::new().format(created).as_bytes());
    h.extend_from_slice(b",\"model\":");
    let _ = serde_json::to_writer(&mut h, model);
    h.push(b',');
    h.extend_from_slice(rest.as_bytes());
    h
}

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
    // A piece of text: `{"content":<text>}` between these, as `chunk` writes it.
    let text_head = head(&id, "chat.completion.chunk", created, &model, CHAT_TEXT.0);
    let chunk = move |buf: &mut Vec<u8>, delta: wire::Delta<'_>, finish: Option<&str>| {
        frame(
            buf,
            &wire::ChatChunk {
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
            },
        );
    };
    let mut first = Vec::new();
    chunk(
        &mut first,
        wire::Delta {
            role: Some("assistant"),
            content: Some(""),
            ..Default::default()
        },
        None,
    );
    let mut calls = 0;
    let frames = futures::stream::once(async move { first }).chain(items.map(move |item| {
        let mut buf = Vec::new();
        match item {
            StreamItem::Delta(d) => text_frame(&mut buf, &text_head, &d, CHAT_TEXT.1),
            StreamItem::Reasoning(r) => chunk(
                &mut buf,
                wire::Delta {
                    reasoning_content: Some(&r),
                    ..Default::default()
                },
                None,
            ),
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
                chunk(&mut buf, delta, None);
            }
            StreamItem::Done(answer) => {
                frame(
                    &mut buf,
                    &finish_chunk(&answer, legacy_functions, &tail_id, &tail_model, created),
                );
                if include_usage {
                    frame(
                        &mut buf,
                        &usage_chunk(&answer, &tail_id, &tail_model, created),
                    );
                }
                buf.extend_from_slice(b"data: [DONE]\n\n");
            }
            StreamItem::Error(e) => frame(&mut buf, &error::body(&e)),
        }
        buf
    }));
    sse(frames)
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
    let text_head = head(&id, "text_completion", created, &model, COMPLETION_TEXT.0);
    let frames = items.map(move |item| {
        let chunk = |buf: &mut Vec<u8>, text: &str, finish: Option<&str>, usage, logprobs| {
            frame(
                buf,
                &wire::TextResponse {
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
                },
            );
        };
        let mut buf = Vec::new();
        match item {
            StreamItem::Delta(d) => text_frame(&mut buf, &text_head, &d, COMPLETION_TEXT.1),
            // A raw prompt is never offered tools (refused when planned), and text
            // completions have no field for reasoning.
            StreamItem::ToolCall(_) | StreamItem::Reasoning(_) => {}
            StreamItem::Done(answer) => {
                chunk(
                    &mut buf,
                    "",
                    Some(finish(&answer)),
                    include_usage.then_some(answer.usage),
                    answer.logprobs.as_ref(),
                );
                buf.extend_from_slice(b"data: [DONE]\n\n");
            }
            StreamItem::Error(e) => frame(&mut buf, &error::body(&e)),
        }
        buf
    });
    sse(frames)
}

/// The last chunk with a choice: the finish reason, and the Decision as the extension field
/// `llm_pool` (SDKs ignore unknown fields).
fn finish_chunk<'a>(
    answer: &'a Answer,
    legacy: bool,
    id: &'a str,
    model: &'a str,
    created: u64,
) -> wire::ChatChunk<'a> {
    wire::ChatChunk {
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
    }
}

fn usage_chunk<'a>(
    answer: &Answer,
    id: &'a str,
    model: &'a str,
    created: u64,
) -> wire::ChatChunk<'a> {
    wire::ChatChunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: Vec::new(),
        usage: Some(answer.usage),
        llm_pool: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts a model writes that JSON must escape.
    const AWKWARD: [&str; 6] = [
        "",
        "plain",
        "quote \" and \\",
        "line\nbreak\ttab",
        "\u{1}\u{1f}",
        "café ☕ 𝄞",
    ];

    /// The frame of `text` as the stream writes it, and as serialising `whole` writes it.
    fn both(
        (id, object, model): (&str, &str, &str),
        parts: (&str, &[u8]),
        text: &str,
        whole: &impl Serialize,
    ) -> (String, String) {
        let mut fast = Vec::new();
        text_frame(
            &mut fast,
            &head(id, object, 42, model, parts.0),
            text,
            parts.1,
        );
        let mut slow = Vec::new();
        frame(&mut slow, whole);
        (
            String::from_utf8(fast).unwrap(),
            String::from_utf8(slow).unwrap(),
        )
    }

    #[test]
    fn a_piece_of_text_is_written_as_the_whole_chunk_serialises() {
        for text in AWKWARD {
            for (id, model) in [("chatcmpl-1", "up"), ("chatcmpl-\"x\"", "task:\\t")] {
                let object = "chat.completion.chunk";
                let chunk = wire::ChatChunk {
                    id,
                    object,
                    created: 42,
                    model,
                    choices: vec![wire::ChunkChoice {
                        index: 0,
                        delta: wire::Delta {
                            content: Some(text),
                            ..Default::default()
                        },
                        finish_reason: None,
                        logprobs: None,
                    }],
                    usage: None,
                    llm_pool: None,
                };
                let (fast, slow) = both((id, object, model), CHAT_TEXT, text, &chunk);
                assert_eq!(fast, slow);
                let object = "text_completion";
                let chunk = wire::TextResponse {
                    id,
                    object,
                    created: 42,
                    model,
                    choices: vec![wire::TextChoice {
                        index: 0,
                        text,
                        finish_reason: None,
                        logprobs: None,
                    }],
                    usage: None,
                    llm_pool: None,
                };
                let (fast, slow) = both((id, object, model), COMPLETION_TEXT, text, &chunk);
                assert_eq!(fast, slow);
            }
        }
    }
}
