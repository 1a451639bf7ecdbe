//! Output kinds: whether an answer is valid for its task, and its normalised form.
//!
//! - `text`: any answer with non-whitespace content; compared as is.
//! - `json`: a JSON value; Markdown code fences and prose around one object or array are
//!   tolerated; the normalised form is canonical JSON (sorted keys, no spaces).
//! - `label`: one of the task's labels, matched ignoring case, whitespace and punctuation;
//!   when the model adds words around it, the answer is valid if exactly one label appears
//!   in it as a whole word sequence.
//! - `tool_call`: an answer that calls one or more of the request's tools; the normalised
//!   form is the calls' names and arguments as canonical JSON (ids left out), so candidates
//!   that call the same function with the same arguments agree.
//!
//! Whatever the kind, an answer that calls tools is checked as calls (each names a tool the
//! request offered, with JSON arguments), and a request that asked for JSON
//! (`response_format`, Ollama `format`) gets only JSON that satisfies its schema.

use std::sync::Arc;

use super::normalize::{canonical_json, normalize_label};
use crate::config::TaskConfig;
use crate::config::raw::OutputKind;
use crate::providers::{Completion, Format, ProviderRequest, ToolCall};

/// What a valid answer to one request looks like: the task's kind, labels and schema, and
/// the request's own format, schema and tools.
#[derive(Clone)]
pub struct Expect {
    task: Arc<TaskConfig>,
    /// The request asked for JSON.
    json: bool,
    schema: Option<Arc<jsonschema::Validator>>,
    /// The request, for the tools it offers.
    request: Arc<ProviderRequest>,
}

