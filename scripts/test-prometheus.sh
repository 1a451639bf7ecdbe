#!/usr/bin/env bash
# Checks a running pool's /metrics the way Prometheus will use it:
#   1. `promtool check metrics` accepts the exposition (format and naming lint) and the
#      core llm_pool_ families are there with the right types;
#   2. a real Prometheus scrapes the pool every second: the target is up, and
#      llm_pool_requests_total has series, including the counts of Prometheus' own scrapes
#      (route="/metrics"), which proves the labels survive ingestion.
# Usage: scripts/test-prometheus.sh POOL_HTTP_URL      e.g. http://127.0.0.1:7071
# Needs curl, python3, promtool and prometheus (Debian: apt-get install prometheus).
set -euo pipefail

URL="${1:?usage: scripts/test-prometheus.sh POOL_HTTP_URL (e.g. http://127.0.0.1:7071)}"
URL="${URL%/}"

fail() {
  echo "test-prometheus: FAIL: $*" >&2
  exit 1
}

for tool in curl python3 promtool prometheus; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "$tool is not installed (Debian: apt-get install prometheus curl python3)"
done

# Prometheus wants host:port and a scheme, not a URL.
SCHEME="${URL%%://*}"
HOSTPORT="${URL#*://}"
HOSTPORT="${HOSTPORT%%/*}"
if [ "$SCHEME" = "$URL" ] || [ -z "$HOSTPORT" ]; then
  fail "not an http(s) URL: $URL"
fi

WORK=$(mktemp -d)
PROM_PID=""
cleanup() {
  # Never leave a Prometheus behind, whatever failed.
  if [ -n "$PROM_PID" ]; then
    kill "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 1. the exposition ---------------------------------------------------------------------
# One request first, so that the per-route families have a series whatever ran before.
curl -fsS -o /dev/null "$URL/health" || fail "GET $URL/health failed: is the pool running?"
curl -fsS -o "$WORK/metrics.txt" "$URL/metrics" || fail "GET $URL/metrics failed"

if ! lint=$(promtool check metrics <"$WORK/metrics.txt" 2>&1); then
  echo "$lint" >&2
  fail "promtool check metrics rejected $URL/metrics (problems above)"
fi
[ -z "$lint" ] || echo "$lint"
families=$(grep -c '^# TYPE llm_pool_' "$WORK/metrics.txt" || true)
echo "promtool check metrics: ok ($families llm_pool_ families)"

# The families every pool exports from its first request on (src/telemetry/metrics.rs),
# with their types: a rename or a type change breaks dashboards and alerts.
for family in \
  "llm_pool_requests_total counter" \
  "llm_pool_request_duration_seconds histogram" \
  "llm_pool_in_flight_requests gauge" \
  "llm_pool_cache_hits_total counter" \
  "llm_pool_cache_misses_total counter" \
  "llm_pool_cache_entries gauge" \
  "llm_pool_breaker_state gauge"; do
  grep -qx "# TYPE $family" "$WORK/metrics.txt" ||
    fail "$URL/metrics lacks '# TYPE $family'"
done

# ---- 2. a real Prometheus ------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PROM_PORT=$(free_port)
PROM="http://127.0.0.1:$PROM_PORT"

# Scrape every second so the test takes seconds, not the default minute.
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: llm-pool
    scrape_interval: 1s
    scrape_timeout: 1s
    scheme: $SCHEME
    metrics_path: /metrics
    static_configs:
      - targets: ["$HOSTPORT"]
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null ||
  fail "the generated prometheus.yml is invalid"

prometheus \
  --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!

prom_log() { tail -20 "$WORK/prometheus.log" >&2; }

# Runs an instant query and prints the result's first value ("" if the result is empty).
query() {
  curl -fsS -G --data-urlencode "query=$1" "$PROM/api/v1/query" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if r.get("status") != "success":
    sys.exit("query failed: %s" % r)
res = r["data"]["result"]
print(res[0]["value"][1] if res else "")
'
}

# poll WHAT SECONDS COMMAND...: runs COMMAND until it succeeds, for at most SECONDS.
poll() {
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ! kill -0 "$PROM_PID" 2>/dev/null; then
      prom_log
      fail "prometheus exited while waiting for $what"
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

ready() { curl -fsS -o /dev/null "$PROM/-/ready" 2>/dev/null; }
poll "prometheus to start" 30 ready || { prom_log; fail "prometheus not ready on $PROM after 30s"; }

target_up() { [ "$(query 'up{job="llm-pool"}' 2>/dev/null)" = "1" ]; }
if ! poll "the scrape" 30 target_up; then
  # Say why: Prometheus records the last scrape error per target.
  curl -fsS "$PROM/api/v1/targets" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("target %s: health=%s lastError=%r" % (t["scrapeUrl"], t["health"], t["lastError"]))
' >&2 || true
  fail "up{job=\"llm-pool\"} did not become 1 within 30s"
fi
echo "prometheus: target $HOSTPORT is up"

has_series() { [ -n "$(query "$1" 2>/dev/null)" ] && [ "$(query "$1")" != "0" ]; }
poll "llm_pool_requests_total" 15 has_series 'count(llm_pool_requests_total{job="llm-pool"})' ||
  fail "no llm_pool_requests_total series in Prometheus after 15s"
# Prometheus' own scrapes are requests to /metrics: they show up from the second scrape on.
poll "route=\"/metrics\" series" 15 has_series \
  'sum(llm_pool_requests_total{job="llm-pool",route="/metrics",status="200"})' ||
  fail "llm_pool_requests_total{route=\"/metrics\",status=\"200\"} never appeared"
series=$(query 'count(llm_pool_requests_total{job="llm-pool"})')
scrapes=$(query 'sum(llm_pool_requests_total{job="llm-pool",route="/metrics"})')
echo "prometheus: llm_pool_requests_total has $series series; scrapes counted: $scrapes"

echo "scripts/test-prometheus.sh: ok"
