#!/usr/bin/env bash
# Exercises every HTTP route of a running llm-pool with curl and checks status and shape.
#
# Usage: scripts/test-http.sh [BASE_URL]
#   BASE_URL  the pool's HTTP base (default $LLM_POOL_HTTP, else http://127.0.0.1:7071)
# Environment:
#   MODEL         `model` for the OpenAI/Ollama routes: provider, alias or task:NAME (default smollm2)
#   CURL_TIMEOUT  seconds allowed per request (default 60)
#   BIG_BODY_BYTES size of the body that must be refused with 413 (default 2097152; must exceed
#                 the pool's server.max_body_bytes)
#
# The pool must be in front of a real model: answers are checked for shape, never for words.
# Needs bash, curl and python3 (JSON checks; no jq). Exits non-zero when any check fails,
# naming the route and what was wrong; the last line is "test-http: N passed, M failed".
set -uo pipefail

BASE="${1:-${LLM_POOL_HTTP:-http://127.0.0.1:7071}}"
BASE="${BASE%/}"
export MODEL="${MODEL:-smollm2}"
CURL_TIMEOUT="${CURL_TIMEOUT:-60}"
BIG_BODY_BYTES="${BIG_BODY_BYTES:-2097152}"
UNKNOWN_MODEL="no-such-model-llm-pool-test"

