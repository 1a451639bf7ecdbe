//! OpenAI request bodies into the pool's request: messages with their parts, tool calls and
//! tool results; tools and `tool_choice` (and the legacy `functions`); `response_format`;
//! sampling parameters; the fields the pool does not know; the caller's headers. A value
//! the pool cannot read is refused with a 400 naming it.

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{Map, Value};

use super::wire;
use crate::api::convert::{Stop, message};
use crate::error::PoolError;
use crate::orchestrator::PoolRequest;
use crate::providers::{Format, Message, Part, Tool, ToolCall, ToolChoice};

/// What a chat request asks of the answer beyond the pool's request.
pub(super) struct ChatShape {
    pub(super) model: String,
    pub(super) stream: bool,
    /// The stream ends with a usage chunk.
    pub(super) include_usage: bool,
    /// The caller used the legacy `functions`: calls come back as `function_call`.
    pub(super) legacy_functions: bool,
}

/// `n`: how many choices; several are answered whole, not streamed.
pub(super) fn check_n(n: Option<u32>, stream: bool) -> Result<Option<u32>, PoolError> {
    match n {
        Some(0) => Err(PoolError::invalid("n", "must be at least 1")),
        Some(n) if n > 1 && stream => Err(PoolError::invalid(
            "n",
            "several choices are answered whole: ask without `stream`",
        )),
        n => Ok(n),
    }
}

