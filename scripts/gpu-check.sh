#!/usr/bin/env bash
# One prepared GPU check: what one CUDA GPU does with the 3 × 300 network.
#
# Steps (each prints what it measured; later steps run even if an earlier one fails):
#   0. (DEVICE=cuda) torch computes on every card: compute capability >= MIN_CAPABILITY (7.5:
#      CUDA 13 wheels have no sm_70 code, a V100 would fail at its first kernel) and a real
#      kernel runs (ansible/roles/gpu_node/files/check_gpu.py, the GPU node's check); else it
#      stops here, naming the card
#   1. the card and its measured matrix throughput (FP32, TF32, BF16 GEMM)
#   2. generate 11.5 M toy events (10.5 M train, 0.5 M validation, 0.5 M test)
#   3. one epoch over 10.5 M events, batch 4096, for each optimizer (fp32), via `higgsbench bench`
#   4. the same for Adam in TF32 and BF16
#   5. CUDA-graph replay against eager steps: same losses
#   6. --until-plateau training: wall time to the best validation AUC
#   7. feature study on 10.5 M events: low-level vs all features (3 × 300), and with one hidden
#      layer low-level vs high-level features
#   8. the thesis' engine, Keras/TensorFlow, beside torch on the same card, in one bench per
#      precision (fp32, bf16; sgd and adam); skipped with a line when TensorFlow sees no GPU
# Everything small is packed into $RESULTS/gpu-check.tar.gz.
#
# Usage: scripts/gpu-check.sh            (python3 must hold a CUDA build of torch)
#   EVENTS=… DEVICE=cpu STUDY_EPOCHS=… RESULTS=… to rehearse it small on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
EVENTS=${EVENTS:-11500000}
HELD_OUT=${HELD_OUT:-500000}
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-2}
STUDY_EPOCHS=${STUDY_EPOCHS:-30}
RESULTS=${RESULTS:-runs/gpu-check}
PARTS=${PARTS:-"1 2 3 4 5 6 7 8"}      # which steps to run
SWEEP_PRECISIONS=${SWEEP_PRECISIONS:-fp32}
MIN_CAPABILITY=${MIN_CAPABILITY:-7.5}
export PYTHONPATH=$PWD/app:${PYTHONPATH:-} HIGGSBENCH_PROGRESS=0 PYTHONUNBUFFERED=1
HB="$PY -m higgsbench"
mkdir -p "$RESULTS"
step() { echo; echo "=== $* ($(date +%T))"; }
has() { [[ " $PARTS " == *" $1 "* ]]; }

if [ "$DEVICE" = cuda ]; then
  step "0. torch computes on every card (compute capability >= $MIN_CAPABILITY, a kernel)"
  $PY ansible/roles/gpu_node/files/check_gpu.py "$MIN_CAPABILITY" || exit 1
fi

step "1. card and matrix throughput"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null \
  || echo "nvidia-smi: not available"
$PY - "$DEVICE" <<'EOF' | tee "$RESULTS/gemm.json"
import json, sys, torch
from higgsbench.core.hardware import measure_gemm_gflops, resolve_device
device = resolve_device(sys.argv[1])
peaks = {p: round(measure_gemm_gflops(device, p, seconds=1.0), 1) for p in ("fp32", "tf32", "bf16")}
name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
print(json.dumps({"device": name, "torch": torch.__version__, "gemm_gflops": peaks}))
EOF

step "2. generate $EVENTS toy events"
time $HB data synth --events "$EVENTS" --val-rows "$HELD_OUT" --test-rows "$HELD_OUT" \
  --jobs "$(nproc)" --seed 42 --out "$RESULTS/prepared" --force

BENCH="$HB bench --data $RESULTS/prepared --device $DEVICE --epochs $EPOCHS --batch-size 4096"
has 3 && for precision in $SWEEP_PRECISIONS; do
  step "3. one epoch per optimizer, $precision"
  $BENCH --optimizers sgd,adam,adamax,adadelta,adagrad --precision "$precision" \
    --out "$RESULTS/$precision" ${AGAINST:+--against $AGAINST}
