"""The dev set in two fixed halves, and each evaluation rescored on them from the record's predictions.

A record keeps every evaluation's predictions on the dev set and the gold labels once
(``evals[i].predictions`` and ``dev_labels``, :mod:`mat.spec.records`). That lets the analysis choose an
evaluation (and a configuration) on one part of the dev set and report its score on another part the choice
never saw (``--selection split``).

**The halves.** Dev example ``i`` (0-based, in the dev set's order; for MNLI within each of its two dev sets)
is in the *selection* half when the lowest bit of ``splitmix64(i)`` is 0, else in the *report* half.
``splitmix64`` is the 64-bit finaliser of Steele, Lea and Flood's SplitMix (the seeding function of Java's
``SplittableRandom``; ``splitmix64(0)`` = 0xE220A8397B1DCDAF, the generator's first output from seed 0)::

    z = i + 0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z =  z ^ (z >> 31)                          (all mod 2**64)

so the halves depend on the index alone: the same for every trial, run and machine, about equal in size
(CoLA's 1,043 examples: 526 / 517; STS-B's 1,500: 755 / 745), and unrelated to the data's order or labels.

:func:`half_metrics` gives the task's metrics on each half for every evaluation of a record; the tidy frame
holds them as ``kind == "half"`` rows (:data:`HALF`) on splits :data:`SELECTION` and :data:`REPORT`. No torch
here.
"""

from __future__ import annotations

import numpy as np

from mat.spec.metrics import compute_metrics
from mat.spec.records import TrialRecord, decode_values
from mat.spec.tasks import get_task

HALF = "half"  # the tidy frame's kind of those rows (apart from "eval": the record's own evaluations)
SELECTION = "dev.selection"  # the tidy frame's split of the selection half's metrics
REPORT = "dev.report"  # ... and of the report half's
HALVES = (SELECTION, REPORT)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(index: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of each (non-negative) integer in ``index`` (module docstring), as uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(index, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _MASK64


def selection_half(n: int) -> np.ndarray:
    """(n,) bool: True where dev example ``i`` is in the selection half (splitmix64(i)'s lowest bit is 0)."""
    return (splitmix64(np.arange(n)) & np.uint64(1)) == 0


def has_predictions(record: TrialRecord) -> bool:
    """Whether the record kept its dev labels and some evaluation's predictions (written by this version)."""
    return bool(record.dev_labels) and any(ev.predictions for ev in record.evals)


def check_predictions(record: TrialRecord) -> str | None:
    """Why a record's predictions cannot be rescored (a count that differs from its labels', a split without
    labels, a field that is not a number), or None."""
    try:
        labels = {s: len(decode_values(t)) for s, t in record.dev_labels.items()}
        for i, ev in enumerate(record.evals):
            for split, text in ev.predictions.items():
                if split not in labels:
                    return f"evals[{i}] has predictions on {split!r} but dev_labels has none"
                n = len(decode_values(text))
                if n != labels[split]:
                    return f"evals[{i}] has {n} predictions on {split!r} for {labels[split]} dev labels"
    except ValueError as e:
        return f"predictions or dev_labels hold a value that is not a number ({e})"
    return None


def half_metrics(record: TrialRecord) -> list[tuple[int, float, str, dict[str, float]]]:
    """Each evaluation's metrics on the two halves of the dev set, from its predictions.

    Returns:
        ``(step, epoch, half, metrics)`` per evaluation with predictions on every dev split and per half
        (:data:`SELECTION`, :data:`REPORT`); ``metrics`` as :func:`mat.spec.metrics.compute_metrics` gives
        them (MNLI: ``accuracy_m`` and ``accuracy_mm`` from its two dev sets). Empty without predictions.
    """
    task = get_task(record.task)
    labels = {s: np.asarray(decode_values(t)) for s, t in record.dev_labels.items()}
    masks = {s: selection_half(len(y)) for s, y in labels.items()}
    out = []
    for ev in record.evals:
        if not ev.predictions or set(ev.predictions) != set(labels):
            continue
        for half, keep in ((SELECTION, True), (REPORT, False)):
            metrics: dict[str, float] = {}
            for split, text in ev.predictions.items():
                chosen = masks[split] == keep
                preds = np.asarray(decode_values(text))[chosen]
                metrics.update(compute_metrics(task, preds, labels[split][chosen], split=split))
            out.append((ev.step, ev.epoch, half, metrics))
    return out
