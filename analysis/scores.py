"""Task scores and the two GLUE score conventions (DESIGN.md, "Scores").

A task's score is the mean of its metrics (``mat.tasks.get_task(t).metrics``); where only some of a task's
metrics are known (a published row printing ``86.7/-``), the known ones stand for the task. The GLUE
score is the mean of task scores under one of two conventions:

* ``"paper"``: the MAT paper's Score column, the 8 tasks CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE;
* ``"glue"``: the official leaderboard's 9 tasks, WNLI included.

Every table that shows a GLUE score names its convention (:func:`convention_note`).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping, Union

from mat.tasks import GLUE_TASKS, get_task

PAPER_TASKS: tuple[str, ...] = tuple(t for t in GLUE_TASKS if t != "wnli")
CONVENTIONS: Mapping[str, tuple[str, ...]] = {"paper": PAPER_TASKS, "glue": GLUE_TASKS}
CONVENTION_NOTES: Mapping[str, str] = {
    "paper": "Score: mean of the 8 task scores CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE (the MAT "
    "paper's convention, no WNLI); a task's score is the mean of its metrics.",
    "glue": "Score: mean of the 9 GLUE task scores, WNLI included (the official leaderboard's convention); "
    "a task's score is the mean of its metrics.",
}

TaskValue = Union[float, Mapping[str, float]]


def _finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def task_score(task: str, metrics: Mapping[str, float]) -> float:
    """The mean of a task's known metrics.

    Args:
        task: task name (``mrpc``).
        metrics: ``{metric: value}`` on the 0-100 scale; NaN or None values count as unknown.

    Returns:
        The mean of the task's metrics that are known, or NaN when none is.

    Raises:
        KeyError: unknown task.
        ValueError: a metric the task does not have.
    """
    spec = get_task(task)
    extra = sorted(set(metrics) - set(spec.metrics))
    if extra:
        raise ValueError(f"task {spec.name!r} has metrics {list(spec.metrics)}, not {extra}")
    known = [float(metrics[m]) for m in spec.metrics if m in metrics and _finite(metrics[m])]
    return sum(known) / len(known) if known else math.nan


def convention_tasks(convention: str) -> tuple[str, ...]:
    """The tasks a GLUE score convention averages.

    Raises:
        ValueError: unknown convention; the message lists the valid ones.
    """
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ValueError(f"unknown GLUE score convention {convention!r}; use one of {list(CONVENTIONS)}") from None


def convention_note(convention: str) -> str:
    """The sentence printed under a table to name its GLUE score convention."""
    convention_tasks(convention)
    return CONVENTION_NOTES[convention]


def glue_score(
    task_scores: Mapping[str, TaskValue], convention: str = "paper", allow_missing: bool = False
) -> float:
    """The GLUE score: the mean of the convention's task scores.

    Args:
        task_scores: ``{task: score}``, or ``{task: {metric: value}}`` (the task score is then the mean
            of the known metrics). Tasks outside the convention are ignored; NaN counts as missing.
        convention: ``"paper"`` (8 tasks, no WNLI) or ``"glue"`` (all 9).
        allow_missing: average the tasks present instead of raising when some are missing.

    Returns:
        The mean task score; NaN when ``allow_missing`` and no task of the convention is present.

    Raises:
        ValueError: unknown convention, or missing tasks (named in the message) unless ``allow_missing``.
    """
    tasks = convention_tasks(convention)
    scores: dict[str, float] = {}
    for name, value in task_scores.items():
        key = get_task(name).name
        if key not in tasks:
            continue
        score = task_score(key, value) if isinstance(value, Mapping) else float(value)
        if _finite(score):
            scores[key] = score
    missing = [t for t in tasks if t not in scores]
    if missing and not allow_missing:
        raise ValueError(
            f"GLUE score ({convention!r} convention) needs {len(tasks)} tasks; missing {missing} "
            "(pass allow_missing=True to average the tasks present)"
        )
    present = [scores[t] for t in tasks if t in scores]
    return sum(present) / len(present) if present else math.nan


def round_half_up(x: float, ndigits: int = 2) -> str:
    """Format ``x`` rounded half away from zero, as the paper's tables round (88.925 -> ``"88.93"``).

    Binary floats such as 88.925 are stored as 88.92499999..., so ``f"{x:.2f}"`` rounds them down; the
    value is first rounded to 9 decimals to recover the decimal the arithmetic meant. NaN -> ``"-"``.
    """
    if not _finite(x):
        return "-"
    q = Decimal(1).scaleb(-ndigits)
    return str(Decimal(repr(round(float(x), 9))).quantize(q, rounding=ROUND_HALF_UP))
