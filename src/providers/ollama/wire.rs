//! Serde types for Ollama's API as the pool sends and reads it (upstream side).

use serde::{Deserialize, Serialize};

use crate::providers::Message;

#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub(super) model: &'a str,
    pub(super) messages: &'a [Message],
    pub(super) stream: bool,
    pub(super) options: Options<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<&'static str>,
}

#[derive(Serialize)]
pub(super) struct GenerateRequest<'a> {
    pub(super) model: &'a str,
    pub(super) prompt: &'a str,
    pub(super) raw: bool,
    pub(super) stream: bool,
    pub(super) options: Options<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<&'static str>,
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
}

/// Both `/api/chat` and `/api/generate` answers and stream lines.
#[derive(Deserialize)]
pub(super) struct Response {
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) message: Option<Content>,
    #[serde(default)]
    pub(super) response: Option<String>,
    /// Present on every line of Ollama's answers; absent in a body that is not one.
    #[serde(default)]
    pub(super) done: Option<bool>,
    #[serde(default)]
    pub(super) done_reason: Option<String>,
    #[serde(default)]
    pub(super) prompt_eval_count: Option<u32>,
    #[serde(default)]
    pub(super) eval_count: Option<u32>,
    #[serde(default)]
    pub(super) error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Content {
    #[serde(default)]
    pub(super) content: String,
}
