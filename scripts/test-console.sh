#!/usr/bin/env bash
# The operator console in a real browser: Debian's Chromium, driven over CDP by
# puppeteer-core (tests/console, from the npm registry; it downloads no browser), against
# the pool binary ($LLM_POOL_BIN, default target/debug/llm-pool).
#   scripts/test-console.sh [SCREENSHOT_DIR]   (docs/ keeps the README's screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export LLM_POOL_BIN="${LLM_POOL_BIN:-$ROOT/target/debug/llm-pool}"
case "$LLM_POOL_BIN" in /*) ;; *) LLM_POOL_BIN="$ROOT/$LLM_POOL_BIN" ;; esac
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$CHROMIUM" ]; then
  echo "chromium is required (apt-get install chromium)" >&2
  exit 1
fi
export CHROMIUM
SHOTS="${1:-$(mktemp -d)}"
mkdir -p "$SHOTS"
export LLM_POOL_SCREENSHOTS="$(cd "$SHOTS" && pwd)"
cd tests/console
npm ci --no-audit --no-fund --loglevel=error >/dev/null
node --test console.test.mjs
echo "console screenshots: $LLM_POOL_SCREENSHOTS"