command -v curl >/dev/null || { echo "test-http: curl is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "test-http: python3 is required" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BODY="$TMP/body"
HEADERS="$TMP/headers"

passed=0
failed=0
failures=()
STATUS=""
CTYPE=""

# req METHOD PATH [JSON_BODY | @FILE]: sends one request; sets STATUS and CTYPE, body in $BODY.
req() {
  local method=$1 path=$2
  local args=(-sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' -X "$method"
    --max-time "$CURL_TIMEOUT" -H 'Accept: */*')
  if [ $# -ge 3 ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$3")
  fi
  : >"$BODY"
  : >"$HEADERS"
  STATUS=$(curl "${args[@]}" "$BASE$path" 2>"$TMP/curl_err") || true
  [ -n "$STATUS" ] || STATUS="000"
  # Last Content-Type seen (after any 100 Continue), without parameters' surrounding spaces.
  CTYPE=$(grep -i '^content-type:' "$HEADERS" | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//')
}

ok() {
  passed=$((passed + 1))
  echo "ok    $1"
}

bad() {
  failed=$((failed + 1))
  failures+=("$1")
  echo "FAIL  $1: $2" >&2
}

# Python run before every check: `raw` is the body text, `ctype` the Content-Type;
# need(cond, msg) fails the check with msg; js() parses the body as JSON; sse() and ndjson()
# split streamed bodies. Any exception in a check is reported as a wrong shape.
PY_PRELUDE='
import json, os, sys
MODEL = os.environ["MODEL"]
raw = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
ctype = sys.argv[2]
code = sys.argv[3]
def fail(msg):
    print(msg)
    sys.exit(1)
def need(cond, msg):
    if not cond:
        fail(msg)
def js():
    try:
        return json.loads(raw)
    except Exception as e:
        fail(f"body is not JSON ({e}): {raw[:300]!r}")
def nonempty_str(v):
    return isinstance(v, str) and v != ""
def sse():
    need("text/event-stream" in ctype, f"Content-Type is {ctype!r}, not text/event-stream")
    lines = [l[5:].lstrip() for l in raw.splitlines() if l.startswith("data:")]
    need(lines, f"no data: lines in {raw[:300]!r}")
    return lines
def ndjson():
    need("json" in ctype, f"Content-Type is {ctype!r}, not NDJSON (application/x-ndjson)")
    out = []
    for i, l in enumerate(x for x in raw.splitlines() if x.strip()):
        try:
            out.append(json.loads(l))
        except Exception as e:
            fail(f"NDJSON line {i + 1} is not JSON ({e}): {l[:200]!r}")
    need(out, "empty NDJSON body")
    return out
def error_code(d):
    e = d.get("error") if isinstance(d, dict) else None
    return e.get("code") if isinstance(e, dict) else None
try:
    exec(code)
except SystemExit:
    raise
except Exception as e:
    fail(f"unexpected shape ({type(e).__name__}: {e}): {raw[:300]!r}")
'

# check NAME EXPECTED_STATUS[|OTHER] [PYTHON_CHECK]: judges the last req.
check() {
  local name=$1 want=$2 code=${3-}
  if [ "$STATUS" = "000" ]; then
    bad "$name" "no HTTP response ($(tr '\n' ' ' <"$TMP/curl_err"))"
    return
  fi
  if [[ "|$want|" != *"|$STATUS|"* ]]; then
    bad "$name" "expected HTTP $want, got $STATUS: $(head -c 300 "$BODY" | tr '\n' ' ')"
    return
  fi
  if [ -n "$code" ]; then
    local msg
    if ! msg=$(python3 -c "$PY_PRELUDE" "$BODY" "$CTYPE" "$code" 2>&1); then
      bad "$name" "${msg:-check failed}"
      return
    fi
  fi
  ok "$name"
}

echo "test-http: testing $BASE with model $MODEL"

# ── operations ──────────────────────────────────────────────────────────────────────────
req GET /health
if [ "$STATUS" = "000" ]; then
  echo "test-http: cannot reach $BASE ($(tr '\n' ' ' <"$TMP/curl_err"))" >&2
  echo "test-http: 0 passed, 1 failed"
  exit 1
fi
check "GET /health" 200 '
d = js()
need(isinstance(d, dict), "body is not a JSON object")
need(nonempty_str(d.get("status")), f"no string \"status\": {d}")
need(isinstance(d.get("providers"), list), f"no \"providers\" array: {d}")
'

req GET /readyz
check "GET /readyz" 200

req GET /info
check "GET /info" 200 '
d = js()
need(isinstance(d, dict) and nonempty_str(d.get("version")), f"no string \"version\": {d}")
'

req GET /admin/config
check "GET /admin/config" 200 '
d = js()
need(isinstance(d, dict), "body is not a JSON object")
v = d.get("version")
need(isinstance(v, (int, float)) and not isinstance(v, bool), f"\"version\" is not a number: {v!r}")
need("last_error" in d, f"no \"last_error\" key: {d}")
le = d["last_error"]
need(le is None or isinstance(le, str), f"\"last_error\" is neither null nor a string: {le!r}")
'

# ── native API ──────────────────────────────────────────────────────────────────────────
req GET /v1/tasks
check "GET /v1/tasks" 200 '
d = js()
tasks = d.get("tasks")
need(isinstance(tasks, list) and tasks, f"no non-empty \"tasks\" array: {d}")
for t in tasks:
    for k in ("name", "output", "strategy"):
        need(nonempty_str(t.get(k)), f"task without string {k!r}: {t}")
    need(isinstance(t.get("providers"), list) and t["providers"], f"task without \"providers\" list: {t}")
need("chat" in [t["name"] for t in tasks], "no task named \"chat\"")
'

req POST /v1/query '{"task":"chat","input":"Say hello","max_tokens":8}'
check "POST /v1/query (chat)" 200 '
d = js()
need(nonempty_str(d.get("text")), f"empty \"text\": {d}")
need(nonempty_str(d.get("provider")), f"no \"provider\": {d}")
usage = d.get("usage") or {}
ct = usage.get("completion_tokens")
need(isinstance(ct, int) and ct > 0, f"usage.completion_tokens is not > 0: {usage}")
decision = d.get("decision") or {}
need(decision.get("strategy") == "fastest", f"decision.strategy is not \"fastest\": {decision}")
need(nonempty_str(d.get("request_id")), f"no \"request_id\": {d}")
'

req POST /v1/query '{"task":"nope","input":"x"}'
check "POST /v1/query (unknown task)" 404 '
d = js()
need(error_code(d) == "not_found", f"error.code is not \"not_found\": {d}")
need(nonempty_str(d["error"].get("message")), f"no error.message: {d}")
'

req POST /v1/query '{"task":"chat"}'
check "POST /v1/query (no input)" 400 '
d = js()
need(error_code(d) == "invalid_argument", f"error.code is not \"invalid_argument\": {d}")
need(nonempty_str(d["error"].get("message")), f"no error.message: {d}")
'

req POST /v1/query '{"task": "chat", "input": '
check "POST /v1/query (malformed JSON)" 400 '
d = js()
need(error_code(d) == "invalid_argument", f"error.code is not \"invalid_argument\": {d}")
'

python3 -c '
import json, sys
n = int(sys.argv[2])
open(sys.argv[1], "w").write(json.dumps({"task": "chat", "input": "a" * n}))
' "$TMP/big.json" "$BIG_BODY_BYTES"
req POST /v1/query "@$TMP/big.json"
check "POST /v1/query (body over max_body_bytes)" 413

# ── OpenAI-compatible ───────────────────────────────────────────────────────────────────
req GET /v1/models
check "GET /v1/models" 200 '
d = js()
need(d.get("object") == "list", f"object is not \"list\": {d}")
ids = [m.get("id") for m in d.get("data") or []]
need(ids and all(nonempty_str(i) for i in ids), f"no model ids in data: {d}")
need(MODEL in ids, f"model {MODEL} not listed: {ids}")
'

req POST /v1/chat/completions "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8}"
check "POST /v1/chat/completions" 200 '
d = js()
obj = d.get("object")
need(obj == "chat.completion", f"object is not \"chat.completion\": {obj!r}")
need(nonempty_str(d.get("id")), "no id")
c = d["choices"][0]
need(c["message"]["role"] == "assistant", f"role is not assistant: {c}")
need(nonempty_str(c["message"]["content"]), f"empty choices[0].message.content: {c}")
fr = c.get("finish_reason")
need(fr in ("stop", "length"), f"finish_reason is not stop/length: {fr!r}")
usage = d["usage"]
need(usage["total_tokens"] > 0, f"usage.total_tokens is not > 0: {usage}")
'

req POST /v1/chat/completions "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8,\"stream\":true}"
check "POST /v1/chat/completions (stream)" 200 '
lines = sse()
need(lines[-1] == "[DONE]", f"last data line is not [DONE]: {lines[-1]!r}")
need(len(lines) >= 2, "no chunk before [DONE]")
text, finish = "", None
for l in lines[:-1]:
    try:
        c = json.loads(l)
    except Exception as e:
        fail(f"data line is not JSON ({e}): {l[:200]!r}")
    need(c.get("object") == "chat.completion.chunk", f"object is not \"chat.completion.chunk\": {c}")
    for ch in c.get("choices") or []:
        text += (ch.get("delta") or {}).get("content") or ""
        finish = ch.get("finish_reason") or finish
need(text, "streamed deltas are empty")
need(finish in ("stop", "length"), f"no chunk with finish_reason stop/length (got {finish!r})")
'

req POST /v1/chat/completions "{\"model\":\"$UNKNOWN_MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8}"
check "POST /v1/chat/completions (unknown model)" 404 '
d = js()
e = d.get("error")
need(isinstance(e, dict), f"not OpenAI error shape: {d}")
need(nonempty_str(e.get("message")) and nonempty_str(e.get("type")), f"error without message/type: {e}")
'

req POST /v1/chat/completions "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":8,\"temperature\":5}"
check "POST /v1/chat/completions (temperature 5)" 400 '
d = js()
e = d.get("error")
need(isinstance(e, dict), f"not OpenAI error shape: {d}")
need(nonempty_str(e.get("message")) and nonempty_str(e.get("type")), f"error without message/type: {e}")
'

req POST /v1/completions "{\"model\":\"$MODEL\",\"prompt\":\"Once upon a time\",\"max_tokens\":8}"
check "POST /v1/completions" 200 '
d = js()
obj = d.get("object")
need(obj == "text_completion", f"object is not \"text_completion\": {obj!r}")
c = d["choices"][0]
need(nonempty_str(c.get("text")), f"empty choices[0].text: {c}")
fr = c.get("finish_reason")
need(fr in ("stop", "length"), f"finish_reason is not stop/length: {fr!r}")
usage = d["usage"]
need(usage["total_tokens"] > 0, f"usage.total_tokens is not > 0: {usage}")
'

# ── Ollama-compatible ───────────────────────────────────────────────────────────────────
req GET /api/version
check "GET /api/version" 200 '
d = js()
need(nonempty_str(d.get("version")), f"no string \"version\": {d}")
'

req GET /api/tags
check "GET /api/tags" 200 '
d = js()
models = d.get("models")
need(isinstance(models, list) and models, f"no non-empty \"models\" array: {d}")
names = [m.get("name") for m in models]
need(all(nonempty_str(n) for n in names), f"a model without \"name\": {models}")
need(all(nonempty_str(m.get("model")) for m in models), f"a model without \"model\" (the ollama client reads it): {models}")
need(MODEL in names or MODEL + ":latest" in names, f"model {MODEL} not listed: {names}")
'

req POST /api/show "{\"model\":\"$MODEL\"}"
check "POST /api/show" 200 '
d = js()
need(isinstance(d, dict), f"body is not a JSON object: {d!r}")
'

req POST /api/show "{\"model\":\"$UNKNOWN_MODEL\"}"
check "POST /api/show (unknown model)" 404 '
d = js()
need(nonempty_str(d.get("error")), f"not Ollama error shape {{\"error\": \"...\"}}: {d}")
'

req POST /api/generate "{\"model\":\"$MODEL\",\"prompt\":\"Hi\",\"stream\":false,\"options\":{\"num_predict\":8}}"
check "POST /api/generate (stream false)" 200 '
d = js()
need(nonempty_str(d.get("response")), f"empty \"response\": {d}")
need(d.get("done") is True, f"done is not true: {d}")
ec = d.get("eval_count")
need(isinstance(ec, int) and ec > 0, f"eval_count is not > 0: {ec!r}")
'

req POST /api/generate "{\"model\":\"$MODEL\",\"prompt\":\"Hi\",\"options\":{\"num_predict\":8}}"
check "POST /api/generate (default stream)" 200 '
chunks = ndjson()
need(len(chunks) >= 2, f"expected several NDJSON lines, got {len(chunks)}")
need(all(c.get("done") is False for c in chunks[:-1]), "a line before the last has done != false")
need(chunks[-1].get("done") is True, f"last line has no done: true: {chunks[-1]}")
need("".join(c.get("response") or "" for c in chunks), "streamed response is empty")
'

req POST /api/generate "{\"model\":\"$UNKNOWN_MODEL\",\"prompt\":\"Hi\",\"stream\":false}"
check "POST /api/generate (unknown model)" 404 '
d = js()
need(nonempty_str(d.get("error")), f"not Ollama error shape {{\"error\": \"...\"}}: {d}")
'

req POST /api/chat "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":false,\"options\":{\"num_predict\":8}}"
check "POST /api/chat (stream false)" 200 '
d = js()
m = d.get("message") or {}
need(m.get("role") == "assistant", f"message.role is not assistant: {d}")
need(nonempty_str(m.get("content")), f"empty message.content: {d}")
need(d.get("done") is True, f"done is not true: {d}")
'

req POST /api/chat "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"options\":{\"num_predict\":8}}"
check "POST /api/chat (default stream)" 200 '
chunks = ndjson()
need(len(chunks) >= 2, f"expected several NDJSON lines, got {len(chunks)}")
need(all(c.get("done") is False for c in chunks[:-1]), "a line before the last has done != false")
need(chunks[-1].get("done") is True, f"last line has no done: true: {chunks[-1]}")
need("".join((c.get("message") or {}).get("content") or "" for c in chunks), "streamed message is empty")
'

req POST /api/chat "{\"model\":\"$UNKNOWN_MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream\":false}"
check "POST /api/chat (unknown model)" 404 '
d = js()
need(nonempty_str(d.get("error")), f"not Ollama error shape {{\"error\": \"...\"}}: {d}")
'

# ── cache administration (after the traffic above) ─────────────────────────────────────────
req GET /admin/cache
check "GET /admin/cache" 200 '
d = js()
need(isinstance(d.get("stats", {}).get("hits"), int), f"no stats.hits: {d}")
'

req POST /admin/cache/clear '{}'
check "POST /admin/cache/clear" 200 '
need(js().get("cleared") is True, f"not cleared: {raw[:200]}")
'

req GET /metrics
check "GET /metrics" 200 '
need("text/plain" in ctype, f"Content-Type is {ctype!r}, not text/plain (Prometheus)")
need("# TYPE llm_pool_requests_total" in raw, "no llm_pool_requests_total family")
'

echo
if [ "$failed" -gt 0 ]; then
  echo "test-http: failed checks:" >&2
  for f in "${failures[@]}"; do echo "  - $f" >&2; done
fi
echo "test-http: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
