#!/usr/bin/env bash
# Brings the repository's recorded fixtures up to date with the shared copy beside it:
# cases the shared file has and the repository lacks are appended, cases both have are replaced
# by the shared version. Then commit tests/fixtures/gateway-responses.jsonl.
#
#   scripts/sync-fixtures.sh [SHARED_FILE]   (default ../shared/fixtures/gateway-responses.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${1:-../shared/fixtures/gateway-responses.jsonl}"
ours=tests/fixtures/gateway-responses.jsonl
[ -f "$shared" ] || { echo "no shared fixtures at $shared" >&2; exit 1; }
python3 - "$shared" "$ours" <<'PY'
import json, sys
shared, ours = sys.argv[1], sys.argv[2]
def read(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]
theirs = {json.loads(l)["id"]: l for l in read(shared)}
lines = read(ours)
seen, out, changed = set(), [], 0
for line in lines:
    case_id = json.loads(line)["id"]
    seen.add(case_id)
    new = theirs.get(case_id, line)
    changed += new != line
    out.append(new)
added = [theirs[i] for i in theirs if i not in seen]
out.extend(added)
with open(ours, "w", encoding="utf-8") as f:
    f.write("\n".join(out) + "\n")
print(f"{len(added)} added, {changed} updated, {len(out)} cases in {ours}")
PY
