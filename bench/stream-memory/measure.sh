#!/usr/bin/env bash
# RSS of the pool holding N open SSE streams (a slow upstream holds them open):
#   bench/stream-memory/measure.sh BIN [N]      e.g. target/release/llm-pool 1000
# The pool on core 0, wrk on core 1, the upstream (slow_upstream.py, port 19090) wherever;
# the pool listens on 19071 (pool.toml). Prints idle RSS, peak RSS with N streams, and the
# difference per stream.
set -euo pipefail
cd "$(dirname "$0")"
BIN=$(realpath "$1"); N=${2:-1000}
python3 slow_upstream.py 19090 &
UP=$!
taskset -c 0 "$BIN" serve --config pool.toml >/dev/null 2>&1 &
P=$!
trap 'kill $P $UP 2>/dev/null || true; wait $P $UP 2>/dev/null || true' EXIT
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$P/status"; }
IDLE=$(rss)
taskset -c 1 wrk -t1 -c"$N" -d5s --timeout 60s -s stream.lua http://127.0.0.1:19071/v1/chat/completions >/dev/null 2>&1 &
W=$!
PEAK=0
for _ in $(seq 1 45); do R=$(rss); [ "$R" -gt "$PEAK" ] && PEAK=$R; sleep 0.1; done
wait $W || true
echo "idle $IDLE KiB; $N streams: peak $PEAK KiB; $(( (PEAK - IDLE) / N )) KiB per stream"
