"""The benchmark page (``python -m analysis benchmark``): a tuned-alike study's progress, tuning and report
tables, the sentences its intervals allow, its score against compute (:func:`analysis.benchmark.summarise`).

Layout of ``out_dir``::

    <page>                                   the page (e.g. docs/benchmark.md)
    tables/benchmark_tuning_<task>_<model>.md|tex|csv    every grid point's selection-half score
    tables/benchmark_<task>_<model>.md|tex|csv           the report table of a task
    figures/benchmark_compute_<model>.png|pdf            score against training seconds, per arm

Nothing is said of an arm whose report seeds are not all there but how many it has; the page lists every
missing cell. The files are written from the records alone: a rerun writes the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from analysis import plots
from analysis.benchmark import Benchmark, compared, summarise
from analysis.bookkeeping import code_section, listed, repeats_section, status_section
from analysis.figure_style import colours_for
from analysis.intervals import INTERVAL_NOTES
from analysis.ladder import diff_cell
from analysis.ladder_report import code_note
from analysis.load import status_counts
from analysis.report import SELECTION_NOTES, PageWriter, ReportResult, slug
from analysis.study_plan import StudyPlan, edge_note, point_text, seeds_phrase, seeds_text
from analysis.tables import MISSING, Table, fmt, fmt_interval, p_clause, plain_markdown
from analysis.tidy import Loaded
from mat.spec.tasks import task_label

CLOCK = {"cpu": "CPU", "wall": "wall"}
SECONDS = {"cpu": "training CPU seconds (the trial process's CPU time: comparable across trials that ran "
                  "two at a time)",
           "wall": "training wall seconds (these records predate CPU time; wall time grows when two trials "
                   "share the machine, so compare it with care)"}


def model_label(model: str) -> str:
    """How the page names a model: a Hub id or alias as given (``bert-base-uncased``, ``minilm``), a local
    folder by its own name (``/data/models/minilm16`` -> ``minilm16``), the rest of its path being the
    machine's, not the model's (the records keep it whole)."""
    if model.startswith(("/", "~", "./", "../")) or "\\" in model:
        return Path(model.replace("\\", "/")).name or model
    return model


def _settings(b: Benchmark, sources: Sequence[str], df: pd.DataFrame) -> list[str]:
    p = b.plan
    grids = {a: ", ".join(point_text(x) for x in p.points[a]) for a in b.arms}
    grid = next(iter(grids.values()), "-") if len(set(grids.values())) <= 1 else "; ".join(
        f"{a}: {g}" for a, g in grids.items())
    return [f"- Study: `{p.path.as_posix()}` (`{p.name}`): model `{model_label(p.model)}`, tasks "
            f"{', '.join(task_label(t) for t in p.tasks)}; every arm tuned alike on its grid ({grid}) with "
            f"tuning {seeds_phrase(p.tuning_seeds)}, then reported on {seeds_phrase(p.report_seeds)}.",
            *[f"- Source: {s}" for s in sources],
            f"- Selection: `split`. {SELECTION_NOTES['split']}",
            "- Configuration: per task and arm, the grid point with the highest mean selection-half score "
            "over the tuning seeds (`analysis.selection.choose_arm_configs`, the study runner's own choice), "
            "once every point of the arm has its records; the report seeds never enter the choice.",
            f"- Intervals: {INTERVAL_NOTES['t']}, over the report seeds.",
            f"- Comparisons: every arm against {' and '.join(f'`{x}`' for x in p.baselines)} (the study's "
            "baselines), paired by seed: the mean of the per-seed differences with its t-interval, the "
            "paired t-test p (t) and the exact Wilcoxon signed-rank p (W; with n pairs it cannot go below "
            "2/2^n, 0.0625 at n = 5); Holm's adjusted paired-t p over the task table's comparisons.",
            f"- {code_note(df)}", ""]


def _progress_section(b: Benchmark) -> list[str]:
    pr = b.progress
    lines = ["## Progress", ""]
    for task in b.plan.tasks:
        t = pr[pr["task"] == task]
        done = "every cell has its record" if t["complete"].all() else "in progress"
        tune, report = (f"{int(t[f'{k}_done'].sum())} of {int(t[f'{k}_cells'].sum())}"
                        for k in ("tune", "report"))
        lines.append(f"- {task_label(task)}: {tune} tune cells and {report} report cells have records; "
                     f"{int(t['complete'].sum())} of {len(t)} arms complete ({done}).")
    shown = pd.DataFrame({
        "task": pr["task"].map(task_label), "arm": pr["arm"],
        "tune cells": [f"{a} of {n}" for a, n in zip(pr["tune_done"], pr["tune_cells"])],
        "tune cells missing": pr["tune_missing"], "chosen": pr["chosen"].replace("", MISSING),
        "report seeds": [f"{a} of {n}" for a, n in zip(pr["report_done"], pr["report_cells"])],
        "report cells missing": pr["report_missing"]})
    return lines + ["", plain_markdown(shown)]


def _arms_section(b: Benchmark) -> list[str]:
    return ["## Arms", ""] + [f"- `{a}` (method `{b.plan.methods[a]}`): {b.plan.about[a] or '-'}"
                              for a in b.arms] + [""]


def tuning_table(b: Benchmark, task: str) -> Table:
    """Arm × grid point: the mean selection-half score over the tuning seeds ``(n)`` where n > 1, the chosen
    point marked; ``-`` for a point without a record."""
    t = b.tuning[b.tuning["task"] == task]
    cells, numbers = {}, {}
    for arm in b.arms:
        a = t[t["arm"] == arm].sort_values("point")
        pts = b.plan.points[arm]
        row = {}
        for r in a.itertuples():
            text = MISSING if r.n == 0 else fmt(r.selection_mean, 2) + (f" ({r.n})" if r.n > 1 else "")
            row[point_text(pts[int(r.point)])] = text + (" (chosen)" if r.chosen else "")
        done = int((a["n"] > 0).sum())
        if a["chosen"].any():
            best = pts[int(a[a["chosen"]]["point"].iloc[0])]
            row["chosen"] = point_text(best) + edge_note(pts, best)
        else:
            row["chosen"] = f"- ({done} of {len(pts)} points run)"
        cells[arm] = row
        labels = [point_text(pts[int(p)]) for p in a["point"]]
        numbers[arm] = pd.Series(a["selection_mean"].to_numpy(), index=labels)
    cell_df = pd.DataFrame.from_dict(cells, orient="index").fillna(MISSING)
    num_df = pd.DataFrame.from_dict(numbers, orient="index")
    cell_df.index.name = num_df.index.name = "arm"
    seeds = seeds_text(b.plan.tuning_seeds)
    notes = ("Each tune trial scored on the selection half of dev at the evaluation that half picks; mean "
             f"over the tuning seeds ({seeds}). An arm's point is chosen once all its points have records. "
             "A choice at the grid's edge (its lowest or highest value) might be beaten beyond it, where the "
             "grid did not search.",)
    return Table(f"benchmark_tuning_{slug(task)}_{slug(model_label(b.plan.model))}",
                 f"Tuning, {task_label(task)}, {model_label(b.plan.model)} (selection-half dev score, tuning "
                 f"{seeds_phrase(b.plan.tuning_seeds)})",
                 cell_df, num_df, notes)


def _diff(r: pd.Series, arm: str, base: str, plan: StudyPlan) -> str:
    if not compared(plan, arm, base):
        return MISSING
    if r[f"vs_{base}_n_pairs"] == 0:
        return MISSING
    return diff_cell(r, base) + f"; Holm {p_clause(r[f'vs_{base}_holm_p'])}"


def report_table(b: Benchmark, task: str) -> Table:
    """Arm × (chosen point, report-half score, its interval, the difference to each baseline, compute)."""
    rows = b.report[b.report["task"] == task].set_index("arm")
    n_seeds = len(b.plan.report_seeds)
    prog = b.progress[b.progress["task"] == task].set_index("arm")
    cols: dict[str, list[str]] = {"configuration": [x or MISSING for x in rows["point"]], "dev score": [],
                                  "95% CI": []}
    for arm, r in rows.iterrows():
        if r["complete"]:
            sd = "" if pd.isna(r["std"]) else f" ± {fmt(r['std'], 2)}"
            cols["dev score"].append(f"{fmt(r['mean'], 2)}{sd} ({int(r['n'])})")
            cols["95% CI"].append(fmt_interval(r["ci_low"], r["ci_high"]))
        else:
            cols["dev score"].append(f"incomplete: {prog.loc[arm, 'report_done']} of {n_seeds} seeds")
            cols["95% CI"].append(MISSING)
    for base in b.plan.baselines:
        cols[f"− {base}"] = [_diff(r, str(arm), base, b.plan) for arm, r in rows.iterrows()]
    cols["updates"] = [fmt(v, 0) for v in rows["updates"]]
    cols["passes/step"] = [fmt(v, 1) for v in rows["passes_per_step"]]
    cols["train s"] = [fmt(v, 0) for v in rows["train_seconds"]]
    cells = pd.DataFrame(cols, index=rows.index)
    numbers = rows.drop(columns=["task"])
    cells.index.name = numbers.index.name = "arm"
    return Table(f"benchmark_{slug(task)}_{slug(model_label(b.plan.model))}",
                 f"Report, {task_label(task)}, {model_label(b.plan.model)} (report-half dev score, "
                 f"{seeds_phrase(b.plan.report_seeds)})", cells, numbers, tuple(_report_notes(b, task)))


def _report_notes(b: Benchmark, task: str) -> list[str]:
    kind = b.report.loc[b.report["task"] == task, "seconds"].iloc[0]
    bases = b.plan.baselines
    mirrored = [f"{bases[i]} − {bases[j]} (the negative of {bases[j]} − {bases[i]})"
                for i in range(len(bases)) for j in range(i + 1, len(bases))]
    return ["dev score: the report half's task score at the evaluation the selection half picked, mean ± std "
            f"over the report seeds (n); 95% CI: {INTERVAL_NOTES['t']}. An arm without all its report seeds "
            "shows how many it has and nothing else.",
            "− baseline: mean over the seeds both ran of the per-seed difference, its t-interval, paired "
            "t-test p (t), exact Wilcoxon signed-rank p (W), the number of pairs, and Holm's adjusted "
            "paired-t p over this table's comparisons; only between two arms with all their report seeds."
            + (f" Not shown: {'; '.join(mirrored)}." if mirrored else ""),
            "updates: optimizer updates per trial; passes/step: training's forward + backward passes per "
            "training step in units of one batch pass (a 2B forward counts 2); train s: mean "
            f"{SECONDS[kind]}."]


def compute_info(b: Benchmark) -> pd.DataFrame:
    """The figure's points: ``task, arm, train_seconds, mean, ci_low, ci_high, seconds`` of every arm with all
    its report seeds and a training time, in the study's arm order."""
    r = b.report[b.report["complete"] & b.report["train_seconds"].notna()]
    cols = ["task", "arm", "train_seconds", "mean", "ci_low", "ci_high", "seconds"]
    return r[cols].reset_index(drop=True)


