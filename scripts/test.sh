#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs every test:
#   1. fmt and clippy (warnings are errors);
#   2. the model server and model (scripts/setup-models.sh; cached under ~/.cache/llm-pool);
#   3. `cargo test` with the real-model test included;
#   4. a real pool in front of a real llama-server: scripts/test-http.sh (every HTTP route
#      with curl), the official `openai` and `ollama` Python clients (tests/compat), and
#      scripts/test-prometheus.sh (/metrics through promtool and a real Prometheus), and
#      the Python and TypeScript client packages (scripts/test-clients.sh);
#   5. tests/deploy: the Kubernetes and compose files against the code and the real binary;
#   6. the operator console in headless Chromium (scripts/test-console.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE="${LLM_POOL_CACHE:-$HOME/.cache/llm-pool}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { echo; echo "== $* =="; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (rustup: https://rustup.rs)" >&2
  exit 1
fi
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# curl for scripts/test-http.sh; redis-server for the Redis cache tests; prometheus (with
# promtool) for scripts/test-prometheus.sh.
missing=""
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
# nginx and wrk for the smoke run of scripts/bench-overhead.sh.
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
# node and npm for the TypeScript client (clients/typescript).
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
# Chromium for the console's browser test (scripts/test-console.sh).
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

step "fmt and clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "model server and model"
eval "$(./scripts/setup-models.sh)"
export LLM_POOL_MODEL LLM_POOL_LLAMA_SERVER
echo "model: $LLM_POOL_MODEL"
echo "server: $LLM_POOL_LLAMA_SERVER"

step "python clients (venv)"
VENV="$CACHE/venv-compat"
# A venv cached from before tests/deploy lacks PyYAML: top it up.
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "openai==3.54.0" "ollama==0.6.3" "pytest" "pyyaml"
fi

step "cargo test (unit, black-box, real model)"
cargo test --workspace --all-targets -- --include-ignored

step "a real pool in front of llama-server"
# `cargo test` above built target/debug/llm-pool (with the same features; building it again
# with `cargo build` would recompile half the dependencies without the dev features).
test -x target/debug/llm-pool
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LLAMA_PORT=$(free_port)
"$LLM_POOL_LLAMA_SERVER" -m "$LLM_POOL_MODEL" --host 127.0.0.1 --port "$LLAMA_PORT" \
  -t 1 -c 2048 --parallel 4 -a smollm2 >"$WORK/llama.log" 2>&1 &
PIDS+=($!)
# A second instance serves embeddings (llama-server embeds only when started for it).
EMBED_PORT=$(free_port)
"$LLM_POOL_LLAMA_SERVER" -m "$LLM_POOL_MODEL" --host 127.0.0.1 --port "$EMBED_PORT" \
  -t 1 -c 512 --embeddings --pooling mean -a smollm2-embed >"$WORK/llama-embed.log" 2>&1 &
PIDS+=($!)

wait_for() {
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "not ready: $1" >&2
  tail -20 "$WORK"/*.log >&2
  return 1
}
wait_for "http://127.0.0.1:$LLAMA_PORT/health"
wait_for "http://127.0.0.1:$EMBED_PORT/health"

HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
sed -e "s#http://127.0.0.1:8080#http://127.0.0.1:$LLAMA_PORT#" \
    -e "s#^http_addr = .*#http_addr = \"127.0.0.1:$HTTP_PORT\"#" \
    -e "s#^grpc_addr = .*#grpc_addr = \"127.0.0.1:$GRPC_PORT\"#" \
    -e "s#^prompts_dir = .*#prompts_dir = \"$ROOT/prompts\"#" \
    config/quickstart.toml >"$WORK/llm-pool.toml"
cat >>"$WORK/llm-pool.toml" <<EOF

[providers.smollm2-embed]
kind = "openai"
model = "smollm2-embed"
endpoints = ["http://127.0.0.1:$EMBED_PORT"]
EOF
./target/debug/llm-pool check-config "$WORK/llm-pool.toml"
./target/debug/llm-pool serve --config "$WORK/llm-pool.toml" >"$WORK/pool.log" 2>&1 &
POOL_PID=$!
PIDS+=($POOL_PID)

wait_for "http://127.0.0.1:$HTTP_PORT/readyz"

MODEL=smollm2 ./scripts/test-http.sh "http://127.0.0.1:$HTTP_PORT"
LLM_POOL_HTTP="http://127.0.0.1:$HTTP_PORT" LLM_POOL_MODEL_NAME=smollm2 \
  LLM_POOL_EMBED_MODEL_NAME=smollm2-embed LLM_POOL_BIN=target/debug/llm-pool \
  "$VENV/bin/pytest" -q tests/compat
./scripts/test-prometheus.sh "http://127.0.0.1:$HTTP_PORT"
# The client packages (Python, TypeScript) against a second pool, with auth on, in front
# of the same model servers.
LLM_POOL_BIN=target/debug/llm-pool ./scripts/test-clients.sh \
  "http://127.0.0.1:$LLAMA_PORT" "http://127.0.0.1:$EMBED_PORT"
# deploy/ (Kubernetes, compose) against the code: static checks, then the real binary on
# the shipped configs.
LLM_POOL_BIN=target/debug/llm-pool "$VENV/bin/pytest" -q tests/deploy

step "the operator console in a real browser (headless Chromium)"
LLM_POOL_BIN=target/debug/llm-pool ./scripts/test-console.sh "$WORK/console"

step "benchmark harness (smoke run; CI does not time things)"
./scripts/bench-overhead.sh --smoke >"$WORK/bench-smoke.txt" 2>&1 || {
  cat "$WORK/bench-smoke.txt" >&2
  exit 1
}
tail -5 "$WORK/bench-smoke.txt"
./scripts/bench-overload.sh --smoke >"$WORK/overload-smoke.txt" 2>&1 || {
  cat "$WORK/overload-smoke.txt" >&2
  exit 1
}
tail -8 "$WORK/overload-smoke.txt"

step "learning ensembles on a simulated pool (smoke run; docs/QUALITY.md has the full one)"
LLM_POOL_BIN=target/debug/llm-pool python3 scripts/eval.py --simulate --items 100 --warmup 30 >"$WORK/eval-sim.txt" 2>&1 || {
  cat "$WORK/eval-sim.txt" >&2
  exit 1
}
grep -q "^weighted adaptive 0.95" "$WORK/eval-sim.txt" || {
  cat "$WORK/eval-sim.txt" >&2
  exit 1
}
grep -v "^learned" "$WORK/eval-sim.txt" | tail -12

step "graceful shutdown"
kill -TERM "$POOL_PID"
if wait "$POOL_PID"; then
  echo "llm-pool exited 0 on SIGTERM"
else
  echo "llm-pool did not exit cleanly on SIGTERM" >&2
  tail -20 "$WORK/pool.log" >&2
  exit 1
fi

echo
echo "scripts/test.sh: all tests passed"
