#!/usr/bin/env bash
# Cache hit latency (c=1) and throughput (c=32) through HTTP, moka and Redis backends
# (benches/cache_hits.rs). Needs redis-server for the Redis row (apt-get install redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench cache_hits -- "$@"
