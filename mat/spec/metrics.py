"""Task metrics on the 0-100 scale of the paper's tables (the task score, their mean, is
:func:`mat.spec.tasks.task_score`).

Metric keys (docs/design.md, "Scores"): ``mcc`` (CoLA), ``accuracy`` (SST-2, QNLI, RTE, WNLI, ANLI),
``accuracy`` + ``f1`` (MRPC, QQP), ``pearson`` + ``spearman`` (STS-B), ``accuracy_m`` + ``accuracy_mm``
(MNLI, on the matched and mismatched dev sets). Implemented with numpy/scipy; no torch.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from mat.spec.tasks import TaskSpec


def accuracy(predictions: Sequence[int] | np.ndarray, references: Sequence[int] | np.ndarray) -> float:
    """Percentage of exact matches."""
    p, r = _pair(predictions, references)
    return float(100.0 * np.mean(p == r))


def f1(predictions: Sequence[int] | np.ndarray, references: Sequence[int] | np.ndarray) -> float:
    """F1 of the positive class (label 1), as GLUE scores MRPC and QQP; 0 when undefined."""
    p, r = _pair(predictions, references)
    tp = float(np.sum((p == 1) & (r == 1)))
    fp = float(np.sum((p == 1) & (r != 1)))
    fn = float(np.sum((p != 1) & (r == 1)))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 100.0 * 2 * tp / denom


def mcc(predictions: Sequence[int] | np.ndarray, references: Sequence[int] | np.ndarray) -> float:
    """Matthews correlation of binary labels; 0 when a marginal is constant (as scikit-learn)."""
    p, r = _pair(predictions, references)
    tp = float(np.sum((p == 1) & (r == 1)))
    tn = float(np.sum((p != 1) & (r != 1)))
    fp = float(np.sum((p == 1) & (r != 1)))
    fn = float(np.sum((p != 1) & (r == 1)))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denom == 0 else 100.0 * (tp * tn - fp * fn) / denom


def pearson(predictions: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation x 100 (NaN-free: 0 when either side is constant)."""
    from scipy.stats import pearsonr

    p, r = _pair(predictions, references, dtype=np.float64)
    if np.ptp(p) == 0 or np.ptp(r) == 0:
        return 0.0
    return float(100.0 * pearsonr(p, r)[0])


def spearman(predictions: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation x 100 (0 when either side is constant)."""
    from scipy.stats import spearmanr

    p, r = _pair(predictions, references, dtype=np.float64)
    if np.ptp(p) == 0 or np.ptp(r) == 0:
        return 0.0
    return float(100.0 * spearmanr(p, r)[0])


def _pair(predictions: object, references: object,
    dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predictions, dtype=dtype).reshape(-1)
    r = np.asarray(references, dtype=dtype).reshape(-1)
    if p.shape != r.shape:
        raise ValueError(f"{p.shape[0]} predictions for {r.shape[0]} references")
    if p.size == 0:
        raise ValueError("no predictions to score")
    return p, r


def compute_metrics(
    task: TaskSpec,
    predictions: Sequence[float] | np.ndarray,
    references: Sequence[float] | np.ndarray,
    split: str | None = None,
) -> dict[str, float]:
    """The task's metrics for one evaluation split.

    Args:
        task: the task's spec.
        predictions: class ids (B,) for classification, scores (B,) for STS-B.
        references: gold labels (B,).
        split: for MNLI, which dev split these are: ``*mismatched`` gives ``accuracy_mm``, anything
            else ``accuracy_m``.

    Returns:
        ``{metric: value}`` on the 0-100 scale.

    Raises:
        ValueError: lengths differ, nothing to score, or references hold -1 (an unlabelled test split).
    """
    refs = np.asarray(references)
    if not task.is_regression and np.any(refs < 0):
        raise ValueError(f"{task.name}: references contain -1 (an unlabelled split cannot be scored)")
    if task.name == "mnli":
        key = "accuracy_mm" if split is not None and "mismatched" in split else "accuracy_m"
        return {key: accuracy(np.asarray(predictions), refs)}
    fns: dict[str, Any] = {"mcc": mcc, "accuracy": accuracy, "f1": f1, "pearson": pearson,
        "spearman": spearman}
    return {m: fns[m](predictions, refs) for m in task.metrics}