impl Expect {
    /// The expectation of `req` under `task`; the error says why the request's JSON Schema
    /// is not one.
    pub fn new(task: Arc<TaskConfig>, req: &Arc<ProviderRequest>) -> Result<Self, String> {
        let p = &req.params;
        let schema = match &p.format {
            Format::Schema { schema, .. } => Some(Arc::new(
                jsonschema::validator_for(schema).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        Ok(Self {
            json: p.format.is_json() && task.output() != OutputKind::Json,
            schema,
            request: Arc::clone(req),
            task,
        })
    }

    /// Whether the answer must be checked whole before any of it is sent (anything but
    /// free text).
    pub fn needs_whole(&self) -> bool {
        self.task.output() != OutputKind::Text || self.json || self.schema.is_some()
    }

    /// Checks one answer; returns its normalised form or why it is invalid.
    pub fn check(&self, c: &Completion) -> Result<String, String> {
        if !c.tool_calls.is_empty() {
            return self.check_calls(&c.tool_calls);
        }
        if self.task.output() == OutputKind::ToolCall {
            return Err("the answer calls no tool".to_owned());
        }
        let normalized = check(&self.task, &c.text)?;
        if !self.json && self.schema.is_none() {
            return Ok(normalized);
        }
        let value = parse_json(&c.text).ok_or_else(|| "not valid JSON".to_owned())?;
        if let Some(schema) = &self.schema
            && let Some(error) = schema.iter_errors(&value).next()
        {
            return Err(format!(
                "violates the request's schema at {}: {error}",
                error.instance_path()
            ));
        }
        Ok(canonical_json(&value))
    }

    fn check_calls(&self, calls: &[ToolCall]) -> Result<String, String> {
        let mut canonical = Vec::with_capacity(calls.len());
        for call in calls {
            if !self
                .request
                .params
                .tools
                .iter()
                .any(|t| t.name == call.name)
            {
                return Err(format!(
                    "calls `{}`, which the request does not offer",
                    call.name
                ));
            }
            let arguments = call
                .arguments_value()
                .map_err(|e| format!("the arguments of `{}` are not JSON: {e}", call.name))?;
            canonical.push(serde_json::json!({ "name": call.name, "arguments": arguments }));
        }
        Ok(canonical_json(&serde_json::Value::Array(canonical)))
    }
}

/// Checks `text` against the task's output kind (and JSON Schema); returns the normalised
/// answer or why it is invalid.
pub fn check(task: &TaskConfig, text: &str) -> Result<String, String> {
    let normalized = check_kind(task.output(), task.labels(), text)?;
    if let Some(schema) = &task.schema() {
        let value: serde_json::Value =
            serde_json::from_str(&normalized).map_err(|e| e.to_string())?;
        if let Some(error) = schema.iter_errors(&value).next() {
            return Err(format!(
                "violates the schema at {}: {error}",
                error.instance_path()
            ));
        }
    }
    Ok(normalized)
}

/// Checks `text` against an output kind alone.
pub fn check_kind(kind: OutputKind, labels: &[String], text: &str) -> Result<String, String> {
    match kind {
        OutputKind::Text => {
            if text.trim().is_empty() {
                Err("empty answer".to_owned())
            } else {
                Ok(text.to_owned())
            }
        }
        OutputKind::Json => parse_json(text)
            .map(|v| canonical_json(&v))
            .ok_or_else(|| "not valid JSON".to_owned()),
        OutputKind::Label => match_label(labels, text)
            .map(str::to_owned)
            .ok_or_else(|| "not one of the task's labels".to_owned()),
        OutputKind::ToolCall => Err("the answer calls no tool".to_owned()),
    }
}

fn match_label<'a>(labels: &'a [String], text: &str) -> Option<&'a str> {
    let norm = normalize_label(text);
    if let Some(l) = labels.iter().find(|l| normalize_label(l) == norm) {
        return Some(l);
    }
    // Extra words around the label: accept when exactly one label occurs as whole words.
    let padded = format!("_{norm}_");
    let mut found = labels
        .iter()
        .filter(|l| padded.contains(&format!("_{}_", normalize_label(l))));
    match (found.next(), found.next()) {
        (Some(l), None) => Some(l),
        _ => None,
    }
}

fn parse_json(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    // Code fences: ```json ... ```
    let unfenced = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|s| s.trim_end().strip_suffix("```"));
    if let Some(inner) = unfenced
        && let Ok(v) = serde_json::from_str(inner.trim())
    {
        return Some(v);
    }
    // Prose around one object or array.
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(a), Some(b)) = (t.find(open), t.rfind(close))
            && a < b
            && let Ok(v) = serde_json::from_str(&t[a..=b])
        {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["MEDICINE", "COMPUTER_SCIENCE", "LAW"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    #[test]
    fn labels_match_loosely_but_not_ambiguously() {
        let l = labels();
        assert_eq!(
            check_kind(OutputKind::Label, &l, " computer science. ").unwrap(),
            "COMPUTER_SCIENCE"
        );
        assert_eq!(
            check_kind(OutputKind::Label, &l, "Label: MEDICINE").unwrap(),
            "MEDICINE"
        );
        assert!(check_kind(OutputKind::Label, &l, "LAW or MEDICINE").is_err());
        assert!(check_kind(OutputKind::Label, &l, "lawyer").is_err());
        assert!(check_kind(OutputKind::Label, &l, "").is_err());
    }

    #[test]
    fn json_is_extracted_and_canonical() {
        let a = check_kind(
            OutputKind::Json,
            &[],
            "```json\n{\"b\": 1, \"a\": [1, 2]}\n```",
        )
        .unwrap();
        let b = check_kind(OutputKind::Json, &[], "Here: {\"a\":[1,2],\"b\":1} done").unwrap();
        assert_eq!(a, r#"{"a":[1,2],"b":1}"#);
        assert_eq!(a, b);
        assert!(check_kind(OutputKind::Json, &[], "{nope").is_err());
    }

    #[test]
    fn text_must_not_be_blank() {
        assert!(check_kind(OutputKind::Text, &[], " \n").is_err());
        assert_eq!(check_kind(OutputKind::Text, &[], "hi").unwrap(), "hi");
    }
}
