#!/usr/bin/env bash
# The benchmark's slice on one GPU, sized for 10 minutes of one H200. Ran once on one H200 (fp32, MiniLM): the tune
# phase 157 s, the report phase 108 s; records in results/benchmark_gpu_slice/, page docs/gpu_slice/benchmark.md.
#
# Runs studies/benchmark_gpu_slice.yml through the study runner (python -m trials.study run): RTE, the six arms
# (vanilla, vanilla_steps, freelb, smart, r3f, mat) x learning rate {3e-5, 1e-4, 3e-4} on tuning seed 101,
# each arm's learning rate chosen on the selection half of dev, then the chosen ones on seeds 1-2: 30 trials,
# 6 at a time on the one GPU (MiniLM on RTE: 31-49 s a trial, 16 s of it starting).
# DEADLINE seconds after the start the runner is stopped (its running trials are lost, finished cells are kept:
# run it again to continue). Records and their page (python -m analysis benchmark) go to
# $OUT/benchmark_records.tar.gz, the runner's log to $OUT/gpu_benchmark.log.
# Needs: nni 3.0, the repo's packages, and a glue_data-style folder in MAT_DATA_DIR
# (python -m mat.data prepare --out .data --tasks rte writes one).
# Usage: MAT_DATA_DIR=.data bash benchmarks/gpu_benchmark.sh   [MODEL=bert-base-uncased DEADLINE=540 OUT=...]
set -uo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-minilm}
DEADLINE=${DEADLINE:-540}
OUT=${OUT:-/tmp/gpu_benchmark}
PORT=${PORT:-8500}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
CONFIG=$OUT/benchmark_gpu_slice.yml
sed -e "s|^model: .*|model: $MODEL|" -e "s|^records: .*|records: $OUT/records|" \
  studies/benchmark_gpu_slice.yml > "$CONFIG"
python -m trials.study status "$CONFIG" | tee "$OUT/gpu_benchmark.log"
timeout --signal=INT "$DEADLINE" python -m trials.study run "$CONFIG" --port "$PORT" --allow_dirty \
  --collect_every 5 2>&1 | tee -a "$OUT/gpu_benchmark.log"
python -m trials.study status "$CONFIG" | tee -a "$OUT/gpu_benchmark.log"
# the page of what landed (an incomplete arm is listed as such), packed with the records
python -m analysis benchmark --study "$CONFIG" --out "$OUT/page" --page benchmark.md \
  --title "The benchmark's slice on one GPU" 2>&1 | tail -1 | tee -a "$OUT/gpu_benchmark.log"
tar -czf "$OUT/benchmark_records.tar.gz" -C "$OUT" records page 2>/dev/null \
  || echo "no records" | tee -a "$OUT/gpu_benchmark.log"
