"""Comparing arms over seeds: paired by seed value, Welch's test only for unpaired data.

An arm is a method or its named variant (:mod:`analysis.identity`); the frames here carry it in ``arm``.
Two arms run with the same seed share the classification head's initialisation and the data order,
so the comparison is paired by design: each seed gives one difference ``a - b`` and the statistics are
those of the differences (:func:`paired_stats`):

* ``n_pairs``: seeds both arms ran; ``mean_diff``: the mean of the per-seed differences;
* ``ci_low, ci_high``: the t-interval of that mean (n_pairs - 1 degrees of freedom) or, on request, the
  percentile bootstrap of it (pairs resampled together);
* ``t, dof, p_value``: the paired t-test (:func:`analysis.significance.paired_t`, as
  ``scipy.stats.ttest_rel``);
* ``wilcoxon_p``: the exact Wilcoxon signed-rank test (:func:`analysis.significance.wilcoxon_exact_p`, as
  ``scipy.stats.wilcoxon(method="exact")``), which does not assume normal differences; zero differences are
  dropped (``zero_method="wilcox"``). Its p has a floor set by n alone: with n pairs the smallest two-sided
  exact p is 2 / 2^n (0.0625 at n = 5, so five seeds can never reach 5% on it; :func:`wilcoxon_floor`).

Seeds that only one arm ran are left out of the pairs and named in ``warning``; so is a seed that
appears twice for one arm (its values are averaged before pairing). ``strict=True`` refuses instead
(:class:`SeedMismatch`). Arms whose trials ran at different precisions (``param.precision``: bf16 against
fp32) are named in ``warning`` too, and compared all the same. Welch's unequal-variance t-test
(:func:`unpaired_comparison`) is for data with no shared seeds, and is labelled so wherever it is shown.
:func:`comparison_table` lays the comparison with a baseline out as an arm x task table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from analysis.identity import arm_order
from analysis.intervals import INTERVAL_NOTES, check_interval, mean_interval, t_quantile
from analysis.pairing import PRECISION, Side, pairs, seed_text, sides
from analysis.significance import paired_t, welch_t, wilcoxon_exact_p
from analysis.tables import MISSING, Table, fmt, fmt_diff, fmt_p
from analysis.tidy import DEV, SCORE
from mat.spec.tasks import sort_tasks, task_label

PAIRED_TEST = "paired t-test"
WELCH_TEST = "Welch t-test (unpaired)"


class SeedMismatch(ValueError):
    """A paired comparison whose seed sets differ, or whose seeds repeat, under ``strict=True``."""


SAME_TOL = 1e-9  # per-seed differences closer than this (relative to the largest) are equal: float rounding


@dataclass(frozen=True)
class PairedStats:
    """Statistics of per-seed differences ``a - b`` (module docstring)."""

    n_pairs: int
    mean_diff: float
    sd_diff: float
    ci_low: float
    ci_high: float
    t: float
    dof: float
    p_value: float
    wilcoxon_p: float


def paired_stats(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, interval: str = "t",
                 confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> PairedStats:
    """Paired statistics of ``a`` and ``b``, aligned by seed (``a[i]``, ``b[i]``: one seed).

    The t-test, its p-value and the t-interval need 2 pairs and some variance in the differences; the
    Wilcoxon test needs one non-zero difference; otherwise they are NaN (all-equal differences give the
    interval ``(d, d)``; differences equal up to ``SAME_TOL``, float rounding, count as equal). The tests
    are :mod:`analysis.significance`'s (the same as scipy.stats').
    """
    check_interval(interval)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    n = int(d.size)
    if n == 0:
        return PairedStats(0, *([math.nan] * 8))
    if n > 1 and np.ptp(d) <= SAME_TOL * max(1.0, float(np.abs(d).max())):
        # equal differences up to float rounding (accuracy ties: 76/138 - 73/138 and 79/138 - 76/138 differ in
        # the 15th digit): no spread, not a spread of 1e-15 that would make the t-test's p ~ 0
        d = np.full(n, float(d.mean()))
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    lo, hi = mean_interval(d, interval, confidence, n_boot, seed)
    t, dof, p = paired_t(d)
    return PairedStats(n, float(d.mean()), sd, lo, hi, t, dof, p, wilcoxon_exact_p(d))


def wilcoxon_floor(n_pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with ``n_pairs`` non-zero
    differences: 2 / 2^n (every difference of one sign), 0.0625 at n = 5."""
    return 2.0 / 2.0 ** n_pairs if n_pairs > 0 else math.nan


