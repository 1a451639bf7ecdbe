//! OpenAI request bodies into the pool's request: messages (text parts), parameters,
//! `response_format`, the caller's headers.

use http::HeaderMap;

use super::wire;
use crate::api::convert::{Stop, message};
use crate::error::PoolError;
use crate::orchestrator::PoolRequest;
use crate::providers::Message;

pub(super) fn check_n(n: Option<u32>) -> Result<(), PoolError> {
    match n {
        None | Some(1) => Ok(()),
        Some(_) => Err(PoolError::invalid("n", "only n = 1 is supported")),
    }
}

/// `/v1/chat/completions`: the request, the `model` asked for, whether to stream, and
/// whether the stream ends with a usage chunk.
pub(super) fn chat_request(
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
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
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

/// `/v1/completions`: the prompt continued as raw text.
pub(super) fn completion_request(
    b: wire::CompletionRequest,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool, bool), PoolError> {
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
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    Ok((req, b.model, b.stream, include_usage))
}
