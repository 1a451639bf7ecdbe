#!/usr/bin/env bash
# The gateway's own cost: llm-pool (release build, pinned to core 0) in front of nginx
# serving fixed OpenAI/Ollama bodies, against the same nginx called directly, in interleaved
# rounds (A/B/A/B…), with wrk pinned to the other core. Prints medians: req/s at c=32,
# p50/p99 at c=1 and c=32, the pool's CPU µs per request and peak RSS; streaming (SSE and
# NDJSON) time to first byte and total; gRPC Query (benches/grpc_load.rs); RSS idle and with
# 1,000 open streams; optional tracing on/off; optional peers (nginx as a reverse proxy,
# agentgateway, Helicone's AI gateway, LiteLLM's proxy) on the pool's core.
#
#   scripts/bench-overhead.sh                 # 3 rounds, 10 s per measurement
#   scripts/bench-overhead.sh --rounds 5 --duration 15
#   scripts/bench-overhead.sh --peer nginx-proxy   # nginx as a reverse proxy on the pool's core
#   scripts/bench-overhead.sh --peer litellm  # also LiteLLM's proxy, same rounds
#   scripts/bench-overhead.sh --peer agentgateway --peer helicone
#       # the Rust LLM gateways, built first by bench/peers/build.sh (outside the repository)
#   scripts/bench-overhead.sh --runtimes      # also the pool on every core: multi-thread vs
#                                             # thread-per-core (`serve --runtime`)
#   scripts/bench-overhead.sh --placement shared   # the origin on the pool's core too
#   scripts/bench-overhead.sh --instructions  # instructions per request (callgrind)
#   scripts/bench-overhead.sh --instructions --callgrind-dir DIR   # and keep the dumps
#   scripts/bench-overhead.sh --tracing       # also tracing on at 100 % and 1 % sampling
#   scripts/bench-overhead.sh --baseline /path/to/older/llm-pool   # an older build, same rounds
#   scripts/bench-overhead.sh --smoke         # 1 short round, checks the harness works
#
# Not part of CI's timing (CI does not time things); scripts/test.sh runs --smoke, which
# includes nginx-proxy (not --instructions: the debug build under valgrind is too slow).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=""
command -v nginx >/dev/null 2>&1 || missing="$missing nginx-light"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
for a in "$@"; do
  [ "$a" = "--instructions" ] && { command -v valgrind >/dev/null 2>&1 || missing="$missing valgrind"; }
done
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# nginx-light installs the binary in /usr/sbin, which a non-login shell may lack.
export PATH="$PATH:/usr/sbin"

PROFILE=release
for a in "$@"; do [ "$a" = "--smoke" ] && PROFILE=debug; done
if [ "$PROFILE" = release ]; then
  cargo build --release --bin llm-pool --bench grpc_load >/dev/null
  BIN=target/release/llm-pool
  GRPC_LOAD=$(ls -t target/release/deps/grpc_load-* | grep -v '\.d$' | head -1)
else
  # The smoke run reuses the debug build `cargo test` made.
  test -x target/debug/llm-pool || cargo build --bin llm-pool
  BIN=target/debug/llm-pool
  GRPC_LOAD=$(ls -t target/debug/deps/grpc_load-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
fi
ulimit -n 65536 2>/dev/null || ulimit -n 4096 || true
exec python3 bench/overhead.py --bin "$BIN" --grpc-load "${GRPC_LOAD:-}" "$@"
