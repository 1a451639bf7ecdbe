//! The cache key: SHA-256 over a canonical encoding of everything that changes the answer.
//!
//! [`KeyFields`] is the one list of those fields. It is built from the resolved [`Plan`] —
//! after the surface's wire format was translated — so equal requests arriving on gRPC,
//! `/v1/query`, the OpenAI or the Ollama routes share a key. The upstream request is taken
//! apart with an exhaustive pattern: a field added to `ProviderRequest` or `GenParams` that
//! the key does not cover fails to compile here.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::raw::{AcceptRule, OnDisagreement, OutputKind, StrategyKind};
use serde_json::{Map, Value};

use crate::providers::{Format, GenParams, Message, Prompt, ProviderRequest, Tool, ToolChoice};
use crate::types::Plan;

/// Bumped when the encoding changes, so old entries (e.g. in Redis) are never misread.
const KEY_VERSION: u32 = 3;

/// A cache key.
pub type Key = [u8; 32];

/// Everything that changes an answer.
#[derive(Serialize)]
struct KeyFields<'a> {
    version: u32,
    /// The task (`None`: a provider called directly).
    task: Option<&'a str>,
    /// The candidate set, in order, fallbacks last: (provider, upstream model).
    providers: Vec<(&'a str, &'a str)>,
    strategy: StrategyKind,
    n: usize,
    choices: usize,
    ensemble: Ensemble<'a>,
    prompt: PromptKey<'a>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    stop: &'a [String],
    // The fields below are left out when unset (absent means unset, so the encoding stays
    // unambiguous), which keeps the common request's key short to write and to hash.
    /// `None` for text; `json`; or the request's schema as canonical JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(skip_serializing_if = "<[Tool]>::is_empty")]
    tools: &'a [Tool],
    #[serde(skip_serializing_if = "unset")]
    tool_choice: &'a Option<ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "unset")]
    logit_bias: &'a Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "unset")]
    user: &'a Option<String>,
    #[serde(skip_serializing_if = "no_entries")]
    options: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "unset")]
    keep_alive: &'a Option<Value>,
    #[serde(skip_serializing_if = "unset")]
    think: &'a Option<Value>,
    #[serde(skip_serializing_if = "no_entries")]
    extra: &'a Map<String, Value>,
    output: OutputKind,
    labels: &'a [String],
    /// The JSON Schema answers must satisfy, as canonical JSON.
    schema: Option<String>,
}

fn unset<T>(o: &&Option<T>) -> bool {
    o.is_none()
}

fn no_entries(m: &&Map<String, Value>) -> bool {
    m.is_empty()
}

/// SHA-256 of an encoding.
pub(crate) struct Hashing;

impl Hashing {
    /// SHA-256 of `value`'s JSON encoding. The encoding is written into a buffer and hashed
    /// in one call: serde writes a key in many small pieces, and each piece fed to the hash
    /// alone costs more than copying it.
    pub(crate) fn digest(value: &impl Serialize) -> [u8; 32] {
        let mut buf = Vec::with_capacity(2048);
        // Writing into a Vec cannot fail, and the values hashed always serialise.
        let _ = serde_json::to_writer(&mut buf, value);
        Sha256::digest(&buf).into()
    }
}

/// The ensemble parameters that can change which answer wins.
#[derive(Serialize)]
struct Ensemble<'a> {
    sample_temperature: f32,
    similarity: Option<f64>,
    early_stop: bool,
    min_agreement: Option<f64>,
    min_votes: usize,
    on_disagreement: OnDisagreement,
    confidence: Option<f64>,
    min_confidence: Option<f64>,
    on_low_confidence: crate::config::raw::OnLowConfidence,
    answer_space: Option<u32>,
    judge: Option<&'a str>,
    accept: AcceptRule,
    accept_threshold: f64,
}

