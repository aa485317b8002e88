#!/usr/bin/env bash
# The GPU checks, as one script for a GPU machine (run from the repo root, packages installed):
#   1. the gpu-marked tests (tests/test_gpu.py: bf16 learning for every method, fp16 + GradScaler, MAT's
#      memory = exactly two extra parameter copies, a whole trial with --device cuda --precision bf16);
#   2. the step benchmark on a BERT-base-sized model (random init, no download), bf16 and fp32, batch 32 x 128,
#      K_delta = K_theta = 10.
# Output goes to stdout and, when $OUT is set, to $OUT/gpu_check.log.
# Usage: bash benchmarks/gpu_check.sh
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
