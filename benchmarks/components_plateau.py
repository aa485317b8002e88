#!/usr/bin/env python3
"""How many epochs vanilla needs on a components task, and what an epoch costs (run before a study).

Runs the ``vanilla`` rung exactly as the study would (the config's ``trialCommand`` flags, then ``{"rung":
"vanilla", "seed": s}`` through the NNI merge), with ``--epochs`` and ``--eval_times`` replaced, and prints one
JSON line per evaluation (epoch, step, dev score, best so far, training seconds so far) and a summary line
(seconds per epoch, train tokens and padding per epoch, the epoch of the best score)::

    MAT_DATA_DIR=<data folder> python benchmarks/components_plateau.py nni_configs/components_rte.yml \\
        --epochs 6 --eval_times 2 --seed 1 [--num_threads 1] [--keep runs/plateau_rte]

Pick the epochs where the best-so-far stops rising; run it alone for the seconds to mean anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mat.cli import parse_cli  # noqa: E402
from mat.provenance import resolve  # noqa: E402
from mat.spec.config import apply_overrides  # noqa: E402
from mat.spec.records import EvalResult, TrialRecord  # noqa: E402
from mat.train import fit  # noqa: E402
from trials.components import trial_flags  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a components config, e.g. nni_configs/components_rte.yml")
    p.add_argument("--epochs", type=int, default=6, help="epochs to train (default 6)")
    p.add_argument("--eval_times", type=int, default=2, help="evaluations per epoch (default 2)")
    p.add_argument("--seed", type=int, default=1, help="the seed (default 1)")
    p.add_argument("--rung", default="vanilla", help="the rung to run (default vanilla)")
    p.add_argument("--num_threads", default=None, help="CPU threads (default: torch's)")
    p.add_argument("--keep", default=None, help="output folder to keep the record in (default: a temporary one)")
    args = p.parse_args(argv)
    # appended flags win over the config's own (argparse keeps the last occurrence)
    extra = ["--epochs", str(args.epochs), "--eval_times", str(args.eval_times)]
    extra += ["--num_threads", args.num_threads] if args.num_threads else []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        flags = trial_flags(yaml.safe_load(Path(args.config).read_text())) + extra + [
            "--output_dir", out, "--trial_id", f"plateau-{args.rung}-seed{args.seed}"]
        cfg = apply_overrides(parse_cli(flags), {"rung": args.rung, "seed": args.seed})
        printed: list[EvalResult] = []

        def on_eval(ev: EvalResult, rec: TrialRecord) -> None:
            printed.append(ev)
            best = max(e.score for e in printed)
            print(json.dumps({"task": cfg.run.task, "rung": args.rung, "seed": args.seed, "epoch": round(ev.epoch, 3),
                              "step": ev.step, "score": ev.score, "best_so_far": best}), flush=True)

        rec = fit(resolve(cfg), on_eval=on_eval, show_progress=False)
    cost = rec.cost
    epochs = max(args.epochs, 1)
    best = rec.best
    print(json.dumps({
        "task": cfg.run.task, "rung": args.rung, "seed": args.seed, "status": rec.status, "epochs": args.epochs,
        "train_seconds_per_epoch": round(cost["wall_seconds"]["train"] / epochs, 1),
        "evaluate_seconds_total": cost["wall_seconds"]["evaluate"], "steps_per_epoch": cost["optimizer_steps"] // epochs,
        "train_tokens_per_epoch": cost["train_tokens"] // epochs,
        "padded_fraction": round(cost["padded_tokens"] / max(1, cost["train_tokens"] + cost["padded_tokens"]), 4),
        "best_score": best.score if best else None, "best_epoch": round(best.epoch, 3) if best else None,
    }), flush=True)
    return 0 if rec.status == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
