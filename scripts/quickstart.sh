#!/usr/bin/env bash
# Sets up and runs llm-pool in front of a real local model, on a fresh machine:
# - where Ollama answers on :11434, the shipped llm-pool.toml (Phi-3, Llama 3.1, Gemma 2);
# - otherwise llama.cpp's llama-server serving SmolLM2-135M-Instruct (config/quickstart.toml).
# gRPC on :7070, HTTP on :7071. Runs until Ctrl-C, then stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:11434/api/tags 2>/dev/null; then
  echo "quickstart: Ollama answers on :11434; pulling the shipped models"
  ./scripts/setup-models.sh >/dev/null
  CONFIG="$ROOT/llm-pool.toml"
  MODEL_NAME="fast"
else
  echo "quickstart: no Ollama on :11434; using llama-server with SmolLM2-135M-Instruct"
  eval "$(LLM_POOL_SKIP_OLLAMA=1 ./scripts/setup-models.sh)"
  LLAMA_PORT="${LLAMA_PORT:-8080}"
  "$LLM_POOL_LLAMA_SERVER" -m "$LLM_POOL_MODEL" --host 127.0.0.1 --port "$LLAMA_PORT" \
    -t "${LLAMA_THREADS:-2}" -c 2048 --parallel 4 -a smollm2 >/tmp/llm-pool-llama-server.log 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$LLAMA_PORT/health" 2>/dev/null && break
    sleep 0.1
  done
  CONFIG="$ROOT/config/quickstart.toml"
  if [ "$LLAMA_PORT" != 8080 ]; then
    CONFIG=$(mktemp --suffix .toml)
    sed -e "s#http://127.0.0.1:8080#http://127.0.0.1:$LLAMA_PORT#" \
        -e "s#^prompts_dir = .*#prompts_dir = \"$ROOT/prompts\"#" \
        "$ROOT/config/quickstart.toml" >"$CONFIG"
  fi
  MODEL_NAME="smollm2"
fi

echo "quickstart: building llm-pool (release)"
cargo build --release --bin llm-pool
./target/release/llm-pool serve --config "$CONFIG" &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:7071/readyz 2>/dev/null && break
  sleep 0.1
done

cat <<MSG

llm-pool is serving: gRPC 127.0.0.1:7070, HTTP 127.0.0.1:7071 (config: $CONFIG)

  curl -s http://127.0.0.1:7071/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model": "$MODEL_NAME", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}'

  curl -s http://127.0.0.1:7071/v1/query -H 'content-type: application/json' \\
    -d '{"task": "chat", "input": "Name three colors.", "max_tokens": 24}'

Ctrl-C stops the pool and the model server.
MSG
wait "${PIDS[-1]}"
