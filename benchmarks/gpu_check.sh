#!/usr/bin/env bash
# The GPU checks, as one script for a GPU machine (run from the repo root, packages installed):
#   1. the gpu-marked tests (tests/test_gpu.py: bf16 learning for every method, fp16 + GradScaler, the
#      parameter copies vanilla and MAT hold between steps, a whole trial with --device cuda --precision bf16);
#   2. the step benchmark on a BERT-base-sized model (random init, no download), bf16 and fp32, batch 32 x 128,
#      K_delta = K_theta = 10;
#   3. when TOKENIZER and DATA are set, one whole RTE trial per method (benchmarks/gpu_trials.sh).
# Output goes to stdout and, when $OUT is set, to $OUT/gpu_check.log (and $OUT/gpu_trials.log).
# Figures from one H200: docs/speed.md, "On one GPU".
# Usage: bash benchmarks/gpu_check.sh     [TOKENIZER=<bert-base-uncased tokenizer folder> DATA=<glue_data folder>]
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp}/gpu_check.log
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py
  for precision in bf16 fp32; do
    python3 benchmarks/step_cost.py --model bert-base-random --device cuda --precision "$precision" \
      --batch_size 32 --max_length 128 --k 10 --repeats 5 2>/dev/null | tail -1
  done
} 2>&1 | tee "$LOG"
if [ -n "${TOKENIZER:-}" ] && [ -n "${DATA:-}" ]; then
  bash benchmarks/gpu_trials.sh
else
  echo "whole trials skipped: set TOKENIZER and DATA to run benchmarks/gpu_trials.sh" | tee -a "$LOG"
fi
