"""The report's component-ladder section (``python -m analysis report`` on trials that carry ``params.rung``).

Per model: per task a table of every rung (:func:`analysis.ladder.ladder_table`: mean ± std over seeds, the
paired difference to vanilla and to the previous rung with its interval, p and n, passes per step and
training seconds) and the sentences the intervals support (:func:`analysis.ladder.findings`); then the
Figure-3-style box plot of the per-seed scores by rung, accuracy against compute (:func:`compute_plot`), and
the training telemetry over steps (:func:`analysis.telemetry.telemetry_plot`) of the reported trials.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis import aggregate as agg
from analysis import plots
from analysis.intervals import INTERVAL_NOTES
from analysis.ladder import findings, ladder_rows, ladder_table, rung_order
from analysis.telemetry import kl_rows, kl_table, telemetry_info, telemetry_plot
from mat.spec.tasks import sort_tasks, task_label

INTRO = (
    "Each rung adds one part of MAT to the rung before (mat.ladder); `r3f` stands beside the ladder, "
    "compared with vanilla. Every rung ran the same seeds with the same shared hyperparameters except its "
    "own; differences are paired by seed.")


def _slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"


def table_notes(interval: str) -> list[str]:
    """The notes under a ladder table."""
    return [f"dev score: mean ± std over seeds (n); 95% CI: {INTERVAL_NOTES[interval]}.",
            f"− vanilla / − previous rung: mean over the seeds both ran of the per-seed difference, "
            f"{INTERVAL_NOTES[interval]}, paired t-test p and the number of pairs.",
            "passes/step: forward + backward passes per training step in units of one batch pass (a 2B "
            "forward counts 2; MAT's δ-phase input gradients count as backward passes), from the records' "
            "cost blocks; train s: mean training wall seconds (hardware-dependent)."]


def code_note(trials: pd.DataFrame) -> str:
    """One sentence naming the commits and package versions the trials ran with, each with its trial count.

    Args:
        trials: tidy-frame rows (:mod:`analysis.tidy`), any number per trial; its ``code.*`` columns are read.
    """
    one = trials.drop_duplicates(["experiment", "trial"])
    cols = sorted((c for c in one.columns if c.startswith("code.")), key=lambda c: (c != "code.git_sha", c))
    parts = []
    for col in cols:
        values = one[col].astype(object).where(one[col].notna(), "unrecorded").astype(str)
        if col == "code.git_sha":
            values = values.where(values == "unrecorded", values.str[:7])
        counts = values.value_counts().sort_index()
        name = "commit" if col == "code.git_sha" else col.removeprefix("code.")
        parts.append(name + " " + ", ".join(f"{v} ({n})" for v, n in counts.items()))
    if not parts:
        return f"Code: the {len(one)} trials' records name no commit or package versions."
    return f"Code (trials in brackets, of {len(one)}): " + "; ".join(parts) + "."


def compute_plot(rows: pd.DataFrame) -> Figure:
    """Accuracy against compute: a panel per task, each rung at (passes per step, mean dev score) with a ±std
    error bar, a colour per rung (ladder order) and one legend.

    Args:
        rows: :func:`analysis.ladder.ladder_rows` of one model.
    """
    tasks = sort_tasks(rows["task"]) if len(rows) else []
    fig, axes = new_axes(len(tasks))
    rungs = rung_order(list(dict.fromkeys(rows["rung"])))
    colours = dict(zip(rungs, sns.color_palette(n_colors=max(1, len(rungs)))))
    for ax, task in zip(axes, tasks):
        g = rows[rows["task"] == task].set_index("rung")
        for rung in [r for r in rungs if r in g.index]:
            r = g.loc[rung]
            ax.errorbar([r["passes_per_step"]], [r["mean"]], yerr=[0.0 if pd.isna(r["std"]) else r["std"]],
                        marker="o", capsize=3, linestyle="none", color=colours[rung], label=rung)
        ax.set_title(task_label(task), fontsize=10)
        ax.set_xlabel("forward + backward passes per step")
        ax.set_ylabel("dev score (mean ± std over seeds)")
        ax.margins(x=0.1)
    n_rows = plots.figure_legend(fig, axes, rungs)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.1 + 0.25 * n_rows) / fig.get_figheight()))
    return fig


def new_axes(n: int) -> tuple[Figure, list[Any]]:
    """A figure with ``n`` side-by-side panels (at least one)."""
    fig, axes = plots.new_figure(1, max(1, n), (4.6 * max(1, n), 3.8))
    return fig, list(axes[0])


def ladder_section(w: Any, df: pd.DataFrame, rung_scores: pd.DataFrame, interval: str = "t",
                   n_boot: int = 2000, seed: int = 0, select_seeds: Sequence[int] | None = None,
                   report_seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Write the ladder section through the report's writer ``w`` (``lines``, ``table``, ``csv``, ``figure``).

    Args:
        w: the report writer (:class:`analysis.report._Writer`).
        df: the tidy frame (its telemetry rows are plotted for the reported trials).
        rung_scores: :func:`analysis.ladder.split_rungs`' rung rows of
            :func:`analysis.aggregate.trial_scores`.
        interval, n_boot, seed, select_seeds, report_seeds: as for the rest of the report.

    Returns:
        The :func:`analysis.ladder.ladder_rows` written (also ``tables/ladder.csv``).
    """
    choice = agg.choose_configs(rung_scores, select_seeds, report_seeds, interval, n_boot, seed=seed)
    rows = ladder_rows(choice.per_seed, interval, n_boot, seed)
    w.csv(rows, "ladder")
    w.lines += ["## Component ladder", "", INTRO, "", f"Configurations: {choice.note}", ""]
    for model in sorted(set(rows["model"])):
        mrows = rows[rows["model"] == model]
        per_seed = choice.per_seed[choice.per_seed["model"] == model]
        keys = pd.MultiIndex.from_frame(per_seed[["experiment", "trial"]].drop_duplicates())
        reported = df[pd.MultiIndex.from_frame(df[["experiment", "trial"]]).isin(keys)]
        w.lines += [f"### {model}", "", code_note(reported), ""]
        for task in sort_tasks(mrows["task"]):
            t = mrows[mrows["task"] == task]
            w.lines += [f"#### {task_label(task)}", ""]
            w.table(ladder_table(t, f"Component ladder, {task_label(task)}, {model} (dev task score)",
                                 f"ladder_{_slug(task)}_{_slug(model)}", table_notes(interval)))
            w.lines += [f"- {x}" for x in findings(t)] + [""]
        kl = kl_rows(reported)
        if len(kl):
            w.lines += ["**δ against dropout.** How much the perturbation itself moves the output, next to "
                        "what two dropout masks alone do, over training:", ""]
            w.table(kl_table(kl, f"δ's own ℓ_s against the dropout-only ℓ_s, {model}",
                f"ladder_kl_{_slug(model)}"))
        box = plots.seed_box_info(per_seed)
        if len(box.data):
            box = dataclasses.replace(box, methods=rung_order(box.methods))
            w.figure(plots.seed_box_plot(box, f"{model}: dev task score per seed and rung"),
                     f"ladder_box_{_slug(model)}", "Per-seed dev task scores by task and rung (Figure 3 "
                     "layout)")
        if mrows["passes_per_step"].notna().any():
            w.figure(compute_plot(mrows), f"ladder_compute_{_slug(model)}",
                     "Dev score against forward + backward passes per training step, per rung (mean ± std)")
        tinfo = telemetry_info(reported)
        if len(tinfo):
            w.figure(telemetry_plot(tinfo), f"ladder_telemetry_{_slug(model)}",
                     "Training statistics over steps (each point: the mean over the steps since the previous "
                     "evaluation, averaged over seeds; ± std band), per rung")
    return rows
