"""Figures: a pure ``*_info`` function computes the numbers, a thin renderer draws them.

* :func:`seed_box_info` / :func:`seed_box_plot`: the paper's Figure 3, per-seed task scores (a task's
  metrics averaged) by task and arm (a method or its named variant, :mod:`analysis.identity`) as box plots,
  tasks split into two panels by their y-range.
* :func:`ablation_info` / :func:`ablation_plot`: a swept hyperparameter against the score, mean ± std.
* :func:`learning_curve_info` / :func:`learning_curve_plot`: dev score over the intermediate evaluations.
* :func:`hparam_info` / :func:`hparam_plot`: each searched hyperparameter against the trial scores.

Renderers return a ``Figure`` drawn on its own Agg canvas, made without pyplot: nothing is shown, no global
backend or style is changed, and in a notebook (``%matplotlib inline``) the returned figure displays. They use
matplotlib alone, with :mod:`analysis.figure_style`'s look and arm colours. :func:`save_figure` writes PNG and
PDF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.container import Container
from matplotlib.figure import Figure

from analysis.aggregate import searched_params
from analysis.figure_style import LINES, colours_for, muted, new_figure
from analysis.identity import arm_order
from analysis.tables import setting_label
from analysis.tidy import DEV
from mat.spec.tasks import sort_tasks, task_label

__all__ = [
    "BoxContainer", "BoxInfo", "ablation_info", "ablation_plot", "box_artist_stats", "draw_boxes",
    "hparam_info", "hparam_plot", "learning_curve_info", "learning_curve_plot", "new_figure", "save_figure",
    "searched_params", "seed_box_info", "seed_box_plot", "split_panels",
]

# ------------------------------------------------------------------------------------------ Figure 3


@dataclass(frozen=True)
class BoxInfo:
    """What Figure 3 draws.

    Attributes:
        data: per-seed rows ``task, arm, seed, value`` (value = the task score).
        stats: per (task, arm): ``n, median, q1, q3, whislo, whishi`` as matplotlib's box plot
            computes them (linear-interpolated quartiles; whiskers at the furthest points within 1.5 IQR).
        panels: the task groups, one per panel, each in GLUE order.
        arms: hue order (:func:`analysis.identity.arm_order`).
    """

    data: pd.DataFrame
    stats: pd.DataFrame
    panels: list[list[str]]
    arms: list[str]


def split_panels(medians: pd.Series, n_panels: int = 2) -> list[list[str]]:
    """Split tasks into ``n_panels`` groups at the widest gaps between their median scores (the paper's
    two y-ranges); each group in GLUE order, the lower-scoring group first."""
    order = medians.sort_values()
    if len(order) <= 1 or n_panels <= 1:
        return [sort_tasks(list(order.index))]
    gaps = np.diff(order.to_numpy())
    cuts = sorted(np.argsort(gaps)[::-1][: n_panels - 1] + 1)
    groups = np.split(np.asarray(order.index), cuts)
    return [sort_tasks(list(g)) for g in groups if len(g)]


def _box_stats(v: np.ndarray) -> tuple[int, float, float, float, float, float]:
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    lo = v[v >= q1 - 1.5 * iqr].min()
    hi = v[v <= q3 + 1.5 * iqr].max()
    return len(v), float(med), float(q1), float(q3), float(lo), float(hi)


def seed_box_info(scores: pd.DataFrame, split: str = DEV, n_panels: int = 2) -> BoxInfo:
    """Figure 3's numbers from :func:`analysis.aggregate.trial_scores` rows (one config per arm).

    Args:
        scores: per-trial rows; the ``score`` metric on ``split`` (the mean of a task's metrics) is used.
        split: which split's scores.
        n_panels: how many y-ranges to split the tasks into.
    """
    d = scores[(scores["metric"] == "score") & (scores["split"] == split)]
    data = d[["task", "arm", "seed", "value"]].dropna(subset=["value"]).reset_index(drop=True)
    groups = data.groupby(["task", "arm"])
    rows = [(t, m, *_box_stats(g["value"].to_numpy(dtype=float))) for (t, m), g in groups]
    stats = pd.DataFrame(rows, columns=["task", "arm", "n", "median", "q1", "q3", "whislo", "whishi"])
    medians = data.groupby("task")["value"].median()
    panels = split_panels(medians, n_panels) if len(medians) else []
    return BoxInfo(data, stats, panels, arm_order(data["arm"]))


def seed_box_plot(info: BoxInfo, title: str = "Per-seed task scores") -> Figure:
    """Draw :class:`BoxInfo`: one panel per task group, a box per (task, arm), own y-range per panel."""
    widths = [max(1, len(p)) for p in info.panels] or [1]
    per_task = 1.4 * max(1.0, len(info.arms) / 4)  # room for a box per arm in each task
    fig, axes = new_figure(1, len(widths), (max(5.0, per_task * sum(widths) + 2), 4.2),
                           gridspec_kw={"width_ratios": widths})
    for ax, tasks in zip(axes[0], info.panels):
        draw_boxes(ax, info, tasks)
        ax.set_xticks(range(len(tasks)), [task_label(t) for t in tasks])
        ax.set_xlim(-0.5, len(tasks) - 0.5)
        ax.xaxis.grid(False)  # the x axis holds categories: grid lines only across the scores
        ax.set_ylabel("score (task metrics averaged)")
    rows = figure_legend(fig, axes.flat, info.arms)
    fig.suptitle(title, y=0.02, va="bottom", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1 - (0.1 + 0.25 * rows) / fig.get_figheight()))
    return fig


BOX_PARTS = ("boxes", "medians", "whiskers", "caps", "fliers")  # what Axes.bxp returns, less "means"


class BoxContainer(Container):
    """One arm's boxes in one panel as :meth:`Axes.bxp` drew them: ``boxes``, ``medians``, ``whiskers`` and
    ``caps`` (both in (low, high) pairs per box), ``fliers`` (one line of points per box), and ``hue``, the
    arm's index in :attr:`BoxInfo.arms`."""

    def __new__(cls, parts: dict[str, list[Any]], hue: int) -> BoxContainer:
        return tuple.__new__(cls, [a for key in BOX_PARTS for a in parts[key]])

    def __init__(self, parts: dict[str, list[Any]], hue: int) -> None:
        super().__init__(list(self))
        self.boxes, self.medians, self.whiskers, self.caps, self.fliers = (parts[key] for key in BOX_PARTS)
        self.hue = hue  # the arm's place in the hue order (BoxInfo.arms)


def draw_boxes(ax: Axes, info: BoxInfo, tasks: Sequence[str], width: float = 0.8) -> None:
    """Draw on ``ax`` a box per (task, arm) of ``tasks`` from ``info.stats`` (the points outside the
    whiskers from ``info.data`` as fliers): task ``i`` at x = i, its arms side by side in ``info.arms``
    order within ``width``, each arm's boxes coloured by arm and added to ``ax.containers`` as one
    :class:`BoxContainer`; each arm's first box carries its name for the legend. When no task has two arms
    the boxes are not split (a box takes the whole ``width``)."""
    stats = info.stats.set_index(["task", "arm"])
    shown = stats[stats.index.get_level_values("task").isin(list(tasks))]
    side_by_side = bool(len(shown)) and shown.groupby(level="task").size().max() > 1
    box_width = width / len(info.arms) if side_by_side else width
    for k, (arm, colour) in enumerate(colours_for(info.arms).items()):
        where = [i for i, t in enumerate(tasks) if (t, arm) in shown.index]
        if not where:
            continue
        offset = (k + 0.5) * box_width - width / 2 if side_by_side else 0.0  # box centre in the task's slot
        bxp = [_bxp_stats(info, tasks[i], arm, stats.loc[(tasks[i], arm)]) for i in where]
        fill = {"facecolor": muted(colour), "edgecolor": LINES}
        parts = ax.bxp(bxp, positions=[i + offset for i in where], widths=box_width, capwidths=box_width / 2,
                       patch_artist=True, manage_ticks=False, boxprops=fill, medianprops={"color": LINES},
                       whiskerprops={"color": LINES}, capprops={"color": LINES},
                       flierprops={"marker": "o", "markersize": 3, "markeredgecolor": LINES,
                                   "markerfacecolor": "none"})
        parts["boxes"][0].set_label(arm)
        ax.add_container(BoxContainer(parts, k))


def _bxp_stats(info: BoxInfo, task: str, arm: str, row: pd.Series) -> dict[str, Any]:
    """One box for :meth:`Axes.bxp`: ``info.stats``' numbers, and the (task, arm) values outside the whiskers
    as fliers."""
    d = info.data
    v = d.loc[(d["task"] == task) & (d["arm"] == arm), "value"].to_numpy(dtype=float)
    return {"med": row["median"], "q1": row["q1"], "q3": row["q3"], "whislo": row["whislo"],
            "whishi": row["whishi"], "fliers": np.concatenate([v[v < row["whislo"]], v[v > row["whishi"]]])}


def figure_legend(fig: Figure, axes: Iterable[Any], order: Sequence[str] | None = None) -> int:
    """One legend at the top of ``fig`` with every label drawn in ``axes`` once (whichever panel drew it), in
    ``order`` where given, wrapped into rows that fit the figure (:func:`legend_columns`); returns the rows
    (0 without labels) so the caller can leave room for them."""
    found: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            found.setdefault(lab, h)
    if not found:
        return 0
    rank = {name: i for i, name in enumerate(order or [])}
    labels = sorted(found, key=lambda lab: rank.get(lab, len(rank)))
    ncol = legend_columns(labels, fig.get_figwidth())
    fig.legend([found[lab] for lab in labels], labels, loc="upper center", ncol=ncol, frameon=False)
    return -(-len(labels) // ncol)


def legend_columns(labels: Sequence[str], width: float) -> int:
    """How many legend entries fit side by side in ``width`` inches (about 0.07 in a character plus the
    marker and spacing at the default font size): the legend wraps into rows instead of running off the
    figure."""
    entry = max((0.07 * len(str(lab)) + 0.6 for lab in labels), default=1.0)
    return max(1, min(len(labels), int(width // entry)))


# ------------------------------------------------------------------------------------------ ablation


def ablation_info(scores: pd.DataFrame, param: str, split: str = DEV) -> pd.DataFrame:
    """Mean, std and n over seeds per (task, metric, setting of ``param``).

    Args:
        scores: per-trial rows with a ``param.<param>`` column (trials of one sweep).
        param: the swept hyperparameter (without the ``param.`` prefix).

    Returns:
        ``task, metric, setting, n, mean, std`` sorted by task, metric and numeric setting.
    """
    col = f"param.{param}"
    d = scores[(scores["split"] == split) & scores[col].notna()]
    g = d.groupby(["task", "metric", col])["value"].agg(["count", "mean", "std"]).reset_index()
    g = g.rename(columns={col: "setting", "count": "n"})
    g["n"] = g["n"].astype(int)
    return g.sort_values(["task", "metric", "setting"],
        key=lambda s: s.map(_numeric_or_text)).reset_index(drop=True)


def _numeric_or_text(v: object) -> object:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)


def _log_x(values: Sequence[float]) -> bool:
    v = np.asarray([x for x in values if isinstance(x, (int, float)) and not math.isnan(x)], dtype=float)
    return bool(len(v) > 1 and (v > 0).all() and v.max() / v.min() >= 20)


def ablation_plot(info: pd.DataFrame, param: str, metric: str = "score") -> Figure:
    """One error-bar line per task (mean ± std over seeds) against the settings of ``param``."""
    d = info[info["metric"] == metric]
    fig, axes = new_figure(1, 1, (6, 4))
    ax = axes[0][0]
    for task, g in d.groupby("task", sort=False):
        ax.errorbar(g["setting"].astype(float), g["mean"], yerr=g["std"].fillna(0.0), marker="o", capsize=3,
                    label=task_label(task))
    if _log_x(d["setting"].astype(float).tolist()):
        ax.set_xscale("log")
    ticks = sorted(set(d["setting"].astype(float)))
    ax.set_xticks(ticks, [setting_label(t) for t in ticks])
    ax.set_xlabel(param)
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- learning curves


def learning_curve_info(df: pd.DataFrame, split: str = DEV,
                        statuses: Sequence[str] | None = ("SUCCEEDED",)) -> pd.DataFrame:
    """Dev score over the intermediate evaluations: mean and std over trials per (task, arm, step).

    Args:
        df: the tidy frame of :mod:`analysis.load` (its ``kind == "eval"`` rows are used).
        split: the split whose metrics make the score (their mean, per trial and step).
        statuses: trial statuses to include (None: all, partial trials too).

    Returns:
        ``task, arm, step, n, mean, std``.
    """
    d = df[(df["kind"] == "eval") & (df["split"] == split) & (df["metric"] != "default")]
    if statuses is not None:
        d = d[d["status"].isin(list(statuses))]
    per_trial = d.groupby(["task", "arm", "experiment", "trial", "step"], sort=False)["value"].mean()
    g = per_trial.groupby(["task", "arm", "step"]).agg(["count", "mean", "std"]).reset_index()
    return g.rename(columns={"count": "n"}).astype({"n": int})


def learning_curve_plot(info: pd.DataFrame, ncols: int = 3) -> Figure:
    """One panel per task: a line per arm (mean over trials) with a ±std band."""
    tasks = sort_tasks(info["task"])
    nrows = max(1, math.ceil(len(tasks) / ncols))
    fig, axes = new_figure(nrows, ncols, (4 * ncols, 2.8 * nrows))
    arms = arm_order(info["arm"])
    palette = colours_for(arms)
    for ax, task in zip(axes.flat, tasks):
        for arm in arms:
            g = info[(info["task"] == task) & (info["arm"] == arm)].sort_values("step")
            if g.empty:
                continue
            ax.plot(g["step"], g["mean"], color=palette[arm], label=arm)
            sd = g["std"].fillna(0.0)
            ax.fill_between(g["step"], g["mean"] - sd, g["mean"] + sd, color=palette[arm], alpha=0.15)
        ax.set_title(task_label(task), fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("dev score")
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    # fixed margins: a grid of equal panels needs no tight_layout (which measures every label: slow)
    top = 1 - 0.45 / fig.get_figheight()
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / fig.get_figheight(),
                        top=top - 0.25 / fig.get_figheight(), hspace=0.55, wspace=0.28)
    return fig


# ----------------------------------------------------------------------------------- hyperparameters


def hparam_info(scores: pd.DataFrame, params: Sequence[str] | None = None, split: str = DEV,
                metric: str = "score") -> pd.DataFrame:
    """Each trial's ``metric`` against each searched hyperparameter (default: :func:`searched_params`).

    Returns:
        Long rows ``task, arm, param, setting, value, delta``; ``delta`` is the value minus the mean of
        the same (task, arm) over all its trials, so tasks with different score levels share an axis.
    """
    d = scores[(scores["split"] == split) & (scores["metric"] == metric)]
    params = list(params) if params is not None else searched_params(d)
    delta = d["value"] - d.groupby(["task", "arm"])["value"].transform("mean")
    frames = []
    for p in params:
        setting = pd.to_numeric(d[f"param.{p}"], errors="coerce")
        part = pd.DataFrame({"task": d["task"], "arm": d["arm"], "param": p, "setting": setting,
                             "value": d["value"], "delta": delta}).dropna(subset=["setting", "value"])
        frames.append(part)
    cols = ["task", "arm", "param", "setting", "value", "delta"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def hparam_plot(info: pd.DataFrame) -> Figure:
    """One panel per hyperparameter: every trial's ``delta`` (score minus its task's mean) against the
    setting, coloured by arm, with each arm's mean per setting as a line."""
    params = list(dict.fromkeys(info["param"]))
    arms = arm_order(info["arm"])
    palette = colours_for(arms)
    fig, axes = new_figure(1, max(1, len(params)), (4.2 * max(1, len(params)), 3.8))
    for ax, p in zip(axes[0], params):
        g = info[info["param"] == p]
        # every trial, one collection per arm in arm order: one colour per collection lets the renderers
        # stamp a single marker (several times faster than a colour per point); rasterized: a search's
        # thousands of points would make the PDF heavy
        for arm in arms:
            ga = g[g["arm"] == arm]
            if len(ga):
                ax.scatter(ga["setting"].to_numpy(dtype=float), ga["delta"].to_numpy(dtype=float), s=12,
                           alpha=0.35, linewidths=0, color=palette[arm], rasterized=True)
                mean = ga.groupby("setting")["delta"].mean()
                ax.plot(mean.index, mean.to_numpy(), marker="o", color=palette[arm], label=arm)
        if _log_x(g["setting"].tolist()):
            ax.set_xscale("log")
        ax.set_xlabel(p)
        ax.set_ylabel("dev score - task mean")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    # fixed margins: panels of one row need no tight_layout (which measures every label: slow)
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, bottom=0.55 / height,
                        top=0.9 - 0.1 / height, wspace=0.85 / 4.2)
    return fig


def save_figure(fig: Figure, stem: str | Path, dpi: int = 110) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` and return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=dpi)
    fig.savefig(paths[1], metadata={"CreationDate": None})  # no timestamp: a rerun writes the same bytes
    return paths


def box_artist_stats(fig: Figure) -> pd.DataFrame:
    """Read back what a :func:`seed_box_plot` drew: per panel, arm (``hue``, its index in
    :attr:`BoxInfo.arms`) and box, the task's position in the panel (the box centre's nearest whole x), the
    median line's y, the box's bottom and top (q1, q3) and the box centre's x. Used by the tests."""
    rows = []
    for panel, ax in enumerate(fig.axes):
        for container in [c for c in ax.containers if isinstance(c, BoxContainer)]:
            for med, box in zip(container.medians, container.boxes):
                ys = box.get_path().vertices[:, 1]
                x = float(np.mean(med.get_xdata()))
                rows.append((panel, container.hue, int(round(x)), float(np.mean(med.get_ydata())),
                             float(ys.min()), float(ys.max()), x))
    return pd.DataFrame(rows, columns=["panel", "hue", "position", "median", "q1", "q3", "x"])
