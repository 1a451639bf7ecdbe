//! The `ollama` provider kind: `/api/chat` and `/api/generate`, NDJSON streaming.

mod client;
mod wire;

pub(crate) use client::Ollama;
