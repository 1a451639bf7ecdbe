//! The OpenAI dialect of the shared HTTP provider.

use std::borrow::Cow;

use super::wire;
use crate::config::ProviderConfig;
use crate::providers::http::{Dialect, Embedded, LineInfo, Parsed, ToolDelta, json};
use crate::providers::{
    EmbedRequest, Format, Message, Part, Prompt, ProviderRequest, Refusal, Role, ToolCall,
    ToolChoice, Usage, Wire,
};

/// OpenAI's chat and text completion API.
#[derive(Clone, Copy)]
pub(crate) struct OpenAi;

impl Dialect for OpenAi {
    fn path(&self, prompt: &Prompt) -> &'static str {
        match prompt {
            Prompt::Chat(_) => "/v1/chat/completions",
            Prompt::Raw(_) => "/v1/completions",
        }
    }

    fn body(&self, model: &str, req: &ProviderRequest, stream: bool) -> Vec<u8> {
        let p = &req.params;
        let common = wire::Common {
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            seed: p.seed,
            stop: &p.stop,
            stream,
            stream_options: stream.then_some(wire::StreamOptions {
                include_usage: true,
            }),
            response_format: response_format(&p.format),
            tools: p
                .tools
                .iter()
                .map(|t| wire::WireTool {
                    kind: "function",
                    function: t,
                })
                .collect(),
            tool_choice: p.tool_choice.as_ref().map(tool_choice),
            parallel_tool_calls: p.parallel_tool_calls,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            logit_bias: p.logit_bias.as_ref(),
            // Chat takes a flag (and `top_logprobs`); text completions take the count.
            logprobs: match (&req.prompt, p.logprobs) {
                (_, false) => None,
                (Prompt::Chat(_), true) => Some(serde_json::Value::Bool(true)),
                (Prompt::Raw(_), true) => Some(p.top_logprobs.unwrap_or(0).into()),
            },
            top_logprobs: p
                .top_logprobs
                .filter(|_| p.logprobs && matches!(req.prompt, Prompt::Chat(_))),
            user: p.user.as_deref(),
            options: &p.options,
            extra: &p.extra,
        };
        let body = match &req.prompt {
            Prompt::Chat(messages) => serde_json::to_vec(&wire::ChatRequest {
                model,
                messages: messages.iter().map(message).collect(),
                common,
            }),
            Prompt::Raw(prompt) => serde_json::to_vec(&wire::CompletionRequest {
                model,
                prompt,
                common,
            }),
        };
        body.unwrap_or_default()
    }

    fn parse_complete(&self, body: &[u8]) -> Result<Parsed, String> {
        let resp: wire::Response<'_> = json(body)?;
        if let Some(error) = &resp.error {
            return Err(format!(
                "error in place of an answer: {}",
                wire::error_message(error)
            ));
        }
        let choices = resp.choices.unwrap_or_default();
        // The body can be handed on as it came unless the pool would re-shape it: one
        // choice, with its finish reason (not the legacy `function_call`, which callers of
        // `tools` hear as `tool_calls`) and the usage, and (chat) no legacy `function_call`
        // member, no tool call without an id, no reasoning (which some servers name
        // `reasoning`, not `reasoning_content`).
        let mut whole = choices.len() == 1 && resp.usage.is_some();
        let choice = choices
            .into_iter()
            .next()
            .ok_or("no choices in the response")?;
        whole &= choice
            .finish_reason
            .as_deref()
            .is_some_and(|r| r != "function_call");
        let (text, tool_calls, reasoning, wire) = match choice.message {
            Some(m) => {
                whole &= m.function_call.is_none()
                    && m.reasoning_content.is_none()
                    && m.tool_calls.iter().flatten().all(|c| c.id.is_some());
                let calls = tool_calls(m.tool_calls, m.function_call)?;
                let wire = Wire::OpenAiChat;
                match m.content {
                    Some(text) => (text.into_owned(), calls, m.reasoning_content, wire),
                    None if !calls.is_empty() => (String::new(), calls, m.reasoning_content, wire),
                    None => return Err("the choice has no content".into()),
                }
            }
            None => (
                choice.text.ok_or("the choice has no content")?.into_owned(),
                Vec::new(),
                None,
                Wire::OpenAiText,
            ),
        };
        Ok(Parsed {
            text,
            model: resp.model.map(Cow::into_owned),
            usage: resp.usage.map(usage).unwrap_or_default(),
            finish_reason: choice.finish_reason.map(Cow::into_owned),
            tool_calls,
            logprobs: choice.logprobs.filter(|l| !l.is_null()),
            timings: resp.timings.map(wire::TimingsWire::nanos),
            reasoning: reasoning.map(Cow::into_owned),
            verbatim: whole.then_some(wire),
        })
    }

    fn models_path(&self) -> &'static str {
        "/v1/models"
    }

    fn parse_models(&self, body: &[u8]) -> Result<Vec<String>, String> {
        #[derive(serde::Deserialize)]
        struct Model {
            id: String,
        }
        #[derive(serde::Deserialize)]
        struct List {
            data: Vec<Model>,
        }
        let list: List = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }

    fn parse_line(&self, line: &[u8]) -> Result<LineInfo, String> {
        // SSE: only `data:` lines matter; comments and other fields are skipped.
        let Some(data) = line.strip_prefix(b"data:") else {
            return Ok(LineInfo::default());
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            return Ok(LineInfo {
                end: true,
                ..Default::default()
            });
        }
        let chunk: wire::Response<'_> = json(data)?;
        if let Some(error) = &chunk.error {
            return Ok(LineInfo {
                error: Some(wire::error_message(error)),
                ..Default::default()
            });
        }
        let Some(choices) = chunk.choices else {
            if chunk.usage.is_some() {
                return Ok(LineInfo {
                    usage: chunk.usage.map(usage),
                    ..Default::default()
                });
            }
            return Err("a stream event that is not a completion chunk (no `choices`)".into());
        };
        let mut info = LineInfo {
            usage: chunk.usage.map(usage),
            timings: chunk.timings.map(wire::TimingsWire::nanos),
            ..Default::default()
        };
        if let Some(choice) = choices.into_iter().next() {
            match choice.delta {
                Some(d) => {
                    info.delta = d.content.map(Cow::into_owned);
                    info.reasoning = d.reasoning_content.map(Cow::into_owned);
                    info.tool_deltas = d
                        .tool_calls
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| {
                            let f = c.function.unwrap_or(wire::FunctionWire {
                                name: None,
                                arguments: None,
                            });
                            ToolDelta {
                                index: Some(c.index.unwrap_or(0)),
                                id: c.id,
                                name: f.name,
                                arguments: f.arguments.unwrap_or_default(),
                            }
                        })
                        .collect();
                    if let Some(f) = d.function_call {
                        info.tool_deltas.push(ToolDelta {
                            index: Some(0),
                            id: None,
                            name: f.name,
                            arguments: f.arguments.unwrap_or_default(),
                        });
                    }
                }
                None => info.delta = choice.text.map(Cow::into_owned),
            }
            info.finish_reason = choice.finish_reason.map(Cow::into_owned);
            // Chat chunks: `{"content": [...]}`; text chunks: `{"tokens": [...], ...}`
            // (kept whole, one entry per chunk).
            if let Some(l) = choice.logprobs.filter(|l| !l.is_null()) {
                match l.get("content").and_then(serde_json::Value::as_array) {
                    Some(entries) => info.logprobs.extend(entries.iter().cloned()),
                    None => info.logprobs.push(l),
                }
            }
        }
        Ok(info)
    }

    fn embed_path(&self) -> &'static str {
        "/v1/embeddings"
    }

    fn embed_body(&self, model: &str, req: &EmbedRequest) -> Vec<u8> {
        let mut body = serde_json::json!({
            "model": model, "input": req.input, "encoding_format": "float",
        });
        if let Some(d) = req.dimensions {
            body["dimensions"] = d.into();
        }
        if let Some(u) = &req.user {
            body["user"] = u.as_str().into();
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn parse_embed(&self, body: &[u8]) -> Result<Embedded, String> {
        parse_embeddings(body)
    }

    fn describe_request(&self, _model: &str) -> (&'static str, Option<Vec<u8>>) {
        // llama-server's `/props`; other OpenAI-kind servers have none (then nothing is
        // said beyond the pool's own view).
        ("/props", None)
    }

    fn parse_describe(&self, body: &[u8]) -> Option<serde_json::Value> {
        let props: serde_json::Value = serde_json::from_slice(body).ok()?;
        let path = props.get("model_path").and_then(serde_json::Value::as_str);
        let ctx = props
            .pointer("/default_generation_settings/n_ctx")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let vision = props
            .pointer("/modalities/vision")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let mut capabilities = vec!["completion", "tools"];
        if vision {
            capabilities.push("vision");
        }
        Some(serde_json::json!({
            "template": props.get("chat_template").cloned().unwrap_or_default(),
            "details": {
                "format": if path.is_some_and(|p| p.ends_with(".gguf")) { "gguf" } else { "" },
                "quantization_level": props.get("model_ftype").cloned().unwrap_or_default(),
            },
            "model_info": {
                "llama-server.model_path": path,
                "llama-server.context_length": ctx,
                "llama-server.build_info": props.get("build_info"),
            },
            "capabilities": capabilities,
        }))
    }

    fn refuse_embed(&self, req: &EmbedRequest) -> Result<(), Refusal> {
        if req.keep_alive.is_some() {
            return Err(Refusal::new(
                "keep_alive",
                "an OpenAI-kind server has no per-request keep-alive",
            ));
        }
        if req.truncate == Some(false) {
            return Err(Refusal::new(
                "truncate",
                "an OpenAI-kind server cannot be told not to truncate",
            ));
        }
        if let Some(name) = req.options.keys().next() {
            return Err(Refusal::new(
                format!("options.{name}"),
                "an OpenAI-kind server takes no options for embeddings",
            ));
        }
        Ok(())
    }

    fn refuse(&self, config: &ProviderConfig, req: &ProviderRequest) -> Result<(), Refusal> {
        let p = &req.params;
        if matches!(req.prompt, Prompt::Raw(_)) && !p.tools.is_empty() {
            return Err(Refusal::new(
                "tools",
                "a text completion (raw prompt) takes no tools",
            ));
        }
        if p.keep_alive.is_some() {
            return Err(Refusal::new(
                "keep_alive",
                "an OpenAI-kind server has no per-request keep-alive",
            ));
        }
        if p.think.is_some() {
            return Err(Refusal::new(
                "think",
                "an OpenAI-kind server takes no `think` flag",
            ));
        }
        if let Some(name) = p
            .options
            .keys()
            .find(|k| !SAMPLING_OPTIONS.contains(&k.as_str()))
        {
            return Err(Refusal::new(
                format!("options.{name}"),
                "an OpenAI-kind server cannot set it per request",
            ));
        }
        if !config.forward_unknown_fields()
            && let Some(name) = p.extra.keys().next()
        {
            return Err(Refusal::new(
                name.as_str(),
                "not a field the pool knows, and this provider does not forward unknown \
                 fields (forward_unknown_fields = false)",
            ));
        }
        Ok(())
    }
}

/// `/v1/embeddings`: `data[i].embedding` by `index`.
fn parse_embeddings(body: &[u8]) -> Result<Embedded, String> {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        index: Option<usize>,
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Item>,
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        usage: Option<wire::UsageWire>,
    }
    let mut list: List = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    list.data.sort_by_key(|i| i.index.unwrap_or(usize::MAX));
    Ok(Embedded {
        vectors: list.data.into_iter().map(|i| i.embedding).collect(),
        model: list.model,
        prompt_tokens: list.usage.map_or(0, |u| u.prompt_tokens),
    })
}

