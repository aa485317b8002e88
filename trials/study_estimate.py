"""What a study will cost before it runs, and what it cost after: trial-hours and machine-hours.

The estimate of one trial (:func:`trial_seconds`) is built from reference records of the same model, task and
run settings (``estimate_from`` in the study config; for the CPU benchmark the component study's
``results/components``) and the arm's passes per training step:

* seconds per pass: the median over the task's reference records of training seconds / (training steps ×
  their passes per step), the passes per step as :func:`mat.spec.cost.derive_cost` gives them (training's
  passes only; a ``--diagnostics`` forward is not counted);
* steps: the reference records' steps per epoch × the arm's epochs;
* passes per step of the arm (:func:`passes_per_step`, the cost lines of docs/methods.md, which
  ``tests/test_ladder.py`` checks against real records for the MAT rungs): vanilla 2, R3F 4 (one 2B forward
  and its backward), FreeLB 2·K, SMART 5 + 2·adv_k (a clean and an adversarial forward with one backward
  through both, adv_k ascent forwards with input-only backwards, a teacher forward), MAT 1 + 2·K_δ + 4·K_θ
  (2·K_θ with λ = 0: no clean forward, 1B forwards);
* evaluation: the median seconds of one evaluation × the arm's evaluations (eval_times × epochs);
* the rest (start-up, data, model, writes): the median of the reference records' other wall seconds.

Machine-hours are trial-hours / the study's concurrency (the reference trials ran at the same concurrency on
the same machine). After a run, the records' own ``cost.wall_seconds.total`` are the actuals.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mat.spec.config import TrialConfig
from mat.spec.cost import derive_cost
from mat.spec.methods import get_method_spec
from mat.spec.records import read_record


@dataclass(frozen=True)
class Reference:
    """Per-task timings from reference records (module docstring)."""

    seconds_per_pass: float
    steps_per_epoch: float
    seconds_per_eval: float
    other_seconds: float
    n: int


def passes_per_step(cfg: TrialConfig) -> float:
    """Training's forward + backward passes per training step of ``cfg``'s method (its registry entry)."""
    return float(get_method_spec(cfg.run.method).passes_per_step(cfg.method))


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def reference(records: Iterable[Path]) -> Reference | None:
    """The timings of SUCCEEDED ``records`` (module docstring); None when none has what is needed."""
    per_pass: list[float] = []
    per_epoch: list[float] = []
    per_eval: list[float] = []
    other: list[float] = []
    for path in records:
        rec = read_record(path)
        cost = derive_cost(rec.cost, rec.method, rec.params,
            {k for e in rec.evals for k in (e.telemetry or {})})
        wall = cost.get("wall_seconds") or {}
        train, total, evaluate = (_number(wall.get(k)) for k in ("train", "total", "evaluate"))
        steps, epochs = _number(cost.get("optimizer_steps")), _number(rec.params.get("epochs"))
        passes = cost.get("passes") or {}
        n_pass = sum(v for v in (_number(passes.get("forward")), _number(passes.get("backward"))) if v)
        if rec.status != "SUCCEEDED" or not (train and total and steps and epochs and n_pass and rec.evals):
            continue
        per_pass.append(train / n_pass)
        per_epoch.append(steps / epochs)
        per_eval.append((evaluate or 0.0) / len(rec.evals))
        other.append(total - train - (evaluate or 0.0))
    if not per_pass:
        return None
    return Reference(statistics.median(per_pass), statistics.median(per_epoch), statistics.median(per_eval),
                     statistics.median(other), len(per_pass))


def task_reference(root: Path, task: str) -> Reference | None:
    """:func:`reference` of every ``trial.json`` under ``<root>/<task>``."""
    return reference(sorted((root / task).rglob("trial.json")))


def trial_seconds(cfg: TrialConfig, ref: Reference) -> float:
    """The estimated wall seconds of one trial of ``cfg`` on the reference's machine."""
    steps = ref.steps_per_epoch * cfg.train.epochs
    evals = cfg.run.eval_times * math.ceil(cfg.train.epochs)
    training = steps * passes_per_step(cfg) * ref.seconds_per_pass
    return training + evals * ref.seconds_per_eval + ref.other_seconds


def hours_line(label: str, seconds: float, concurrency: int) -> str:
    """``label: 20.9 trial-hours, 10.4 machine-hours at 2 at a time``."""
    hours = seconds / 3600
    machine = hours / concurrency
    return f"{label}: {hours:.1f} trial-hours, {machine:.1f} machine-hours at {concurrency} at a time"


def actual_seconds(paths: Sequence[Path], block: str = "wall_seconds") -> list[float]:
    """The records' total seconds (those that have them): ``cost.wall_seconds.total``, or with ``block``
    ``cpu_seconds`` the sum of ``cost.cpu_seconds`` over its phases (the process's CPU time, which other
    jobs on the machine hardly move; records before it was kept have none)."""
    out = []
    for path in paths:
        secs = read_record(path).cost.get(block)
        if not isinstance(secs, Mapping):
            continue
        values = [secs.get("total")] if block == "wall_seconds" else list(secs.values())
        numbers = [_number(v) for v in values]
        if numbers and all(n is not None for n in numbers):
            out.append(sum(n for n in numbers if n is not None))
    return out
