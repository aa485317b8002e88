#!/usr/bin/env bash
# Real-data check (issue 3): SST-2, the packaged MiniLM, max length 64, CPU, the same step budget for
# vanilla and MAT (K_delta = K_theta = 2). Each run prints its best dev accuracy; records go to runs/real_sst2/.
# Usage: MAT_DATA_DIR=../shared/data bash benchmarks/real_sst2.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-300}
COMMON=(--task sst2 --model minilm --max_length 64 --batch_size 32 --max_train_samples $((STEPS * 32))
        --epochs 1 --eval_times 3 --learning_rate 5e-5 --device cpu --seed 42)
for method in vanilla mat; do
  extra=()
  [ "$method" = mat ] && extra=(--sampling_times_delta 2 --sampling_times_theta 2)
  start=$(date +%s)
  python3 trials/mat_trial.py --method "$method" --output_dir "runs/real_sst2/$method" "${COMMON[@]}" "${extra[@]}"
  echo "$method: $(( $(date +%s) - start )) s wall"
  python3 -c "import json,sys; r=json.load(open('runs/real_sst2/$method/trial.json')); print('$method', r['status'], 'best', r['best']['metrics'], 'at step', r['best']['step'], 'of', r['train_steps'])"
done
