"""Aggregation as named stages, each a pure DataFrame -> DataFrame function.

1. :func:`trial_scores`: per trial, the selected evaluation (``"best"``: the record's best dev
   evaluation, which the MAT authors report; ``"final"``: the last one) as long rows ``split, metric,
   value`` plus a ``score`` row per split. The dev score is ``mat.spec.tasks.task_score`` (strict: a trial
   missing a metric is not scored, with a warning naming its file and the metric).
2. :func:`seed_summary`: per configuration over seeds: n, mean, std, median, min, max and a 95% interval
   of the mean (t-interval by default, percentile bootstrap on request; :mod:`analysis.intervals`).
3. :func:`best_configs` / :func:`select_configs` / :func:`choose_configs`: the configuration with the
   highest mean dev score over seeds per (task, arm, model), how many were searched (``n_configs``),
   and the per-seed rows of the chosen ones; optionally chosen on some seeds and reported on others.
4. :func:`glue_scores`: the GLUE score of each (model, arm) under a named convention.
5. :func:`paired_comparison` (paired by seed), :func:`unpaired_comparison` (Welch) and
   :func:`compare_to_baseline`: :mod:`analysis.comparison`.
6. :func:`ablation_slices`: the one-factor sweeps around each best configuration (Tables 4-5).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.comparison import compare_to_baseline, paired_comparison, unpaired_comparison
from analysis.halves import SELECTION
from analysis.intervals import bootstrap_ci, check_interval, group_bootstrap, t_intervals
from analysis.scores import convention_tasks, glue_score
from analysis.selection import SELECTIONS, check_selection, selected_rows
from analysis.tidy import DEV, SCORE, TRIAL_COLUMNS, AnalysisWarning
from mat.spec.tasks import get_task, task_score

__all__ = [
    "ARM_BY", "CONFIG_BY", "SCORE", "SELECTIONS", "Choice", "ablation_slices", "best_configs", "bootstrap_ci",
    "choose_configs", "compare_to_baseline", "factor_groups", "glue_scores", "paired_comparison",
    "scored_trials", "searched_params", "seed_summary", "select_configs", "trial_scores", "trial_table",
    "unpaired_comparison",
]

# An arm (analysis.identity) is a method or its named variant; configurations are chosen within an arm.
CONFIG_BY = ("task", "arm", "model", "config", "split", "metric")
ARM_BY = ("model", "arm", "task", "split", "metric")
_TRIAL = ["experiment", "trial"]


def _check_selection(selection: str) -> str:
    return check_selection(selection)


def _dev_scores(picked: pd.DataFrame) -> tuple[pd.Series, dict[tuple[object, object], tuple[str, str]]]:
    """``mat.spec.tasks.task_score`` of each trial's dev metrics (strict), and ``{(experiment, trial):
    (source,
    reason)}`` of the trials it refuses (a missing or NaN metric, an unknown task)."""
    dev = picked[(picked["split"] == DEV) & (picked["metric"] != "default")]
    found: dict[tuple[object, object], tuple[str, str, dict[str, float]]] = {}
    for e, t, task, src, m, v in zip(dev["experiment"], dev["trial"], dev["task"], dev["source"],
                                     dev["metric"], dev["value"]):
        found.setdefault((e, t), (str(task), str(src), {}))[2][str(m)] = float(v)
    scores: dict[tuple[object, object, str], float] = {}
    refused: dict[tuple[object, object], tuple[str, str]] = {}
    for (e, t), (task, src, metrics) in found.items():
        try:
            scores[(e, t, DEV)] = task_score(get_task(task), metrics)
        except (KeyError, ValueError) as err:
            refused[(e, t)] = (src, f"not scored: {err.args[0] if isinstance(err, KeyError) else err}")
    index = pd.MultiIndex.from_tuples(list(scores), names=_TRIAL + ["split"])
    return pd.Series(list(scores.values()), index=index, dtype=float), refused


def _score_rows(picked: pd.DataFrame, dev: pd.Series) -> pd.DataFrame:
    """One ``score`` row per (trial, split): the dev task score; for an extra split the mean of the
    metrics it carries (MNLI's AdvGLUE sets carry one each); ``default`` where a trial reported nothing
    else."""
    keys = _TRIAL + ["split"]
    real = picked[(picked["metric"] != "default") & (picked["split"] != DEV)]
    score = pd.concat([dev, real.groupby(keys, sort=False)["value"].mean()])
    alone = picked[~picked.set_index(keys).index.isin(score.index)]
    score = pd.concat([score, alone.groupby(keys, sort=False)["value"].mean()])
    rows = picked.drop_duplicates(keys).set_index(keys)
    rows = rows.loc[score.index].copy()
    rows["metric"] = SCORE
    rows["value"] = score.to_numpy()
    return rows.reset_index()[picked.columns]


def trial_scores(df: pd.DataFrame, selection: str = "best",
                 statuses: Sequence[str] | None = ("SUCCEEDED",)) -> pd.DataFrame:
    """:func:`scored_trials` without the list of unscored trials (each is named in a warning)."""
    return scored_trials(df, selection, statuses)[0]


def scored_trials(df: pd.DataFrame, selection: str = "best", statuses: Sequence[str] | None = ("SUCCEEDED",)
                  ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Per trial, the selected evaluation as long rows, plus a ``score`` row per split.

    Selection rule (:mod:`analysis.selection`): ``"best"`` takes the record's ``best`` entry (the evaluation
    with the highest dev score, the one the MAT authors report); ``"last"`` (or ``"final"``) its ``final``
    entry (the last evaluation); a trial without that entry falls back to its ``eval`` rows (the step with the
    highest mean dev metric, earliest on ties, or the last step). ``"split"`` chooses the evaluation on the
    selection half of the dev set and reports the report half: its ``dev`` rows are the report half's metrics,
    its ``dev.selection`` rows the selection half's (configurations are chosen on them).

    The dev ``score`` is ``mat.spec.tasks.task_score`` of the trial's dev metrics, strictly: a trial missing
    one of its task's metrics (or holding a NaN) is left out with an :class:`AnalysisWarning` naming its
    source and the metric, and listed in the second value returned as ``(source, reason)``. A trial that
    reported only NNI's ``default`` number (its own task score) is scored by it.

    Args:
        df: the tidy frame of :mod:`analysis.load`.
        selection: ``"best"``, ``"last"`` (``"final"``) or ``"split"``.
        statuses: trial statuses to keep (default: finished trials only; None keeps all).

    Returns:
        ``(rows, unscored)``: columns of ``df`` without ``kind``/``epoch``/``source``/``error``, one row per
        (trial, split, metric), ``metric == "score"`` holding the split's score (the task score on dev); and
        the ``(source, reason)`` of each trial left out (kept beside the frame: pandas deep-copies ``attrs``).

    Raises:
        ValueError: unknown selection; ``"split"`` and a trial without dev predictions (named).
    """
    keep = df["metric"].notna().to_numpy()
    if statuses is not None:
        keep = keep & df["status"].isin(list(statuses)).to_numpy()
    picked = selected_rows(df, selection, keep)
    dev, refused = _dev_scores(picked)
    for src, reason in refused.values():
        warnings.warn(f"skipped {src}: {reason}", AnalysisWarning, stacklevel=2)
    if refused:
        picked = picked[~pd.MultiIndex.from_frame(picked[_TRIAL]).isin(list(refused))]
    picked = picked.drop(columns=["kind", "epoch", "source", "error"]).reset_index(drop=True)
    out = picked if picked.empty else pd.concat([picked, _score_rows(picked, dev)], ignore_index=True)
    out = out.sort_values(_TRIAL + ["split", "metric"], kind="stable").reset_index(drop=True)
    return out, list(refused.values())


def seed_summary(scores: pd.DataFrame, by: Sequence[str] = CONFIG_BY, n_boot: int = 2000,
                 confidence: float = 0.95, seed: int = 0, interval: str = "t") -> pd.DataFrame:
    """Summarise ``value`` over seeds per group.

    Args:
        scores: rows with the ``by`` columns and ``value`` (e.g. :func:`trial_scores`).
        by: grouping columns (default: one configuration's one metric on one split).
        n_boot, confidence, seed: bootstrap resamples, interval level, bootstrap seed.
        interval: ``"t"`` (default: the t-interval, n - 1 degrees of freedom) or ``"bootstrap"`` (the
            seeded percentile bootstrap of the mean, equal to :func:`bootstrap_ci` per group).

    Returns:
        ``by`` + ``n, mean, std, median, min, max, ci_low, ci_high, interval``; ``std`` is the sample
        standard deviation (ddof 1, NaN for one seed).

    Raises:
        ValueError: unknown interval.
    """
    check_interval(interval)
    by = list(by)
    cols = ["n", "mean", "std", "median", "min", "max", "ci_low", "ci_high", "interval"]
    if scores.empty:
        return pd.DataFrame(columns=by + cols)
    grouped = scores.groupby(by, sort=True, dropna=False)["value"]
    out = grouped.agg(["count", "mean", "std", "median", "min", "max"]).rename(columns={"count": "n"})
    if interval == "t":
        lo, hi = t_intervals(out["mean"].to_numpy(), out["std"].to_numpy(), out["n"].to_numpy(), confidence)
    else:
        codes = grouped.ngroup().to_numpy()
        lo, hi = group_bootstrap(codes, scores["value"].to_numpy(dtype=float), len(out), n_boot, confidence,
            seed)
    out["ci_low"], out["ci_high"], out["interval"] = lo, hi, interval
    out["n"] = out["n"].astype(int)
    return out.reset_index()[by + cols]


# ------------------------------------------------------------------------------------------- configs


def best_configs(summary: pd.DataFrame, by: Sequence[str] = ("task", "arm", "model"), split: str = DEV,
                 metric: str = SCORE) -> pd.DataFrame:
    """The configuration with the highest mean over seeds per group (ties: more seeds, then config text).

    Args:
        summary: :func:`seed_summary` output grouped by ``CONFIG_BY``.
        by: the groups a best configuration is chosen in.
        split, metric: the selection criterion (default: the dev task score).

    Returns:
        One summary row per group, with ``n_configs``: how many configurations the group searched (the
        chosen mean is the best of that many, so it reads optimistic when reported on the same data).
    """
    s = summary[(summary["split"] == split) & (summary["metric"] == metric)]
    s = s.sort_values(list(by) + ["mean", "n", "config"], ascending=[True] * len(by) + [False, False, True])
    best = s.groupby(list(by), sort=True).head(1).reset_index(drop=True)
    k = s.groupby(list(by), sort=True)["config"].nunique().rename("n_configs").reset_index()
    return best.merge(k, on=list(by), how="left")


def select_configs(scores: pd.DataFrame, chosen: pd.DataFrame,
                   on: Sequence[str] = ("task", "arm", "model", "config")) -> pd.DataFrame:
    """The rows of ``scores`` whose (task, arm, model, config) is one of ``chosen``'s."""
    keys = pd.MultiIndex.from_frame(chosen[list(on)].drop_duplicates())
    return scores[pd.MultiIndex.from_frame(scores[list(on)]).isin(keys)].reset_index(drop=True)


SAME_DATA = "same seeds"


@dataclass(frozen=True)
class Choice:
    """The configurations chosen per (task, arm, model) and the per-seed rows reported for them.

    Attributes:
        best: :func:`best_configs` rows (summary over the selection seeds) with ``n_configs`` and
            ``selected_on`` (``"same seeds"``, or the selection seeds when chosen on held-out ones).
        per_seed: the reported per-seed rows of the chosen configurations.
        note: one sentence for the tables: how the configurations were chosen and what that means.
    """

    best: pd.DataFrame
    per_seed: pd.DataFrame
    note: str


def _seed_list(seeds: Sequence[int]) -> str:
    return ",".join(str(s) for s in seeds)


def _best_of(summary: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """:func:`best_configs` chosen on the selection half where ``summary`` has it (``--selection split``), its
    rows then the chosen configurations' report-half (``dev``) summary; and whether it was so chosen."""
    if not (summary["split"] == SELECTION).any():
        return best_configs(summary), False
    keys = ["task", "arm", "model", "config"]
    chosen = best_configs(summary, split=SELECTION)[keys + ["n_configs"]]
    report = summary[(summary["split"] == DEV) & (summary["metric"] == SCORE)]
    best = report.merge(chosen, on=keys, how="inner").sort_values(["task", "arm", "model"])
    return best.reset_index(drop=True), True


def choose_configs(scores: pd.DataFrame, select_seeds: Sequence[int] | None = None,
                   report_seeds: Sequence[int] | None = None, interval: str = "t", n_boot: int = 2000,
                   confidence: float = 0.95, seed: int = 0) -> Choice:
    """Choose each (task, arm, model)'s configuration and return the rows to report for it.

    Without seed lists the configuration is chosen on the mean dev score over all seeds and the same
    scores are reported: best of ``n_configs`` on the same data, optimistic whenever ``n_configs > 1``.
    With ``select_seeds`` (and/or ``report_seeds``) it is chosen on the selection seeds only and reported
    on the others, so the reported numbers are free of that selection bias. Scores of ``--selection split``
    (rows on the ``dev.selection`` split) choose on the selection half's mean and report the report half's
    (``dev``): free of it too, on every seed.

    Raises:
        ValueError: the two seed lists overlap.
    """
    if select_seeds is None and report_seeds is None:
        summary = seed_summary(scores, CONFIG_BY, n_boot, confidence, seed, interval)
        best, halves = _best_of(summary)
        if halves:
            note = ("Each configuration is chosen on the mean over seeds of the selection half's dev score "
                    "and reported on the report half, which the choice never saw.")
            return Choice(best.assign(selected_on="selection half"), select_configs(scores, best), note)
        note = ("Each configuration is chosen on the mean dev score over the same seeds it is reported on: "
                "where an arm searched K > 1 configurations (K: `n_configs`), its numbers are the best of K "
                "and read optimistic.")
        return Choice(best.assign(selected_on=SAME_DATA), select_configs(scores, best), note)
    seeds = sorted(int(s) for s in scores["seed"].dropna().unique())
    sel = (sorted(select_seeds) if select_seeds is not None
           else [s for s in seeds if s not in set(report_seeds or ())])
    rep = sorted(report_seeds) if report_seeds is not None else [s for s in seeds if s not in set(sel)]
    if set(sel) & set(rep):
        raise ValueError(f"--select_seeds and --report_seeds overlap on {sorted(set(sel) & set(rep))}: "
                         "a configuration chosen on a seed cannot be reported on it without selection bias")
    summary = seed_summary(scores[scores["seed"].isin(sel)], CONFIG_BY, n_boot, confidence, seed, interval)
    best = _best_of(summary)[0].assign(selected_on=f"seeds {_seed_list(sel)}")
    note = (f"Each configuration is chosen on the mean dev score over seeds {_seed_list(sel)} and reported "
            f"on seeds {_seed_list(rep)} (held out from the choice).")
    return Choice(best, select_configs(scores[scores["seed"].isin(rep)], best), note)


# ---------------------------------------------------------------------------------------------- GLUE


def glue_scores(summary: pd.DataFrame, convention: str = "paper", by: Sequence[str] = ("model", "arm"),
                allow_missing: bool = False) -> pd.DataFrame:
    """The GLUE score of each group from the mean dev metrics per task.

    Args:
        summary: rows with ``by`` + ``task, split, metric, mean`` (e.g. :func:`seed_summary` by
            ``ARM_BY``); ``score`` rows are ignored (task scores are recomputed from the metrics,
            strictly: a task missing a metric counts as missing).
        convention: ``"paper"`` or ``"glue"`` (:mod:`analysis.scores`).
        by: one GLUE score per group.
        allow_missing: average the tasks present instead of giving NaN when some are missing.

    Returns:
        ``by`` + ``convention, glue_score, n_tasks, missing`` (missing tasks, comma-separated).
    """
    tasks = convention_tasks(convention)
    s = summary[(summary["split"] == DEV) & (summary["metric"] != SCORE) & summary["task"].isin(tasks)]
    rows = []
    for key, g in s.groupby(list(by), sort=True):
        per_task = {}
        for t, gt in g.groupby("task"):
            try:
                per_task[str(t)] = task_score(get_task(str(t)), dict(zip(gt["metric"], gt["mean"])))
            except ValueError:
                continue
        present = [t for t in tasks if t in per_task]
        missing = [t for t in tasks if t not in present]
        score = glue_score(per_task, convention,
            allow_missing=True) if (present and (allow_missing or not missing)) \
            else math.nan
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, convention, score, len(present), ",".join(missing)))
    return pd.DataFrame(rows, columns=list(by) + ["convention", "glue_score", "n_tasks", "missing"])


