#!/usr/bin/env bash
# Runs each fuzz target for a short, bounded time (not part of .ci/run).
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 60)
#
# cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
# Corpus seeds live in fuzz/corpus/<target>/ (the classifier's are the recorded gateway fixtures of tests/fixtures/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in classify_response retry_after; do
  echo "== fuzzing $target for ${seconds}s"
  # A scratch copy of the seeds, so that a run does not grow the committed corpus.
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$target/." "$work/"
  cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=8192
  rm -rf "$work"
done