/// `/v1/chat/completions`: the request and what the answer must look like.
pub(super) fn chat_request(
    b: wire::ChatRequest,
    headers: &HeaderMap,
) -> Result<(PoolRequest, ChatShape), PoolError> {
    let choices = check_n(b.n, b.stream.unwrap_or(false))?;
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
        .map(|(i, m)| chat_message(i, m))
        .collect::<Result<Vec<Message>, _>>()?;
    let mut messages = messages;
    link_results(&mut messages);
    let legacy_functions = b.functions.is_some();
    let (tools, tool_choice) = match (b.tools, b.functions) {
        (Some(_), Some(_)) => {
            return Err(PoolError::invalid(
                "functions",
                "give `tools` or the legacy `functions`, not both",
            ));
        }
        (Some(tools), None) => (
            tools
                .iter()
                .enumerate()
                .map(|(i, t)| tool(i, t))
                .collect::<Result<Vec<_>, _>>()?,
            b.tool_choice
                .as_ref()
                .map(|c| tool_choice(c, "tool_choice"))
                .transpose()?,
        ),
        (None, Some(functions)) => (
            functions
                .iter()
                .enumerate()
                .map(|(i, f)| function(&format!("functions[{i}]"), f))
                .collect::<Result<Vec<_>, _>>()?,
            b.function_call
                .as_ref()
                .map(|c| tool_choice(c, "function_call"))
                .transpose()?,
        ),
        (None, None) => (
            Vec::new(),
            b.tool_choice
                .as_ref()
                .map(|c| tool_choice(c, "tool_choice"))
                .transpose()?,
        ),
    };
    let req = PoolRequest {
        model: Some(b.model.clone()),
        choices,
        messages,
        max_tokens: b.max_completion_tokens.or(b.max_tokens),
        temperature: b.temperature,
        top_p: b.top_p,
        seed: b.seed,
        stop: b.stop.map(Stop::into_vec).unwrap_or_default(),
        format: response_format(b.response_format.as_ref())?,
        tools,
        tool_choice,
        parallel_tool_calls: b.parallel_tool_calls,
        presence_penalty: b.presence_penalty,
        frequency_penalty: b.frequency_penalty,
        logit_bias: b.logit_bias,
        logprobs: b.logprobs.unwrap_or(false),
        top_logprobs: b.top_logprobs,
        user: b.user,
        extra: without_nulls(b.extra),
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    let shape = ChatShape {
        model: b.model,
        stream: b.stream.unwrap_or(false),
        include_usage: b.stream_options.is_some_and(|o| o.include_usage),
        legacy_functions,
    };
    Ok((req, shape))
}

/// Unknown fields set to `null` say nothing (SDKs send them for unset options).
fn without_nulls(mut extra: Map<String, Value>) -> Map<String, Value> {
    extra.retain(|_, v| !v.is_null());
    extra
}

/// One message: its role, content parts, tool calls and tool result id.
fn chat_message(i: usize, m: wire::ChatMessage) -> Result<Message, PoolError> {
    // Fields of answers that SDKs echo back and that say nothing to a model when empty.
    for (key, value) in &m.extra {
        let empty = value.is_null()
            || value.as_array().is_some_and(Vec::is_empty)
            || (key == "refusal" && value.as_str().is_some_and(str::is_empty));
        if !empty && key != "annotations" {
            return Err(PoolError::invalid(
                format!("messages[{i}].{key}"),
                "the pool cannot carry this message field",
            ));
        }
    }
    let (content, parts) = content(i, m.content)?;
    let mut out = message(i, &m.role, content)?;
    out.parts = parts;
    out.tool_call_id = m.tool_call_id;
    out.name = m.name;
    out.reasoning = m.reasoning_content.filter(|r| !r.is_empty());
    let mut calls = Vec::new();
    for (j, c) in m.tool_calls.iter().flatten().enumerate() {
        calls.push(tool_call(&format!("messages[{i}].tool_calls[{j}]"), c, j)?);
    }
    if let Some(f) = m.function_call.as_ref().filter(|f| !f.is_null()) {
        calls.push(function_call(
            &format!("messages[{i}].function_call"),
            f,
            0,
        )?);
    }
    out.tool_calls = calls;
    Ok(out)
}

/// A tool result without a call id (a legacy `function` message, which names its
/// function) answers the latest call of that function.
fn link_results(messages: &mut [Message]) {
    for i in 0..messages.len() {
        let (before, rest) = messages.split_at_mut(i);
        let m = &mut rest[0];
        if m.role != crate::providers::Role::Tool || m.tool_call_id.is_some() {
            continue;
        }
        let Some(name) = m.name.as_deref() else {
            continue;
        };
        m.tool_call_id = before
            .iter()
            .rev()
            .flat_map(|x| x.tool_calls.iter().rev())
            .find(|c| c.name == name)
            .map(|c| c.id.clone());
    }
}

/// The text, and the parts when there are more than text parts.
fn content(i: usize, content: Option<wire::Content>) -> Result<(String, Vec<Part>), PoolError> {
    let parts = match content {
        None => return Ok((String::new(), Vec::new())),
        Some(wire::Content::Text(s)) => return Ok((s, Vec::new())),
        Some(wire::Content::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let field = |f: &str| format!("messages[{i}].content[{j}]{f}");
        let s = |v: Option<&Value>, f: &str| {
            v.and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| PoolError::invalid(field(f), "must be a string"))
        };
        let part = match p.get("type").and_then(Value::as_str) {
            Some("text") => Part::Text {
                text: s(p.get("text"), ".text")?,
            },
            Some("image_url") => {
                let image = p.get("image_url");
                // `image_url` is an object with `url` (or, in some clients, the URL itself).
                let url = match image {
                    Some(Value::String(url)) => url.clone(),
                    _ => s(image.and_then(|v| v.get("url")), ".image_url.url")?,
                };
                let detail = image
                    .and_then(|v| v.get("detail"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Part::Image { url, detail }
            }
            Some("input_audio") => {
                let audio = p.get("input_audio");
                Part::Audio {
                    data: s(audio.and_then(|v| v.get("data")), ".input_audio.data")?,
                    format: s(audio.and_then(|v| v.get("format")), ".input_audio.format")?,
                }
            }
            Some(other) => {
                return Err(PoolError::invalid(
                    field(".type"),
                    format!("`{other}` parts cannot be carried (text, image_url, input_audio)"),
                ));
            }
            None => return Err(PoolError::invalid(field(".type"), "missing")),
        };
        out.push(part);
    }
    let text = out
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    // Text alone is kept as text; parts only when there is more than text.
    if out.iter().all(|p| matches!(p, Part::Text { .. })) {
        out.clear();
    }
    Ok((text, out))
}

/// `tools[i]`: `{"type": "function", "function": {...}}`.
fn tool(i: usize, t: &Value) -> Result<Tool, PoolError> {
    let field = format!("tools[{i}]");
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(PoolError::invalid(
                format!("{field}.type"),
                format!("`{other}` tools cannot be carried (function)"),
            ));
        }
        None => return Err(PoolError::invalid(format!("{field}.type"), "missing")),
    }
    let f = t
        .get("function")
        .ok_or_else(|| PoolError::invalid(format!("{field}.function"), "missing"))?;
    function(&format!("{field}.function"), f)
}

/// A function definition: `name`, `description`, `parameters`, `strict`.
fn function(field: &str, f: &Value) -> Result<Tool, PoolError> {
    let obj = f
        .as_object()
        .ok_or_else(|| PoolError::invalid(field, "must be an object"))?;
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "name" | "description" | "parameters" | "strict"
        ) {
            return Err(PoolError::invalid(
                format!("{field}.{key}"),
                "not a field of a function the pool can carry",
            ));
        }
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| PoolError::invalid(format!("{field}.name"), "must be a string"))?;
    let parameters = obj.get("parameters").filter(|p| !p.is_null()).cloned();
    if parameters.as_ref().is_some_and(|p| !p.is_object()) {
        return Err(PoolError::invalid(
            format!("{field}.parameters"),
            "must be a JSON Schema object",
        ));
    }
    Ok(Tool {
        name: name.to_owned(),
        description: obj
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters,
        strict: obj.get("strict").and_then(Value::as_bool),
    })
}