done
has 4 && step "4. adam in bf16" \
  && $BENCH --optimizers adam --precision bf16 --out "$RESULTS/bf16"

has 5 && step "5. CUDA graph against eager steps (adam, 1 M rows, 2 epochs)"
has 5 && for mode in cuda-graphs no-cuda-graphs; do
  $HB train --data "$RESULTS/prepared" --out "$RESULTS/$mode" --device "$DEVICE" --epochs 2 \
    --batch-size 4096 --max-train-rows 1000000 --"$mode" --no-progress | tail -c 300
done
has 5 && $PY - "$RESULTS" <<'EOF'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/{m}/result.json")) for m in ("cuda-graphs", "no-cuda-graphs"))
for ha, hb in zip(a["history"], b["history"]):
    print(f"epoch {ha['epoch']}: train loss graph {ha['train_loss']:.7f} eager {hb['train_loss']:.7f}"
          f" | val AUC graph {ha['val_auc']:.6f} eager {hb['val_auc']:.6f}")
print("graph mode:", a.get("cuda_graph"), "| epoch s graph", a["epoch_seconds"], "eager", b["epoch_seconds"])
EOF

has 6 && step "6. until plateau (adam, tf32)" && $HB train --data "$RESULTS/prepared" --out "$RESULTS/plateau" --device "$DEVICE" --precision tf32 \
  --epochs "$STUDY_EPOCHS" --batch-size 4096 --until-plateau --no-progress | tail -c 400

has 7 && step "7. feature study" && for spec in "3 all" "3 low" "1 low" "1 high"; do
  read -r layers features <<< "$spec"
  $HB train --data "$RESULTS/prepared" --out "$RESULTS/study-$layers-$features" \
    --device "$DEVICE" --precision tf32 --layers "$layers" --features "$features" \
    --epochs "$STUDY_EPOCHS" --batch-size 4096 --until-plateau --no-progress \
    > "$RESULTS/study-$layers-$features.log" 2>&1
  echo "layers $layers features $features: exit $?"
done

has 8 && step "8. Keras (TensorFlow) beside torch on the same card" \
  && if $PY -c "import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices('GPU'))" \
       2>/dev/null || [ "$DEVICE" = cpu ]; then
    for precision in fp32 bf16; do
      $BENCH --engines torch,keras --optimizers sgd,adam --precision "$precision" \
        --out "$RESULTS/keras-$precision"
    done
  else
    echo "TensorFlow sees no GPU here (make images-gpu has it; or pip install '.[keras-gpu]')"
  fi

step "summary"
$PY - "$RESULTS" <<'EOF'
import glob, json, os, sys
root = sys.argv[1]
for name in ("fp32", "tf32", "bf16", "keras-fp32", "keras-bf16"):
    path = f"{root}/{name}/bench.json"
    if os.path.exists(path):
        for r in json.load(open(path))["rows"]:
            print(f"{name:10s} {r['engine']:5s} {r['optimizer']:9s} epoch {r['epoch_seconds']:.3f} s  "
                  f"{r['events_per_second']/1e6:6.2f} M events/s  {r['gflops']/1e3:6.1f} TFLOP/s  "
                  f"{100*(r['fraction_of_peak'] or 0):5.1f} % of measured {name.split('-')[-1]} GEMM  AUC {r['test_auc']:.4f}")
for path in sorted(glob.glob(f"{root}/plateau/result.json") + glob.glob(f"{root}/study-*/result.json")):
    r = json.load(open(path))
    p = r.get("plateau", {})
    print(f"{path.split('/')[-2]:14s} layers {r['layers']} {r['features']:4s} test AUC {r['test_auc']:.4f} "
          f"epochs {r['epochs']} best {p.get('best_epoch')} at {p.get('seconds_to_best', 0):.1f} s wall")
EOF
tar -czf "/tmp/gpu-check.tar.gz" --exclude=./prepared --exclude='*.pt' -C "$RESULTS" . \
  && mv /tmp/gpu-check.tar.gz "$RESULTS/gpu-check.tar.gz"
echo "packed $RESULTS/gpu-check.tar.gz"
