//! What one upstream call is asked: the prompt (messages with their parts, tool calls and
//! tool results), the generation parameters, tools and the answer's format. Each dialect
//! (`openai/`, `ollama/`) phrases it for its server, or says which field its server cannot
//! take ([`Refusal`]) so the caller gets a 400 naming it instead of an answer that ignored
//! it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    /// The message's text (its text parts, joined by newlines).
    pub content: String,
    /// The content's parts in order when it holds more than text (images, audio); empty
    /// for a plain text message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The author's name (OpenAI `name`); on `tool` messages, the tool's name (Ollama
    /// `tool_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An earlier answer's reasoning (OpenAI-compatible `reasoning_content`, Ollama
    /// `thinking`), for templates that show it to the model again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

impl Message {
    /// A plain text message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            parts: Vec::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            reasoning: None,
        }
    }

    /// Images in the message.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Image { url, .. } => Some(url.as_str()),
            _ => None,
        })
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            // OpenAI's newer name for the system role.
            "system" | "developer" => Some(Self::System),
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "tool" | "function" => Some(Self::Tool),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    /// An image: an `http(s)` URL or a `data:` URL.
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Base64 audio in `format` (`wav`, `mp3`).
    Audio {
        data: String,
        format: String,
    },
}

/// A tool the model may call (a function with a JSON Schema for its arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

/// One tool call of an answer (or of an assistant message in the conversation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text).
    pub arguments: String,
}

impl ToolCall {
    /// A call as Ollama reports it (arguments as an object, no id): the id is derived from
    /// the call itself, so equal answers carry equal ids (and cache keys stay stable).
    pub fn from_object(index: usize, name: String, arguments: &Value) -> Self {
        Self::from_text(index, &name, &arguments.to_string())
    }

    /// A call without an id: the id is derived from its index, name and arguments.
    pub fn from_text(index: usize, name: &str, arguments: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0])
            .chain_update(arguments.as_bytes())
            .finalize();
        Self {
            id: format!("call_{index}_{}", hex::encode(&digest[..6])),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        }
    }

    /// The call's arguments as a JSON value (`{}` when the model wrote none).
    pub fn arguments_value(&self) -> Result<Value, serde_json::Error> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_str(&self.arguments)
    }
}

/// The form the answer must take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    /// Any JSON object (`json_object`, Ollama `format: "json"`).
    Json,
    /// JSON that satisfies a schema (`json_schema`, an Ollama `format` object).
    Schema {
        name: String,
        schema: Arc<Value>,
        strict: Option<bool>,
    },
}

impl Format {
    pub fn is_json(&self) -> bool {
        !matches!(self, Self::Text)
    }
}

/// Generation parameters, already resolved against the task's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenParams {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// The answer's form; JSON formats are asked of the model server and checked by the
    /// pool.
    pub format: Format,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    /// Token id (as a string) to bias.
    pub logit_bias: Option<Map<String, Value>>,
    /// Return the chosen tokens' log probabilities (and `top_logprobs` alternatives).
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
    /// The end user, for the model server's abuse monitoring (OpenAI `user`).
    pub user: Option<String>,
    /// Sampling options beyond the common ones, by their Ollama names (`top_k`,
    /// `repeat_penalty`, `num_ctx` …).
    pub options: Map<String, Value>,
    /// Ollama `keep_alive`.
    pub keep_alive: Option<Value>,
    /// Ollama `think`.
    pub think: Option<Value>,
    /// Top-level request fields the pool does not know, carried verbatim to OpenAI-kind
    /// upstreams that allow it (so new OpenAI parameters work without a pool release).
    pub extra: Map<String, Value>,
}

/// One upstream call's input; shared by every candidate of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    pub prompt: Prompt,
    pub params: GenParams,
    /// Who asks and how much, for the providers' queues (not part of the answer: not in
    /// the cache key).
    pub ticket: crate::qos::Ticket,
}

impl ProviderRequest {
    pub fn new(prompt: Prompt, params: GenParams) -> Self {
        Self {
            prompt,
            params,
            ticket: crate::qos::Ticket::default(),
        }
    }

    /// The prompt's length in bytes (messages' content and tool calls), for estimates.
    pub fn prompt_chars(&self) -> usize {
        match &self.prompt {
            Prompt::Chat(messages) => messages
                .iter()
                .map(|m| {
                    m.content.len()
                        + m.tool_calls
                            .iter()
                            .map(|c| c.name.len() + c.arguments.len())
                            .sum::<usize>()
                })
                .sum(),
            Prompt::Raw(text) => text.len(),
        }
    }

    /// The messages, if the prompt is a conversation.
    pub fn messages(&self) -> &[Message] {
        match &self.prompt {
            Prompt::Chat(m) => m,
            Prompt::Raw(_) => &[],
        }
    }
}

/// What the model is asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A conversation; the model server applies its chat template.
    Chat(Vec<Message>),
    /// Raw text continued as is (`/v1/completions`, Ollama `raw`).
    Raw(String),
}

/// A request field a provider cannot carry to its model server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The field as the caller wrote it (`tool_choice`, `messages[2].content[1]`).
    pub field: String,
    pub reason: String,
}

impl Refusal {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Checks what every dialect needs: images and audio only to providers configured with the
/// `vision` / `audio` capability.
pub(crate) fn check_media(capabilities: &[String], req: &ProviderRequest) -> Result<(), Refusal> {
    let has = |c: &str| capabilities.iter().any(|x| x == c);
    for (i, m) in req.messages().iter().enumerate() {
        for (j, p) in m.parts.iter().enumerate() {
            let need = match p {
                Part::Image { .. } => "vision",
                Part::Audio { .. } => "audio",
                Part::Text { .. } => continue,
            };
            if !has(need) {
                return Err(Refusal::new(
                    format!("messages[{i}].content[{j}]"),
                    format!(
                        "the provider is not configured with the `{need}` capability \
                         (capabilities = [\"{need}\"]), so it would answer without seeing it"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An embeddings call: texts to embed, each into one vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EmbedRequest {
    pub input: Vec<String>,
    /// Vectors of this many dimensions (models that can shorten them).
    pub dimensions: Option<u32>,
    /// The end user (OpenAI `user`).
    pub user: Option<String>,
    /// Ollama `truncate`: cut inputs to the context length (default true) or fail.
    pub truncate: Option<bool>,
    /// Ollama `keep_alive`.
    pub keep_alive: Option<Value>,
    /// Ollama `options`.
    pub options: Map<String, Value>,
    /// Who asks, for the providers' queues (not part of the answer).
    #[serde(skip)]
    pub ticket: crate::qos::Ticket,
}

/// An embeddings call's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    pub model: String,
    pub prompt_tokens: u32,
    /// The endpoint that answered (`provider#index`).
    pub endpoint: Arc<str>,
}
