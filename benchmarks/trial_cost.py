#!/usr/bin/env python3
"""Where one standalone trial's wall time goes: runs ``trials/mat_trial.py`` with the flags given and prints
one JSON line from its record's ``cost`` block, plus the wall time seen from outside the process.

    python benchmarks/trial_cost.py -- --task rte --model minilm --method vanilla --max_length 128 \\
        --batch_size 16 --epochs 1 --device cpu [--group_by_length]

Printed: ``outer_wall`` (process start to exit, seen from here), ``wall_seconds`` per phase (startup =
interpreter start and imports; data; tokenize; model; train; evaluate; write; total), ``train_tokens``,
``padded_tokens``, ``padded_fraction``, ``optimizer_steps``, ``passes`` and the best dev score. Measure on a
quiet machine: on two cores anything else running makes the figures worthless.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", default=None, help="Output dir to keep the trial's record in (default: a temporary dir).")
    p.add_argument("trial_flags", nargs=argparse.REMAINDER, help="Flags for trials/mat_trial.py, after --.")
    args = p.parse_args(argv)
    flags = [f for f in args.trial_flags if f != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp) / "trial"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(REPO / "trials" / "mat_trial.py"), *flags, "--output_dir", str(out)],
                              capture_output=True, text=True)
        outer = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            print(json.dumps({"error": f"trial exited {proc.returncode}", "outer_wall": round(outer, 2)}))
            return 1
        rec = json.loads((out / "trial.json").read_text())
    cost = rec["cost"]
    total = cost["train_tokens"] + cost["padded_tokens"]
    print(json.dumps({
        "flags": " ".join(flags), "outer_wall": round(outer, 2), **cost,
        "padded_fraction": round(cost["padded_tokens"] / total, 4) if total else 0.0,
        "best_score": rec["best"]["score"] if rec.get("best") else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