PAIRED_COLUMNS = ["arm_a", "arm_b", "n_a", "n_b", "n_pairs", "mean_a", "mean_b", "mean_diff", "sd_diff",
                  "ci_low", "ci_high", "interval", "t", "dof", "p_value", "wilcoxon_p", "test",
                  "seeds_only_a", "seeds_only_b", "repeated_seeds", "warning"]


def _arm_rows(scores: pd.DataFrame, arm_a: str, arm_b: str, by: Sequence[str], split: str,
              metric: str) -> pd.DataFrame:
    """The rows of the two arms for one split and metric, with the columns a comparison uses."""
    used = [*by, "arm", "seed", "split", "metric",
        "value"] + ([PRECISION] if PRECISION in scores.columns else [])
    s = scores[list(dict.fromkeys(used))]
    return s[(s["split"] == split) & (s["metric"] == metric) & s["arm"].isin([arm_a, arm_b])]


def _arm_groups(scores: pd.DataFrame, arm_a: str, arm_b: str, by: Sequence[str], split: str,
                metric: str) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    """(group key as a tuple, the group's rows of the two arms) for one split and metric, groups sorted."""
    for key, g in _arm_rows(scores, arm_a, arm_b, by, split, metric).groupby(list(by), sort=True):
        yield (key if isinstance(key, tuple) else (key,)), g


def paired_comparison(scores: pd.DataFrame, arm_a: str, arm_b: str, by: Sequence[str] = ("model", "task"),
                      split: str = DEV, metric: str = SCORE, interval: str = "t", n_boot: int = 2000,
                      confidence: float = 0.95, seed: int = 0, strict: bool = False) -> pd.DataFrame:
    """Compare two arms per group, paired by seed value (module docstring).

    Args:
        scores: per-seed rows (e.g. :func:`analysis.aggregate.trial_scores` restricted to each arm's
            chosen configuration) with ``by`` + ``arm, seed, split, metric, value``.
        arm_a, arm_b: the two arms; differences are a - b.
        by: one comparison per group.
        split, metric: the value compared (default: the dev task score).
        interval: ``"t"`` (default) or ``"bootstrap"`` for the interval of the mean difference.
        n_boot, confidence, seed: bootstrap resamples, interval level, bootstrap seed.
        strict: raise instead of warning when the seed sets differ or a seed repeats.

    Returns:
        ``by`` + :data:`PAIRED_COLUMNS`; ``mean_a``/``mean_b`` are over the shared seeds (so
        ``mean_a - mean_b == mean_diff``), ``n_a``/``n_b`` count every seed row of each arm.

    Raises:
        SeedMismatch: ``strict`` and a group's seed sets differ or a seed repeats (the message names them).
        ValueError: unknown interval.
    """
    check_interval(interval)
    rows = []
    s = _arm_rows(scores, arm_a, arm_b, by, split, metric)
    for key, group in sides(s, by).items():
        a, b = group.get(arm_a, Side()), group.get(arm_b, Side())
        va, vb, text = pairs(a, b, arm_a, arm_b)
        if strict and text["warning"]:
            raise SeedMismatch(f"{dict(zip(by, key))}, {arm_a} vs {arm_b}: {text['warning']}")
        st = paired_stats(va, vb, interval, confidence, n_boot, seed)
        mean_a = float(va.mean()) if len(va) else math.nan
        mean_b = float(vb.mean()) if len(vb) else math.nan
        rows.append((*key, arm_a, arm_b, a.n, b.n, st.n_pairs, mean_a, mean_b, st.mean_diff, st.sd_diff,
                     st.ci_low, st.ci_high, interval, st.t, st.dof, st.p_value, st.wilcoxon_p, PAIRED_TEST,
                     text["seeds_only_a"], text["seeds_only_b"], text["repeated_seeds"], text["warning"]))
    return pd.DataFrame(rows, columns=list(by) + PAIRED_COLUMNS)