#[derive(Serialize)]
enum PromptKey<'a> {
    Chat(&'a [Message]),
    Raw(&'a str),
}

/// The key of a planned request.
pub fn key(plan: &Plan) -> Key {
    let ProviderRequest {
        prompt,
        params,
        ticket: _,
    } = &*plan.request;
    let GenParams {
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        format,
        tools,
        tool_choice,
        parallel_tool_calls,
        presence_penalty,
        frequency_penalty,
        logit_bias,
        logprobs,
        top_logprobs,
        user,
        options,
        keep_alive,
        think,
        extra,
    } = params;
    let task = &plan.task;
    let e = &task.ensemble();
    let fields = KeyFields {
        version: KEY_VERSION,
        task: plan.task_name.as_deref(),
        providers: plan
            .providers
            .iter()
            .map(|p| (p.name(), p.model()))
            .collect(),
        strategy: plan.strategy,
        n: plan.n,
        choices: plan.choices,
        ensemble: Ensemble {
            sample_temperature: e.sample_temperature(),
            similarity: e.similarity(),
            early_stop: e.early_stop(),
            min_agreement: e.min_agreement(),
            min_votes: e.min_votes(),
            on_disagreement: e.on_disagreement(),
            confidence: e.confidence(),
            min_confidence: e.min_confidence(),
            on_low_confidence: e.on_low_confidence(),
            answer_space: e.answer_space(),
            judge: e.judge(),
            accept: e.accept(),
            accept_threshold: e.accept_threshold(),
        },
        prompt: match prompt {
            Prompt::Chat(m) => PromptKey::Chat(m),
            Prompt::Raw(s) => PromptKey::Raw(s),
        },
        max_tokens: *max_tokens,
        temperature: *temperature,
        top_p: *top_p,
        seed: *seed,
        stop,
        format: match format {
            Format::Text => None,
            Format::Json => Some("json".to_owned()),
            Format::Schema {
                name,
                schema,
                strict,
            } => Some(crate::types::normalize::canonical_json(
                &serde_json::json!({
                    "name": name, "schema": &**schema, "strict": strict,
                }),
            )),
        },
        tools,
        tool_choice,
        parallel_tool_calls: *parallel_tool_calls,
        presence_penalty: *presence_penalty,
        frequency_penalty: *frequency_penalty,
        logit_bias,
        logprobs: *logprobs,
        top_logprobs: *top_logprobs,
        user,
        options,
        keep_alive,
        think,
        extra,
        output: task.output(),
        labels: task.labels(),
        schema: task
            .schema_source()
            .map(crate::types::normalize::canonical_json),
    };
    // serde_json writes struct fields in declaration order and (without the
    // `preserve_order` feature) map keys sorted: a canonical encoding.
    Hashing::digest(&fields)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::orchestrator::PoolRequest;
    use crate::providers::Role;
    use crate::testing::{FakeProvider, ProviderCall};

    const TASK: &str =
        "template = \"Q: {{input}} in {{lang}}\"\nvariables = [\"lang\"]\ncache_ttl_secs = 60\n";

    fn snap(extra: &str) -> crate::live::Snapshot {
        let a = FakeProvider::new("a", ProviderCall::reply_after(1, "x"));
        let b = FakeProvider::new("b", ProviderCall::reply_after(1, "x"));
        crate::testing::snapshot(&format!("{TASK}{extra}"), &[(&a, ""), (&b, "")], None)
    }

    fn base() -> PoolRequest {
        PoolRequest {
            task: Some("t".into()),
            input: Some("why".into()),
            variables: HashMap::from([("lang".into(), "en".into())]),
            ..Default::default()
        }
    }

    fn k(snapshot: &crate::live::Snapshot, req: PoolRequest) -> Key {
        key(&req.plan(snapshot).expect("valid request"))
    }

    #[test]
    fn every_answer_changing_field_changes_the_key() {
        let s = snap("");
        let original = k(&s, base());
        assert_eq!(original, k(&s, base()), "the key is stable");
        let variants: Vec<(&str, PoolRequest)> = vec![
            (
                "input",
                PoolRequest {
                    input: Some("how".into()),
                    ..base()
                },
            ),
            (
                "variables",
                PoolRequest {
                    variables: HashMap::from([("lang".into(), "fr".into())]),
                    ..base()
                },
            ),
            (
                "max_tokens",
                PoolRequest {
                    max_tokens: Some(5),
                    ..base()
                },
            ),
            (
                "temperature",
                PoolRequest {
                    temperature: Some(0.3),
                    ..base()
                },
            ),
            (
                "top_p",
                PoolRequest {
                    top_p: Some(0.5),
                    ..base()
                },
            ),
            (
                "seed",
                PoolRequest {
                    seed: Some(1),
                    ..base()
                },
            ),
            (
                "stop",
                PoolRequest {
                    stop: vec!["\n".into()],
                    ..base()
                },
            ),
            (
                "json",
                PoolRequest {
                    format: Format::Json,
                    ..base()
                },
            ),
            (
                "schema",
                PoolRequest {
                    format: Format::Schema {
                        name: "s".into(),
                        schema: std::sync::Arc::new(serde_json::json!({"type": "object"})),
                        strict: None,
                    },
                    ..base()
                },
            ),
            (
                "tools",
                PoolRequest {
                    tools: vec![Tool {
                        name: "f".into(),
                        description: None,
                        parameters: None,
                        strict: None,
                    }],
                    ..base()
                },
            ),
            (
                "logprobs",
                PoolRequest {
                    logprobs: true,
                    ..base()
                },
            ),
            (
                "extra",
                PoolRequest {
                    extra: serde_json::Map::from_iter([(
                        "reasoning_effort".to_owned(),
                        "low".into(),
                    )]),
                    ..base()
                },
            ),
            (
                "strategy",
                PoolRequest {
                    strategy: Some(StrategyKind::Voting),
                    ..base()
                },
            ),
            (
                "n",
                PoolRequest {
                    n: Some(1),
                    ..base()
                },
            ),
            (
                "history",
                PoolRequest {
                    messages: vec![crate::providers::Message::new(Role::Assistant, "hi")],
                    ..base()
                },
            ),
        ];
        for (what, req) in variants {
            assert_ne!(k(&s, req), original, "{what} must change the key");
        }
        // Config that changes the answer changes the key too.
        for extra in [
            "max_tokens = 7\n",
            "system = \"be terse\"\n",
            "min_agreement = 0.9\n",
            "min_confidence = 0.9\n",
            "confidence = 0.9\n",
            "output = \"json\"\n",
        ] {
            assert_ne!(
                k(&snap(extra), base()),
                original,
                "{extra} must change the key"
            );
        }
        // Config that does not change the answer leaves it.
        assert_eq!(k(&snap("deadline_ms = 1234\n"), base()), original);
    }

    #[test]
    fn json_schema_field_order_does_not_matter() {
        let a =
            snap("output = \"json\"\n[tasks.t.schema]\ntype = \"object\"\nrequired = [\"x\"]\n");
        let b =
            snap("output = \"json\"\n[tasks.t.schema]\nrequired = [\"x\"]\ntype = \"object\"\n");
        assert_eq!(k(&a, base()), k(&b, base()));
        let c =
            snap("output = \"json\"\n[tasks.t.schema]\nrequired = [\"y\"]\ntype = \"object\"\n");
        assert_ne!(k(&a, base()), k(&c, base()));
    }

    proptest::proptest! {
        /// The order variables arrive in never matters.
        #[test]
        fn variable_order_does_not_matter(pairs in proptest::collection::btree_map("[a-z]{1,4}", "[a-z ]{0,8}", 1..6)) {
            let s = snap("");
            let forward: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.clone(), v.clone())).chain([("lang".to_owned(), "en".to_owned())]).collect();
            let backward: HashMap<String, String> = pairs.iter().rev().map(|(k, v)| (k.clone(), v.clone())).chain([("lang".to_owned(), "en".to_owned())]).collect();
            let a = k(&s, PoolRequest { variables: forward, ..base() });
            let b = k(&s, PoolRequest { variables: backward, ..base() });
            proptest::prop_assert_eq!(a, b);
        }
    }
}
