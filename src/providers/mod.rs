//! Providers: a named model behind one or more endpoints, seen by strategies only through
//! the [`Provider`] trait (call, stream, health).
//!
//! Wire formats of the upstream APIs live in `openai/` and `ollama/`; the endpoint set with
//! its balancing and passive health lives in `endpoint.rs`.
//!
//! May import config, qos and telemetry only: it sits below the request types (`types`).

pub mod accuracy;
mod endpoint;
mod error;
mod http;
mod lines;
pub mod ollama;
pub mod openai;
mod reliability;
mod request;
mod set;
mod transport;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Serialize;
use tokio::time::Instant;

pub use accuracy::{Accuracy, Counts as AccuracyCounts, Estimate, Row as AccuracyRow};
pub use endpoint::{ClassHealth, EndpointHealth, EndpointSet, QueueHealth, TenantQueue};
pub use error::ProviderError;
pub use reliability::Reliability;
pub use request::{
    EmbedRequest, Embeddings, Format, GenParams, Message, Part, Prompt, ProviderRequest, Refusal,
    Role, Tool, ToolCall, ToolChoice,
};
pub use set::ProviderSet;

/// A slot taken ahead for one call (an ensemble's), as the provider keeps it.
pub type Slot = Box<dyn std::any::Any + Send + Sync>;

/// Token counts as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// How long the model server says it took: reading the prompt, and generating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Timings {
    pub prompt_ns: u64,
    pub eval_ns: u64,
}

/// A whole answer from one upstream call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub model: String,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    /// The endpoint that answered, as callers may see it (`provider#index`, not its URL).
    pub endpoint: Arc<str>,
    /// The tools the answer calls.
    pub tool_calls: Vec<ToolCall>,
    /// The tokens' log probabilities as the upstream reported them (OpenAI's
    /// `choices[].logprobs`), when asked for.
    pub logprobs: Option<serde_json::Value>,
    /// The model server's own timings, when it reports them.
    pub timings: Option<Timings>,
    /// The model's reasoning before its answer (`reasoning_content`, Ollama `thinking`).
    pub reasoning: Option<String>,
    /// Attempts on other endpoints of the provider that failed before this one answered.
    pub retries: u32,
    /// The upstream's body, when the answer above is all of it that the pool would change.
    pub verbatim: Option<Verbatim>,
}

/// An upstream's answer body as it came, for a surface that speaks the same dialect to hand
/// on with only the fields the pool owns replaced (its id, the model the caller named, the
/// Decision): nothing the upstream said is dropped or re-encoded. Only set when parsing it
/// found nothing the pool would re-shape (see each dialect's `parse_complete`).
#[derive(Debug, Clone, PartialEq)]
pub struct Verbatim {
    pub wire: Wire,
    pub body: bytes::Bytes,
}

/// The wire format of a [`Verbatim`] body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// An OpenAI `chat.completion`.
    OpenAiChat,
    /// An OpenAI `text_completion`.
    OpenAiText,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Text to append.
    Delta(String),
    /// A whole tool call (streamed calls are assembled before they are handed on).
    ToolCall(ToolCall),
    /// Reasoning to append (it comes before the answer's text).
    Reasoning(String),
    /// The end of the answer.
    Done {
        usage: Usage,
        finish_reason: Option<String>,
        /// The whole answer's log probabilities, when asked for.
        logprobs: Option<serde_json::Value>,
        timings: Option<Timings>,
    },
}

/// A streamed answer: events until `Done`, or an error (a cut stream).
pub type CompletionStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

/// A stream that has started, with the endpoint it came from.
pub struct StartedStream {
    pub endpoint: Arc<str>,
    pub model: String,
    pub events: CompletionStream,
    /// Attempts on other endpoints that failed before this one answered.
    pub retries: u32,
}

/// The seam between strategies and model servers.
///
/// Futures are `'static` so strategies can race, hedge and drop them freely: dropping a
/// future or stream drops the upstream HTTP request, which makes the model server stop.
pub trait Provider: Send + Sync + 'static {
    /// The provider's configured name.
    fn name(&self) -> &str;
    /// The model name sent upstream.
    fn model(&self) -> &str;
    /// One whole answer, before `deadline`.
    fn complete(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<Completion, ProviderError>>;
    /// A streamed answer; resolves once the upstream accepted the request.
    fn stream(
        &self,
        req: Arc<ProviderRequest>,
        deadline: Instant,
    ) -> BoxFuture<'static, Result<StartedStream, ProviderError>>;
    /// Embeds texts, before `deadline`.
    fn embed(
        &self,
        _req: Arc<EmbedRequest>,
        _deadline: Instant,
    ) -> BoxFuture<'static, Result<Embeddings, ProviderError>> {
        let provider = self.name().to_owned();
        Box::pin(async move {
            Err(ProviderError::NoEndpoint {
                provider,
                reason: "the provider does not embed",
            })
        })
    }
    /// Why this provider cannot carry an embeddings request faithfully, if it cannot.
    fn refuse_embed(&self, _req: &EmbedRequest) -> Result<(), Refusal> {
        Ok(())
    }
    /// Why this provider cannot carry `req` faithfully (a field its server would ignore or
    /// its configuration does not allow), if it cannot.
    fn refuse(&self, _req: &ProviderRequest) -> Result<(), Refusal> {
        Ok(())
    }
    /// Per-endpoint state.
    fn health(&self) -> Vec<EndpointHealth>;
    /// The provider's queue of callers waiting for a slot, if it has one.
    fn queue(&self) -> Option<QueueHealth> {
        None
    }
    /// How many endpoints serve this provider (hedges may go to another one).
    fn endpoints(&self) -> usize {
        1
    }
    /// Completion tokens of the provider's successful calls so far (the console derives
    /// tokens per second from it).
    fn completion_tokens(&self) -> u64 {
        0
    }
    /// The `p`-th percentile of recent latency (whole answers, or time to first token for
    /// streams), once enough calls were seen.
    fn latency_percentile(&self, _p: f64, _streaming: bool) -> Option<std::time::Duration> {
        None
    }
    /// Takes `n` slots at once for an ensemble's calls of `ticket`, queueing as one caller
    /// until all are free (never holding some while waiting for the rest); each slot is
    /// then taken by one call carrying the ticket's gang. Providers without slots give none.
    fn reserve(
        &self,
        _ticket: &crate::qos::Ticket,
        _n: usize,
        _deadline: Instant,
    ) -> BoxFuture<'static, Result<Vec<Slot>, ProviderError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// `n` slots at once if they are free now and nobody waits for them, else `None`.
    fn try_reserve(&self, _ticket: &crate::qos::Ticket, _n: usize) -> Option<Vec<Slot>> {
        Some(Vec::new())
    }
    /// Takes room for one hedged call from the provider's hedge budget.
    fn try_hedge(&self) -> bool {
        true
    }
    /// What the model server says of its model, in the shape of Ollama's `/api/show`
    /// (an Ollama server's own answer; llama-server's `/props`, mapped), if it says.
    fn describe(&self) -> BoxFuture<'static, Option<serde_json::Value>> {
        Box::pin(async { None })
    }
    /// Runs one round of active health checks of every endpoint.
    fn check_health(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    /// This provider under a changed configuration, keeping the runtime state that still
    /// applies (see `HttpProvider::reconfigured`); `None` to build it anew.
    fn reconfigure(
        &self,
        _config: Arc<crate::config::ProviderConfig>,
    ) -> Option<Arc<dyn Provider>> {
        None
    }
}
