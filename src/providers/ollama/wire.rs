//! Serde types for Ollama's API as the pool sends and reads it (upstream side).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub(super) model: &'a str,
    pub(super) messages: Vec<WireMessage<'a>>,
    pub(super) stream: bool,
    pub(super) options: Options<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) keep_alive: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) think: Option<&'a Value>,
}

#[derive(Serialize)]
pub(super) struct GenerateRequest<'a> {
    pub(super) model: &'a str,
    pub(super) prompt: &'a str,
    pub(super) raw: bool,
    pub(super) stream: bool,
    pub(super) options: Options<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) keep_alive: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) think: Option<&'a Value>,
}

/// A message as Ollama takes it: text, base64 images, calls with object arguments.
#[derive(Serialize)]
pub(super) struct WireMessage<'a> {
    pub(super) role: &'static str,
    pub(super) content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) images: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct WireToolCall<'a> {
    pub(super) function: WireFunction<'a>,
}

#[derive(Serialize)]
pub(super) struct WireFunction<'a> {
    pub(super) name: &'a str,
    pub(super) arguments: Value,
}

#[derive(Serialize)]
pub(super) struct WireTool<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: &'a crate::providers::Tool,
}

#[derive(Serialize)]
pub(super) struct Options<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f32>,
    /// The caller's other options (`num_ctx`, `top_k`, `repeat_penalty` …), as given.
    #[serde(flatten)]
    pub(super) rest: &'a Map<String, Value>,
}

/// Both `/api/chat` and `/api/generate` answers and stream lines. Strings borrow from the
/// body where they hold no escapes, so what the pool does not keep (a line's `model`) is never
/// copied.
#[derive(Deserialize)]
pub(super) struct Response<'a> {
    #[serde(default, borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) message: Option<Content<'a>>,
    #[serde(default, borrow)]
    pub(super) response: Option<Cow<'a, str>>,
    /// `/api/generate`'s reasoning, with `think`.
    #[serde(default, borrow)]
    pub(super) thinking: Option<Cow<'a, str>>,
    /// Present on every line of Ollama's answers; absent in a body that is not one.
    #[serde(default)]
    pub(super) done: Option<bool>,
    #[serde(default, borrow)]
    pub(super) done_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) prompt_eval_count: Option<u32>,
    #[serde(default)]
    pub(super) eval_count: Option<u32>,
    /// Nanoseconds, as Ollama reports them.
    #[serde(default)]
    pub(super) prompt_eval_duration: Option<u64>,
    #[serde(default)]
    pub(super) eval_duration: Option<u64>,
    #[serde(default)]
    pub(super) error: Option<String>,
}

impl Response<'_> {
    pub(super) fn timings(&self) -> Option<crate::providers::Timings> {
        match (self.prompt_eval_duration, self.eval_duration) {
            (None, None) => None,
            (p, e) => Some(crate::providers::Timings {
                prompt_ns: p.unwrap_or(0),
                eval_ns: e.unwrap_or(0),
            }),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Content<'a> {
    #[serde(default, borrow)]
    pub(super) content: Cow<'a, str>,
    #[serde(default)]
    pub(super) tool_calls: Vec<ToolCallWire>,
    /// The model's reasoning, with `think`.
    #[serde(default, borrow)]
    pub(super) thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct ToolCallWire {
    pub(super) function: FunctionWire,
}

#[derive(Deserialize)]
pub(super) struct FunctionWire {
    pub(super) name: String,
    #[serde(default)]
    pub(super) arguments: Value,
}