def _welch(a: np.ndarray, b: np.ndarray, interval: str, confidence: float, n_boot: int,
           seed: int) -> tuple[float, float, float, float, float]:
    """Welch's t, p, degrees of freedom and the interval of mean(a) - mean(b)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    if interval == "bootstrap":
        rng = np.random.default_rng([seed, len(a), len(b)])
        ma = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
        mb = b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1)
        tail = 50 * (1 - confidence)
        lo, hi = (float(x) for x in np.percentile(ma - mb, [tail, 100 - tail]))
    if va + vb == 0:
        return math.nan, math.nan, math.nan, *((lo, hi) if interval == "bootstrap" else (diff, diff))
    t, dof, p = welch_t(a, b)
    if interval == "t":
        half = float(t_quantile(confidence, dof)) * math.sqrt(va + vb)
        lo, hi = diff - half, diff + half
    return t, p, dof, lo, hi


UNPAIRED_COLUMNS = ["arm_a", "arm_b", "n_a", "n_b", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
                    "interval", "t", "dof", "p_value", "test"]


def unpaired_comparison(scores: pd.DataFrame, arm_a: str, arm_b: str, by: Sequence[str] = ("model", "task"),
                        split: str = DEV, metric: str = SCORE, interval: str = "t", n_boot: int = 2000,
                        confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Welch's unequal-variance comparison of two arms per group, for data that share no seeds.

    ``mean_diff`` is mean(a) - mean(b) over every seed of each; ``t, dof, p_value`` are Welch's test
    (:func:`analysis.significance.welch_t`, as ``scipy.stats.ttest_ind(equal_var=False)``); the interval is
    Welch's t-interval (Welch-Satterthwaite degrees of freedom) or a percentile bootstrap resampling each
    arm's seeds independently. Where the arms share seeds, :func:`paired_comparison` is the right test.

    Returns:
        ``by`` + :data:`UNPAIRED_COLUMNS` (``test`` = "Welch t-test (unpaired)").
    """
    check_interval(interval)
    rows = []
    for key, g in _arm_groups(scores, arm_a, arm_b, by, split, metric):
        va = g.loc[g["arm"] == arm_a, "value"].to_numpy(dtype=float)
        vb = g.loc[g["arm"] == arm_b, "value"].to_numpy(dtype=float)
        t, p, dof, lo, hi = _welch(va, vb, interval, confidence, n_boot, seed)
        ma = float(va.mean()) if len(va) else math.nan
        mb = float(vb.mean()) if len(vb) else math.nan
        rows.append((*key, arm_a, arm_b, len(va), len(vb), ma, mb, ma - mb, lo, hi, interval, t, dof, p,
                     WELCH_TEST))
    return pd.DataFrame(rows, columns=list(by) + UNPAIRED_COLUMNS)


