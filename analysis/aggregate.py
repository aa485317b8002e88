"""Aggregation as named stages, each a pure DataFrame -> DataFrame function.

1. :func:`trial_scores`: per trial, the selected evaluation (``"best"``: the record's best dev
   evaluation, which the MAT authors report; ``"final"``: the last one) as long rows ``split, metric,
   value`` plus a ``score`` row per split (the mean of that split's metrics).
2. :func:`seed_summary`: per configuration over seeds: n, mean, std, median, min, max and a seeded
   95% percentile-bootstrap interval of the mean.
3. :func:`best_configs` / :func:`select_configs`: the configuration with the highest mean dev score
   over seeds per (task, method, model), and the per-seed rows of those configurations.
4. :func:`glue_scores`: the GLUE score of each (model, method) under a named convention.
5. :func:`paired_comparison`: two methods per task over seeds: mean difference, bootstrap interval and
   Welch's t-test.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.load import DEV, TRIAL_COLUMNS
from analysis.scores import convention_tasks, glue_score, task_score

SELECTIONS = ("best", "final")
SCORE = "score"
CONFIG_BY = ("task", "method", "model", "config", "split", "metric")
METHOD_BY = ("model", "method", "task", "split", "metric")
_TRIAL = ["experiment", "trial"]


def _check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}")


def _fallback_rows(evals: pd.DataFrame, selection: str) -> pd.DataFrame:
    """For trials without a ``best``/``final`` entry: the eval step with the highest dev score
    (earliest on ties) or the last eval step."""
    dev = evals[(evals["split"] == DEV) & (evals["metric"] != "default")]
    if dev.empty:
        return evals.iloc[0:0]
    per_step = dev.groupby(_TRIAL + ["step"], sort=True)["value"].mean().reset_index()
    if selection == "best":
        per_step = per_step.sort_values(_TRIAL + ["value", "step"], ascending=[True, True, False, True])
        chosen = per_step.groupby(_TRIAL, sort=False).head(1)
    else:
        chosen = per_step.sort_values(_TRIAL + ["step"]).groupby(_TRIAL, sort=False).tail(1)
    return evals.merge(chosen[_TRIAL + ["step"]], on=_TRIAL + ["step"], how="inner")


def _score_rows(picked: pd.DataFrame) -> pd.DataFrame:
    """One ``score`` row per (trial, split): the mean of the split's metrics (``default`` only if alone)."""
    real = picked[picked["metric"] != "default"]
    keys = _TRIAL + ["split"]
    score = real.groupby(keys, sort=False)["value"].mean()
    alone = picked[~picked.set_index(keys).index.isin(score.index)]
    score = pd.concat([score, alone.groupby(keys, sort=False)["value"].mean()])
    rows = picked.drop_duplicates(keys).set_index(keys)
    rows = rows.loc[score.index].copy()
    rows["metric"] = SCORE
    rows["value"] = score.to_numpy()
    return rows.reset_index()[picked.columns]


