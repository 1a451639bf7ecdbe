# syntax=docker/dockerfile:1
#
# llm-pool image: gRPC on 7070, HTTP on 7071.
#   docker build -t llm-pool:0.1.0 .
#   docker run --rm -p 7070:7070 -p 7071:7071 llm-pool:0.1.0
# The image carries llm-pool.toml and prompts/ in /etc/llm-pool as a default; deployments
# mount their own (deploy/docker-compose.yml, deploy/k8s) and pass `--config`.

# ---- build --------------------------------------------------------------------------------
# The same toolchain as rust-toolchain.toml (tests/deploy/test_manifests.py checks the two
# agree). Bookworm, like the runtime image below, so the binary's glibc is the one it runs on.
ARG RUST_VERSION=1.95.0
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the manifest, the lock
# file, build.rs, the .proto, the client crate or the benches change, not on every source edit. Stub crate
# roots stand in for src/. The benches are copied as they are because Cargo.toml declares
# them ([[bench]]) and cargo refuses a manifest whose targets are missing; release builds
# do not compile them.
# rust-toolchain.toml is left out on purpose: the image's toolchain is already that
# version, and the file's `components` would make rustup download rustfmt and clippy here.
COPY Cargo.toml Cargo.lock build.rs ./
# Build settings (mimalloc's lazy arena commit: lower RSS).
COPY .cargo ./.cargo
COPY proto ./proto
# The client crate (clients/rust, a workspace member the CLI is built on) in full: it is
# small and changes with the .proto.
COPY clients/rust ./clients/rust
COPY benches ./benches
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

COPY src ./src
# COPY keeps the files' modification times, which can be older than the stubs' build:
# touch the crate roots so cargo rebuilds the crate itself rather than reuse the stub.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && ./target/release/llm-pool --version

# ---- run ----------------------------------------------------------------------------------
# debian-slim rather than distroless: it has curl for HEALTHCHECK and `sleep` for the
# Kubernetes preStop hook (deploy/k8s/deployment.yaml), for a few tens of MB more.
FROM debian:bookworm-slim

# ca-certificates for curl (the pool itself carries its TLS roots: rustls with webpki roots).
# Unpinned on purpose: bookworm's point releases replace these versions (security fixes),
# and a pinned version that left the archive would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and volume permissions
# are predictable.
RUN groupadd --system --gid 10001 llmpool \
 && useradd --system --uid 10001 --gid llmpool --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin llmpool

COPY --from=builder /src/target/release/llm-pool /usr/local/bin/llm-pool
COPY llm-pool.toml /etc/llm-pool/llm-pool.toml
COPY prompts /etc/llm-pool/prompts

USER 10001:10001
# gRPC, HTTP ([server] grpc_addr and http_addr of the config; 0.0.0.0 in a container).
EXPOSE 7070 7071
# /health answers 200 while the process serves HTTP. The port is the config's http_addr:
# a config that moves it needs `--health-cmd` (docker run) or `healthcheck:` (compose).
# Kubernetes ignores HEALTHCHECK and uses the Deployment's probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:7071/health"]
# The pool drains on SIGTERM (the default stop signal): readiness fails, listeners close,
# in-flight requests get shutdown_grace_secs. Give `docker stop` longer (`-t 40`).
ENTRYPOINT ["llm-pool"]
CMD ["serve", "--config", "/etc/llm-pool/llm-pool.toml"]
