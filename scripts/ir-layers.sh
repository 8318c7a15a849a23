#!/usr/bin/env bash
# The peer harness (../shared/bench-anchors) with this checkout as client E, plus clients Z0-Z3:
# the crate's `Client` with layers turned off, to count each layer's share of E's instructions
# per request (scripts/bench-layers/z_layers.rs):
#   Z0  no retry, no attempt timeout, no deadline (the client, its request and response types,
#       the transport: the floor every configuration pays)
#   Z1  the deadline only        Z2  the deadline and the attempt timeout, no retry
#   Z3  the retry loop and the deadline, no attempt timeout
#   E   the default client (retry, attempt timeout, deadline), as the harness configures it
#   ZM  not this crate: the least such a client must do, written by hand over reqwest (one
#       boxed future, a deadline, a copy for a retry, one timer, the body read in time)
# Builds in /tmp (its own target directory: run-with-project.sh's binary is left alone) and
# copies the binary to OUT; then count with, e.g.,
#   scripts/ir-repeat.sh 5 A,Z0,Z1,Z2,Z3,E s1 OUT
# With PATCH=FILE, the clients are built over a copy of the committed crate (HEAD) with FILE
# applied, e.g. scripts/bench-layers/fused-first-attempt.patch (a probe: see its head). The
# Z and ZM clients (scripts/bench-layers/z_layers.rs) come from the working tree either way.
# With FEATURES=LIST (e.g. metrics), the crate is built with those features on.
# Usage, from the project root: [PATCH=FILE] [FEATURES=LIST] scripts/ir-layers.sh OUT
set -euo pipefail
out=${1:?usage: scripts/ir-layers.sh OUT}
project=$(cd "$(dirname "$0")/.." && pwd)
anchors=${ANCHORS:-$project/../shared/bench-anchors}
[ -d "$anchors" ] || { echo "ir-layers.sh: no harness at $anchors (set ANCHORS)" >&2; exit 2; }
w=${BENCH_WORK:-/tmp/bench-layers}
rm -rf "$w" && mkdir -p "$w" && cp -r "$anchors/." "$w/" && rm -f "$w/run-with-project.sh"
crate=$project
if [ -n "${PATCH:-}" ]; then
  patch=$(realpath "$PATCH")
  crate=$w-crate
  rm -rf "$crate" && mkdir -p "$crate"
  git -C "$project" archive HEAD | tar -x -C "$crate"
  # A repository of its own: inside another one's work tree (BENCH_WORK under a checkout),
  # `git apply` would take the paths as that repository's and skip them all, silently.
  git -C "$crate" init -q && git -C "$crate" add -A
  git -C "$crate" apply "$patch"
  if git -C "$crate" diff --quiet; then
    echo "ir-layers.sh: $PATCH changed nothing in the copy" >&2
    exit 2
  fi
fi
for c in e e1 e2 e3; do cp "$w/src/clients/${c}_resilience.rs.txt" "$w/src/clients/${c}_resilience.rs"; done
cp "$project/scripts/bench-layers/z_layers.rs" "$w/src/clients/z_layers.rs"
python3 - "$w" "$crate" "${FEATURES:-}" <<'PY'
import sys
w, project, features = sys.argv[1], sys.argv[2], sys.argv[3]
p = f"{w}/src/clients/mod.rs"
s = open(p).read()
mods = "pub mod d_tower;\n" + "".join(f"pub mod {m};\n" for m in
    ["e_resilience", "e1_resilience", "e2_resilience", "e3_resilience", "z_layers"])
s = s.replace("pub mod d_tower;\n", mods, 1)
specs = [("E", "e_resilience::make"), ("E1", "e1_resilience::make"),
         ("E2", "e2_resilience::make"), ("E3", "e3_resilience::make")]
specs += [(f"Z{i}", f"z_layers::make{i}") for i in range(4)] + [("ZM", "z_layers::make_minimal")]
lines = "".join(f'        ClientSpec {{ key: "{k}", name: "reqwest-resilience {k}", '
                f'config: "scripts/ir-layers.sh", make: {m} }},\n' for k, m in specs)
marker = '        // ClientSpec { key: "E"'
if marker not in s:
    sys.exit("ir-layers.sh: the harness's client registry changed")
s = s.replace(marker, lines + marker, 1)
open(p, "w").write(s)
p = f"{w}/Cargo.toml"
s = open(p).read()
wanted = ", ".join(f'"{f}"' for f in features.replace(",", " ").split())
s = s.replace("[dependencies]", f'[dependencies]\nreqwest-resilience = {{ path = "{project}", default-features = false, features = [{wanted}] }}', 1)
open(p, "w").write(s)
PY
(cd "$w" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-layers-target} cargo build -q --release)
cp "${CARGO_TARGET_DIR:-/tmp/bench-layers-target}/release/anchor-bench" "$out"
echo "$out"