# ------------------------------------------------------------------------------------------ ablations


def searched_params(scores: pd.DataFrame) -> list[str]:
    """Numeric ``param.*`` columns (seed excluded) that take at least two values."""
    out = []
    for c in scores.columns:
        if not c.startswith("param.") or c == "param.seed":
            continue
        values = scores[c].dropna().unique()  # the few distinct settings, not every row
        if any(isinstance(x, (bool, np.bool_)) for x in values):
            continue
        if pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna().nunique() > 1:
            out.append(c.removeprefix("param."))
    return out


def factor_groups(trials: pd.DataFrame, params: Sequence[str]) -> list[list[str]]:
    """Group hyperparameters that vary together (the same partition of the trials), e.g. the paper's K,
    which sets ``sampling_times_delta`` and ``sampling_times_theta`` at once: one factor each group."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for p in params:
        codes = tuple(pd.factorize(trials[f"param.{p}"], use_na_sentinel=False)[0].tolist())
        groups.setdefault(codes, []).append(p)
    return list(groups.values())


def _same_as(g: pd.DataFrame, ref: pd.Series, columns: Sequence[str]) -> pd.Series:
    same = pd.Series(True, index=g.index)
    for c in columns:
        same &= (g[c] == ref[c]) | (g[c].isna() & pd.isna(ref[c]))
    return same


def ablation_slices(scores: pd.DataFrame, best: pd.DataFrame,
                    forced: Sequence[str] = ()) -> dict[tuple[str, str, str], tuple[pd.DataFrame, list[str]]]:
    """The one-factor sweeps of Tables 4-5 found in ``scores`` (:func:`trial_scores` rows with ``param.*``).

    Per (model, arm, param): the trials that differ from each task's best configuration (``best``)
    only in ``param`` (and the parameters that always vary with it, and seed); run settings (``run.*``)
    must match too. Found without asking when a (model, arm) varies one factor only; ``forced`` names
    parameters to ablate in any case.

    Returns:
        ``{(model, arm, param): (rows of the sweep, the factor's parameters)}`` for sweeps with at
        least two settings.
    """
    out: dict[tuple[str, str, str], tuple[pd.DataFrame, list[str]]] = {}
    for (model, arm), g in scores.groupby(["model", "arm"], sort=True):
        trials = g.drop_duplicates(["experiment", "trial"])
        factors = factor_groups(trials, searched_params(trials))
        chosen = [f for f in factors if any(p in forced for p in f)] or (factors if len(factors) == 1 else [])
        for factor in chosen:
            p = factor[0]
            skip = {f"param.{q}" for q in factor} | {"param.seed"}
            others = [c for c in g.columns if c.startswith(("param.", "run.")) and c not in skip]
            parts = []
            for task, gt in g.groupby("task"):
                b = best[(best["model"] == model) & (best["arm"] == arm) & (best["task"] == task)]
                if not b.empty:
                    parts.append(gt[_same_as(gt, gt[gt["config"] == b["config"].iloc[0]].iloc[0], others)])
            sl = pd.concat(parts) if parts else g.iloc[0:0]
            if sl[f"param.{p}"].nunique() > 1:
                out[(str(model), str(arm), p)] = (sl, factor)
    return out


def trial_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial with its status and error (for listing failed and partial trials)."""
    return df.drop_duplicates(_TRIAL)[list(TRIAL_COLUMNS)].reset_index(drop=True)
