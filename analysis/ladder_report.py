"""The report's component-ladder section (``python -m analysis report`` on trials that carry ``params.rung``).

Per model: per task a table of every rung (:func:`analysis.ladder.ladder_table`: mean ± std over seeds and the
paired differences to vanilla and to the previous rung with their intervals, paired t and exact Wilcoxon p
and n, under the page's selection rule and the other of best and last side by side, then training passes and
optimizer updates per step and training seconds) and the sentences the intervals support
(:func:`analysis.ladder.findings`, each saying whether the other selection agrees); then the
Figure-3-style box plot of the per-seed scores by rung, accuracy against compute (:func:`compute_plot`), and
the training telemetry over steps (:func:`analysis.telemetry.telemetry_plot`) of the reported trials.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import pandas as pd
from matplotlib.figure import Figure

from analysis import aggregate as agg
from analysis import plots
from analysis.figure_style import colours_for
from analysis.intervals import INTERVAL_NOTES
from analysis.ladder import ADDS, findings, ladder_rows, ladder_table, rung_order, selection_gap, split_rungs
from analysis.telemetry import kl_rows, kl_table, telemetry_info, telemetry_plot
from mat.spec.tasks import sort_tasks, task_label

INTRO = (
    "Each rung is an arm of its own and adds one part of MAT to the rung before (mat.spec.ladder); `r3f` "
    "stands beside the ladder, compared with vanilla. Every rung ran the same seeds with the same shared "
    "hyperparameters except its own; differences are paired by seed.")
SELECTIONS_TEXT = (
    "**Best and last, side by side.** Each comparison is shown twice: with every trial scored on its best "
    "dev evaluation and on its last. The best is chosen on the same dev set it is scored on, so it is the "
    "highest of several noisy numbers and reads high, by more the noisier the evaluations (the `best − last` "
    "column: what the choice adds to a rung's mean). The last involves no choice, so no such bias, but it is "
    "the score of wherever the schedule stopped. A difference that both show rests on the training; one that "
    "only the best shows rests on which evaluation was picked, and is not a finding. (`--selection split` "
    "chooses on one half of the dev set and scores the other: docs/analysis.md.)")
WILCOXON_TEXT = (
    "**Tests.** Beside every paired t-test p stands the exact Wilcoxon signed-rank p (W), which does not "
    "assume normal differences. With n pairs it cannot go below 2/2^n: with 5 seeds its smallest two-sided "
    "p is 0.0625, so at n = 5 no difference can reach 5% on it, and every interval excluding 0 here rests on "
    "the t-test alone.")


def _slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"


def table_notes(interval: str, derived: bool = False) -> list[str]:
    """The notes under a ladder table (``derived``: some cost numbers were derived from older records)."""
    return ["dev score, <selection>: mean ± std over seeds (n) with each trial scored on that evaluation; "
            "best − last: the mean over trials of a trial's best score minus its last.",
            f"− vanilla / − previous rung: mean over the seeds both ran of the per-seed difference, "
            f"{INTERVAL_NOTES[interval]}, paired t-test p (t), exact Wilcoxon signed-rank p (W) and the "
            "number of pairs.",
            "passes/step: training's forward + backward passes per training step in units of one batch pass "
            "(a 2B forward counts 2; MAT's δ-phase input gradients count as backward passes; the "
            "--diagnostics measurement forward is not counted); updates/step: optimizer updates per training "
            "step (K_θ for the MAT-method rungs); train s: mean training wall seconds (hardware-dependent)."
            + (" *: derived from the records' parameters and telemetry (written before these were counted: "
               "updates = steps × K_θ, one diagnostic forward per step taken out of the passes)."
               if derived else "")]


def code_note(trials: pd.DataFrame) -> str:
    """One sentence naming the commits and package versions the trials ran with, each with its trial count.

    Args:
        trials: tidy-frame rows (:mod:`analysis.tidy`), any number per trial; its ``code.*`` columns are read.
    """
    one = trials.drop_duplicates(["experiment", "trial"])
    skip = ("code.git_diff_sha",)
    cols = sorted((c for c in one.columns if c.startswith("code.") and c not in skip),
                  key=lambda c: (c != "code.git_sha", c == "code.git_dirty", c))
    parts = []
    for col in cols:
        values = one[col].astype(object).where(one[col].notna(), "unrecorded").astype(str)
        if col == "code.git_sha":
            values = values.where(values == "unrecorded", values.str[:7])
        if col == "code.git_dirty":
            values = values.replace({"True": "yes", "False": "no"})
        counts = values.value_counts().sort_index()
        names = {"code.git_sha": "commit", "code.git_dirty": "uncommitted changes"}
        name = names.get(col, col.removeprefix("code."))
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
    colours = colours_for(rungs)
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


def _other(selection: str) -> str:
    """The selection shown beside the page's: ``last`` beside ``best``, else ``best``."""
    return "last" if selection == "best" else "best"


