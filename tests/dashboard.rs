//! `deploy/grafana/llm-pool.json` is a dashboard Grafana imports (its model: unique panel
//! ids, a Prometheus datasource variable every query uses, panels on the 24-column grid
//! without overlaps, queries with balanced brackets), and it shows only what the pool
//! exports: every metric it names is one of `telemetry::metrics`, and every label it groups
//! or filters by is a label the pool really sets (checked on `/metrics` after traffic).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

fn dashboard() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/llm-pool.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON")
}

/// The metric names the pool defines (`pub const X: &str = "llm_pool_..."`).
fn defined() -> BTreeSet<String> {
    let src = include_str!("../src/telemetry/metrics.rs");
    src.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.starts_with("pub const ")
                .then(|| l.split('"').nth(1))
                .flatten()
                .filter(|n| n.starts_with("llm_pool_"))
                .map(str::to_owned)
        })
        .collect()
}

fn queries(d: &serde_json::Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect()
}

/// The `llm_pool_*` names in a query, with histogram suffixes taken off.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("llm_pool_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_owned());
        rest = &tail[end..];
    }
    out
}

/// Labels a query groups by (`by (a, b)`) or selects on (`{a="x"}`), `le` aside.
fn labels_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (open, close) in [("by (", ')'), ("{", '}')] {
        let mut rest = expr;
        while let Some(i) = rest.find(open) {
            let tail = &rest[i + open.len()..];
            let end = tail.find(close).expect("closed");
            for part in tail[..end].split(',') {
                let name = part
                    .split(['=', '!', '~'])
                    .next()
                    .unwrap_or_default()
                    .trim();
                if !name.is_empty() && name != "le" {
                    out.insert(name.to_owned());
                }
            }
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn the_dashboard_is_a_grafana_dashboard() {
    let d = dashboard();
    assert_eq!(d["uid"], "llm-pool");
    assert!(d["title"].is_string());
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for p in panels {
        let id = p["id"].as_u64().expect("id");
        assert!(ids.insert(id), "panel id {id} twice");
        let kind = p["type"].as_str().expect("type");
        assert!(
            ["row", "timeseries", "stat", "gauge", "table", "bargauge"].contains(&kind),
            "{kind}"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().expect("x"),
            g["y"].as_u64().expect("y"),
            g["w"].as_u64().expect("w"),
            g["h"].as_u64().expect("h"),
        );
        assert!(w > 0 && h > 0 && x + w <= 24, "panel {id} fits the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), id) {
                    panic!("panels {other} and {id} overlap at ({cx}, {cy})");
                }
            }
        }
        if kind == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {id}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has queries");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().expect("refId").to_owned()));
            assert_eq!(t["datasource"]["uid"], "${datasource}");
            let expr = t["expr"].as_str().expect("expr");
            let depth = expr.chars().try_fold(0i32, |depth, c| {
                let depth = match c {
                    '(' | '{' | '[' => depth + 1,
                    ')' | '}' | ']' => depth - 1,
                    _ => depth,
                };
                (depth >= 0).then_some(depth)
            });
            assert_eq!(depth, Some(0), "brackets of {expr}");
        }
    }
}

#[tokio::test]
async fn every_metric_and_label_on_the_dashboard_is_exported() {
    let d = dashboard();
    let defined = defined();
    let mut used = BTreeSet::new();
    for expr in queries(&d) {
        for name in metrics_in(&expr) {
            assert!(
                defined.contains(&name),
                "{name} (in {expr}) is not a metric of the pool"
            );
            used.insert(name);
        }
    }
    // The areas the issue names: requests, errors by class, latency, TTFT, hedges,
    // breakers, cache, ensembles, usage and cost.
    for needed in [
        "llm_pool_requests_total",
        "llm_pool_answers_total",
        "llm_pool_request_duration_seconds",
        "llm_pool_upstream_time_to_first_token_seconds",
        "llm_pool_hedges_total",
        "llm_pool_breaker_state",
        "llm_pool_cache_hits_total",
        "llm_pool_ensemble_agreement_ratio",
        "llm_pool_tenant_tokens_total",
        "llm_pool_usage_cost",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }

    // Traffic that makes most series exist: answers, a vote, cache hits and misses, an
    // unknown task (an error class), a streamed answer (time to first token).
    let up = fake("MEDICINE").await;
    let config = format!(
        "[cache]\nenabled = true\n{}\n[tasks.vote]\nproviders = [\"up\", \"up\"]\nstrategy = \"voting\"\noutput = \"label\"\nlabels = [\"MEDICINE\", \"LAW\"]\n",
        basic_config("openai", &up.url())
    );
    let pool = start_pool(&config).await;
    for task in ["chat", "chat", "vote", "no_such_task"] {
        pool.post_json("/v1/query", serde_json::json!({"task": task, "input": "x"}))
            .await;
    }
    let streamed = pool
        .post_json(
            "/v1/chat/completions",
            serde_json::json!({"model": "up", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    streamed.bytes().await.expect("stream");
    let text = pool.get("/metrics").await.text().await.expect("metrics");
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, _) = line.rsplit_once(' ').expect("value");
        let (name, rest) = series.split_once('{').unwrap_or((series, ""));
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let entry = labels.entry(base.to_owned()).or_default();
        for pair in rest.trim_end_matches('}').split("\",") {
            if let Some((k, _)) = pair.split_once('=')
                && !k.is_empty()
                && k != "le"
            {
                entry.insert(k.trim_start_matches(',').to_owned());
            }
        }
    }
    let mut checked = 0;
    for expr in queries(&d) {
        let names = metrics_in(&expr);
        let seen: Vec<&BTreeSet<String>> = names.iter().filter_map(|n| labels.get(n)).collect();
        if seen.len() < names.len() {
            continue; // a series this traffic does not make (a retry, a trip, a refusal)
        }
        for label in labels_in(&expr) {
            assert!(
                seen.iter().any(|l| l.contains(&label)),
                "`{label}` in {expr} is not a label of {names:?} (labels: {seen:?})"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 20,
        "labels checked on {checked} queries: the traffic above makes too few series"
    );
}
