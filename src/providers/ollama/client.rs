//! The Ollama dialect of the shared HTTP provider.

use std::borrow::Cow;

use super::wire;
use crate::config::ProviderConfig;
use crate::providers::http::{Dialect, Embedded, LineInfo, Parsed, ToolDelta, json};
use crate::providers::{
    EmbedRequest, Format, Message, Part, Prompt, ProviderRequest, Refusal, Role, ToolCall,
    ToolChoice, Usage,
};

/// Ollama's native API.
#[derive(Clone, Copy)]
pub(crate) struct Ollama;

impl Dialect for Ollama {
    fn path(&self, prompt: &Prompt) -> &'static str {
        match prompt {
            Prompt::Chat(_) => "/api/chat",
            Prompt::Raw(_) => "/api/generate",
        }
    }

    fn body(&self, model: &str, req: &ProviderRequest, stream: bool) -> Vec<u8> {
        let p = &req.params;
        let options = wire::Options {
            num_predict: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            seed: p.seed,
            stop: &p.stop,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            rest: &p.options,
        };
        let format = match &p.format {
            Format::Text => None,
            Format::Json => Some(serde_json::Value::from("json")),
            Format::Schema { schema, .. } => Some((**schema).clone()),
        };
        // `tool_choice: none`: the tools are not offered.
        let tools = if p.tool_choice == Some(ToolChoice::None) {
            Vec::new()
        } else {
            p.tools
                .iter()
                .map(|t| wire::WireTool {
                    kind: "function",
                    function: t,
                })
                .collect()
        };
        let body = match &req.prompt {
            Prompt::Chat(messages) => serde_json::to_vec(&wire::ChatRequest {
                model,
                messages: messages.iter().map(|m| message(m, messages)).collect(),
                stream,
                options,
                format,
                tools,
                keep_alive: p.keep_alive.as_ref(),
                think: p.think.as_ref(),
            }),
            Prompt::Raw(prompt) => serde_json::to_vec(&wire::GenerateRequest {
                model,
                prompt,
                raw: true,
                stream,
                options,
                format,
                keep_alive: p.keep_alive.as_ref(),
                think: p.think.as_ref(),
            }),
        };
        body.unwrap_or_default()
    }

    fn parse_complete(&self, body: &[u8]) -> Result<Parsed, String> {
        let resp: wire::Response<'_> = json(body)?;
        if let Some(error) = resp.error {
            return Err(error);
        }
        if resp.done != Some(true) {
            return Err("the answer is not complete (`done` is not true)".into());
        }
        let usage = usage(&resp);
        let timings = resp.timings();
        let (text, tool_calls, reasoning) = match resp.message {
            Some(m) => (m.content, tool_calls(m.tool_calls), m.thinking),
            None => (
                resp.response
                    .ok_or("the response has neither `message` nor `response`")?,
                Vec::new(),
                resp.thinking,
            ),
        };
        Ok(Parsed {
            text: text.into_owned(),
            model: resp.model.map(Cow::into_owned),
            usage,
            finish_reason: resp.done_reason.map(Cow::into_owned),
            tool_calls,
            logprobs: None,
            timings,
            reasoning: reasoning.map(Cow::into_owned),
            verbatim: None,
        })
    }

    fn models_path(&self) -> &'static str {
        "/api/tags"
    }

    fn parse_models(&self, body: &[u8]) -> Result<Vec<String>, String> {
        #[derive(serde::Deserialize)]
        struct Model {
            #[serde(default)]
            name: String,
            #[serde(default)]
            model: String,
        }
        #[derive(serde::Deserialize)]
        struct Tags {
            models: Vec<Model>,
        }
        let tags: Tags = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(tags
            .models
            .into_iter()
            .map(|m| if m.name.is_empty() { m.model } else { m.name })
            .collect())
    }

    fn parse_line(&self, line: &[u8]) -> Result<LineInfo, String> {
        let resp: wire::Response<'_> = json(line)?;
        if let Some(error) = resp.error {
            return Ok(LineInfo {
                error: Some(error),
                ..Default::default()
            });
        }
        let Some(done) = resp.done else {
            return Err("a stream line that is not an Ollama answer (no `done`)".into());
        };
        let usage = done.then(|| usage(&resp));
        let timings = resp.timings();
        let finish_reason = if done {
            Some(
                resp.done_reason
                    .map_or_else(|| "stop".to_owned(), Cow::into_owned),
            )
        } else {
            None
        };
        let (delta, tool_deltas, reasoning) = match resp.message {
            Some(m) => (
                Some(m.content.into_owned()),
                m.tool_calls
                    .into_iter()
                    .map(|c| ToolDelta {
                        index: None,
                        id: None,
                        name: Some(c.function.name),
                        arguments: c.function.arguments.to_string(),
                    })
                    .collect(),
                m.thinking.or(resp.thinking),
            ),
            None => (
                resp.response.map(Cow::into_owned),
                Vec::new(),
                resp.thinking,
            ),
        };
        Ok(LineInfo {
            delta,
            finish_reason,
            usage,
            end: done,
            error: None,
            tool_deltas,
            logprobs: Vec::new(),
            timings,
            reasoning: reasoning.map(Cow::into_owned),
        })
    }

    fn embed_path(&self) -> &'static str {
        "/api/embed"
    }

    fn embed_body(&self, model: &str, req: &EmbedRequest) -> Vec<u8> {
        let mut body = serde_json::json!({ "model": model, "input": req.input });
        if let Some(d) = req.dimensions {
            body["dimensions"] = d.into();
        }
        if let Some(t) = req.truncate {
            body["truncate"] = t.into();
        }
        if let Some(k) = &req.keep_alive {
            body["keep_alive"] = k.clone();
        }
        if !req.options.is_empty() {
            body["options"] = serde_json::Value::Object(req.options.clone());
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn parse_embed(&self, body: &[u8]) -> Result<Embedded, String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            embeddings: Vec<Vec<f32>>,
            #[serde(default)]
            model: Option<String>,
            #[serde(default)]
            prompt_eval_count: u32,
        }
        let e: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(Embedded {
            vectors: e.embeddings,
            model: e.model,
            prompt_tokens: e.prompt_eval_count,
        })
    }

    fn refuse_embed(&self, _req: &EmbedRequest) -> Result<(), Refusal> {
        Ok(())
    }

    fn describe_request(&self, model: &str) -> (&'static str, Option<Vec<u8>>) {
        let body = serde_json::to_vec(&serde_json::json!({ "model": model })).unwrap_or_default();
        ("/api/show", Some(body))
    }

    fn parse_describe(&self, body: &[u8]) -> Option<serde_json::Value> {
        // Ollama's own answer is already in the shape.
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .filter(serde_json::Value::is_object)
    }

    fn refuse(&self, _config: &ProviderConfig, req: &ProviderRequest) -> Result<(), Refusal> {
        let p = &req.params;
        let no = |field: &str, why: &str| Err(Refusal::new(field, why));
        if matches!(req.prompt, Prompt::Raw(_)) && !p.tools.is_empty() {
            return no("tools", "Ollama's /api/generate takes no tools");
        }
        match &p.tool_choice {
            Some(ToolChoice::Required) => {
                return no(
                    "tool_choice",
                    "Ollama cannot be made to call a tool (`required`)",
                );
            }
            Some(ToolChoice::Function(_)) => {
                return no(
                    "tool_choice",
                    "Ollama cannot be made to call a named function",
                );
            }
            _ => {}
        }
        if p.parallel_tool_calls == Some(false) {
            return no(
                "parallel_tool_calls",
                "Ollama cannot be limited to one tool call",
            );
        }
        if let Some(i) = p.tools.iter().position(|t| t.strict == Some(true)) {
            return Err(Refusal::new(
                format!("tools[{i}].function.strict"),
                "Ollama does not constrain tool arguments to their schema",
            ));
        }
        if p.logit_bias.is_some() {
            return no("logit_bias", "Ollama takes no logit bias");
        }
        if p.logprobs || p.top_logprobs.is_some() {
            return no(
                "logprobs",
                "the pool does not read log probabilities from Ollama",
            );
        }
        if let Some(name) = p.extra.keys().next() {
            return Err(Refusal::new(
                name.as_str(),
                "not a field the pool knows; only OpenAI-kind providers take unknown fields",
            ));
        }
        for (i, m) in req.messages().iter().enumerate() {
            for (j, part) in m.parts.iter().enumerate() {
                let field = || format!("messages[{i}].content[{j}]");
                match part {
                    Part::Audio { .. } => {
                        return Err(Refusal::new(field(), "Ollama takes no audio"));
                    }
                    Part::Image { url, .. } if base64_of(url).is_none() => {
                        return Err(Refusal::new(
                            field(),
                            "Ollama takes images as data, not URLs: send a base64 `data:` URL",
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// The base64 payload of a `data:...;base64,` URL.
fn base64_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    meta.ends_with(";base64").then_some(data)
}

fn message<'a>(m: &'a Message, all: &'a [Message]) -> wire::WireMessage<'a> {
    // A tool result names its tool; OpenAI callers give the call's id instead.
    let tool_name = m.name.as_deref().or_else(|| {
        let id = m.tool_call_id.as_deref()?;
        all.iter()
            .flat_map(|x| &x.tool_calls)
            .find(|c| c.id == id)
            .map(|c| c.name.as_str())
    });
    wire::WireMessage {
        role: m.role.as_str(),
        content: &m.content,
        images: m.images().filter_map(base64_of).collect(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| wire::WireToolCall {
                function: wire::WireFunction {
                    name: &c.name,
                    arguments: c
                        .arguments_value()
                        .unwrap_or_else(|_| c.arguments.clone().into()),
                },
            })
            .collect(),
        tool_name: tool_name.filter(|_| m.role == Role::Tool),
        thinking: m.reasoning.as_deref(),
    }
}

fn tool_calls(calls: Vec<wire::ToolCallWire>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall::from_object(i, c.function.name, &c.function.arguments))
        .collect()
}

fn usage(r: &wire::Response<'_>) -> Usage {
    Usage {
        prompt_tokens: r.prompt_eval_count.unwrap_or(0),
        completion_tokens: r.eval_count.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::GenParams;

    #[test]
    fn generate_body_is_raw_with_options() {
        let req = ProviderRequest {
            prompt: Prompt::Raw("Once".into()),
            params: GenParams {
                max_tokens: Some(7),
                temperature: Some(0.0),
                ..Default::default()
            },
            ticket: Default::default(),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&Ollama.body("phi3:mini", &req, false)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "phi3:mini", "prompt": "Once", "raw": true, "stream": false,
                "options": {"num_predict": 7, "temperature": 0.0}
            })
        );
    }

    #[test]
    fn parses_final_line_with_counts() {
        let info = Ollama
            .parse_line(
                br#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":4,"eval_count":9}"#,
            )
            .unwrap();
        assert!(info.end);
        assert_eq!(info.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: 4,
                completion_tokens: 9
            })
        );
        assert_eq!(
            Ollama
                .parse_line(br#"{"error":"model not found"}"#)
                .unwrap()
                .error
                .as_deref(),
            Some("model not found")
        );
        assert!(Ollama.parse_line(br#"{"status":"pulling"}"#).is_err());
    }

    #[test]
    fn escaped_text_and_reasoning_are_read_whole() {
        let info = Ollama
            .parse_line(
                r#"{"model":"m","message":{"role":"assistant","content":"a\"b\u00e9","thinking":"t\nt"},"done":false}"#
                    .as_bytes(),
            )
            .unwrap();
        assert_eq!(info.delta.as_deref(), Some("a\"bé"));
        assert_eq!(info.reasoning.as_deref(), Some("t\nt"));
        // `/api/generate`: the reasoning is beside the text, not in a message.
        let info = Ollama
            .parse_line(br#"{"response":"x","thinking":"why","done":false}"#)
            .unwrap();
        assert_eq!(
            (info.delta.as_deref(), info.reasoning.as_deref()),
            (Some("x"), Some("why"))
        );
        let whole = Ollama
            .parse_complete(
                br#"{"model":"m\u00e9","response":"y\"","done":true,"done_reason":"st\u006fp"}"#,
            )
            .unwrap();
        assert_eq!(whole.text, "y\"");
        assert_eq!(whole.model.as_deref(), Some("mé"));
        assert_eq!(whole.finish_reason.as_deref(), Some("stop"));
        assert!(
            Ollama
                .parse_line(b"{\"response\":\"\xff\",\"done\":false}")
                .is_err()
        );
    }
}
