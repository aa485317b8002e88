"""The two GLUE score conventions (docs/analysis.md, "Scores and conventions").

A task's score is ``mat.spec.tasks.task_score``: the mean of its metrics, every one of them required (a trial
record missing one is refused). Only published rows that print some metrics as ``-`` (``86.7/-``) are
scored with ``partial=True``, where the known ones stand for the task. The GLUE score is the mean of task
scores under one of two conventions:

* ``"paper"``: the MAT paper's Score column, the 8 tasks CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE;
* ``"glue"``: the official leaderboard's 9 tasks, WNLI included.

Every table that shows a GLUE score names its convention (:func:`convention_note`).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping, Union

from mat.spec.tasks import GLUE_TASKS, get_task, task_score

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


def convention_tasks(convention: str) -> tuple[str, ...]:
    """The tasks a GLUE score convention averages.

    Raises:
        ValueError: unknown convention; the message lists the valid ones.
    """
    try:
        return CONVENTIONS[convention]
    except KeyError:
        raise ValueError(f"unknown GLUE score convention {convention!r}; use one of "
            f"{list(CONVENTIONS)}") from None


def convention_note(convention: str) -> str:
    """The sentence printed under a table to name its GLUE score convention."""
    convention_tasks(convention)
    return CONVENTION_NOTES[convention]


def glue_score(
    task_scores: Mapping[str, TaskValue], convention: str = "paper", allow_missing: bool = False, *,
    partial: bool = False,
) -> float:
    """The GLUE score: the mean of the convention's task scores.

    Args:
        task_scores: ``{task: score}``, or ``{task: {metric: value}}`` (the task score is then
            ``mat.spec.tasks.task_score``). Tasks outside the convention are ignored; NaN counts as missing.
        convention: ``"paper"`` (8 tasks, no WNLI) or ``"glue"`` (all 9).
        allow_missing: average the tasks present instead of raising when some are missing.
        partial: score ``{metric: value}`` tasks on their known metrics (published rows printing
            ``86.7/-``); by default every metric of a task is required.

    Returns:
        The mean task score; NaN when ``allow_missing`` and no task of the convention is present.

    Raises:
        ValueError: unknown convention; missing tasks (named in the message) unless ``allow_missing``; a
            task missing a metric (named) unless ``partial``.
    """
    tasks = convention_tasks(convention)
    scores: dict[str, float] = {}
    for name, value in task_scores.items():
        spec = get_task(name)
        key = spec.name
        if key not in tasks:
            continue
        score = task_score(spec, value, partial=partial) if isinstance(value, Mapping) else float(value)
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
