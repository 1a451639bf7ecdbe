#!/usr/bin/env bash
# "The Tail at Scale" against llm-pool (benches/tail.rs): heavy-tailed upstream latency,
# hedging off / fixed delay / adaptive p95, then a dead endpoint ejected and readmitted by
# its breaker. Arguments pass through, e.g.:
#   scripts/bench-tail.sh --requests 20000 --concurrency 16 --slow-share 0.02 --slow-factor 50
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench tail -- "$@"
