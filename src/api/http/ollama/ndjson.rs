//! Ollama's newline-delimited JSON: one object per piece of text, then the final object
//! with `done: true`, the counts and the Decision (`llm_pool`); an error after the first
//! token as an `{"error"}` line.

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use http::HeaderValue;

use serde_json::Value;

use super::wire;
use crate::orchestrator::{AnswerStream, StreamItem};
use crate::providers::ToolCall;
use crate::types::Answer;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Generate,
    Chat,
}

/// One object of the answer.
pub(super) fn line(kind: Kind, model: &str, text: &str, end: Option<wire::End<'_>>) -> Bytes {
    line_with(
        kind,
        model,
        Piece {
            text,
            ..Piece::default()
        },
        end,
    )
}

/// What one object carries: text, tool calls (chat only), reasoning.
#[derive(Default, Clone, Copy)]
pub(super) struct Piece<'a> {
    pub(super) text: &'a str,
    pub(super) calls: &'a [ToolCall],
    pub(super) thinking: Option<&'a str>,
}

/// One object of the answer.
pub(super) fn line_with(
    kind: Kind,
    model: &str,
    piece: Piece<'_>,
    end: Option<wire::End<'_>>,
) -> Bytes {
    let Piece {
        text,
        calls,
        thinking,
    } = piece;
    with_now(|now| {
        let message = || {
            let tool_calls = calls
                .iter()
                .map(|c| wire::OutToolCall {
                    function: wire::OutFunction {
                        name: &c.name,
                        arguments: c
                            .arguments_value()
                            .unwrap_or_else(|_| Value::String(c.arguments.clone())),
                    },
                })
                .collect();
            wire::OutMessage {
                role: "assistant",
                content: text,
                thinking,
                tool_calls,
            }
        };
        let reply = wire::Reply {
            model,
            created_at: now,
            response: matches!(kind, Kind::Generate).then_some(text),
            thinking: thinking.filter(|_| matches!(kind, Kind::Generate)),
            message: matches!(kind, Kind::Chat).then(message),
            done: end.is_some(),
            end,
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        Bytes::from(out)
    })
}

/// Ollama's `done_reason` for an answer: `stop` also for one that calls tools.
pub(super) fn done_reason(answer: &Answer) -> &str {
    match answer.finish_reason.as_deref() {
        None | Some("tool_calls" | "function_call") => "stop",
        Some(r) => r,
    }
}

/// What the final object says.
pub(super) fn end_of<'a>(answer: Option<&'a Answer>, reason: &'a str) -> wire::End<'a> {
    let total = answer.map_or(0, |a| a.latency_ms.saturating_mul(1_000_000));
    // The model server's own timings when it reported them (Ollama's durations,
    // llama-server's `timings`); else the whole answer's time counts as generation.
    let timings = answer.and_then(|a| a.timings);
    wire::End {
        done_reason: reason,
        total_duration: total,
        load_duration: 0,
        prompt_eval_count: answer.map_or(0, |a| a.usage.prompt_tokens),
        prompt_eval_duration: timings.map_or(0, |t| t.prompt_ns),
        eval_count: answer.map_or(0, |a| a.usage.completion_tokens),
        eval_duration: timings.map_or(total, |t| t.eval_ns),
        llm_pool: answer.map(|a| wire::Extension {
            provider: &a.provider,
            cache_hit: a.cache_hit,
            decision: &a.decision,
        }),
    }
}

/// A streamed answer as NDJSON.
pub(super) fn stream(items: AnswerStream, model: String, kind: Kind) -> Response {
    let lines = items.map(move |item| {
        let bytes = match item {
            StreamItem::Delta(d) => line(kind, &model, &d, None),
            StreamItem::ToolCall(call) => line_with(
                kind,
                &model,
                Piece {
                    calls: std::slice::from_ref(&call),
                    ..Piece::default()
                },
                None,
            ),
            StreamItem::Reasoning(r) => line_with(
                kind,
                &model,
                Piece {
                    thinking: Some(&r),
                    ..Piece::default()
                },
                None,
            ),
            StreamItem::Done(answer) => line(
                kind,
                &model,
                "",
                Some(end_of(Some(&answer), done_reason(&answer))),
            ),
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

/// Calls `f` with the time now as RFC 3339 to the second, formatted once a second per
/// thread (a stream writes it on every line).
fn with_now<T>(f: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static NOW: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    NOW.with_borrow_mut(|(at, text)| {
        if *at != secs {
            use std::fmt::Write;
            text.clear();
            let _ = write!(text, "{}", humantime::format_rfc3339_seconds(now));
            *at = secs;
        }
        f(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_the_formatted_second_now() {
        let before = std::time::SystemTime::now();
        let text = with_now(str::to_owned);
        let after = std::time::SystemTime::now();
        let at = humantime::parse_rfc3339(&text).unwrap();
        let floor =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let at = floor(at);
        assert!(floor(before) <= at && at <= floor(after), "{text}");
        // Asked again within the second (or the next one), the same or a later second.
        let again = floor(humantime::parse_rfc3339(&with_now(str::to_owned)).unwrap());
        assert!(again >= at);
    }
}