def compare_to_baseline(scores: pd.DataFrame, baseline: str, chosen: pd.DataFrame | None = None,
                        by: Sequence[str] = ("model", "task"), split: str = DEV, metric: str = SCORE,
                        interval: str = "t", n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
                        strict: bool = False) -> pd.DataFrame:
    """The arm x task table: each arm's mean ± std (n) and its paired difference to ``baseline``.

    Args:
        scores: per-seed rows of the chosen configurations (:func:`analysis.aggregate.choose_configs`).
        baseline: the arm every other one is compared with (paired by seed; Welch only where an arm
            shares no seed with the baseline, labelled in ``test``).
        chosen: the chosen configurations (``best_configs`` rows with ``n_configs`` and ``selected_on``),
            to report how many configurations each arm searched and how its configuration was chosen.
        interval, strict, n_boot, confidence, seed: as in :func:`paired_comparison`.

    Returns:
        One row per ``by`` + arm: ``n, mean, std, n_configs, selected_on, baseline, n_pairs, mean_diff,
        ci_low, ci_high, interval, t, dof, p_value, wilcoxon_p, test, warning`` (difference columns NaN or
        empty on the baseline's own rows).

    Raises:
        SeedMismatch: ``strict`` and seeds differ or repeat.
        ValueError: ``baseline`` has no rows.
    """
    used = [*by, "arm", "seed", "split", "metric",
        "value"] + ([PRECISION] if PRECISION in scores.columns else [])
    s = scores[list(dict.fromkeys(used))]
    s = s[(s["split"] == split) & (s["metric"] == metric)]
    if not (s["arm"] == baseline).any():
        raise ValueError(f"baseline {baseline!r} has no results; arms found: {sorted(set(s['arm']))} (an arm "
                         "is a method, or its named variant: params.arm or params.rung)")
    keys = list(by) + ["arm"]
    out = (s.groupby(keys, sort=True)["value"].agg(["count", "mean", "std"])
           .rename(columns={"count": "n"}).reset_index())
    if chosen is not None and "n_configs" in chosen.columns:
        extra = chosen[[c for c in keys if c in chosen.columns] + ["n_configs", "selected_on"]]
        out = out.merge(extra, on=[c for c in keys if c in chosen.columns], how="left")
    else:
        out["n_configs"], out["selected_on"] = np.nan, ""
    frames = []
    for m in sorted(set(s["arm"]) - {baseline}):
        kw = dict(by=by, split=split, metric=metric, interval=interval, n_boot=n_boot, confidence=confidence,
                  seed=seed)
        paired = paired_comparison(s, m, baseline, strict=strict, **kw)  # type: ignore[arg-type]
        use_welch = (paired["n_pairs"] == 0).to_numpy()
        if use_welch.any():  # groups where the arm shares no seed with the baseline
            welch = unpaired_comparison(s, m, baseline, **kw)  # type: ignore[arg-type]
            cols = ["mean_diff", "ci_low", "ci_high", "t", "dof", "p_value", "test"]
            paired.loc[use_welch, cols] = welch.loc[use_welch, cols].to_numpy()
            paired.loc[use_welch, "wilcoxon_p"] = np.nan
        frames.append(paired.rename(columns={"arm_a": "arm", "arm_b": "baseline"}))
    diff_cols = ["baseline", "n_pairs", "mean_diff", "ci_low", "ci_high", "interval", "t", "dof", "p_value",
                 "wilcoxon_p", "test", "warning"]
    if frames:
        diffs = pd.concat(frames, ignore_index=True)[keys + diff_cols]
        out = out.merge(diffs, on=keys, how="left")
    else:
        out = out.reindex(columns=list(out.columns) + diff_cols)
    base = out["arm"] == baseline
    out.loc[base, "baseline"] = baseline
    out["n_pairs"] = out["n_pairs"].astype("Int64")
    out[["test", "warning", "selected_on"]] = out[["test", "warning", "selected_on"]].fillna("")
    return out


def seed_problems(scores: pd.DataFrame, by: Sequence[str] = ("model", "task"), split: str = DEV,
                  metric: str = SCORE) -> list[str]:
    """What makes a paired comparison of ``scores`` doubtful: per group, arms that ran different seed
    sets, and seeds that repeat within an arm. Empty when every arm ran the same seeds once each."""
    s = scores[(scores["split"] == split) & (scores["metric"] == metric)]
    out = []
    for key, g in s.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{k} {v}" for k, v in zip(by, key))
        seeds = {str(m): gm["seed"] for m, gm in g.groupby("arm", sort=True)}
        sets = {m: sorted(int(x) for x in v.dropna().unique()) for m, v in seeds.items()}
        if len({tuple(v) for v in sets.values()}) > 1:
            out.append(f"{where}: seed sets "
                "differ: " + "; ".join(f"{m} {seed_text(v)}" for m, v in sets.items()))
        for m, v in seeds.items():
            rep = sorted(int(x) for x in v[v.duplicated()].dropna().unique())
            if rep:
                out.append(f"{where}: seed(s) {seed_text(rep)} repeat in {m}")
    return out


