//! Serde types for the OpenAI API as the pool sends and reads it (upstream side).

use serde::{Deserialize, Serialize};

use crate::providers::Message;

#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub(super) model: &'a str,
    pub(super) messages: &'a [Message],
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
    pub(super) response_format: Option<ResponseFormat>,
}

#[derive(Serialize)]
pub(super) struct StreamOptions {
    pub(super) include_usage: bool,
}

#[derive(Serialize)]
pub(super) struct ResponseFormat {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
}

#[derive(Deserialize)]
pub(super) struct Response {
    #[serde(default)]
    pub(super) model: Option<String>,
    /// Absent (not just empty) in a body that is not a completion at all.
    #[serde(default)]
    pub(super) choices: Option<Vec<Choice>>,
    #[serde(default)]
    pub(super) usage: Option<UsageWire>,
    /// An error reported in place of (or inside) an answer.
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
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
pub(super) struct Choice {
    /// Chat completions.
    #[serde(default)]
    pub(super) message: Option<Content>,
    /// Chat completion chunks.
    #[serde(default)]
    pub(super) delta: Option<Content>,
    /// Text completions (whole and chunks).
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Content {
    #[serde(default)]
    pub(super) content: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
pub(super) struct UsageWire {
    #[serde(default)]
    pub(super) prompt_tokens: u32,
    #[serde(default)]
    pub(super) completion_tokens: u32,
}
