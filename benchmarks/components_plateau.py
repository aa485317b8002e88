#!/usr/bin/env python3
"""How many epochs vanilla needs on a components task, and what an epoch costs (issue 14, before the study).

Runs the ``vanilla`` rung exactly as the study would (the config's ``trialCommand`` flags, then ``{"rung":
"vanilla", "seed": s}`` through the NNI merge), with ``--epochs`` and ``--eval_times`` replaced, and prints one
JSON line per evaluation (epoch, step, dev score, best so far, training seconds so far) and a summary line
(seconds per epoch, train tokens and padding per epoch, the epoch of the best score)::

    MAT_DATA_DIR=../shared/data python benchmarks/components_plateau.py nni_configs/components_rte.yml \\
        --epochs 6 --eval_times 2 --seed 1 [--num_threads 1] [--keep runs/plateau_rte]

Pick the epochs where the best-so-far stops rising; run it alone for the seconds to mean anything.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mat.cli import parse_cli  # noqa: E402
from mat.config import apply_overrides  # noqa: E402
from mat.records import EvalResult, TrialRecord  # noqa: E402
from mat.train import fit  # noqa: E402


def study_flags(config: Path, replace: dict[str, str]) -> list[str]:
    """The flags of a components config's ``trialCommand`` (after the script), with ``replace`` applied."""
    words = shlex.split(yaml.safe_load(config.read_text())["trialCommand"])
    flags = words[words.index(next(w for w in words if w.endswith("mat_trial.py"))) + 1:]
    out: list[str] = []
    i = 0
    while i < len(flags):
        key = flags[i]
        has_value = i + 1 < len(flags) and not flags[i + 1].startswith("--")
        if key.lstrip("-") in replace:
            i += 2 if has_value else 1
            continue
        out += flags[i:i + (2 if has_value else 1)]
        i += 2 if has_value else 1
    for key, value in replace.items():
        out += [f"--{key}", value] if value != "" else [f"--{key}"]
    return out


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
    replace = {"epochs": str(args.epochs), "eval_times": str(args.eval_times)}
    if args.num_threads:
        replace["num_threads"] = args.num_threads
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        flags = study_flags(Path(args.config), replace) + ["--output_dir", out, "--trial_id", f"plateau-{args.rung}-seed{args.seed}"]
        cfg = apply_overrides(parse_cli(flags), {"rung": args.rung, "seed": args.seed})
        printed: list[EvalResult] = []

        def on_eval(ev: EvalResult, rec: TrialRecord) -> None:
            printed.append(ev)
            best = max(e.score for e in printed)
            print(json.dumps({"task": cfg.run.task, "rung": args.rung, "seed": args.seed, "epoch": round(ev.epoch, 3),
                              "step": ev.step, "score": ev.score, "best_so_far": best}), flush=True)

        rec = fit(cfg, on_eval=on_eval, show_progress=False)
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
