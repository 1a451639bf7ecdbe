//! The Ollama dialect of the shared HTTP provider.

use super::wire;
use crate::providers::http::{Dialect, LineInfo, Parsed};
use crate::providers::{Prompt, ProviderRequest, Usage};

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
        };
        let format = p.json.then_some("json");
        let body = match &req.prompt {
            Prompt::Chat(messages) => serde_json::to_vec(&wire::ChatRequest {
                model,
                messages,
                stream,
                options,
                format,
            }),
            Prompt::Raw(prompt) => serde_json::to_vec(&wire::GenerateRequest {
                model,
                prompt,
                raw: true,
                stream,
                options,
                format,
            }),
        };
        body.unwrap_or_default()
    }

    fn parse_complete(&self, body: &[u8]) -> Result<Parsed, String> {
        let resp: wire::Response = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if let Some(error) = resp.error {
            return Err(error);
        }
        if resp.done != Some(true) {
            return Err("the answer is not complete (`done` is not true)".into());
        }
        let usage = usage(&resp);
        let text = resp
            .message
            .map(|m| m.content)
            .or(resp.response)
            .ok_or("the response has neither `message` nor `response`")?;
        Ok(Parsed {
            text,
            model: resp.model,
            usage,
            finish_reason: resp.done_reason,
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
        let resp: wire::Response = serde_json::from_slice(line).map_err(|e| e.to_string())?;
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
        let finish_reason = if done {
            Some(resp.done_reason.unwrap_or_else(|| "stop".to_owned()))
        } else {
            None
        };
        Ok(LineInfo {
            delta: resp.message.map(|m| m.content).or(resp.response),
            finish_reason,
            usage,
            end: done,
            error: None,
        })
    }
}

fn usage(r: &wire::Response) -> Usage {
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
}
