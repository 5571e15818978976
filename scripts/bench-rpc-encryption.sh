#!/usr/bin/env bash
# What Spark's RPC encryption costs per epoch: the same Spark bench on a local cluster with
# encryption on and off, alternated in one run (on, off, on, off…) so that both see the same
# machine state, then one summary generated from the bench.json files.
#
# Steps:
#   1. generate EVENTS toy events (or DATA=prepared dataset)
#   2. REPEATS × { cluster up (on) → bench → down ; cluster up --no-rpc-encryption → bench → down }
#   3. summary.md: per node count, the median epoch time with and without encryption over every
#      measured epoch (the first, which includes warm-up, excluded), min–max, and the ratio
#
# Usage: scripts/bench-rpc-encryption.sh   [EVENTS=400000 REPEATS=2 EPOCHS=3 OUT=runs/rpc-encryption]
#        SUMMARY_ONLY=1 scripts/bench-rpc-encryption.sh   (step 3 alone, from OUT's bench.json files)
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
HB=${HB:-.venv/bin/higgsbench}
PY=${PY:-.venv/bin/python}
EVENTS=${EVENTS:-400000}
REPEATS=${REPEATS:-2}
EPOCHS=${EPOCHS:-3}
OUT=${OUT:-runs/rpc-encryption}
export HIGGSBENCH_PROGRESS=0
mkdir -p "$OUT"
state="$OUT/cluster"
cleanup() { [ -f "$state/.higgsbench-cluster" ] && "$HB" cluster down --state-dir "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT

data=${DATA:-$OUT/prepared}
if [ "${SUMMARY_ONLY:-0}" != 1 ]; then
[ -n "${DATA:-}" ] || [ -f "$data/stats.json" ] || "$HB" data synth --events "$EVENTS" --seed 42 --out "$data"

for repeat in $(seq 1 "$REPEATS"); do
  for mode in on off; do
    flag=$([ "$mode" = on ] && echo --rpc-encryption || echo --no-rpc-encryption)
    "$HB" cluster up --workers 2 --cores 1 --memory 2g --state-dir "$state" "$flag"
    master=$("$HB" cluster status --json --state-dir "$state" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["master_url"])')
    HIGGSBENCH_STATE_DIR=$state "$HB" bench --engines spark --nodes 1,2 --optimizers adam \
      --epochs "$EPOCHS" --batch-size 4096 --master "$master" --data "$data" \
      --out "$OUT/$mode-$repeat" >/dev/null
    "$HB" cluster down --state-dir "$state"
  done
done
fi

"$PY" - "$OUT" <<'EOF'
import json, statistics, sys
from pathlib import Path

out = Path(sys.argv[1])
epochs = {}  # (mode, nodes) -> every epoch time after the first, over all repeats
for bench_json in sorted(out.glob("o*-*/bench.json")):
    mode = bench_json.parent.name.split("-")[0]
    bench = json.loads(bench_json.read_text())
    for row in bench["rows"]:
        if row["engine"] != "spark":
            continue
        run_dir = bench_json.parent / row["run_dir"]  # relative to the bench directory
        result = json.loads((run_dir / "result.json").read_text())
        epochs.setdefault((mode, row["nodes"]), []).extend(result["epoch_seconds"][1:])
machine = bench["machine"]
lines = [
    f"RPC encryption cost, Spark engine, adam, batch 4096, {bench['plan']['epochs']} epochs per run "
    f"(first excluded), generated data; machine: {machine['processor']}, {machine['cpu_count']} cores ({machine['hostname']})",
    "",
    "| nodes | epoch s, encrypted (median, min–max) | epoch s, not encrypted | ratio |",
    "| --- | --- | --- | --- |",
]
for nodes in sorted({n for _, n in epochs}):
    on, off = epochs[("on", nodes)], epochs[("off", nodes)]
    ratio = statistics.median(on) / statistics.median(off)
    lines.append(
        f"| {nodes} | {statistics.median(on):.2f} ({min(on):.2f}–{max(on):.2f}) "
        f"| {statistics.median(off):.2f} ({min(off):.2f}–{max(off):.2f}) | {ratio:.3f} |"
    )
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