def _rows(df: pd.DataFrame, selection: str, interval: str, n_boot: int, seed: int,
          select_seeds: Sequence[int] | None, report_seeds: Sequence[int] | None
          ) -> tuple[agg.Choice, pd.DataFrame]:
    """The chosen configurations of the rungs and their :func:`analysis.ladder.ladder_rows` under
    ``selection``."""
    scores = split_rungs(agg.trial_scores(df, selection))[1]
    choice = agg.choose_configs(scores, select_seeds, report_seeds, interval, n_boot, seed=seed)
    return choice, ladder_rows(choice.per_seed, interval, n_boot, seed, selection)


def ladder_section(w: Any, df: pd.DataFrame, rung_scores: pd.DataFrame, interval: str = "t",
                   n_boot: int = 2000, seed: int = 0, select_seeds: Sequence[int] | None = None,
                   report_seeds: Sequence[int] | None = None, selection: str = "best") -> pd.DataFrame:
    """Write the ladder section through the report's writer ``w`` (``lines``, ``table``, ``csv``, ``figure``).

    Args:
        w: the report writer (:class:`analysis.report.PageWriter`).
        df: the tidy frame (its telemetry rows are plotted for the reported trials; the other selection is
            scored from it).
        rung_scores: :func:`analysis.ladder.split_rungs`' rung rows of :func:`analysis.aggregate.trial_scores`
            under ``selection``.
        interval, n_boot, seed, select_seeds, report_seeds: as for the rest of the report.
        selection: the page's selection rule; the other of ``best`` and ``last`` is shown beside it.

    Returns:
        The :func:`analysis.ladder.ladder_rows` written, both selections stacked (also ``tables/ladder.csv``).
    """
    choice = agg.choose_configs(rung_scores, select_seeds, report_seeds, interval, n_boot, seed=seed)
    rows = ladder_rows(choice.per_seed, interval, n_boot, seed, selection)
    other_choice, other = _rows(df, _other(selection), interval, n_boot, seed, select_seeds, report_seeds)
    gap = selection_gap(choice.per_seed, other_choice.per_seed)  # the page's selection − the other, per trial
    both = pd.concat([rows, other], ignore_index=True)
    w.csv(both, "ladder")
    adds = [f"- `{r}`: {ADDS[r]}" for r in rung_order(rows["rung"]) if r in ADDS]
    w.lines += ["## Component ladder", "", INTRO, "", *adds, "", SELECTIONS_TEXT, "", WILCOXON_TEXT, "",
                f"Configurations: {choice.note}", ""]
    for model in sorted(set(rows["model"])):
        mrows = rows[rows["model"] == model]
        per_seed = choice.per_seed[choice.per_seed["model"] == model]
        keys = pd.MultiIndex.from_frame(per_seed[["experiment", "trial"]].drop_duplicates())
        reported = df[pd.MultiIndex.from_frame(df[["experiment", "trial"]]).isin(keys)]
        w.lines += [f"### {model}", "", code_note(reported), ""]
        for task in sort_tasks(mrows["task"]):
            t = mrows[mrows["task"] == task]
            o = other[(other["model"] == model) & (other["task"] == task)]
            g = gap[(gap["model"] == model) & (gap["task"] == task)]
            w.lines += [f"#### {task_label(task)}", ""]
            w.table(ladder_table(pd.concat([t, o], ignore_index=True),
                                 f"Component ladder, {task_label(task)}, {model} (dev task score)",
                                 f"ladder_{_slug(task)}_{_slug(model)}",
                                 table_notes(interval, bool(t["cost_derived"].any())),
                                 gap=g))
            w.lines += [f"- {x}" for x in findings(t, other=o)] + [""]
        kl = kl_rows(reported)
        if len(kl):
            w.lines += ["**δ against dropout.** How much the perturbation itself moves the output, next to "
                        "what two dropout masks alone do, over training:", ""]
            w.table(kl_table(kl, f"δ's own ℓ_s against the dropout-only ℓ_s, {model}",
                f"ladder_kl_{_slug(model)}"))
        box = plots.seed_box_info(per_seed)
        if len(box.data):
            box = dataclasses.replace(box, arms=rung_order(box.arms))
            w.figure(lambda box=box: plots.seed_box_plot(box, f"{model}: dev task score per seed and rung"),
                     f"ladder_box_{_slug(model)}", "Per-seed dev task scores by task and rung (Figure 3 "
                     "layout)")
        if mrows["passes_per_step"].notna().any():
            w.figure(lambda mrows=mrows: compute_plot(mrows), f"ladder_compute_{_slug(model)}",
                     "Dev score against training's forward + backward passes per training step, per rung "
                     "(mean ± std)")
        tinfo = telemetry_info(reported)
        if len(tinfo):
            w.figure(lambda tinfo=tinfo: telemetry_plot(tinfo), f"ladder_telemetry_{_slug(model)}",
                     "Training statistics over steps (each point: the mean over the steps since the previous "
                     "evaluation, averaged over seeds; ± std band), per rung")
    return both