def compute_plot(info: pd.DataFrame, arms: Sequence[str], tasks: Sequence[str]) -> Figure:
    """Score against compute: a panel per task, each arm at (mean training seconds, mean report-half score)
    with its 95% t-interval as the error bar, a colour per arm (the study's order) and one legend."""
    shown = [t for t in tasks if (info["task"] == t).any()]
    fig, axes = plots.new_figure(1, max(1, len(shown)), (4.6 * max(1, len(shown)), 3.8))
    colours = colours_for(arms)
    for ax, task in zip(axes[0], shown):
        g = info[info["task"] == task]
        for r in g.itertuples():
            err = [[0.0 if math.isnan(r.ci_low) else r.mean - r.ci_low],
                   [0.0 if math.isnan(r.ci_high) else r.ci_high - r.mean]]
            ax.errorbar([r.train_seconds], [r.mean], yerr=err, marker="o", capsize=3, linestyle="none",
                        color=colours[r.arm], label=r.arm)
        ax.set_title(task_label(task), fontsize=10)
        ax.set_xlabel(f"training {CLOCK[g['seconds'].iloc[0]]} seconds per trial (mean)")
        ax.set_ylabel("report-half dev score (95% t-interval)")
        ax.margins(x=0.1)
    n_rows = plots.figure_legend(fig, axes[0], list(arms))
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.1 + 0.25 * n_rows) / fig.get_figheight()))
    return fig


