#!/usr/bin/env bash
# Overload: llm-pool (release build) in front of an upstream of fixed capacity (4 slots,
# 200 ms per call, 20 answers/s), offered 1x, 2x, 5x and 10x of it by five tenants in
# three priority classes, 60 s each (bench/overload.py says what is measured). Prints per
# class the admitted share, latency of admitted requests and of refusals, and per run the
# goodput, Jain's index between tenants, the most calls the upstream had at once, and RSS.
#
#   scripts/bench-overload.sh                  # 60 s per level
#   scripts/bench-overload.sh --duration 20    # shorter
#   scripts/bench-overload.sh --soak 600       # and 10 minutes at 80 % of capacity
#   scripts/bench-overload.sh --smoke          # 3 s per level on the debug build (CI)
#
# Not part of CI's timing (CI does not time things); scripts/test.sh runs --smoke, which
# fails only if the harness breaks or the upstream ever sees more calls than the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=release
for a in "$@"; do [ "$a" = "--smoke" ] && PROFILE=debug; done
if [ "$PROFILE" = release ]; then
  cargo build --release --bin llm-pool >/dev/null
  BIN=target/release/llm-pool
else
  test -x target/debug/llm-pool || cargo build --bin llm-pool
  BIN=target/debug/llm-pool
fi
ulimit -n 65536 2>/dev/null || ulimit -n 4096 || true
exec python3 bench/overload.py --bin "$BIN" "$@"
