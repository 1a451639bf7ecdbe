#!/usr/bin/env bash
# Instructions per request (callgrind) of one pool binary with the console's recent requests
# kept ([console] recent_requests = 128, the default) and not kept (0), alternating:
#   bench/console-cost/instructions.sh BIN [ROUNDS]
# A non-streamed chat completion against a fast local upstream (fast_upstream.py); the pool
# under callgrind on core 0, wrk at c = 4 on core 1; counters zeroed after a 2 s warm-up,
# then 5 s counted.
set -euo pipefail
cd "$(dirname "$0")"
BIN=$(realpath "$1"); ROUNDS=${2:-2}
WORK=$(mktemp -d)
taskset -c 1 python3 fast_upstream.py 19091 &
UP=$!
trap 'kill $UP 2>/dev/null || true; rm -rf "$WORK"' EXIT
for keep in 128 0; do
  cat >"$WORK/pool-$keep.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:19170"
http_addr = "127.0.0.1:19171"
shutdown_grace_secs = 1
[auth]
inference = false
admin = false
[qos]
health_check_interval_ms = 0
[console]
recent_requests = $keep
[providers.bench]
kind = "openai"
model = "m"
endpoints = ["http://127.0.0.1:19091"]
max_concurrency = 1000
TOML
done
ir() {
  rm -f "$WORK"/cg.*
  taskset -c 0 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$WORK/cg.%p" \
    "$BIN" serve --config "$1" >/dev/null 2>&1 &
  local p=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null http://127.0.0.1:19171/v1/models && break; sleep 0.2; done
  taskset -c 1 wrk -t1 -c4 -d2s -s chat.lua http://127.0.0.1:19171/v1/chat/completions >/dev/null
  callgrind_control -z "$p" >/dev/null
  local req
  req=$(taskset -c 1 wrk -t1 -c4 -d5s -s chat.lua http://127.0.0.1:19171/v1/chat/completions | awk '/requests in/ {print $1}')
  callgrind_control -d "$p" >/dev/null
  kill -TERM "$p"; wait "$p" 2>/dev/null || true
  local total
  total=$(grep -h -E "^(summary|totals):" "$WORK"/cg.*.* | awk '{s+=$2} END {print s}')
  echo "recent_requests = $2: $req requests, $(( total / req )) instructions/request"
}
for _ in $(seq 1 "$ROUNDS"); do
  ir "$WORK/pool-128.toml" 128
  ir "$WORK/pool-0.toml" 0
done
