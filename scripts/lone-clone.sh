#!/usr/bin/env bash
# Clones the repository into a temporary directory with nothing beside it (no ../shared) and
# runs the README's two commands there, as a user with a Rust toolchain and a C compiler would.
# Also checks that the README's test command needs no OpenSSL (no openssl-sys in its tree).
#
#   scripts/lone-clone.sh   (from anywhere inside the repository; the committed HEAD is cloned)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/reqwest-resilience"
cd "$work/reqwest-resilience"
[ ! -e ../shared ] || { echo "unexpected ../shared beside the clone" >&2; exit 1; }
# Reuse the repository's build directory for the dependencies (the clone's own crate is
# rebuilt: its path differs). Nothing the environment says about fixtures or gateways applies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
unset GATEWAY_FIXTURES
tree="$(cargo tree --features full -e normal,build,dev -i openssl-sys 2>&1 || true)"
if ! grep -q "did not match any packages" <<<"$tree"; then
  echo "the README's test command would need OpenSSL (openssl-sys in the 'full' tree?):" >&2
  echo "$tree" >&2
  exit 1
fi
echo "-- cargo test --features full (lone clone)"
cargo test --features full
echo "-- cargo run --example demo (lone clone)"
cargo run --example demo >/dev/null
echo "lone clone: both README commands passed"
