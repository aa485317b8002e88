"""Training telemetry over steps, from the records' per-evaluation means (no TensorBoard, no torch needed).

Each evaluation of a record carries ``telemetry``: the mean of every training statistic over the steps since
the previous evaluation (:mod:`mat.telemetry`). The tidy frame holds them as ``kind == "telemetry"`` rows
(:mod:`analysis.tidy`). :func:`telemetry_info` averages them over the trials of a (task, group) per step, the
group being the trial's arm (its rung, :mod:`mat.spec.ladder`, or other named variant, else its method);
:func:`telemetry_plot` draws a statistic per row of panels and a task per column, a line per group.
:func:`kl_rows` and :func:`kl_table` set δ's own ℓ_s against the dropout-only ℓ_s (both from
``--diagnostics``) over training.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.figure_style import colours_for
from analysis.plots import figure_legend, new_figure
from analysis.tables import Table
from analysis.tidy import TELEMETRY
from mat.spec.ladder import RUNG_KEY, RUNG_NAMES
from mat.spec.tasks import sort_tasks, task_label

# The statistics shown by default, in this order (those the trials recorded): what the terms of MAT did.
DEFAULT_STATS = ("loss", "adv_loss", "delta_kl", "delta_own_kl", "dropout_kl", "delta_norm",
                 "theta_noise_norm", "update_norm", "grad_norm", "lr")
LABELS = {
    "loss": "task loss L", "adv_loss": "consistency term λ·ℓ_s", "delta_kl": "ℓ_s the δ phase sees",
    "delta_own_kl": "δ's own ℓ_s (same dropout mask)", "dropout_kl": "dropout-only ℓ_s",
    "delta_norm": "‖δ̄‖∞",
    "theta_noise_norm": "‖θ Langevin noise‖₂", "update_norm": "‖optimizer update‖₂",
    "grad_norm": "‖gradient‖₂", "lr": "learning rate",
}


def group_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's group: the trial's arm (:mod:`analysis.identity`: its rung or other named variant, else its
    method); a frame without an ``arm`` column is grouped by ``param.rung`` where set, else by method."""
    if "arm" in df.columns:
        return df["arm"].astype(str)
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
    fig, axes = new_figure(max(1, len(stats)), max(1, len(tasks)),
        (4.2 * max(1, len(tasks)), 2.4 * max(1, len(stats))))
    groups = group_order(list(info["group"]))
    palette = colours_for(groups)
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
    rows = max(1, figure_legend(fig, axes.flat))  # every group once, whichever panel drew it
    top = 1 - (0.3 + 0.25 * rows) / fig.get_figheight()
    fig.subplots_adjust(left=0.75 / fig.get_figwidth(), right=0.98, bottom=0.45 / fig.get_figheight(),
                        top=top - 0.2 / fig.get_figheight(), hspace=0.6, wspace=0.3)
    return fig


KL_COLUMNS = ["task", "group", "n", "delta_own_kl", "dropout_kl", "ratio", "ratio_std", "min_interval_ratio"]


def kl_rows(df: pd.DataFrame, statuses: Sequence[str] | None = ("SUCCEEDED",)) -> pd.DataFrame:
    """δ's own ℓ_s against the dropout-only ℓ_s over training, per (task, group), from ``--diagnostics``
    trials.

    Per trial: the mean of ``delta_own_kl`` and of ``dropout_kl`` over its training (each evaluation's
    interval mean weighted by the steps it covers, so the whole-run mean), their ratio, and the smallest
    ratio of one interval. Then, over the trials of a (task, group): the means of the two means, the mean
    and std of the ratio, and the smallest interval ratio of any trial.

    Args:
        df: the tidy frame (its ``kind == "telemetry"`` rows); trials without both statistics are left out.
        statuses: trial statuses to include (None: all).

    Returns:
        :data:`KL_COLUMNS`, one row per (task, group), groups in ladder order.
    """
    d = df[(df["kind"] == TELEMETRY) & df["metric"].isin(["delta_own_kl", "dropout_kl"])]
    if statuses is not None:
        d = d[d["status"].isin(list(statuses))]
    if d.empty:
        return pd.DataFrame(columns=KL_COLUMNS)
    d = d.assign(group=group_labels(d))
    per_trial = []
    for (task, group, _exp, _trial), g in d.groupby(["task", "group", "experiment", "trial"], sort=False):
        w = g.pivot_table(index="step", columns="metric", values="value", aggfunc="first").sort_index()
        if not {"delta_own_kl", "dropout_kl"} <= set(w.columns):
            continue
        steps = w.index.to_numpy(dtype=float)
        weight = np.diff(steps, prepend=0.0)
        own = float(np.average(w["delta_own_kl"], weights=weight))
        drop = float(np.average(w["dropout_kl"], weights=weight))
        with np.errstate(divide="ignore", invalid="ignore"):
            interval = (w["delta_own_kl"] / w["dropout_kl"]).to_numpy(dtype=float)
        per_trial.append((task, group, own, drop, own / drop if drop > 0 else np.nan, np.nanmin(interval)))
    t = pd.DataFrame(per_trial, columns=["task", "group", "own", "drop", "ratio", "min_ratio"])
    if t.empty:
        return pd.DataFrame(columns=KL_COLUMNS)
    out = t.groupby(["task", "group"]).agg(n=("own", "size"), delta_own_kl=("own", "mean"),
        dropout_kl=("drop", "mean"),
                                           ratio=("ratio", "mean"), ratio_std=("ratio", "std"),
                                           min_interval_ratio=("min_ratio", "min")).reset_index()
    order = {g: i for i, g in enumerate(group_order(list(out["group"])))}
    tasks = {t: i for i, t in enumerate(sort_tasks(out["task"]))}
    out = out.sort_values(by=["task", "group"], key=lambda c: c.map(tasks if c.name == "task" else order))
    return out.reset_index(drop=True)[KL_COLUMNS]


def _g(v: float) -> str:
    return "-" if pd.isna(v) else f"{v:.2g}"


def kl_table(rows: pd.DataFrame, title: str, name: str) -> Table:
    """:func:`kl_rows` as a report table: a row per (task, group)."""
    cells = pd.DataFrame({
        "task": [task_label(t) for t in rows["task"]],
        "δ's own ℓ_s": [_g(v) for v in rows["delta_own_kl"]],
        "dropout-only ℓ_s": [_g(v) for v in rows["dropout_kl"]],
        "own / dropout-only": [_g(r) + ("" if pd.isna(sd) else f" ± {_g(sd)}") + f" ({n})"
                               for r, sd, n in zip(rows["ratio"], rows["ratio_std"], rows["n"])],
        "smallest interval ratio": [_g(v) for v in rows["min_interval_ratio"]],
    }, index=list(rows["group"]))
    cells.index.name = "rung"
    numbers = rows.set_index("group")
    numbers.index.name = "rung"
    notes = ("δ's own ℓ_s: clean vs perturbed forward under the same dropout masks; dropout-only ℓ_s: two "
             "clean forwards that differ only in their dropout masks (both measured at every step with "
             "--diagnostics). Each trial's value is its mean over training (evaluation intervals weighted by "
             "their steps); the table gives the mean over seeds, the ratio as mean ± std over seeds (n), and "
             "the smallest ratio of any one interval of any seed.",)
    return Table(name, title, cells, numbers, notes)