/// Ollama sampling options an OpenAI-kind server (llama-server, vLLM) takes under the same
/// name as a top-level field.
const SAMPLING_OPTIONS: &[&str] = &[
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "repeat_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

fn response_format(format: &Format) -> Option<serde_json::Value> {
    match format {
        Format::Text => None,
        Format::Json => Some(serde_json::json!({ "type": "json_object" })),
        Format::Schema {
            name,
            schema,
            strict,
        } => {
            let mut spec = serde_json::json!({ "name": name, "schema": &**schema });
            if let Some(strict) = strict {
                spec["strict"] = (*strict).into();
            }
            Some(serde_json::json!({ "type": "json_schema", "json_schema": spec }))
        }
    }
}

fn tool_choice(choice: &ToolChoice) -> serde_json::Value {
    match choice {
        ToolChoice::None => "none".into(),
        ToolChoice::Auto => "auto".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Function(name) => {
            serde_json::json!({ "type": "function", "function": { "name": name } })
        }
    }
}

fn message(m: &Message) -> wire::WireMessage<'_> {
    let content = if !m.parts.is_empty() {
        Some(wire::WireContent::Parts(
            m.parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => wire::WirePart::Text { text },
                    Part::Image { url, detail } => wire::WirePart::ImageUrl {
                        image_url: wire::ImageUrl {
                            url,
                            detail: detail.as_deref(),
                        },
                    },
                    Part::Audio { data, format } => wire::WirePart::InputAudio {
                        input_audio: wire::InputAudio { data, format },
                    },
                })
                .collect(),
        ))
    } else if m.content.is_empty() && !m.tool_calls.is_empty() {
        None
    } else {
        Some(wire::WireContent::Text(&m.content))
    };
    wire::WireMessage {
        role: m.role.as_str(),
        content,
        name: m.name.as_deref().filter(|_| m.role != Role::Tool),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| wire::WireToolCall {
                id: &c.id,
                kind: "function",
                function: wire::WireFunctionCall {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            })
            .collect(),
        tool_call_id: m.tool_call_id.as_deref(),
        reasoning_content: m.reasoning.as_deref(),
    }
}

