//! The OpenAI dialect of the shared HTTP provider.

use super::wire;
use crate::providers::http::{Dialect, LineInfo, Parsed};
use crate::providers::{Prompt, ProviderRequest, Usage};

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
            response_format: (p.json && matches!(req.prompt, Prompt::Chat(_))).then_some(
                wire::ResponseFormat {
                    kind: "json_object",
                },
            ),
        };
        let body = match &req.prompt {
            Prompt::Chat(messages) => serde_json::to_vec(&wire::ChatRequest {
                model,
                messages,
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
        let resp: wire::Response = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if let Some(error) = &resp.error {
            return Err(format!(
                "error in place of an answer: {}",
                wire::error_message(error)
            ));
        }
        let choice = resp
            .choices
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or("no choices in the response")?;
        let text = choice
            .message
            .and_then(|m| m.content)
            .or(choice.text)
            .ok_or("the choice has no content")?;
        Ok(Parsed {
            text,
            model: resp.model,
            usage: resp.usage.map(usage).unwrap_or_default(),
            finish_reason: choice.finish_reason,
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
        let chunk: wire::Response = serde_json::from_slice(data).map_err(|e| e.to_string())?;
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
            ..Default::default()
        };
        if let Some(choice) = choices.into_iter().next() {
            info.delta = choice.delta.and_then(|d| d.content).or(choice.text);
            info.finish_reason = choice.finish_reason;
        }
        Ok(info)
    }
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
    use crate::providers::{GenParams, Message, Role};

    #[test]
    fn chat_body_carries_parameters() {
        let req = ProviderRequest {
            prompt: Prompt::Chat(vec![Message {
                role: Role::User,
                content: "hi".into(),
            }]),
            params: GenParams {
                max_tokens: Some(5),
                json: true,
                ..Default::default()
            },
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
