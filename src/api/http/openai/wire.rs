//! OpenAI API types as clients send and receive them (downstream side). Request fields the
//! pool does not know are kept (`extra`) and carried to OpenAI-kind upstreams, or refused
//! by providers that cannot take them; none is dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(super) response_format: Option<Value>,
    #[serde(default)]
    pub(super) tools: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) tool_choice: Option<Value>,
    #[serde(default)]
    pub(super) parallel_tool_calls: Option<bool>,
    /// The legacy form of `tools`.
    #[serde(default)]
    pub(super) functions: Option<Vec<Value>>,
    /// The legacy form of `tool_choice`.
    #[serde(default)]
    pub(super) function_call: Option<Value>,
    #[serde(default)]
    pub(super) presence_penalty: Option<f32>,
    #[serde(default)]
    pub(super) frequency_penalty: Option<f32>,
    #[serde(default)]
    pub(super) logit_bias: Option<Map<String, Value>>,
    #[serde(default)]
    pub(super) logprobs: Option<bool>,
    #[serde(default)]
    pub(super) top_logprobs: Option<u32>,
    #[serde(default)]
    pub(super) user: Option<String>,
    /// Everything else, carried to OpenAI-kind upstreams as is.
    #[serde(flatten)]
    pub(super) extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatMessage {
    pub(super) role: String,
    #[serde(default)]
    pub(super) content: Option<Content>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<Value>>,
    #[serde(default)]
    pub(super) tool_call_id: Option<String>,
    /// A legacy assistant call.
    #[serde(default)]
    pub(super) function_call: Option<Value>,
    /// An earlier answer's reasoning, echoed back.
    #[serde(default, alias = "reasoning")]
    pub(super) reasoning_content: Option<String>,
    /// What else a client sent (SDKs echo answers back with `refusal`, `annotations` …).
    #[serde(flatten)]
    pub(super) extra: Map<String, Value>,
}

/// Message content: a string, or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
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
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(super) presence_penalty: Option<f32>,
    #[serde(default)]
    pub(super) frequency_penalty: Option<f32>,
    #[serde(default)]
    pub(super) logit_bias: Option<Map<String, Value>>,
    /// Text completions take the number of alternatives here.
    #[serde(default)]
    pub(super) logprobs: Option<u32>,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) response_format: Option<Value>,
    #[serde(flatten)]
    pub(super) extra: Map<String, Value>,
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
    pub(super) choices: Vec<ChatChoice<'a>>,
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
    pub(super) logprobs: Option<&'a Value>,
}

#[derive(Serialize)]
pub(super) struct OutMessage<'a> {
    pub(super) role: &'static str,
    /// `null` when the answer only calls tools.
    pub(super) content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_calls: Option<Vec<OutToolCall<'a>>>,
    /// For callers that used the legacy `functions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) function_call: Option<OutFunction<'a>>,
    /// The model's reasoning (the field llama-server, vLLM and DeepSeek use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct OutToolCall<'a> {
    /// Streams only: which call a delta belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) index: Option<usize>,
    pub(super) id: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: OutFunction<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunction<'a> {
    pub(super) name: &'a str,
    pub(super) arguments: &'a str,
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
    pub(super) logprobs: Option<&'a Value>,
}

#[derive(Serialize, Default)]
pub(super) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_calls: Option<[OutToolCall<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) function_call: Option<OutFunction<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_content: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct TextResponse<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) choices: Vec<TextChoice<'a>>,
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
    pub(super) logprobs: Option<&'a Value>,
}
