//! The `openai` provider kind: `/v1/chat/completions` and `/v1/completions`, SSE streaming.

mod client;
mod wire;

pub(crate) use client::OpenAi;
