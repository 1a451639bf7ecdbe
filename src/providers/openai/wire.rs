//! Serde types for the OpenAI API as the pool sends and reads it (upstream side).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub(super) model: &'a str,
    pub(super) messages: Vec<WireMessage<'a>>,
    #[serde(flatten)]
    pub(super) common: Common<'a>,
}

#[derive(Serialize)]
pub(super) struct CompletionRequest<'a> {
    pub(super) model: &'a str,
    pub(super) prompt: &'a str,
    #[serde(flatten)]
    pub(super) common: Common<'a>,
}

/// A message as OpenAI takes it: text as a string, other parts as a list.
#[derive(Serialize)]
pub(super) struct WireMessage<'a> {
    pub(super) role: &'static str,
    /// `null` for an assistant message that only calls tools.
    pub(super) content: Option<WireContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum WireContent<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
    InputAudio { input_audio: InputAudio<'a> },
}

#[derive(Serialize)]
pub(super) struct ImageUrl<'a> {
    pub(super) url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) detail: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct InputAudio<'a> {
    pub(super) data: &'a str,
    pub(super) format: &'a str,
}

#[derive(Serialize)]
pub(super) struct WireToolCall<'a> {
    pub(super) id: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
pub(super) struct WireFunctionCall<'a> {
    pub(super) name: &'a str,
    pub(super) arguments: &'a str,
}

#[derive(Serialize)]
pub(super) struct WireTool<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: &'a crate::providers::Tool,
}

#[derive(Serialize)]
pub(super) struct Common<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(super) stop: &'a [String],
    pub(super) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_format: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) logit_bias: Option<&'a serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) logprobs: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<&'a str>,
    /// Sampling options by their llama-server names (`top_k`, `min_p`, `repeat_penalty` …).
    #[serde(flatten)]
    pub(super) options: &'a serde_json::Map<String, serde_json::Value>,
    /// Fields the pool does not know, as the caller sent them.
    #[serde(flatten)]
    pub(super) extra: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
pub(super) struct StreamOptions {
    pub(super) include_usage: bool,
}

/// A whole answer or a stream chunk. Its strings borrow from the body where they hold no
/// escapes, so what the pool does not keep (a chunk's `model`) is never copied.
#[derive(Deserialize)]
pub(super) struct Response<'a> {
    #[serde(default, borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    /// Absent (not just empty) in a body that is not a completion at all.
    #[serde(default, borrow)]
    pub(super) choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub(super) usage: Option<UsageWire>,
    /// An error reported in place of (or inside) an answer.
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
    /// llama-server's own timings (an extension).
    #[serde(default)]
    pub(super) timings: Option<TimingsWire>,
}

#[derive(Deserialize, Clone, Copy)]
pub(super) struct TimingsWire {
    #[serde(default)]
    pub(super) prompt_ms: f64,
    #[serde(default)]
    pub(super) predicted_ms: f64,
}

impl TimingsWire {
    pub(super) fn nanos(self) -> crate::providers::Timings {
        crate::providers::Timings {
            prompt_ns: (self.prompt_ms * 1e6) as u64,
            eval_ns: (self.predicted_ms * 1e6) as u64,
        }
    }
}

/// The message of an `error` member: `{"message": ...}` or a bare string.
pub(super) fn error_message(error: &serde_json::Value) -> String {
    error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .or_else(|| error.as_str())
        .map_or_else(|| error.to_string(), str::to_owned)
}

#[derive(Deserialize)]
pub(super) struct Choice<'a> {
    /// Chat completions.
    #[serde(default, borrow)]
    pub(super) message: Option<Content<'a>>,
    /// Chat completion chunks.
    #[serde(default, borrow)]
    pub(super) delta: Option<Content<'a>>,
    /// Text completions (whole and chunks).
    #[serde(default, borrow)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) logprobs: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct Content<'a> {
    #[serde(default, borrow)]
    pub(super) content: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<ToolCallWire>>,
    /// The legacy single call.
    #[serde(default)]
    pub(super) function_call: Option<FunctionWire>,
    /// The model's reasoning (llama-server, vLLM, DeepSeek: `reasoning_content`; some
    /// servers: `reasoning`).
    #[serde(default, borrow, alias = "reasoning")]
    pub(super) reasoning_content: Option<Cow<'a, str>>,
}

/// A tool call in an answer, or a piece of one in a stream chunk.
#[derive(Deserialize)]
pub(super) struct ToolCallWire {
    #[serde(default)]
    pub(super) index: Option<usize>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) function: Option<FunctionWire>,
}

#[derive(Deserialize)]
pub(super) struct FunctionWire {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
pub(super) struct UsageWire {
    #[serde(default)]
    pub(super) prompt_tokens: u32,
    #[serde(default)]
    pub(super) completion_tokens: u32,
}
