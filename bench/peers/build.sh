#!/usr/bin/env bash
# Builds a Rust LLM gateway that bench/overhead.py measures as a peer (`--peer agentgateway`,
# `--peer helicone`), from a git copy of its public source, in a cache directory outside the
# repository. Nothing of the peer is committed or vendored here: the script exports one
# pinned commit, makes the few edits an offline build needs (below, each with its reason)
# and builds it with the peer's own release profile.
#
#   bench/peers/build.sh agentgateway /path/to/agentgateway/.git
#   bench/peers/build.sh helicone /path/to/Helicone/ai-gateway/.git
#
# The build machine reaches crates.io but no git host, so every git dependency is replaced
# by its crates.io release. Prints the binary's path on the last line.
set -euo pipefail

peer=${1:?usage: build.sh agentgateway|helicone [GIT_DIR]}
# Only needed the first time: once built, `build.sh PEER` just prints the binary's path.
git_dir=${2:-}
PEERS=${LLM_POOL_PEERS:-$HOME/.cache/llm-pool/peers}
mkdir -p "$PEERS"

case "$peer" in
  agentgateway)
    # The last main (2026-04-29) whose toolchain (1.95) is this machine's; later ones want
    # 1.98. Every main since 2026-03 patches crates from git forks.
    rev=472fbd206
    dir="$PEERS/agentgateway-$rev"
    bin="$dir/target/release/agentgateway"
    ;;
  helicone)
    # Helicone's AI gateway, the newest main (2025-07-30).
    rev=42d2998
    dir="$PEERS/helicone-$rev"
    bin="$dir/target/dist/ai-gateway"
    ;;
  *) echo "unknown peer $peer (known: agentgateway, helicone)" >&2; exit 2 ;;
esac

if [ ! -x "$bin" ]; then
  if [ ! -f "$dir/Cargo.toml" ]; then
    if [ -z "$git_dir" ]; then
      echo "$peer is not built yet: bench/peers/build.sh $peer GIT_DIR (a git copy of its source)" >&2
      exit 1
    fi
    mkdir -p "$dir"
    git --git-dir="$git_dir" archive "$rev" | tar -x -C "$dir"
    case "$peer" in
      agentgateway)
        # [patch.crates-io] names forks of schemars, http-serde and wiremock on git hosts:
        # use the crates.io releases. The fork's `arcstr1` schemars feature only serves
        # the optional `schema` feature (JSON schema generation), not built here; wiremock's
        # `tls` only its tests.
        sed -i -e '/^\[patch.crates-io\]$/d' -e '/^schemars = { git/d' \
               -e '/^http-serde = { git/d' -e '/^wiremock = { git/d' \
               -e 's|^schemars = { version = "=1.0.4", git = "[^"]*", rev = "[^"]*", features = \[|schemars = { version = "=1.0.4", features = [|' \
               -e '/^    "arcstr1",$/d' \
               -e 's|^wiremock = { version = "0.6", features = \["tls"\] }|wiremock = "0.6"|' \
               "$dir/Cargo.toml"
        # The http-serde fork adds `option::scheme` and `header_name`, used by two fields
        # (a CEL request's scheme, a header's name in backend auth): the same (de)serializers,
        # as strings, in a module of the crate.
        cat >"$dir/crates/agentgateway/src/http_serde_compat.rs" <<'RS'
//! What the http-serde fork adds to the crates.io release (for an offline build).
pub mod option_scheme {
	use serde::{Deserialize, Deserializer, Serializer};
	pub fn serialize<S: Serializer>(v: &Option<http::uri::Scheme>, s: S) -> Result<S::Ok, S::Error> {
		match v {
			Some(v) => s.serialize_some(v.as_str()),
			None => s.serialize_none(),
		}
	}
	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<http::uri::Scheme>, D::Error> {
		Option::<String>::deserialize(d)?
			.map(|v| v.parse().map_err(serde::de::Error::custom))
			.transpose()
	}
}
pub mod header_name {
	use serde::{Deserialize, Deserializer, Serializer};
	pub fn serialize<S: Serializer>(v: &http::HeaderName, s: S) -> Result<S::Ok, S::Error> {
		s.serialize_str(v.as_str())
	}
	pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::HeaderName, D::Error> {
		String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
	}
}
RS
        echo 'pub mod http_serde_compat;' >>"$dir/crates/agentgateway/src/lib.rs"
        sed -i 's|with = "http_serde::option::scheme"|with = "crate::http_serde_compat::option_scheme"|' \
          "$dir/crates/agentgateway/src/cel/types.rs"
        sed -i 's|with = "http_serde::header_name"|with = "crate::http_serde_compat::header_name"|' \
          "$dir/crates/agentgateway/src/http/auth/mod.rs"
        # It pins toolchain 1.95 by name; this machine's 1.95 is the default toolchain.
        rm -f "$dir/rust-toolchain.toml"
        ;;
      helicone)
        # Forks of async-openai and the AWS SDK on git hosts (the fork's changes concern
        # Bedrock, not measured here), and stubr (tests only): their crates.io releases.
        sed -i -e 's|^async-openai = { version = "0.29.0", git = "[^"]*" }|async-openai = { version = "=0.29.0" }|' \
               -e 's|^aws-sdk-bedrockruntime = { version = "1.92.0", git = "[^"]*" }|aws-sdk-bedrockruntime = { version = "=1.92.0" }|' \
               -e 's|^stubr = { git = "[^"]*" }|stubr = "0.6"|' \
               "$dir/Cargo.toml"
        # The AWS SDK fork adds serde (de)serializers to Bedrock's types; the crates.io
        # release has none, so the OpenAI → Bedrock converter cannot build: it is left out
        # (Bedrock is not measured), and its tool-schema mapping drops tools.
        python3 - "$dir/ai-gateway/src/middleware/mapper" <<'PY'
import re, sys
d = sys.argv[1]
p = f"{d}/registry.rs"
s = open(p).read()
s, n = re.subn(r"\n\s*let key = RegistryKey::new\(\s*ApiEndpoint::OpenAI\(OpenAI::chat_completions\(\)\),\s*"
               r"ApiEndpoint::Bedrock\(Bedrock::converse\(\)\),\s*\);.*?registry\.register_converter\(key, converter\);",
               "", s, count=1, flags=re.S)
assert n == 1, "the Bedrock converter's registration"
open(p, "w").write(s)
p = f"{d}/bedrock.rs"
s = open(p).read()
old = "let json_value = serde_json::from_value(parameters).ok()?;"
assert old in s, "the Bedrock tool schema's conversion"
s = s.replace(old, "let json_value: aws_smithy_types::Document = { let _ = parameters; None? };")
open(p, "w").write(s)
PY
        ;;
    esac
    if grep -q 'git *= *"' "$dir/Cargo.toml"; then
      echo "$dir/Cargo.toml still names a git dependency" >&2
      exit 1
    fi
  fi
  case "$peer" in
    # Its release profile (fat LTO, one codegen unit) and its default allocator (jemalloc),
    # as its Dockerfile builds it, less the `ui` feature (the admin UI's assets).
    agentgateway) (cd "$dir" && cargo build --release -p agentgateway-app --bin agentgateway) >&2 ;;
    # Its `dist` profile: the one its release binaries are built with (thin LTO).
    helicone) (cd "$dir" && cargo build --profile dist -p ai-gateway --bin ai-gateway) >&2 ;;
  esac
fi
echo "$bin"
