//! OpenAI API types as clients send and receive them (downstream side). Unknown request
//! fields are ignored, as OpenAI-compatible servers do, because SDKs send many.

use serde::{Deserialize, Serialize};

use crate::api::convert::Stop;
use crate::types::{Decision, UsageOut};

#[derive(Debug, Deserialize)]
pub(super) struct ChatRequest {
    pub(super) model: String,
    pub(super) messages: Vec<ChatMessage>,
    #[serde(default)]
    pub(super) max_tokens: Option<u32>,
    #[serde(default)]
    pub(super) max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub(super) temperature: Option<f32>,
    #[serde(default)]
    pub(super) top_p: Option<f32>,
    #[serde(default)]
    pub(super) seed: Option<u64>,
    #[serde(default)]
    pub(super) stop: Option<Stop>,
    #[serde(default)]
    pub(super) n: Option<u32>,
    #[serde(default)]
    pub(super) stream: bool,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(super) response_format: Option<ResponseFormat>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatMessage {
    pub(super) role: String,
    #[serde(default)]
    pub(super) content: Option<Content>,
}

/// Message content: a string, or a list of parts of which text parts are used.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub(super) struct Part {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct ResponseFormat {
    #[serde(rename = "type")]
    pub(super) kind: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct CompletionRequest {
    pub(super) model: String,
    pub(super) prompt: Prompt,
    #[serde(default)]
    pub(super) max_tokens: Option<u32>,
    #[serde(default)]
    pub(super) temperature: Option<f32>,
    #[serde(default)]
    pub(super) top_p: Option<f32>,
    #[serde(default)]
    pub(super) seed: Option<u64>,
    #[serde(default)]
    pub(super) stop: Option<Stop>,
    #[serde(default)]
    pub(super) n: Option<u32>,
    #[serde(default)]
    pub(super) stream: bool,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
}

/// `prompt`: a string or a list of one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Prompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize)]
pub(super) struct ChatResponse<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) choices: [ChatChoice<'a>; 1],
    pub(super) usage: UsageOut,
    /// How the answer was chosen (an extension field; SDKs ignore it).
    pub(super) llm_pool: Extension<'a>,
}

#[derive(Serialize)]
pub(super) struct Extension<'a> {
    pub(super) provider: &'a str,
    /// The answer came from the cache.
    pub(super) cache_hit: bool,
    pub(super) decision: &'a Decision,
}

#[derive(Serialize)]
pub(super) struct ChatChoice<'a> {
    pub(super) index: u32,
    pub(super) message: OutMessage<'a>,
    pub(super) finish_reason: &'a str,
    pub(super) logprobs: Option<()>,
}

#[derive(Serialize)]
pub(super) struct OutMessage<'a> {
    pub(super) role: &'static str,
    pub(super) content: &'a str,
}

#[derive(Serialize)]
pub(super) struct ChatChunk<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) llm_pool: Option<Extension<'a>>,
}

#[derive(Serialize)]
pub(super) struct ChunkChoice<'a> {
    pub(super) index: u32,
    pub(super) delta: Delta<'a>,
    pub(super) finish_reason: Option<&'a str>,
    pub(super) logprobs: Option<()>,
}

#[derive(Serialize, Default)]
pub(super) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct TextResponse<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) choices: [TextChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage: Option<UsageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) llm_pool: Option<Extension<'a>>,
}

#[derive(Serialize)]
pub(super) struct TextChoice<'a> {
    pub(super) index: u32,
    pub(super) text: &'a str,
    pub(super) finish_reason: Option<&'a str>,
    pub(super) logprobs: Option<()>,
}
