#!/usr/bin/env bash
# The client packages against a real pool process: starts target/debug/llm-pool (or
# $LLM_POOL_BIN) with auth on — tenant `app` by API key, HMAC secret or HS256 JWT — in
# front of the model servers at CHAT_URL and EMBED_URL, then runs
#   - clients/python's tests (pytest, in a venv with the package installed by pip), and
#   - clients/typescript's tests (npm ci, tsc, node --test).
# Usage: scripts/test-clients.sh CHAT_URL EMBED_URL   (both OpenAI-compatible, e.g.
# llama-server serving smollm2 and smollm2-embed, as scripts/test.sh starts them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CHAT_URL=$1
EMBED_URL=$2
BIN="${LLM_POOL_BIN:-target/debug/llm-pool}"
CACHE="${LLM_POOL_CACHE:-$HOME/.cache/llm-pool}"
WORK=$(mktemp -d)
POOL_PID=""
cleanup() {
  [ -n "$POOL_PID" ] && kill "$POOL_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
export LLM_POOL_CLIENT_KEY="clients-key-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
export LLM_POOL_CLIENT_HMAC_SECRET="hmac-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export LLM_POOL_CLIENT_JWT_SECRET="jwt-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
cat >"$WORK/llm-pool.toml" <<EOF
[server]
grpc_addr = "127.0.0.1:$GRPC_PORT"
http_addr = "127.0.0.1:$HTTP_PORT"
prompts_dir = "$ROOT/prompts"

[auth]
inference = true

[auth.jwt]
algorithms = ["HS256"]
hs256_secret_env = "LLM_POOL_CLIENT_JWT_SECRET"

[tenants.app]
api_key_env = ["LLM_POOL_CLIENT_KEY"]
hmac_secret_env = "LLM_POOL_CLIENT_HMAC_SECRET"

[providers.smollm2]
kind = "openai"
model = "smollm2"
endpoints = ["$CHAT_URL"]

[providers.smollm2-embed]
kind = "openai"
model = "smollm2-embed"
endpoints = ["$EMBED_URL"]

[tasks.chat]
providers = ["smollm2"]
max_tokens = 32
cache_ttl_secs = 0
EOF
"$BIN" check-config "$WORK/llm-pool.toml"
"$BIN" serve --config "$WORK/llm-pool.toml" >"$WORK/pool.log" 2>&1 &
POOL_PID=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz" || { tail -20 "$WORK/pool.log" >&2; exit 1; }
export LLM_POOL_CLIENT_ADDR="127.0.0.1:$GRPC_PORT"

echo "-- clients/python"
VENV="$CACHE/venv-clients"
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import grpc_tools' 2>/dev/null; then
  python3 -m venv "$VENV"
fi
# The package as a user installs it (pip, from the repository), with its test extras.
"$VENV/bin/pip" install -q "$ROOT/clients/python[test]"
(cd "$WORK" && "$VENV/bin/pytest" -q "$ROOT/clients/python/tests") || {
  tail -20 "$WORK/pool.log" >&2
  exit 1
}
# The README's example, as a user runs it.
LLM_POOL_API_KEY="$LLM_POOL_CLIENT_KEY" "$VENV/bin/python" clients/python/examples/query.py \
  "$LLM_POOL_CLIENT_ADDR" chat "Say hello" >"$WORK/example-py.txt"
grep -q "^-- smollm2 won (STRATEGY_FASTEST)" "$WORK/example-py.txt" || { cat "$WORK/example-py.txt" >&2; exit 1; }

echo "-- clients/typescript"
# npm ci: the versions of package-lock.json, from the npm registry; `npm test` compiles
# with tsc and runs node's test runner on the compiled tests.
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm test --silent) || {
  tail -20 "$WORK/pool.log" >&2
  exit 1
}
LLM_POOL_API_KEY="$LLM_POOL_CLIENT_KEY" node clients/typescript/dist/examples/query.js \
  "http://$LLM_POOL_CLIENT_ADDR" chat "Say hello" >"$WORK/example-ts.txt"
grep -q "^-- smollm2 won (FASTEST)" "$WORK/example-ts.txt" || { cat "$WORK/example-ts.txt" >&2; exit 1; }
echo "clients: Python and TypeScript tests and examples passed"
