"""Training telemetry over steps, from the records' per-evaluation means (no TensorBoard, no torch needed).

Each evaluation of a record carries ``telemetry``: the mean of every training statistic over the steps since
the previous evaluation (:mod:`mat.telemetry`). The tidy frame holds them as ``kind == "telemetry"`` rows
(:mod:`analysis.tidy`). :func:`telemetry_info` averages them over the trials of a (task, group) per step, the
group being the trial's rung where it has one (:mod:`mat.ladder`), else its method; :func:`telemetry_plot`
draws a statistic per row of panels and a task per column, a line per group.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.plots import new_figure
from analysis.tidy import TELEMETRY
from mat.ladder import RUNG_KEY, RUNG_NAMES
from mat.tasks import sort_tasks, task_label

# The statistics shown by default, in this order (those the trials recorded): what the terms of MAT did.
DEFAULT_STATS = ("loss", "adv_loss", "delta_kl", "delta_own_kl", "dropout_kl", "delta_norm", "theta_noise_norm",
                 "update_norm", "grad_norm", "lr")
LABELS = {
    "loss": "task loss L", "adv_loss": "consistency term λ·ℓ_s", "delta_kl": "ℓ_s the δ phase sees",
    "delta_own_kl": "δ's own ℓ_s (same dropout mask)", "dropout_kl": "dropout-only ℓ_s", "delta_norm": "‖δ̄‖∞",
    "theta_noise_norm": "‖θ Langevin noise‖₂", "update_norm": "‖optimizer update‖₂", "grad_norm": "‖gradient‖₂",
    "lr": "learning rate",
}


def group_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's group: the trial's rung (``param.rung``) where it has one, else its method."""
    col = f"param.{RUNG_KEY}"
    if col not in df.columns:
        return df["method"].astype(str)
    return df[col].where(df[col].notna(), df["method"]).astype(str)


def group_order(names: Sequence[str]) -> list[str]:
    """Groups in ladder order (rungs), then the other methods alphabetically."""
    rank = {n: i for i, n in enumerate(RUNG_NAMES)}
    return sorted(dict.fromkeys(names), key=lambda n: (rank.get(n, len(rank)), n))


def telemetry_info(df: pd.DataFrame, stats: Sequence[str] | None = None,
                   statuses: Sequence[str] | None = ("SUCCEEDED",)) -> pd.DataFrame:
    """Mean and std over trials of each statistic per (task, group, step).

    Args:
        df: the tidy frame (its ``kind == "telemetry"`` rows are used), e.g. restricted to chosen trials.
        stats: the statistics to keep (default: all recorded).
        statuses: trial statuses to include (None: all).

    Returns:
        ``task, group, stat, step, n, mean, std`` (``std`` NaN for one trial).
    """
    d = df[df["kind"] == TELEMETRY]
    if statuses is not None:
        d = d[d["status"].isin(list(statuses))]
    if stats is not None:
        d = d[d["metric"].isin(list(stats))]
    cols = ["task", "group", "stat", "step", "n", "mean", "std"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(group=group_labels(d), stat=d["metric"])
    g = d.groupby(["task", "group", "stat", "step"])["value"].agg(["count", "mean", "std"]).reset_index()
    return g.rename(columns={"count": "n"}).astype({"n": int})[cols]


def _log_scale(values: np.ndarray) -> bool:
    v = values[np.isfinite(values) & (values > 0)]
    return bool(len(v) > 1 and v.max() / v.min() >= 20)


def telemetry_plot(info: pd.DataFrame, stats: Sequence[str] | None = None) -> Figure:
    """A panel per (statistic, task): each group's mean over trials against the step, a ±std band.

    Args:
        info: :func:`telemetry_info` rows.
        stats: the statistics to draw, in order (default: :data:`DEFAULT_STATS` that ``info`` holds, then the
            others it holds).

    A panel whose positive values span 20x or more has a log y-axis (zeros are then not drawn).
    """
    present = list(dict.fromkeys(info["stat"]))
    stats = list(stats) if stats is not None else [s for s in DEFAULT_STATS if s in present] + sorted(
        s for s in present if s not in DEFAULT_STATS)
    tasks = sort_tasks(info["task"]) if len(info) else []
    fig, axes = new_figure(max(1, len(stats)), max(1, len(tasks)), (4.2 * max(1, len(tasks)), 2.4 * max(1, len(stats))))
    groups = group_order(list(info["group"]))
    palette = dict(zip(groups, sns.color_palette(n_colors=max(1, len(groups)))))
    for i, stat in enumerate(stats):
        for j, task in enumerate(tasks):
            ax = axes[i][j]
            part = info[(info["stat"] == stat) & (info["task"] == task)]
            for group in groups:
                g = part[part["group"] == group].sort_values("step")
                if g.empty:
                    continue
                sd = g["std"].fillna(0.0)
                ax.plot(g["step"], g["mean"], color=palette[group], label=group, marker=".")
                ax.fill_between(g["step"], g["mean"] - sd, g["mean"] + sd, color=palette[group], alpha=0.15)
            if _log_scale(part["mean"].to_numpy(dtype=float)):
                ax.set_yscale("log")
            ax.set_title(f"{task_label(task)}: {LABELS.get(stat, stat)}", fontsize=9)
            ax.set_xlabel("step" if i == len(stats) - 1 else "")
    handles, labels = [], []
    for ax in axes.flat:  # every group once, whichever panel drew it
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 7), frameon=False)
    top = 1 - 0.55 / fig.get_figheight()
    fig.subplots_adjust(left=0.75 / fig.get_figwidth(), right=0.98, bottom=0.45 / fig.get_figheight(), top=top - 0.2 / fig.get_figheight(),
                        hspace=0.6, wspace=0.3)
    return fig
