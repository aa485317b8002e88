"""Analysis of mat-harness trial records: loading, aggregation over seeds, the paper's tables and figures.

Reads ``trial.json`` records and NNI's own store; never imports torch or nni. Entry points:

* :func:`glue_score` (the paper's and the official GLUE score conventions),
* :func:`load` / :func:`load_records` / :func:`load_nni_experiment` (one tidy long-form DataFrame),
* :mod:`analysis.aggregate` (per trial -> per config over seeds -> best config -> GLUE score),
* :mod:`analysis.tables`, :mod:`analysis.plots` (imported on use: it loads matplotlib),
* ``python -m analysis report ...`` (:mod:`analysis.report`).
"""

from __future__ import annotations

from analysis.aggregate import (
    best_configs,
    bootstrap_ci,
    glue_scores,
    paired_comparison,
    seed_summary,
    select_configs,
    trial_scores,
)
from analysis.load import AnalysisWarning, load, load_nni_experiment, load_records, status_counts
from analysis.scores import PAPER_TASKS, glue_score, task_score

__all__ = [
    "AnalysisWarning", "PAPER_TASKS", "best_configs", "bootstrap_ci", "glue_score", "glue_scores", "load",
    "load_nni_experiment", "load_records", "paired_comparison", "seed_summary", "select_configs",
    "status_counts", "task_score", "trial_scores",
]
