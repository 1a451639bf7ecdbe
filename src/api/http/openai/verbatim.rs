//! Answers handed on as the upstream wrote them: when the winning upstream speaks this
//! surface's dialect and the answer is exactly what it said (see
//! [`crate::providers::Verbatim`]), its body goes back with only the members the pool owns
//! replaced — `id` (the pool's request id, which feedback names), `model` (what the caller
//! asked for) and `llm_pool` (the Decision). Every other member, those the pool knows
//! (`choices`, `usage`) and those it does not (`system_fingerprint`, llama-server's
//! `timings` …), is copied byte for byte: nothing is decoded into values or re-encoded.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use super::wire;
use crate::providers::{Verbatim, Wire};
use crate::types::Answer;

/// The body of `answer` for a caller of `wire`, with the pool's members in place; `None`
/// when the answer is not its upstream's words in that dialect (then it is encoded whole).
pub(super) fn body(answer: &Answer, wire: Wire, id: &str, model: &str) -> Option<Vec<u8>> {
    let Verbatim { wire: came, body } = answer.verbatim.as_ref()?;
    if *came != wire || answer.cache_hit || !answer.alternatives.is_empty() {
        return None;
    }
    let ext = wire::Extension {
        provider: &answer.provider,
        cache_hit: answer.cache_hit,
        decision: &answer.decision,
    };
    patched(body, id, model, &ext)
}

/// An object's members, in order, each value as its raw JSON text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(member) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// `body` (a JSON object) with `id` and `model` set and `llm_pool` (the pool's extension)
/// last; every other member as it was, in its place.
fn patched(body: &[u8], id: &str, model: &str, ext: &impl serde::Serialize) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len() + 1024);
    out.push(b'{');
    let (mut had_id, mut had_model) = (false, false);
    for (key, value) in &members {
        let value = match &**key {
            // An upstream that is itself a pool: its Decision is not this one.
            "llm_pool" => continue,
            "id" if !had_id => {
                had_id = true;
                None
            }
            "model" if !had_model => {
                had_model = true;
                None
            }
            // A repeated `id` or `model` would let the upstream's win in some readers.
            "id" | "model" => continue,
            _ => Some(value.get()),
        };
        if out.len() > 1 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &**key).ok()?;
        out.push(b':');
        match value {
            Some(raw) => out.extend_from_slice(raw.as_bytes()),
            None if &**key == "id" => serde_json::to_writer(&mut out, id).ok()?,
            None => serde_json::to_writer(&mut out, model).ok()?,
        }
    }
    for (missing, name, value) in [(!had_id, "id", id), (!had_model, "model", model)] {
        if missing {
            if out.len() > 1 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            serde_json::to_writer(&mut out, value).ok()?;
        }
    }
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"llm_pool\":");
    serde_json::to_writer(&mut out, ext).ok()?;
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn patch(body: &str) -> Value {
        let out = patched(body.as_bytes(), "chatcmpl-r1", "task:t", &json!({"d": 1})).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn only_the_pools_members_change_and_the_rest_keep_their_bytes_and_order() {
        let body = r#"{"id":"up-1","object":"chat.completion","created":7,"model":"smol",
            "system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant",
            "content":"caf\u00e9 \"quoted\"\n"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,
            "prompt_tokens_details":{"cached_tokens":1}},"timings":{"prompt_ms":1.5}}"#;
        let out = String::from_utf8(
            patched(body.as_bytes(), "chatcmpl-r1", "task:t", &json!({"d": 1})).unwrap(),
        )
        .unwrap();
        // The text keeps the upstream's own escapes: it was not decoded and re-encoded.
        assert!(
            out.contains(r#""content":"caf\u00e9 \"quoted\"\n""#),
            "{out}"
        );
        let members = serde_json::from_str::<serde_json::Map<String, Value>>(&out).unwrap();
        assert_eq!(members.len(), 9, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["id"], "chatcmpl-r1");
        assert_eq!(v["model"], "task:t");
        assert_eq!(v["llm_pool"], json!({"d": 1}));
        assert_eq!(v["system_fingerprint"], "fp_1");
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(v["timings"]["prompt_ms"], 1.5);
        assert_eq!(v["choices"][0]["message"]["content"], "café \"quoted\"\n");
        assert!(
            out.find("\"id\"") < out.find("\"object\""),
            "id stays first: {out}"
        );
        assert!(
            out.find("\"model\"") < out.find("\"system_fingerprint\""),
            "model stays in its place: {out}"
        );
        assert!(out.ends_with(r#""llm_pool":{"d":1}}"#), "{out}");
    }

    #[test]
    fn an_upstream_decision_or_a_repeated_id_is_not_handed_on() {
        let v = patch(r#"{"id":"a","id":"b","model":"m","llm_pool":{"d":2},"choices":[]}"#);
        assert_eq!(
            v,
            json!({"id": "chatcmpl-r1", "model": "task:t", "choices": [], "llm_pool": {"d": 1}})
        );
        let raw = patched(
            br#"{"id":"a","id":"b","choices":[]}"#,
            "x",
            "m",
            &json!(null),
        )
        .unwrap();
        assert_eq!(raw.windows(4).filter(|w| w == b"\"id\"").count(), 1);
    }

    #[test]
    fn missing_members_are_added_and_escaped_keys_survive() {
        let v = patch(r#"{"choices":[],"we\"ird":1}"#);
        assert_eq!(
            v,
            json!({"choices": [], "we\"ird": 1, "id": "chatcmpl-r1", "model": "task:t", "llm_pool": {"d": 1}})
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_not_patched() {
        for body in ["[1]", "\"s\"", "{", ""] {
            assert!(
                patched(body.as_bytes(), "i", "m", &json!(null)).is_none(),
                "{body}"
            );
        }
    }
}
