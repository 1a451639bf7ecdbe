#!/usr/bin/env python3
"""Writes deploy/grafana/llm-pool.json: python3 deploy/grafana/generate.py > deploy/grafana/llm-pool.json"""
import json
R = "[$__rate_interval]"
def q(expr, legend): return {"expr": expr, "legendFormat": legend}
rows = [
 ("Traffic", [
  ("Requests per second by route", "reqps", [q(f'sum by (route) (rate(llm_pool_requests_total{R}))', "{{route}}")]),
  ("Answers per second by outcome (errors by class)", "reqps", [q(f'sum by (outcome) (rate(llm_pool_answers_total{R}))', "{{outcome}}")]),
  ("HTTP responses by status", "reqps", [q(f'sum by (status) (rate(llm_pool_requests_total{R}))', "{{status}}")]),
  ("In flight", "short", [q('sum(llm_pool_in_flight_requests)', "in flight")]),
 ]),
 ("Latency", [
  ("Request latency (p50, p95, p99)", "s", [q(f'histogram_quantile({p}, sum by (le) (rate(llm_pool_request_duration_seconds_bucket{R})))', f"p{int(p*100)}") for p in (0.5, 0.95, 0.99)]),
  ("Answer latency p95 by task", "s", [q(f'histogram_quantile(0.95, sum by (le, task) (rate(llm_pool_answer_duration_seconds_bucket{R})))', "{{task}}")]),
  ("Upstream latency p95 by provider", "s", [q(f'histogram_quantile(0.95, sum by (le, provider) (rate(llm_pool_upstream_duration_seconds_bucket{R})))', "{{provider}}")]),
  ("Time to first token (p50, p95) by provider", "s", [q(f'histogram_quantile({p}, sum by (le, provider) (rate(llm_pool_upstream_time_to_first_token_seconds_bucket{R})))', f"p{int(p*100)} {{{{provider}}}}") for p in (0.5, 0.95)]),
 ]),
 ("Providers", [
  ("Upstream calls by outcome", "reqps", [q(f'sum by (provider, outcome) (rate(llm_pool_upstream_calls_total{R}))', "{{provider}} {{outcome}}")]),
  ("Hedges and retries", "reqps", [q(f'sum by (provider, event) (rate(llm_pool_hedges_total{R}))', "hedge {{event}} {{provider}}"), q(f'sum by (provider) (rate(llm_pool_retries_total{R}))', "retry {{provider}}")]),
  ("Breaker state (0 closed, 1 half-open, 2 open)", "short", [q('max by (provider, endpoint) (llm_pool_breaker_state)', "{{provider}} {{endpoint}}")]),
  ("Breaker trips", "short", [q('sum by (provider, endpoint) (increase(llm_pool_breaker_trips_total[$__range]))', "{{provider}} {{endpoint}}")]),
  ("Queue depth by class", "short", [q('sum by (provider, class) (llm_pool_queue_depth)', "{{provider}} {{class}}")]),
  ("Admission refused", "reqps", [q(f'sum by (provider, reason) (rate(llm_pool_admission_refused_total{R}))', "{{provider}} {{reason}}"), q(f'sum by (tenant, limit) (rate(llm_pool_rate_limited_total{R}))', "rate limited {{tenant}} {{limit}}")]),
 ]),
 ("Cache", [
  ("Cache hit ratio", "percentunit", [q(f'sum(rate(llm_pool_cache_hits_total{R})) / clamp_min(sum(rate(llm_pool_cache_hits_total{R})) + sum(rate(llm_pool_cache_misses_total{R})), 1e-9)', "hit ratio")]),
  ("Cache entries and single-flight joins", "short", [q('sum(llm_pool_cache_entries)', "entries"), q(f'sum(rate(llm_pool_cache_single_flight_joins_total{R}))', "joins/s")]),
 ]),
 ("Ensembles", [
  ("Agreement (p50) by strategy", "percentunit", [q(f'histogram_quantile(0.5, sum by (le, strategy) (rate(llm_pool_ensemble_agreement_ratio_bucket{R})))', "{{strategy}}")]),
  ("Confidence (p50) by task", "percentunit", [q(f'histogram_quantile(0.5, sum by (le, task) (rate(llm_pool_ensemble_confidence_ratio_bucket{R})))', "{{task}}")]),
  ("Calls per ensemble answer by task", "short", [q(f'sum by (task) (rate(llm_pool_ensemble_calls_sum{R})) / clamp_min(sum by (task) (rate(llm_pool_ensemble_calls_count{R})), 1e-9)', "{{task}}")]),
  ("Learned accuracy by task and provider", "percentunit", [q('max by (task, provider) (llm_pool_provider_accuracy)', "{{task}} {{provider}}")]),
 ]),
 ("Usage and cost", [
  ("Tokens per second by provider", "short", [q(f'sum by (provider, kind) (rate(llm_pool_tokens_total{R}))', "{{provider}} {{kind}}")]),
  ("Tokens per second by tenant", "short", [q(f'sum by (tenant) (rate(llm_pool_tenant_tokens_total{R}))', "{{tenant}}")]),
  ("Cost by tenant", "currencyUSD", [q('sum by (tenant) (llm_pool_usage_cost)', "{{tenant}}")]),
  ("Cost saved by tenant", "currencyUSD", [q('sum by (tenant) (llm_pool_usage_cost_saved)', "{{tenant}}")]),
 ]),
 ("Configuration", [
  ("Config reloads", "short", [q('sum by (result) (increase(llm_pool_config_reloads_total[$__range]))', "{{result}}")]),
  ("Auth failures", "reqps", [q(f'sum by (kind) (rate(llm_pool_auth_failures_total{R}))', "{{kind}}")]),
 ]),
]
ds = {"type": "prometheus", "uid": "${datasource}"}
panels, pid, y = [], 1, 0
for title, items in rows:
    panels.append({"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    pid += 1; y += 1
    for i, (ptitle, unit, targets) in enumerate(items):
        x = (i % 2) * 12
        if i and i % 2 == 0: y += 8
        panels.append({
            "id": pid, "type": "timeseries", "title": ptitle, "datasource": ds,
            "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [dict(t, refId=chr(65 + j), datasource=ds) for j, t in enumerate(targets)],
        })
        pid += 1
    y += 8
dash = {
  "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
  "uid": "llm-pool", "title": "llm-pool", "description": "llm-pool: requests, errors by class, latency and TTFT, hedges, breakers, cache, ensembles, usage and cost. Built on the metrics the pool exports (tests/dashboard.rs checks every name and label).",
  "tags": ["llm-pool"], "timezone": "browser", "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
  "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
  "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}]},
  "annotations": {"list": []}, "links": [], "panels": panels,
}
print(json.dumps(dash, indent=2))
