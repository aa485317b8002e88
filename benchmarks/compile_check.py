#!/usr/bin/env python3
"""Is ``torch.compile`` worth a ``--compile`` flag on CPU? Times one whole trial (compile time included)
with and without compiling the model, and prints one JSON line with both walls and their ratio.

    python benchmarks/compile_check.py -- --task sst2 --model minilm --method vanilla --max_train_samples 3200 \\
        --max_length 64 --batch_size 32 --epochs 1 --device cpu --group_by_length

The compiled run compiles the model in place (``model.compile(dynamic=True)``, i.e. ``torch.compile``) (padded batch lengths vary) inside
the same ``fit`` every trial runs. The project adds a ``--compile`` flag only if the whole trial is at least
1.15x faster (docs/methods.md records the measurement).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mat.train as train_module  # noqa: E402
from mat.cli import parse_cli  # noqa: E402
from mat.provenance import resolve  # noqa: E402
from mat.train import fit  # noqa: E402


def timed_trial(flags: list[str], compile_model: bool) -> dict[str, Any]:
    original = train_module.load_model_and_tokenizer

    def load(name: str, task: Any) -> tuple[Any, Any]:
        model, tok = original(name, task)
        if compile_model:
            model.compile(dynamic=True)  # in place: the module keeps its class and forward signature
        return model, tok

    train_module.load_model_and_tokenizer = load  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = parse_cli([*flags, "--output_dir", tmp])
            t0 = time.perf_counter()
            rec = fit(resolve(cfg), show_progress=False)
            wall = time.perf_counter() - t0
    finally:
        train_module.load_model_and_tokenizer = original  # type: ignore[assignment]
    return {"wall": round(wall, 2), "train_s": rec.cost["wall_seconds"]["train"], "evaluate_s": rec.cost["wall_seconds"]["evaluate"],
            "best": rec.best.score if rec.best else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trial_flags", nargs=argparse.REMAINDER, help="Trial flags, after --.")
    flags = [f for f in p.parse_args(argv).trial_flags if f != "--"]
    eager = timed_trial(flags, False)
    compiled = timed_trial(flags, True)
    print(json.dumps({"flags": " ".join(flags), "eager": eager, "compiled": compiled,
                      "speedup": round(eager["wall"] / compiled["wall"], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
