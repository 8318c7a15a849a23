#!/usr/bin/env bash
# Instructions per request, counted several times: the mean and spread of `ir.sh` (the
# yardstick in ../shared/bench-anchors) over RUNS runs of each harness binary, run in turn,
# for one scenario. One run of one build falls in one of two modes about 1,200 instructions
# apart in S1 (reqwest's connection pool hashes more in some processes than in others; the
# thirteenth session's BENCHMARKS section), so a mean over a few runs says as much about how
# many fell in each mode as about the build. Besides the mean, each binary's lower mode is
# shown (the runs within 600 of its fewest): compare builds mode for mode, or diff functions
# (`KEEP=1 ir.sh`, then `ir-diff.py`).
#
# Usage: scripts/ir-repeat.sh RUNS CLIENTS SCENARIO BIN [BIN...]
#   RUNS: runs per binary (5 or more to see 1%)
#   CLIENTS: e.g. A,E,E2,E3 (the first is the one `ir.sh` divides by)
#   SCENARIO: s1 (healthy, as `ir.sh`), s2 (30% of first attempts fail), s3 (always 502)
#   BIN: harness binaries, e.g. one built from the project's start and one from its end by
#        `../shared/bench-anchors/run-with-project.sh --help` (copied aside between builds)
# IR_SH overrides where ir.sh is (default: ../shared/bench-anchors/ir.sh from the project root).
# Needs valgrind and python3.
set -euo pipefail
runs=${1:?runs}; clients=${2:?clients}; scenario=${3:?scenario}; shift 3
[ $# -gt 0 ] || { echo "ir-repeat.sh: no harness binary given" >&2; exit 2; }
ir=${IR_SH:-$(cd "$(dirname "$0")/.." && pwd)/../shared/bench-anchors/ir.sh}
[ -f "$ir" ] || { echo "ir-repeat.sh: no ir.sh at $ir (set IR_SH)" >&2; exit 2; }
work=$(mktemp -d /tmp/ir-repeat.XXXX)
trap 'rm -rf "$work"' EXIT
# ir.sh counts S1; the other scenarios are the same count with its S1 swapped for theirs.
case $scenario in
  s1) script=$ir ;;
  s2|s3)
    script=$work/ir-$scenario.sh
    sed -e "s/--s1 \"\$n\" --s2 0 --s3 0/--s1 0 $( [ "$scenario" = s2 ] && echo '--s2 "$n" --s3 0' || echo '--s2 0 --s3 "$n"')/" "$ir" >"$script"
    grep -q -- "--s1 0" "$script" || { echo "ir-repeat.sh: ir.sh changed; cannot make $scenario" >&2; exit 2; }
    ;;
  *) echo "ir-repeat.sh: scenario is s1, s2 or s3" >&2; exit 2 ;;
esac
for ((i = 1; i <= runs; i++)); do
  for bin in "$@"; do
    bash "$script" "$bin" "$clients" | awk -v b="$bin" 'NR > 1 && $1 ~ /^[A-Z]/ {print b, $1, $4}'
  done
done >"$work/runs"
python3 - "$work/runs" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    binary, client, per_request = line.split()
    runs[(binary, client)].append(int(per_request))
for (binary, client), values in sorted(runs.items()):
    sd = statistics.stdev(values) if len(values) > 1 else 0
    low = [v for v in values if v - min(values) <= 600]
    print(f"{binary} {client}: mean {statistics.mean(values):,.0f}  sd {sd:,.0f}  "
          f"min {min(values):,}  max {max(values):,}  n={len(values)}  "
          f"lower mode {statistics.mean(low):,.0f} ({len(low)} of {len(values)})  "
          f"runs {' '.join(f'{v:,}' for v in values)}")
PY
