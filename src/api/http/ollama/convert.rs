//! Ollama request bodies into the pool's request: `options`, `format`, messages, and model
//! names with or without `:latest`.

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{Map, Value};

use super::wire;
use crate::api::convert::{Stop, message};
use crate::error::PoolError;
use crate::live::Snapshot;
use crate::orchestrator::PoolRequest;
use crate::providers::{Format, Message, Part, Role, Tool, ToolCall};

/// `/api/generate`: the request, the model asked for, whether to stream, and whether the
/// prompt was empty (a preload).
pub(super) fn generate_request(
    b: wire::GenerateRequest,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool, bool), PoolError> {
    let model = model_name(snapshot, &b.model);
    let empty = b.prompt.as_deref().is_none_or(str::is_empty);
    refuse_extra(&b.extra, "")?;
    if !b.images.is_empty() && b.raw {
        return Err(PoolError::invalid(
            "images",
            "a raw prompt cannot carry images; use /api/chat or drop `raw`",
        ));
    }
    let mut req = PoolRequest {
        model: Some(model),
        system: b.system,
        raw: b.raw,
        format: format(b.format.as_ref())?,
        keep_alive: b.keep_alive,
        think: b.think,
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    if b.images.is_empty() {
        req.input = b.prompt;
    } else {
        // A prompt with images is a one-message conversation.
        let text = b.prompt.unwrap_or_default();
        let mut m = Message::new(Role::User, text.clone());
        m.parts.push(Part::Text { text });
        m.parts.extend(b.images.iter().map(|i| image(i)));
        req.messages.push(m);
    }
    options(b.options, &mut req)?;
    Ok((req, b.model, b.stream.unwrap_or(true), empty))
}

/// `/api/chat`: the request, the model asked for, and whether to stream.
pub(super) fn chat_request(
    b: wire::ChatRequest,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool), PoolError> {
    refuse_extra(&b.extra, "")?;
    let messages = b
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| chat_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let tools = b
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| tool(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut req = PoolRequest {
        model: Some(model_name(snapshot, &b.model)),
        messages,
        tools,
        keep_alive: b.keep_alive,
        think: b.think,
        format: format(b.format.as_ref())?,
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    options(b.options, &mut req)?;
    Ok((req, b.model, b.stream.unwrap_or(true)))
}

/// Top-level fields this surface does not know are refused (Ollama would ignore them, but
/// a caller that sets one expects it to matter).
fn refuse_extra(extra: &Map<String, Value>, prefix: &str) -> Result<(), PoolError> {
    match extra.iter().find(|(_, v)| !v.is_null()) {
        Some((key, _)) => Err(PoolError::invalid(
            format!("{prefix}{key}"),
            "the pool cannot carry this field",
        )),
        None => Ok(()),
    }
}

/// One chat message: text, base64 images, tool calls, the tool a result comes from.
fn chat_message(i: usize, m: wire::ChatMessage) -> Result<Message, PoolError> {
    refuse_extra(&m.extra, &format!("messages[{i}]."))?;
    let mut out = message(i, &m.role, m.content)?;
    out.reasoning = m.thinking.filter(|t| !t.is_empty());
    if !m.images.is_empty() {
        out.parts.push(Part::Text {
            text: out.content.clone(),
        });
        out.parts.extend(m.images.iter().map(|i| image(i)));
    }
    for (j, c) in m.tool_calls.iter().enumerate() {
        let field = format!("messages[{i}].tool_calls[{j}].function");
        let f = c
            .get("function")
            .ok_or_else(|| PoolError::invalid(field.clone(), "missing"))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PoolError::invalid(format!("{field}.name"), "must be a string"))?;
        let arguments = f
            .get("arguments")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        out.tool_calls
            .push(ToolCall::from_object(j, name.to_owned(), &arguments));
    }
    out.name = m.tool_name;
    Ok(out)
}

/// A base64 image as a `data:` URL (the type read from its first bytes).
fn image(b64: &str) -> Part {
    let mime = match b64.as_bytes() {
        [b'/', b'9', b'j', ..] => "image/jpeg",
        [b'R', b'0', b'l', b'G', ..] => "image/gif",
        [b'U', b'k', b'l', b'G', ..] => "image/webp",
        _ => "image/png",
    };
    Part::Image {
        url: format!("data:{mime};base64,{b64}"),
        detail: None,
    }
}

/// `tools[i]`: `{"type": "function", "function": {"name", "description", "parameters"}}`.
fn tool(i: usize, t: &Value) -> Result<Tool, PoolError> {
    let field = format!("tools[{i}].function");
    if t.get("type")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "function")
    {
        return Err(PoolError::invalid(
            format!("tools[{i}].type"),
            "only function tools can be carried",
        ));
    }
    let f = t
        .get("function")
        .and_then(Value::as_object)
        .ok_or_else(|| PoolError::invalid(field.clone(), "must be an object"))?;
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| PoolError::invalid(format!("{field}.name"), "must be a string"))?;
    Ok(Tool {
        name: name.to_owned(),
        description: f
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters: f.get("parameters").filter(|p| !p.is_null()).cloned(),
        strict: None,
    })
}

fn options(o: wire::Options, req: &mut PoolRequest) -> Result<(), PoolError> {
    req.temperature = o.temperature;
    req.presence_penalty = o.presence_penalty;
    req.frequency_penalty = o.frequency_penalty;
    req.options = o.rest;
    req.options.retain(|_, v| !v.is_null());
    req.top_p = o.top_p;
    // Ollama: -1 = no limit, -2 = fill the context; both mean "the pool's default".
    req.max_tokens = match o.num_predict {
        None | Some(-1 | -2) => None,
        Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        Some(_) => {
            return Err(PoolError::invalid(
                "options.num_predict",
                "must be positive",
            ));
        }
    };
    req.seed = o.seed.map(|s| s.unsigned_abs());
    req.stop = o.stop.map(Stop::into_vec).unwrap_or_default();
    Ok(())
}

/// `format`: `"json"`, or a JSON Schema the answer must satisfy.
fn format(format: Option<&Value>) -> Result<Format, PoolError> {
    match format {
        None | Some(Value::Null) => Ok(Format::Text),
        Some(Value::String(s)) if s.is_empty() => Ok(Format::Text),
        Some(Value::String(s)) if s == "json" => Ok(Format::Json),
        Some(schema @ Value::Object(_)) => Ok(Format::Schema {
            name: "response".to_owned(),
            schema: Arc::new(schema.clone()),
            strict: None,
        }),
        Some(_) => Err(PoolError::invalid(
            "format",
            "must be \"json\" or a JSON Schema",
        )),
    }
}

/// Ollama model names may carry `:latest`; a name configured without it still matches.
pub(super) fn model_name(snapshot: &Snapshot, model: &str) -> String {
    let config = &snapshot.config;
    if config.resolve_model(model).is_none()
        && let Some(base) = model.strip_suffix(":latest")
        && config.resolve_model(base).is_some()
    {
        return base.to_owned();
    }
    model.to_owned()
}