def trial_scores(df: pd.DataFrame, selection: str = "best",
                 statuses: Sequence[str] | None = ("SUCCEEDED",)) -> pd.DataFrame:
    """Per trial, the selected evaluation as long rows, plus a ``score`` row per split.

    Selection rule: ``"best"`` takes the record's ``best`` entry (the evaluation with the highest dev
    score, the one the MAT authors report); ``"final"`` its ``final`` entry (the last evaluation). A
    trial without that entry falls back to its ``eval`` rows: the step with the highest mean dev metric
    (earliest on ties) for ``"best"``, the last step for ``"final"``.

    Args:
        df: the tidy frame of :mod:`analysis.load`.
        selection: ``"best"`` or ``"final"``.
        statuses: trial statuses to keep (default: finished trials only; None keeps all).

    Returns:
        Columns of ``df`` without ``kind``/``epoch``/``source``/``error``: one row per (trial, split,
        metric), ``metric == "score"`` holding the mean of the split's metrics (the task score on dev).

    Raises:
        ValueError: unknown selection.
    """
    _check_selection(selection)
    d = df if statuses is None else df[df["status"].isin(list(statuses))]
    d = d[d["metric"].notna()]
    picked = d[d["kind"] == selection]
    have = pd.MultiIndex.from_frame(picked[_TRIAL].drop_duplicates())
    rest = d[(d["kind"] == "eval") & ~pd.MultiIndex.from_frame(d[_TRIAL]).isin(have)]
    if not rest.empty:
        picked = pd.concat([picked, _fallback_rows(rest, selection)], ignore_index=True)
    drop = ["kind", "epoch", "source", "error"]
    picked = picked.drop(columns=drop).reset_index(drop=True)
    if picked.empty:
        return picked
    out = pd.concat([picked, _score_rows(picked)], ignore_index=True)
    return out.sort_values(_TRIAL + ["split", "metric"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------ bootstrap


def _boot_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap means of each row of ``values`` (G, n): (G, n_boot). The resampling indices depend only
    on (seed, n), so a group's interval does not depend on the other groups."""
    g, n = values.shape
    idx = np.random.default_rng([seed, n]).integers(0, n, size=(n_boot, n))
    out = np.empty((g, n_boot))
    chunk = max(1, 4_000_000 // max(1, n_boot * n))
    for i in range(0, g, chunk):
        out[i:i + chunk] = values[i:i + chunk][:, idx].mean(axis=2)
    return out


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean (NaNs dropped; deterministic for a given ``seed``).

    Returns:
        ``(low, high)``; ``(v, v)`` for one value, ``(nan, nan)`` for none.
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = 50 * (1 - confidence)
    lo, hi = np.percentile(_boot_means(v[None, :], n_boot, seed)[0], [tail, 100 - tail])
    return float(lo), float(hi)


def _group_cis(codes: np.ndarray, values: np.ndarray, n_groups: int, n_boot: int, confidence: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.full(n_groups, np.nan)
    hi = np.full(n_groups, np.nan)
    ok = ~np.isnan(values)
    codes, values = codes[ok], values[ok]
    order = np.argsort(codes, kind="stable")
    codes, values = codes[order], values[order]
    sizes = np.bincount(codes, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    tail = 50 * (1 - confidence)
    for n in np.unique(sizes[sizes > 0]):
        groups = np.flatnonzero(sizes == n)
        mat = values[starts[groups][:, None] + np.arange(n)[None, :]]
        means = _boot_means(mat, n_boot, seed)
        lo[groups], hi[groups] = np.percentile(means, [tail, 100 - tail], axis=1)
    return lo, hi


def seed_summary(scores: pd.DataFrame, by: Sequence[str] = CONFIG_BY, n_boot: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Summarise ``value`` over seeds per group.

    Args:
        scores: rows with the ``by`` columns and ``value`` (e.g. :func:`trial_scores`).
        by: grouping columns (default: one configuration's one metric on one split).
        n_boot, confidence, seed: the percentile bootstrap of the mean (same as :func:`bootstrap_ci`).

    Returns:
        ``by`` + ``n, mean, std, median, min, max, ci_low, ci_high``; ``std`` is the sample standard
        deviation (ddof 1, NaN for one seed).
    """
    by = list(by)
    cols = ["n", "mean", "std", "median", "min", "max", "ci_low", "ci_high"]
    if scores.empty:
        return pd.DataFrame(columns=by + cols)
    grouped = scores.groupby(by, sort=True, dropna=False)["value"]
    out = grouped.agg(["count", "mean", "std", "median", "min", "max"]).rename(columns={"count": "n"})
    codes = grouped.ngroup().to_numpy()
    lo, hi = _group_cis(codes, scores["value"].to_numpy(dtype=float), len(out), n_boot, confidence, seed)
    out["ci_low"], out["ci_high"] = lo, hi
    out["n"] = out["n"].astype(int)
    return out.reset_index()[by + cols]


# ------------------------------------------------------------------------------------------- configs


def best_configs(summary: pd.DataFrame, by: Sequence[str] = ("task", "method", "model"), split: str = DEV,
                 metric: str = SCORE) -> pd.DataFrame:
    """The configuration with the highest mean over seeds per group (ties: more seeds, then config text).

    Args:
        summary: :func:`seed_summary` output grouped by ``CONFIG_BY``.
        by: the groups a best configuration is chosen in.
        split, metric: the selection criterion (default: the dev task score).

    Returns:
        One summary row per group.
    """
    s = summary[(summary["split"] == split) & (summary["metric"] == metric)]
    s = s.sort_values(list(by) + ["mean", "n", "config"], ascending=[True] * len(by) + [False, False, True])
    return s.groupby(list(by), sort=True).head(1).reset_index(drop=True)


def select_configs(scores: pd.DataFrame, chosen: pd.DataFrame,
                   on: Sequence[str] = ("task", "method", "model", "config")) -> pd.DataFrame:
    """The rows of ``scores`` whose (task, method, model, config) is one of ``chosen``'s."""
    keys = pd.MultiIndex.from_frame(chosen[list(on)].drop_duplicates())
    return scores[pd.MultiIndex.from_frame(scores[list(on)]).isin(keys)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- GLUE


def glue_scores(summary: pd.DataFrame, convention: str = "paper", by: Sequence[str] = ("model", "method"),
                allow_missing: bool = False) -> pd.DataFrame:
    """The GLUE score of each group from the mean dev metrics per task.

    Args:
        summary: rows with ``by`` + ``task, split, metric, mean`` (e.g. :func:`seed_summary` by
            ``METHOD_BY``); ``score`` rows are ignored (task scores are recomputed from the metrics).
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
        per_task = {t: task_score(t, dict(zip(gt["metric"], gt["mean"]))) for t, gt in g.groupby("task")}
        present = [t for t in tasks if t in per_task and not math.isnan(per_task[t])]
        missing = [t for t in tasks if t not in present]
        score = glue_score(per_task, convention, allow_missing=True) if (present and (allow_missing or not missing)) \
            else math.nan
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, convention, score, len(present), ",".join(missing)))
    return pd.DataFrame(rows, columns=list(by) + ["convention", "glue_score", "n_tasks", "missing"])


# ---------------------------------------------------------------------------------------- comparison


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Welch's t, p and degrees of freedom; NaN with fewer than 2 values a side or no variance."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.nan, math.nan, math.nan
    from scipy import stats  # imported here: scipy.stats alone takes ~1.5 s to import

    res = stats.ttest_ind(a, b, equal_var=False)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(res.statistic), float(res.pvalue), float(dof)


def _diff_ci(a: np.ndarray, b: np.ndarray, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng([seed, len(a), len(b)])
    ma = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
    mb = b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1)
    tail = 50 * (1 - confidence)
    lo, hi = np.percentile(ma - mb, [tail, 100 - tail])
    return float(lo), float(hi)


def paired_comparison(scores: pd.DataFrame, method_a: str, method_b: str, by: Sequence[str] = ("model", "task"),
                      split: str = DEV, metric: str = SCORE, n_boot: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """Compare two methods per task over seeds.

    ``mean_diff`` is mean(a) - mean(b) over all seeds of each; its interval is a percentile bootstrap
    resampling each method's seeds independently (seeded); ``t``/``p_value``/``dof`` are Welch's
    unequal-variance t-test (``scipy.stats.ttest_ind(equal_var=False)``). ``paired_diff`` is the mean of
    per-seed differences over the seeds both methods ran (``n_pairs``).

    Args:
        scores: per-seed rows (e.g. :func:`trial_scores` restricted to each method's best configuration).
        method_a, method_b: the two methods; differences are a - b.
        by: one comparison per group.
        split, metric: the value compared (default: the dev task score).

    Returns:
        ``by`` + ``method_a, method_b, n_a, n_b, n_pairs, mean_a, mean_b, mean_diff, ci_low, ci_high,
        paired_diff, t, dof, p_value``.
    """
    s = scores[(scores["split"] == split) & (scores["metric"] == metric)
               & scores["method"].isin([method_a, method_b])]
    rows = []
    for key, g in s.groupby(list(by), sort=True):
        a = g[g["method"] == method_a]
        b = g[g["method"] == method_b]
        va, vb = a["value"].to_numpy(dtype=float), b["value"].to_numpy(dtype=float)
        pairs = a.groupby("seed")["value"].mean().to_frame("a").join(
            b.groupby("seed")["value"].mean().to_frame("b"), how="inner")
        t, p, dof = _welch(va, vb)
        lo, hi = _diff_ci(va, vb, n_boot, confidence, seed)
        key = key if isinstance(key, tuple) else (key,)
        rows.append((*key, method_a, method_b, len(va), len(vb), len(pairs),
                     va.mean() if len(va) else math.nan, vb.mean() if len(vb) else math.nan,
                     va.mean() - vb.mean() if len(va) and len(vb) else math.nan, lo, hi,
                     float((pairs["a"] - pairs["b"]).mean()) if len(pairs) else math.nan, t, dof, p))
    cols = ["method_a", "method_b", "n_a", "n_b", "n_pairs", "mean_a", "mean_b", "mean_diff", "ci_low",
            "ci_high", "paired_diff", "t", "dof", "p_value"]
    return pd.DataFrame(rows, columns=list(by) + cols)


def trial_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial with its status and error (for listing failed and partial trials)."""
    return df.drop_duplicates(_TRIAL)[list(TRIAL_COLUMNS)].reset_index(drop=True)