/// `tool_choice` (or the legacy `function_call`): a mode or a named function.
fn tool_choice(c: &Value, field: &str) -> Result<ToolChoice, PoolError> {
    match c {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(PoolError::invalid(
                field,
                format!("`{other}` is not one of none, auto, required"),
            )),
        },
        Value::Object(o) => {
            // `{"type": "function", "function": {"name"}}`, or legacy `{"name"}`.
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| PoolError::invalid(field, "name the function to call"))?;
            Ok(ToolChoice::Function(name.to_owned()))
        }
        _ => Err(PoolError::invalid(field, "must be a string or an object")),
    }
}

/// An assistant message's tool call: `{"id", "type": "function", "function": {"name", "arguments"}}`.
fn tool_call(field: &str, c: &Value, index: usize) -> Result<ToolCall, PoolError> {
    let f = c
        .get("function")
        .ok_or_else(|| PoolError::invalid(format!("{field}.function"), "missing"))?;
    let mut call = function_call(&format!("{field}.function"), f, index)?;
    if let Some(id) = c.get("id").and_then(Value::as_str) {
        id.clone_into(&mut call.id);
    }
    Ok(call)
}

/// `{"name", "arguments"}` (arguments as JSON text, or an object some clients send).
fn function_call(field: &str, f: &Value, index: usize) -> Result<ToolCall, PoolError> {
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| PoolError::invalid(format!("{field}.name"), "must be a string"))?;
    let arguments = match f.get("arguments") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(PoolError::invalid(
                format!("{field}.arguments"),
                "must be a JSON string",
            ));
        }
    };
    Ok(ToolCall::from_text(index, name, &arguments))
}

/// `response_format`: text, `json_object`, or `json_schema` with its schema.
pub(super) fn response_format(f: Option<&Value>) -> Result<Format, PoolError> {
    let Some(f) = f.filter(|f| !f.is_null()) else {
        return Ok(Format::Text);
    };
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Format::Text),
        Some("json_object") => Ok(Format::Json),
        Some("json_schema") => {
            let spec = f
                .get("json_schema")
                .ok_or_else(|| PoolError::invalid("response_format.json_schema", "missing"))?;
            let schema = spec
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    PoolError::invalid(
                        "response_format.json_schema.schema",
                        "must be a JSON Schema object",
                    )
                })?;
            Ok(Format::Schema {
                name: spec
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("response")
                    .to_owned(),
                schema: Arc::new(schema.clone()),
                strict: spec.get("strict").and_then(Value::as_bool),
            })
        }
        Some(other) => Err(PoolError::invalid(
            "response_format.type",
            format!("`{other}` is not one of text, json_object, json_schema"),
        )),
        None => Err(PoolError::invalid("response_format.type", "missing")),
    }
}

/// `/v1/completions`: the prompt continued as raw text; the request, the `model` asked for,
/// whether to stream, and whether the stream ends with a usage chunk.
pub(super) fn completion_request(
    b: wire::CompletionRequest,
    headers: &HeaderMap,
) -> Result<(PoolRequest, String, bool, bool), PoolError> {
    let choices = check_n(b.n, b.stream.unwrap_or(false))?;
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
        choices,
        raw: true,
        max_tokens: b.max_tokens,
        temperature: b.temperature,
        top_p: b.top_p,
        seed: b.seed,
        stop: b.stop.map(Stop::into_vec).unwrap_or_default(),
        presence_penalty: b.presence_penalty,
        frequency_penalty: b.frequency_penalty,
        logit_bias: b.logit_bias,
        logprobs: b.logprobs.is_some(),
        top_logprobs: b.logprobs,
        user: b.user,
        format: response_format(b.response_format.as_ref())?,
        extra: without_nulls(b.extra),
        timeout: crate::api::http::header_timeout(headers)?,
        cache: crate::api::http::header_cache_mode(headers)?,
        request_id: crate::api::http::request_id(headers),
        ..Default::default()
    };
    Ok((req, b.model, b.stream.unwrap_or(false), include_usage))
}
