//! Prompt templates: `{{name}}` placeholders, parsed once at config load.
//!
//! A leading `<!-- ... -->` block documents the template's variables for humans and is not
//! sent to the model. `{{ name }}` (with spaces) is accepted too. There is no escaping and no
//! logic: prompts stay plain text.

use std::collections::HashMap;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// Length of the literal text, to size the output buffer once.
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// A variable the template uses but the request did not supply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing template variable `{0}`")]
pub struct MissingVariable(pub String);

impl Template {
    /// Parses template text. Fails on an unclosed `{{` or an empty or malformed name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = strip_doc_comment(text);
        let mut parts = Vec::new();
        let mut literal_len = 0;
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                literal_len += start;
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "unclosed `{{` in template".to_owned())?;
            let name = after[..end].trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(format!(
                    "bad variable name `{{{{{}}}}}` in template",
                    &after[..end]
                ));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            literal_len += rest.len();
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts, literal_len })
    }

    /// The variables the template uses, in order of first use.
    pub fn variables(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for part in &self.parts {
            if let Part::Var(v) = part
                && !seen.contains(&v.as_str())
            {
                seen.push(v.as_str());
            }
        }
        seen
    }

    /// Renders with `input` as `{{input}}` and `vars` for the rest. A variable the template
    /// uses but nobody supplied is an error, never an empty string.
    pub fn render(
        &self,
        input: Option<&str>,
        vars: &HashMap<String, String>,
    ) -> Result<String, MissingVariable> {
        let mut out = String::with_capacity(self.literal_len + input.map_or(0, str::len) + 64);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(name) => {
                    let value = vars
                        .get(name)
                        .map(String::as_str)
                        .or(if name == "input" { input } else { None })
                        .ok_or_else(|| MissingVariable(name.clone()))?;
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

fn strip_doc_comment(text: &str) -> &str {
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("<!--")
        && let Some(end) = rest.find("-->")
    {
        return rest[end + 3..].trim_start_matches(['\r', '\n']);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_input_and_variables() {
        let t = Template::parse("Q: {{input}} ({{ n }} ways, {{n}})").unwrap();
        assert_eq!(t.variables(), vec!["input", "n"]);
        let out = t.render(Some("why?"), &vars(&[("n", "3")])).unwrap();
        assert_eq!(out, "Q: why? (3 ways, 3)");
    }

    #[test]
    fn missing_variable_is_an_error() {
        let t = Template::parse("{{input}} {{lang}}").unwrap();
        assert_eq!(
            t.render(Some("x"), &HashMap::new()),
            Err(MissingVariable("lang".into()))
        );
        assert_eq!(
            t.render(None, &vars(&[("lang", "en")])),
            Err(MissingVariable("input".into()))
        );
    }

    #[test]
    fn strips_leading_doc_comment() {
        let t = Template::parse("<!-- variables: input -->\nHello {{input}}").unwrap();
        assert_eq!(t.render(Some("you"), &HashMap::new()).unwrap(), "Hello you");
    }

    #[test]
    fn rejects_malformed_placeholders() {
        assert!(Template::parse("{{input").is_err());
        assert!(Template::parse("{{}}").is_err());
        assert!(Template::parse("{{a b}}").is_err());
    }
}
