"""Arms compared seed by seed: every seed's score per arm with its pairing drawn, the t-interval of each arm's
mean, and the paired differences against a baseline.

:func:`paired_points_info` computes the numbers (pure), :func:`paired_points_plot` draws them: per task, the
left panel puts each arm's per-seed scores side by side with a thin line joining the scores of one seed
across arms (two arms run with one seed share the head's initialisation and the data order, so the lines
show what a paired comparison sees) and each arm's mean with its 95% t-interval; the right panel shows, per
arm, the per-seed differences to the baseline and their mean with its t-interval, against a line at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from analysis.comparison import paired_stats
from analysis.identity import arm_order
from analysis.intervals import t_interval
from analysis.plots import new_figure
from analysis.tidy import DEV, SCORE
from mat.spec.tasks import sort_tasks, task_label


@dataclass(frozen=True)
class PairedInfo:
    """What :func:`paired_points_plot` draws.

    Attributes:
        points: ``task, arm, seed, value``: each trial's score (a seed's scores of one arm averaged if it
            repeats).
        means: ``task, arm, n, mean, ci_low, ci_high``: per arm, the mean over seeds and its 95% t-interval.
        diffs: ``task, arm, seed, diff``: per arm and seed, the score minus the baseline's on that seed.
        paired: ``task, arm, n_pairs, mean_diff, ci_low, ci_high, p_value, wilcoxon_p``: the paired statistics
            (:func:`analysis.comparison.paired_stats`) of each arm against the baseline.
        baseline: the baseline arm.
        arms: the arms in display order (:func:`analysis.identity.arm_order`).
    """

    points: pd.DataFrame
    means: pd.DataFrame
    diffs: pd.DataFrame
    paired: pd.DataFrame
    baseline: str
    arms: list[str]


def paired_points_info(per_seed: pd.DataFrame, baseline: str, split: str = DEV) -> PairedInfo:
    """The per-seed scores, means with t-intervals and paired differences of every arm against ``baseline``.

    Args:
        per_seed: per-trial score rows of one configuration per arm (e.g. the ``per_seed`` of
            :func:`analysis.aggregate.choose_configs`), with ``task, arm, seed, split, metric, value``.
        baseline: the arm the differences are taken against.
        split: the split whose task score is used.

    Raises:
        ValueError: ``baseline`` has no scores.
    """
    s = per_seed[(per_seed["split"] == split) & (per_seed["metric"] == SCORE)]
    if not (s["arm"] == baseline).any():
        raise ValueError(f"baseline {baseline!r} has no scores; arms: {arm_order(s['arm'])}")
    points = s.groupby(["task", "arm", "seed"], sort=True)["value"].mean().reset_index()
    means, diffs, paired = [], [], []
    for task, g in points.groupby("task", sort=False):
        base = g[g["arm"] == baseline].set_index("seed")["value"]
        for arm, ga in g.groupby("arm", sort=False):
            v = ga["value"].to_numpy(dtype=float)
            lo, hi = t_interval(v)
            means.append((task, arm, len(v), float(v.mean()), lo, hi))
            if arm == baseline or base.empty:
                continue
            pair = ga.set_index("seed")["value"].to_frame("a").join(base.to_frame("b"), how="inner")
            diffs += [(task, arm, int(seed), float(r.a - r.b)) for seed, r in pair.iterrows()]
            st = paired_stats(pair["a"].to_numpy(), pair["b"].to_numpy())
            paired.append((task, arm, st.n_pairs, st.mean_diff, st.ci_low, st.ci_high, st.p_value,
                           st.wilcoxon_p))
    return PairedInfo(
        points, pd.DataFrame(means, columns=["task", "arm", "n", "mean", "ci_low", "ci_high"]),
        pd.DataFrame(diffs, columns=["task", "arm", "seed", "diff"]),
        pd.DataFrame(paired, columns=["task", "arm", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value",
                                      "wilcoxon_p"]),
        baseline, arm_order(points["arm"]))


def _interval_bar(ax: Any, x: float, mean: float, lo: float, hi: float) -> None:
    """The mean as a black marker with its t-interval (none drawn for a single seed)."""
    err = None if math.isnan(lo) else [[mean - lo], [hi - mean]]
    ax.errorbar([x], [mean], yerr=err, fmt="D", color="black", capsize=4, markersize=5, zorder=3)


def paired_points_plot(info: PairedInfo, title: str = "") -> Figure:
    """Per task two panels: per-seed scores by arm with each seed's line and the means' t-intervals; the
    differences to the baseline per arm with their mean's t-interval and a line at 0."""
    tasks = sort_tasks(info.points["task"])
    fig, axes = new_figure(max(1, len(tasks)), 2, (4.0 + 1.1 * len(info.arms), 3.4 * max(1, len(tasks))))
    pos = {a: i for i, a in enumerate(info.arms)}
    others = [a for a in info.arms if a != info.baseline]
    for row, task in zip(axes, tasks):
        left, right = row
        pts = info.points[info.points["task"] == task]
        for _seed, g in pts.groupby("seed"):
            g = g.sort_values("arm", key=lambda c: c.map(pos))
            left.plot(g["arm"].map(pos), g["value"], color="0.6", linewidth=0.8, marker="o", markersize=4,
                      zorder=2)
        for r in info.means[info.means["task"] == task].itertuples():
            _interval_bar(left, pos[r.arm] + 0.15, r.mean, r.ci_low, r.ci_high)
        left.set_xticks(range(len(info.arms)), info.arms, rotation=30, ha="right")
        left.set_title(f"{task_label(task)}: per seed (lines join a seed), mean ± 95% t-interval", fontsize=9)
        left.set_ylabel("dev task score")
        d = info.diffs[info.diffs["task"] == task]
        where = {a: i for i, a in enumerate(others)}
        right.scatter(d["arm"].map(where), d["diff"], color="0.5", s=14, zorder=2)
        for r in info.paired[info.paired["task"] == task].itertuples():
            _interval_bar(right, where[r.arm] + 0.15, r.mean_diff, r.ci_low, r.ci_high)
        right.axhline(0.0, color="black", linestyle="--", linewidth=0.8)
        right.set_xticks(range(len(others)), others, rotation=30, ha="right")
        right.set_title(f"{task_label(task)}: arm − {info.baseline}, per seed and mean ± 95% t-interval",
                        fontsize=9)
        right.set_ylabel("paired difference")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
