#!/usr/bin/env bash
# Whole trials on one GPU, one per method: RTE (2,490 training pairs), one epoch, batch 32 x 128 tokens,
# length-grouped, 2 evaluations, on a randomly initialised BERT-base (BertConfig() defaults, 110M parameters:
# a trial's cost does not depend on the weights, so no download is needed; its scores mean nothing).
# Each line is benchmarks/trial_cost.py's JSON (wall seconds per phase, optimizer steps, passes).
# Needs: TOKENIZER (a folder with a bert-base-uncased vocabulary: vocab.txt, tokenizer.json, ...) and
# DATA (a glue_data-style folder holding RTE). Usage: TOKENIZER=... DATA=... PRECISION=bf16 bash benchmarks/gpu_trials.sh
set -uo pipefail
cd "$(dirname "$0")/.."
: "${TOKENIZER:?a folder with a bert-base-uncased tokenizer}" "${DATA:?a glue_data-style folder with RTE}"
PRECISION=${PRECISION:-bf16}
DEVICE=${DEVICE:-cuda}
CONFIG=${CONFIG:-}            # JSON BertConfig overrides, e.g. '{"hidden_size": 32, ...}' for a dry run
MODEL=${MODEL_DIR:-/tmp/bert-base-random}
LOG=${OUT:-/tmp}/gpu_trials.log
export PYTHONUNBUFFERED=1
{
  python3 - "$MODEL" "$TOKENIZER" "$CONFIG" <<'PY'
import json, shutil, sys
from pathlib import Path
import torch
from transformers import BertConfig, BertForSequenceClassification
out, tok, overrides = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3] or "{}")
torch.manual_seed(0)
BertForSequenceClassification(BertConfig(num_labels=2, **overrides)).save_pretrained(out)
for f in tok.iterdir():
    shutil.copy(f, out / f.name)
print("random-init model in", out, "with the tokenizer of", tok)
PY
  # each method at its defaults; "mat" twice: the CPU benchmark's arm (its settings read from
  # studies/benchmark_cpu.yml: K_delta = K_theta = 2, lambda 3, beta 0.3, noise 0.1) and MAT's own defaults (K = 10)
  # ARMS: '|'-separated "method [flags]" to run only those (default: all seven; mat_arm = the benchmark's MAT)
  MAT_ARM=$(python3 -c "from trials.study_config import load_study
print(' '.join(f'--{k} {v}' for k, v in load_study('studies/benchmark_cpu.yml').arm('mat').settings.items()))")
  IFS='|' read -r -a ARM_LIST <<< "${ARMS:-vanilla|freelb|smart|r3f|mat_arm|mat|salt}"
  for arm in "${ARM_LIST[@]}"; do
    [ "$arm" = mat_arm ] && arm="mat $MAT_ARM"
    # shellcheck disable=SC2086
    python3 benchmarks/trial_cost.py -- --task rte --model "$MODEL" --data_dir "$DATA" --method $arm \
      --max_length 128 --batch_size 32 --epochs 1 --eval_times 2 --group_by_length \
      --device "$DEVICE" --precision "$PRECISION" --seed 1 2>&1 | tail -1
  done
} 2>&1 | tee "$LOG"
