//! Ollama API types as clients send and receive them (downstream side).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::convert::Stop;

#[derive(Debug, Deserialize)]
pub(super) struct GenerateRequest {
    pub(super) model: String,
    #[serde(default)]
    pub(super) prompt: Option<String>,
    #[serde(default)]
    pub(super) system: Option<String>,
    #[serde(default)]
    pub(super) raw: bool,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) format: Option<Value>,
    #[serde(default)]
    pub(super) options: Options,
    #[serde(default)]
    pub(super) images: Vec<String>,
    #[serde(default)]
    pub(super) keep_alive: Option<Value>,
    #[serde(default)]
    pub(super) think: Option<Value>,
    /// `context` (the old conversation state) and `template` and `suffix` cannot be
    /// carried; they are refused when set.
    #[serde(flatten)]
    pub(super) extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatRequest {
    pub(super) model: String,
    #[serde(default)]
    pub(super) messages: Vec<ChatMessage>,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) format: Option<Value>,
    #[serde(default)]
    pub(super) options: Options,
    #[serde(default)]
    pub(super) tools: Vec<Value>,
    #[serde(default)]
    pub(super) keep_alive: Option<Value>,
    #[serde(default)]
    pub(super) think: Option<Value>,
    #[serde(flatten)]
    pub(super) extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatMessage {
    pub(super) role: String,
    #[serde(default)]
    pub(super) content: String,
    /// Base64 images.
    #[serde(default)]
    pub(super) images: Vec<String>,
    #[serde(default)]
    pub(super) tool_calls: Vec<Value>,
    #[serde(default)]
    pub(super) tool_name: Option<String>,
    /// The model's reasoning on an earlier answer.
    #[serde(default)]
    pub(super) thinking: Option<String>,
    #[serde(flatten)]
    pub(super) extra: Map<String, Value>,
}

/// The generation options: the common ones by name, the rest (`num_ctx`, `top_k` …)
/// carried as given.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Options {
    #[serde(default)]
    pub(super) temperature: Option<f32>,
    #[serde(default)]
    pub(super) top_p: Option<f32>,
    #[serde(default)]
    pub(super) num_predict: Option<i64>,
    #[serde(default)]
    pub(super) seed: Option<i64>,
    #[serde(default)]
    pub(super) stop: Option<Stop>,
    #[serde(default)]
    pub(super) presence_penalty: Option<f32>,
    #[serde(default)]
    pub(super) frequency_penalty: Option<f32>,
    #[serde(flatten)]
    pub(super) rest: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ShowRequest {
    #[serde(default, alias = "name")]
    pub(super) model: String,
}

/// One line (or the whole answer) of `/api/generate` and `/api/chat`.
#[derive(Serialize)]
pub(super) struct Reply<'a> {
    pub(super) model: &'a str,
    pub(super) created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<OutMessage<'a>>,
    /// `/api/generate`'s reasoning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking: Option<&'a str>,
    pub(super) done: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(super) end: Option<End<'a>>,
}

#[derive(Serialize)]
pub(super) struct OutMessage<'a> {
    pub(super) role: &'static str,
    pub(super) content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<OutToolCall<'a>>,
}

#[derive(Serialize)]
pub(super) struct OutToolCall<'a> {
    pub(super) function: OutFunction<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunction<'a> {
    pub(super) name: &'a str,
    /// Ollama gives arguments as an object.
    pub(super) arguments: Value,
}

/// Fields of the final line. Durations are nanoseconds, as Ollama reports them.
#[derive(Serialize)]
pub(super) struct End<'a> {
    pub(super) done_reason: &'a str,
    pub(super) total_duration: u64,
    pub(super) load_duration: u64,
    pub(super) prompt_eval_count: u32,
    pub(super) prompt_eval_duration: u64,
    pub(super) eval_count: u32,
    pub(super) eval_duration: u64,
    /// Extension: the provider that answered and how it was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) llm_pool: Option<Extension<'a>>,
}

/// The final line's `llm_pool`, written from the answer as it is (not copied into a
/// `Value` first).
#[derive(Serialize)]
pub(super) struct Extension<'a> {
    pub(super) provider: &'a str,
    pub(super) cache_hit: bool,
    pub(super) decision: &'a crate::types::Decision,
}