def table_notes(interval: str) -> list[str]:
    """The notes under an arm x task comparison table (:func:`comparison_table`)."""
    return ["Rows: one per arm (a method, or its named variant: params.arm or params.rung), mean ± std over "
            "seeds (n); † the best of several configurations of the arm chosen on these same seeds "
            "(optimistic).",
            f"Difference rows: mean of the per-seed differences over the seeds both arms ran, "
            f"{INTERVAL_NOTES[interval]}, paired t-test p (t) and exact Wilcoxon signed-rank p (W; with n "
            "pairs it cannot go below 2/2^n, 0.0625 at n = 5); Welch's unpaired test only where the arms "
            "share no seed; ‡ seed sets differ or repeat (the CSV's warning column says how)."]


# ------------------------------------------------------------------------------------------ the table


def _diff_cell(r: pd.Series) -> str:
    if pd.isna(r["mean_diff"]):
        return MISSING
    cell = fmt_diff(r["mean_diff"], r["ci_low"], r["ci_high"], r["p_value"])
    if str(r["test"]).startswith("Welch"):
        return cell + " (Welch, unpaired)"
    cell += f" (t), {fmt_p(r['wilcoxon_p'])} (W)"
    return cell + (f", {int(r['n_pairs'])} pairs" if r["n_pairs"] != r["n"] else "") + (" "
        "‡" if r["warning"] else "")


def _mean_cell(r: pd.Series) -> str:
    sd = "" if pd.isna(r["std"]) else f" ± {fmt(r['std'], 2)}"
    biased = r["n_configs"] > 1 and r["selected_on"] == "same seeds"
    return f"{fmt(r['mean'], 2)}{sd} ({int(r['n'])}){' †' if biased else ''}"


def comparison_table(comp: pd.DataFrame, baseline: str, title: str = "Arms against the baseline",
                     name: str = "compare", notes: Sequence[str] = ()) -> Table:
    """Arm x task: a row ``mean ± std (n)`` per arm (the baseline first, then
    :func:`analysis.identity.arm_order`), then a row ``<arm> − <baseline>`` per other arm: the mean paired
    difference, its interval, the paired t-test and Wilcoxon p-values.

    Args:
        comp: :func:`analysis.comparison.compare_to_baseline` rows of one model.
        baseline: the baseline arm.

    A mean marked † is the best of ``n_configs`` > 1 configurations chosen on the same seeds; a
    difference marked ‡ has seeds that differ or repeat (the ``warning`` column of the CSV says which).
    """
    tasks = sort_tasks(comp["task"])
    arms = [baseline] + [a for a in arm_order(comp["arm"]) if a != baseline]
    by = {(r["arm"], r["task"]): r for _i, r in comp.iterrows()}
    labels, cells, numbers = [], [], []
    for m in arms:
        labels.append(m)
        cells.append([_mean_cell(by[(m, t)]) if (m, t) in by else MISSING for t in tasks])
        numbers.append([by[(m, t)]["mean"] if (m, t) in by else math.nan for t in tasks])
    for m in arms[1:]:
        labels.append(f"{m} − {baseline}")
        cells.append([_diff_cell(by[(m, t)]) if (m, t) in by else MISSING for t in tasks])
        numbers.append([by[(m, t)]["mean_diff"] if (m, t) in by else math.nan for t in tasks])
    headers = [task_label(t) for t in tasks]
    cell_df = pd.DataFrame(cells, index=labels, columns=headers)
    num_df = pd.DataFrame(numbers, index=labels, columns=headers)
    cell_df.index.name = num_df.index.name = "arm"
    return Table(name, title, cell_df, num_df, tuple(notes))
