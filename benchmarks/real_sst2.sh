#!/usr/bin/env bash
# Real-data check: SST-2, the packaged MiniLM, max length 64, CPU, the same step budget for
# vanilla and MAT (K_delta = K_theta = 2). Each run prints its best dev accuracy; records go to $OUT_DIR/<method>/
# (default runs/real_sst2). Measured results (500 steps, lr 1e-4): docs/speed.md, "Real data: SST-2 in 500 steps".
# Usage: MAT_DATA_DIR=<data folder> [LR=1e-4] [METHODS="vanilla mat"] [OUT_DIR=runs/real_sst2] bash benchmarks/real_sst2.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-500}
LR=${LR:-1e-4}
METHODS=${METHODS:-vanilla mat}
OUT_DIR=${OUT_DIR:-runs/real_sst2}
COMMON=(--task sst2 --model minilm --max_length 64 --batch_size 32 --max_train_samples $((STEPS * 32))
        --epochs 1 --eval_times 3 --learning_rate "$LR" --device cpu --seed 42)
for method in $METHODS; do
  extra=()
  [ "$method" = mat ] && extra=(--sampling_times_delta 2 --sampling_times_theta 2)
  start=$(date +%s)
  python3 trials/mat_trial.py --method "$method" --output_dir "$OUT_DIR/$method" "${COMMON[@]}" "${extra[@]}"
  echo "$method: $(( $(date +%s) - start )) s wall"
  python3 -c "import json,sys; r=json.load(open('$OUT_DIR/$method/trial.json')); print('$method', r['status'], 'best', r['best']['metrics'], 'at step', r['best']['step'], 'of', r['train_steps'])"
done
