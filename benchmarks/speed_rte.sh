#!/usr/bin/env bash
# What --group_by_length buys on real RTE (MiniLM, max length 128, batch 16): one JSON line per trial from
# benchmarks/trial_cost.py (wall seconds per phase, train and padded tokens, passes, best dev score).
#   part "time":  1 epoch, vanilla and MAT (K_delta = K_theta = 2), each without and with grouping
#   part "seeds": vanilla, 2 epochs, seeds 1-3, without and with grouping (dev accuracy within the seed spread?)
# Usage: MAT_DATA_DIR=<data folder> bash benchmarks/speed_rte.sh [time|seeds|all] > results.jsonl
# Run it alone: on two cores anything else running makes the timings worthless.
set -euo pipefail
cd "$(dirname "$0")/.."
PART=${1:-all}
: "${MAT_DATA_DIR:?set MAT_DATA_DIR to a glue_data-style folder (python -m mat.data prepare --out DIR writes one)}"
COMMON=(--task rte --model minilm --max_length 128 --batch_size 16 --device cpu --data_dir "$MAT_DATA_DIR")
run() { python benchmarks/trial_cost.py -- "${COMMON[@]}" "$@"; }
if [[ $PART == time || $PART == all ]]; then
  for method in vanilla mat; do
    extra=(); [[ $method == mat ]] && extra=(--sampling_times_delta 2 --sampling_times_theta 2)
    run --method "$method" "${extra[@]}" --epochs 1 --seed 42
    run --method "$method" "${extra[@]}" --epochs 1 --seed 42 --group_by_length
  done
fi
if [[ $PART == seeds || $PART == all ]]; then
  for seed in 1 2 3; do
    run --method vanilla --epochs 2 --seed "$seed"
    run --method vanilla --epochs 2 --seed "$seed" --group_by_length
  done
fi
