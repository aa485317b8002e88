"""Analysis of mat-harness trial records: loading, aggregation over seeds, the paper's tables and figures.

Reads ``trial.json`` records and NNI's own store; never imports torch or nni. Entry points:

* :func:`glue_score` (the paper's and the official GLUE score conventions), :func:`task_score` (the one
  scoring rule, ``mat.spec.tasks.task_score``),
* :func:`load` / :func:`load_records` / :func:`load_nni_experiment` (one tidy long-form DataFrame, each
  trial once: :mod:`analysis.tidy`, :mod:`analysis.identity`, :mod:`analysis.nni_store`) and
  :func:`load_with_notes` (the frame with the skipped inputs and repeats beside it: :class:`Loaded`),
* :mod:`analysis.aggregate` (per trial -> per config over seeds -> chosen config -> GLUE score),
* :mod:`analysis.comparison` (paired by seed: t-test, Wilcoxon, t-interval; Welch for unpaired data),
  :mod:`analysis.intervals` (t-interval, bootstrap),
* :mod:`analysis.tables`, :mod:`analysis.plots` (imported on use: it loads matplotlib),
* ``python -m analysis report ...`` (:mod:`analysis.report`) and ``python -m analysis compare ...``.
"""

from __future__ import annotations

from analysis.aggregate import (
    best_configs,
    bootstrap_ci,
    choose_configs,
    glue_scores,
    scored_trials,
    seed_summary,
    select_configs,
    trial_scores,
)
from analysis.comparison import (
    SeedMismatch,
    compare_to_baseline,
    paired_comparison,
    paired_stats,
    unpaired_comparison,
)
from analysis.intervals import t_interval
from analysis.load import (
    AnalysisWarning,
    Loaded,
    load,
    load_nni_experiment,
    load_records,
    load_with_notes,
    status_counts,
)
from analysis.scores import PAPER_TASKS, glue_score
from mat.spec.tasks import task_score

__all__ = [
    "AnalysisWarning", "Loaded", "PAPER_TASKS", "SeedMismatch", "best_configs", "bootstrap_ci",
    "choose_configs", "compare_to_baseline", "glue_score", "glue_scores", "load", "load_nni_experiment",
    "load_records", "load_with_notes", "paired_comparison", "paired_stats", "scored_trials", "seed_summary",
    "select_configs", "status_counts", "t_interval", "task_score", "trial_scores", "unpaired_comparison",
]
