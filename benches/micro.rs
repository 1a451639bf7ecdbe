//! Criterion micro-benchmarks of the request path's pure functions: request decoding
//! (OpenAI and native JSON), planning (validation, template, providers), the cache key,
//! template rendering and answer grouping.
//!
//! `cargo bench --bench micro`; under `cargo test` each runs once (criterion's test mode).

use std::collections::HashMap;
use std::hint::black_box;

use axum::body::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use llm_pool::api::http::decode;
use llm_pool::config::Template;
use llm_pool::config::raw::OutputKind;
use llm_pool::orchestrator::PoolRequest;
use llm_pool::strategies::grouping::{Groups, normalize_text};
use llm_pool::testing::{FakeProvider, ProviderCall};

const CHAT: &[u8] = br#"{"model":"task:t","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Classify this note: patient reports chest pain after exercise."}],"max_tokens":64,"temperature":0,"stream":false}"#;
const QUERY: &[u8] = br#"{"task":"t","input":"patient reports chest pain after exercise","variables":{"lang":"English"},"max_tokens":64}"#;

fn decoding(c: &mut Criterion) {
    let headers = HeaderMap::new();
    c.bench_function("decode openai chat", |b| {
        b.iter(|| decode::openai_chat(Bytes::from_static(black_box(CHAT)), &headers))
    });
    c.bench_function("decode native query", |b| {
        b.iter(|| decode::native_query(Bytes::from_static(black_box(QUERY)), &headers))
    });
}

fn planning_and_key(c: &mut Criterion) {
    let p = FakeProvider::new("p", ProviderCall::reply_after(0, "x"));
    let snapshot = llm_pool::testing::snapshot(
        "template = \"Classify {{input}} in {{lang}}\"\nvariables = [\"lang\"]\ntemperature = 0.0\ncache_ttl_secs = 60",
        &[(&p, "")],
        None,
    );
    let request =
        || decode::native_query(Bytes::from_static(QUERY), &HeaderMap::new()).expect("valid");
    c.bench_function("plan", |b| {
        b.iter_batched(
            request,
            |req: PoolRequest| req.plan(&snapshot),
            criterion::BatchSize::SmallInput,
        )
    });
    let plan = request().plan(&snapshot).expect("plan");
    c.bench_function("cache key", |b| {
        b.iter(|| llm_pool::cache::key::key(black_box(&plan)))
    });
}

fn templates(c: &mut Criterion) {
    let t = Template::parse(
        "You sort documents into domains.\nDomains: {{labels}}\nDocument:\n{{input}}\nAnswer in {{lang}}.",
    )
    .expect("template");
    let vars: HashMap<String, String> = [
        (
            "labels".to_owned(),
            "MEDICINE, LAW, FINANCE, SPORT".to_owned(),
        ),
        ("lang".to_owned(), "English".to_owned()),
    ]
    .into();
    let input = "patient reports chest pain after exercise ".repeat(8);
    c.bench_function("template render", |b| {
        b.iter(|| t.render(Some(black_box(&input)), &vars))
    });
}

fn grouping(c: &mut Criterion) {
    let answers = [
        "The patient should see a cardiologist.",
        "the patient should see a Cardiologist",
        "Patient should consult a cardiologist soon.",
        "See a cardiologist.",
        "The patient should see a cardiologist!",
    ];
    c.bench_function("group 5 text answers (jaccard 0.6)", |b| {
        b.iter(|| {
            let mut g = Groups::new(OutputKind::Text, Some(0.6));
            for (i, a) in answers.iter().enumerate() {
                g.add(black_box(a), i, 1.0, OutputKind::Text);
            }
            g.leader()
        })
    });
    c.bench_function("normalize text", |b| {
        b.iter(|| normalize_text(black_box(answers[0])))
    });
}

criterion_group!(benches, decoding, planning_and_key, templates, grouping);
criterion_main!(benches);