/// An answer's tool calls (or its legacy `function_call`).
fn tool_calls(
    calls: Option<Vec<wire::ToolCallWire>>,
    legacy: Option<wire::FunctionWire>,
) -> Result<Vec<ToolCall>, String> {
    let mut out = Vec::new();
    for (i, c) in calls.unwrap_or_default().into_iter().enumerate() {
        let f = c.function.ok_or("a tool call without `function`")?;
        let name = f.name.ok_or("a tool call without a function name")?;
        let arguments = f.arguments.unwrap_or_default();
        out.push(match c.id {
            Some(id) => ToolCall {
                id,
                name,
                arguments,
            },
            None => ToolCall::from_text(i, &name, &arguments),
        });
    }
    if let Some(f) = legacy {
        let name = f.name.ok_or("a function call without a name")?;
        out.push(ToolCall::from_text(
            0,
            &name,
            &f.arguments.unwrap_or_default(),
        ));
    }
    Ok(out)
}

fn usage(u: wire::UsageWire) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::GenParams;

    #[test]
    fn chat_body_carries_parameters() {
        let req = ProviderRequest {
            prompt: Prompt::Chat(vec![Message::new(Role::User, "hi")]),
            params: GenParams {
                max_tokens: Some(5),
                format: Format::Json,
                ..Default::default()
            },
            ticket: Default::default(),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&OpenAi.body("m", &req, true)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "m", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true},
                "response_format": {"type": "json_object"}
            })
        );
    }

    #[test]
    fn parses_stream_lines() {
        let d = OpenAi
            .parse_line(br#"data: {"choices":[{"delta":{"content":"He"},"finish_reason":null}]}"#)
            .unwrap();
        assert_eq!(d.delta.as_deref(), Some("He"));
        let u = OpenAi
            .parse_line(
                br#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            )
            .unwrap();
        assert_eq!(
            u.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 2
            })
        );
        assert!(OpenAi.parse_line(b"data: [DONE]").unwrap().end);
        assert_eq!(
            OpenAi.parse_line(b": keep-alive").unwrap(),
            LineInfo::default()
        );
        assert!(OpenAi.parse_line(b"data: {nope").is_err());
    }

    #[test]
    fn escaped_and_non_ascii_text_is_read_whole_and_invalid_utf8_is_refused() {
        // Strings with escapes are decoded (not borrowed); the others are borrowed as they are.
        let line = r#"data: {"model":"m\u00e9","choices":[{"delta":{"content":"a\"b\\c\n\ud83d\ude00 é","reasoning":"r\tr"},"finish_reason":"st\u006fp"}]}"#;
        let d = OpenAi.parse_line(line.as_bytes()).unwrap();
        assert_eq!(d.delta.as_deref(), Some("a\"b\\c\n\u{1f600} é"));
        assert_eq!(d.reasoning.as_deref(), Some("r\tr"));
        assert_eq!(d.finish_reason.as_deref(), Some("stop"));
        let whole = OpenAi
            .parse_complete(
                r#"{"model":"m\u00e9","choices":[{"message":{"content":"x\"y"},"finish_reason":"stop"}]}"#
                    .as_bytes(),
            )
            .unwrap();
        assert_eq!(
            (whole.text.as_str(), whole.model.as_deref()),
            ("x\"y", Some("mé"))
        );
        // The body is checked as UTF-8 once, up front: invalid bytes in a string are refused.
        let e = OpenAi
            .parse_line(b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\"}}]}")
            .unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
        assert!(OpenAi.parse_complete(b"{\"model\":\"\xc3\"}").is_err());
    }

    #[test]
    fn only_answers_the_pool_would_not_reshape_may_be_handed_on() {
        let body = |choice: &str, usage: bool| {
            let usage = if usage {
                r#","usage":{"prompt_tokens":1,"completion_tokens":1}"#
            } else {
                ""
            };
            format!(r#"{{"id":"x","choices":[{choice}]{usage}}}"#)
        };
        let msg = |m: &str, finish: &str| {
            format!(
                r#"{{"index":0,"message":{{"role":"assistant",{m}}},"finish_reason":{finish}}}"#
            )
        };
        let call = r#""content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]"#;
        let cases = [
            (
                body(&msg(r#""content":"hi""#, r#""stop""#), true),
                Some(Wire::OpenAiChat),
            ),
            (
                body(r#"{"index":0,"text":"hi","finish_reason":"length"}"#, true),
                Some(Wire::OpenAiText),
            ),
            (
                body(&msg(call, r#""tool_calls""#), true),
                Some(Wire::OpenAiChat),
            ),
            // The pool would add what is missing or change what is there.
            (body(&msg(r#""content":"hi""#, r#""stop""#), false), None),
            (body(&msg(r#""content":"hi""#, "null"), true), None),
            (body(&msg(call, r#""function_call""#), true), None),
            (
                body(
                    &msg(&call.replace(r#""id":"c1","#, ""), r#""tool_calls""#),
                    true,
                ),
                None,
            ),
            (
                body(
                    &msg(
                        r#""content":null,"function_call":{"name":"f","arguments":"{}"}"#,
                        r#""function_call""#,
                    ),
                    true,
                ),
                None,
            ),
            (
                body(
                    &msg(r#""content":"hi","reasoning":"hmm""#, r#""stop""#),
                    true,
                ),
                None,
            ),
            (
                body(
                    &format!(
                        "{},{}",
                        msg(r#""content":"a""#, r#""stop""#),
                        msg(r#""content":"b""#, r#""stop""#)
                    ),
                    true,
                ),
                None,
            ),
        ];
        for (body, wire) in cases {
            let parsed = OpenAi.parse_complete(body.as_bytes()).unwrap();
            assert_eq!(parsed.verbatim, wire, "{body}");
        }
    }

    #[test]
    fn error_events_and_foreign_bodies_are_not_answers() {
        let e = OpenAi
            .parse_line(br#"data: {"error": {"message": "out of memory", "code": 500}}"#)
            .unwrap();
        assert_eq!(e.error.as_deref(), Some("out of memory"));
        assert!(OpenAi.parse_line(br#"data: {"status": "ok"}"#).is_err());
        assert!(
            OpenAi
                .parse_complete(br#"{"error": {"message": "busy"}}"#)
                .is_err()
        );
        assert!(OpenAi.parse_complete(br#"{"object": "list"}"#).is_err());
    }
}