def _task_section(w: PageWriter, b: Benchmark, task: str) -> None:
    w.lines += [f"## {task_label(task)}", "", "### Tuning", ""]
    w.table(tuning_table(b, task))
    w.lines += ["### Report", ""]
    if not b.report.loc[b.report["task"] == task, "complete"].any():
        w.lines += [f"No arm has all its report seeds on {task_label(task)} yet: no scores and no "
                    "comparisons.", ""]
        return
    w.table(report_table(b, task))
    w.lines += [f"- {x}" for x in b.claims[task]] + [""]


def _records_sections(b: Benchmark, loaded: Loaded, skipped: list[tuple[str, str]]) -> list[str]:
    df = loaded.frame
    out = b.cells[b.cells["outside"] != ""]
    lines = status_section(df, status_counts(df))
    lines += listed("Records outside the study's cells",
                    [f"- `{r.source}`: {r.outside}" for r in out.itertuples()],
                    about="Finished trials that are no cell of the study, left out of every table.")
    lines += listed("Skipped inputs", [f"- `{p}`: {r}" for p, r in skipped])
    lines += repeats_section(loaded.repeats)
    return lines + code_section(df)


def build_benchmark_page(loaded: Loaded, plan: StudyPlan, out_dir: str | Path, sources: Sequence[str] = (), *,
                         page: str = "benchmark.md", title: str = "Benchmark",
                         preface: str | None = None) -> ReportResult:
    """Write the benchmark page of ``plan`` from its records (``loaded``) into ``out_dir``.

    Args:
        loaded: what :func:`analysis.load.load_with_notes` returns for the study's records folder.
        plan: the study (:func:`analysis.study_plan.read_plan`).
        out_dir: output folder (created); the page, ``tables/`` and ``figures/`` go there.
        sources: text naming where the records came from (printed on the page).
        page, title, preface: the page's file name, first heading, and Markdown placed under it.

    Returns:
        A :class:`analysis.report.ReportResult`; ``usable`` is True when some arm of some task is complete.
    """
    df = loaded.frame
    b = summarise(df, plan)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = PageWriter(out)
    w.lines += [f"# {title}", ""] + ([preface.strip(), ""] if preface and preface.strip() else [])
    w.lines += _settings(b, sources, df) + _progress_section(b) + _arms_section(b)
    for task in plan.tasks:
        _task_section(w, b, task)
    w.lines += ["## Score against compute", ""]
    info = compute_info(b)
    if len(info):
        w.figure(compute_plot(info, b.arms, plan.tasks), f"benchmark_compute_{slug(model_label(plan.model))}",
                 "Report-half dev score against training seconds per trial, per arm with all its report "
                 "seeds (mean and 95% t-interval over the seeds)")
    else:
        w.lines += ["No arm has all its report seeds yet: nothing to plot.", ""]
    skipped = list(loaded.skipped)
    w.lines += _records_sections(b, loaded, skipped)
    path = out / page
    path.write_text("\n".join(w.lines).rstrip() + "\n", encoding="utf-8")
    w.files.append(path)
    counts = status_counts(df)
    pr = b.progress
    state = "; ".join(f"{task_label(t)}: {int(g['tune_done'].sum())}/{int(g['tune_cells'].sum())} tune, "
                      f"{int(g['report_done'].sum())}/{int(g['report_cells'].sum())} report cells"
                      for t, g in pr.groupby("task", sort=False))
    return ReportResult(path, counts, skipped, bool(b.report["complete"].any()), w.files,
                        f"{len(b.cells)} finished trials; {state}\nwrote {path}")
