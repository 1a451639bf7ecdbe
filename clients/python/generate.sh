#!/usr/bin/env bash
# Regenerates the stubs (llmpool/v1/*_pb2*.py*) from the pool's .proto with grpcio-tools
# (`pip install grpcio-tools==1.85.1`, the version the checked-in stubs were made with).
# tests/test_stubs.py fails when the checked-in stubs differ from what this makes.
set -euo pipefail
cd "$(dirname "$0")"
OUT="${1:-.}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m grpc_tools.protoc -I ../../proto \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  llmpool/v1/llmpool.proto
