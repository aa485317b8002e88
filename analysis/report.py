"""The report: tables, figures and a ``report.md`` that embeds them, from one tidy frame.

Layout of ``out_dir``::

    report.md                 everything below, embedded or linked
    tables/*.md|tex|csv       GLUE (Tables 1-2), ANLI (Table 3), AdvGLUE, ablations (Tables 4-5, the paper's
                              beside ours), arms against the baseline, summaries
    figures/*.png|pdf         per-seed box plots (Figure 3), learning curves, hyperparameters, ablations

Only finished (SUCCEEDED) trials enter tables and figures; running, failed and interrupted trials are
counted in the report's status table and listed with their errors, never counted as complete. Skipped
input files and repeated trials are listed with their reasons. This module only wires: the numbers come
from :mod:`analysis.aggregate` and :mod:`analysis.comparison`, the layouts from :mod:`analysis.tables`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
from matplotlib.figure import Figure

from analysis import aggregate as agg
from analysis import comparison, plots, published, tables
from analysis.bookkeeping import (
    STATUS_LABELS,
    code_section,
    listed,
    repeat_lines,
    repeats_section,
    status_section,
)
from analysis.figure_jobs import FigureJobs
from analysis.identity import REPEAT_FIELDS
from analysis.intervals import INTERVAL_NOTES, check_interval
from analysis.ladder import split_rungs
from analysis.ladder_report import ladder_section
from analysis.load import status_counts
from analysis.options import Options
from analysis.scores import CONVENTIONS
from analysis.tidy import DEV, Loaded
from mat.spec.tasks import ANLI_TASKS, GLUE_TASKS

SELECTION_NOTES = {
    "best": "Each trial contributes its best dev evaluation (the MAT authors' rule; chosen on the dev set it "
            "is scored on, so it reads high).",
    "last": "Each trial contributes its last evaluation (no choice, no selection bias).",
    "split": "Each trial contributes the evaluation with the best score on the selection half of the dev "
             "set, scored on the report half (docs/analysis.md, \"Selection rules\").",
}


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and found.

    Attributes:
        report: path of ``report.md``.
        counts: trials per status.
        skipped: ``(path, reason)`` of the skipped inputs.
        usable: at least one finished trial with an evaluation.
        files: every file written.
        summary: the short text the CLI prints.
    """

    report: Path
    counts: dict[str, int]
    skipped: list[tuple[str, str]]
    usable: bool
    files: list[Path] = field(default_factory=list)
    summary: str = ""


def slug(text: str) -> str:
    """A file-name-safe version of a model name or path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "model"


class PageWriter:
    """Collects a page's lines and written files (tables under ``tables/``, figures under ``figures/``)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lines: list[str] = []
        self.files: list[Path] = []
        self.jobs = FigureJobs()

    def table(self, table: tables.Table) -> None:
        paths = tables.write_table(table, self.out / "tables")
        self.files += list(paths.values())
        links = ", ".join(f"[{k}](tables/{p.name})" for k, p in paths.items())
        self.lines += [tables.to_markdown(table), f"Files: {links}", ""]

    def csv(self, df: pd.DataFrame, name: str) -> Path:
        path = self.out / "tables" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        self.files.append(path)
        return path

    def figure(self, fig: Figure | Callable[[], Figure], name: str, caption: str) -> None:
        """Embed a figure: drawn already, or ``fig()`` drawn in a child process (:mod:`analysis.figure_jobs`)
        while the report goes on."""
        self.embed(self.start_figure(fig, name), caption)

    def start_figure(self, fig: Figure | Callable[[], Figure], name: str) -> list[Path]:
        """Save ``fig`` (or start drawing ``fig()`` in a child) as ``figures/<name>``; :meth:`embed` places
        it."""
        stem = self.out / "figures" / name
        paths = plots.save_figure(fig, stem) if isinstance(fig, Figure) else self.jobs.submit(fig, stem)
        self.files += paths
        return paths

    def embed(self, paths: list[Path], caption: str) -> None:
        """The page lines of a figure :meth:`start_figure` started: the PNG, the caption, the PDF link."""
        png, pdf = paths[0].name, paths[1].name
        self.lines += [f"![{caption}](figures/{png})", "", f"{caption} ([pdf](figures/{pdf}))", ""]


def _reference_rows(ref: pd.DataFrame | None) -> pd.DataFrame:
    return ref if ref is not None else pd.DataFrame(columns=["row", "task", "split", "metric", "value"])


def _model_tables(w: PageWriter, model: str, ms: pd.DataFrame, opt: Options,
                  choice_note: str) -> None:
    ours = tables.arm_rows(ms)
    sel_note = (f"{SELECTION_NOTES[opt.selection]} Our rows: mean over seeds of the chosen configuration per "
                "task. " + choice_note)
    dev = ours[ours["split"] == DEV]
    if dev["task"].isin(GLUE_TASKS).any():
        ref = published.glue_reference(model)
        table_no = {"bert-base": "Table 1", "roberta-large": "Table "
            "2"}.get(published.model_family(model) or "")
        published_note = (f"Published rows: MAT paper {table_no} as printed (sources in the CSV); their "
                          "Score is the printed one.")
        notes = [sel_note] + ([published_note] if ref is not None else [])
        rows = pd.concat([_reference_rows(ref), ours[ours["task"].isin(GLUE_TASKS)]], ignore_index=True)
        w.lines += ["### GLUE", ""]
        w.table(tables.glue_table(rows, opt.convention, f"GLUE dev results, {model}", f"glue_{slug(model)}",
            notes))
        both = pd.concat([agg.glue_scores(ms, c) for c in CONVENTIONS], ignore_index=True)
        both["glue_score"] = both["glue_score"].map(lambda v: tables.fmt(v, 2))
        w.lines += ["GLUE scores under both conventions (`-`: tasks missing):", "",
                    tables.plain_markdown(both[["arm", "convention", "glue_score", "n_tasks", "missing"]])]
    if ours["task"].isin(ANLI_TASKS).any():
        ref = published.anli_reference(model)
        rows = pd.concat([_reference_rows(ref), ours[ours["task"].isin(ANLI_TASKS)]], ignore_index=True)
        notes = [sel_note] + (["Published rows: MAT paper Table 3 (sources in the "
            "CSV)."] if ref is not None else [])
        w.lines += ["### ANLI", ""]
        w.table(tables.anli_table(rows, f"ANLI results, {model}", f"anli_{slug(model)}", notes))
    adv = ours[ours["split"].astype(str).str.startswith("adv_validation")]
    if len(adv):
        w.lines += ["### AdvGLUE", ""]
        w.table(tables.advglue_table(adv, f"AdvGLUE dev results, {model}", f"advglue_{slug(model)}",
            [sel_note]))


def _comparisons(w: PageWriter, model: str, sel: pd.DataFrame, opt: Options) -> None:
    arms = sorted(set(sel["arm"]))
    if "mat" not in arms or len(arms) < 2:
        return
    frames = [comparison.paired_comparison(sel, "mat", m, interval=opt.interval, n_boot=opt.n_boot,
        seed=opt.seed)
              for m in arms if m != "mat"]
    comp = pd.concat(frames, ignore_index=True).sort_values(["task", "arm_b"], kind="stable")
    w.csv(comp, f"comparison_{slug(model)}")
    shown = pd.DataFrame({
        "task": comp["task"], "vs": comp["arm_b"],
        "pairs (mat/other "
        "seeds)": [f"{p} ({a}/{b})" for p, a, b in zip(comp["n_pairs"], comp["n_a"], comp["n_b"])],
        "mean diff": comp["mean_diff"].map(lambda v: tables.fmt(v, 2)),
        "95% CI": [tables.fmt_interval(a, b) for a, b in zip(comp["ci_low"], comp["ci_high"])],
        "paired t p": comp["p_value"].map(tables.fmt_p), "Wilcoxon p": comp["wilcoxon_p"].map(tables.fmt_p),
    })
    w.lines += ["### MAT vs each baseline (dev task score, chosen configurations)", "",
                "Mean of the per-seed differences MAT - other over the seeds both ran; "
                f"{INTERVAL_NOTES[opt.interval]} of it; paired t-test (`scipy.stats.ttest_rel`) and exact "
                "Wilcoxon signed-rank p-values (with 5 seeds the Wilcoxon p is at least 0.0625).", "",
                tables.plain_markdown(shown)]
    warned = zip(comp["task"], comp["arm_b"], comp["warning"])
    w.lines += [f"- warning: {t}, mat vs {b}: {x}" for t, b, x in warned if x]
    w.lines.append("")


def _baseline_section(w: PageWriter, model: str, sel: pd.DataFrame, best: pd.DataFrame,
                      opt: Options) -> None:
    if opt.baseline not in set(sel["arm"]) or sel["arm"].nunique() < 2:
        return
    comp = comparison.compare_to_baseline(sel, opt.baseline, best, interval=opt.interval, n_boot=opt.n_boot,
                                          seed=opt.seed)
    w.csv(comp, f"compare_{slug(model)}")
    w.lines += [f"### Arms against {opt.baseline}", ""]
    w.table(comparison.comparison_table(comp, opt.baseline, f"Dev task score against {opt.baseline}, {model}",
                                        f"compare_table_{slug(model)}", comparison.table_notes(opt.interval)))


def _ablations(w: PageWriter, scores: pd.DataFrame, best: pd.DataFrame, forced: Sequence[str]) -> None:
    slices = agg.ablation_slices(scores, best, forced)
    if not slices:
        return
    w.lines += ["## Ablations", "",
                "Trials that differ from each task's best configuration only in the swept hyperparameter; "
                "mean ± std over seeds.", ""]
    for (model, arm, p), (sl, factor) in slices.items():
        info = plots.ablation_info(sl, p)
        name = f"ablation_{slug(p)}_{slug(arm)}_{slug(model)}"
        swept = " = ".join(factor)
        w.table(tables.ablation_table(info, p, f"{arm}: ablation over {swept}, {model}", name))
        _paper_ablation(w, info, factor, arm, model, name)
        w.figure(functools.partial(plots.ablation_plot, info, p), name,
                 f"{arm}, {model}: dev score against {p} (mean ± std over seeds)")


def _paper_ablation(w: PageWriter, info: pd.DataFrame, factor: list[str], arm: str, model: str,
                    name: str) -> None:
    """The paper's Table 4 or 5, on the tasks we ran, beside our ablation of ``factor`` (MAT, BERT-base)."""
    ref = published.ablation_reference(factor, arm, model)
    if ref is None or not ref[1]["task"].isin(set(info["task"])).any():
        return
    hp, rows = ref
    table_no, csv = published.ABLATION_TABLES[hp], published.ABLATION_REFERENCES[hp]
    note = f"Published values beside ours ({hp} = {' = '.join(factor)}); sources in analysis/reference/{csv}."
    w.table(tables.ablation_table(rows[rows["task"].isin(set(info["task"]))], hp,
                                  f"MAT paper {table_no}: ablation over {hp} (BERT-base, as printed)",
                                  f"{name}_paper", [note]))


def _best_section(w: PageWriter, best: pd.DataFrame, opt: Options) -> None:
    w.csv(best, "best_configs")
    shown = pd.DataFrame({
        "model": best["model"], "task": best["task"], "arm": best["arm"], "n": best["n"],
        "configs searched": best["n_configs"], "chosen on": best["selected_on"],
        "dev score": [tables.fmt(m, 2) + ("" if pd.isna(s) else f" ± {tables.fmt(s, 2)}")
                      for m, s in zip(best["mean"], best["std"])],
        "95% CI": [tables.fmt_interval(a, b) for a, b in zip(best["ci_low"], best["ci_high"])],
        "config": best["config"].map(lambda c: f"`{c}`"),
    })
    w.lines += ["## Best configuration per task and arm", "",
                "Chosen on the mean dev task score over the seeds in 'chosen on'; "
                f"{INTERVAL_NOTES[opt.interval]}. A score chosen as the best of several configurations on "
                "the same seeds reads optimistic.",
                "", tables.plain_markdown(shown)]


def build_report(data: pd.DataFrame | Loaded, out_dir: str | Path, opt: Options = Options(),
                 sources: Sequence[str] = (), *, page: str = "report.md", title: str = "MAT harness report",
                 preface: str | None = None) -> ReportResult:
    """Write the tables, figures and ``report.md`` for the tidy frame ``df`` into ``out_dir``.

    Args:
        data: what :func:`analysis.load.load_with_notes` returns (the tidy frame with the skipped inputs and
            repeats it set aside, which the page lists), or the tidy frame alone.
        out_dir: output folder (created).
        opt: how the report is computed (:class:`analysis.options.Options`: selection, GLUE convention,
            ablations, intervals, seed choice, baseline, strictness).
        sources: text naming where ``df`` came from (printed in the report).
        page: the file name of the page written into ``out_dir``.
        title, preface: the page's first heading; Markdown placed under it (a study's settings, nothing
            computed).

    Trials that carry ``params.rung`` (the component ladder, :mod:`mat.spec.ladder`) are reported in their own
    section (:mod:`analysis.ladder_report`), one row per rung; the other sections cover the other trials.

    Returns:
        A :class:`ReportResult`; ``usable`` is False when no finished trial has an evaluation (the report
        then holds the status counts and skipped inputs only).

    Raises:
        ValueError: unknown selection, convention or interval; overlapping seed lists.
        SeedMismatch: ``strict`` and seed sets differ or a seed repeats (nothing is written).
    """
    opt = replace(opt, selection=agg._check_selection(opt.selection))  # 'final' is 'last'
    selection, convention, interval = opt.selection, opt.convention, opt.interval
    n_boot, seed = opt.n_boot, opt.seed
    check_interval(interval)
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown GLUE score convention {convention!r}; use one of {list(CONVENTIONS)}")
    loaded = data if isinstance(data, Loaded) else Loaded(data, [], pd.DataFrame(columns=list(REPEAT_FIELDS)))
    df = loaded.frame
    scores, unscored = agg.scored_trials(df, selection)
    scores, rung_scores = split_rungs(scores)
    choice = agg.choose_configs(scores, opt.select_seeds, opt.report_seeds, interval, n_boot, seed=seed) \
        if not scores.empty else None
    seed_issues = comparison.seed_problems(choice.per_seed) if choice is not None else []
    seed_issues += comparison.seed_problems(rung_scores) if not rung_scores.empty else []
    if opt.strict and (seed_issues or repeat_lines(loaded.repeats)):
        raise comparison.SeedMismatch("--strict: " + "; ".join(repeat_lines(loaded.repeats) + seed_issues))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = PageWriter(out)
    counts = status_counts(df)
    skips = loaded.skipped + unscored
    w.lines += [f"# {title}", ""] + ([preface.strip(), ""] if preface and preface.strip() else [])
    w.lines += [f"- Source: {s}" for s in sources] + [
        f"- Selection: `{selection}`. {SELECTION_NOTES[selection]}",
        f"- GLUE convention: `{convention}`. {tables.convention_note(convention)}",
        f"- Intervals: `{interval}`: {INTERVAL_NOTES[interval]} over seeds"
        + (f", {n_boot} resamples, seed {seed}." if interval == "bootstrap" else "."),
        "- Comparisons: paired by seed (paired t-test and exact Wilcoxon signed-rank test).",
        f"- Configuration choice: {choice.note if choice is not None else '-'}", ""]
    w.lines += status_section(df, counts)
    w.lines += listed("Skipped inputs", [f"- `{p}`: {r}" for p, r in skips])
    w.lines += repeats_section(loaded.repeats)
    w.lines += listed("Seed checks", [f"- warning: {p}" for p in seed_issues],
                      "Every arm ran the same seeds, each once.")
    w.lines += code_section(df)
    if not rung_scores.empty:
        ladder_section(w, df, rung_scores, interval, n_boot, seed, opt.select_seeds, opt.report_seeds,
                       selection)
    if choice is not None:
        _results(w, df, scores, choice, opt)
    elif rung_scores.empty:
        w.lines += ["## No results", "", "No finished trial with an evaluation was found.", ""]
    w.jobs.wait()
    report = out / page
    report.write_text("\n".join(w.lines).rstrip() + "\n", encoding="utf-8")
    w.files.append(report)
    usable = choice is not None or not rung_scores.empty
    text = _summary_text(counts, skips, report, usable, w.files)
    return ReportResult(report, counts, skips, usable, w.files, text)


def _results(w: PageWriter, df: pd.DataFrame, scores: pd.DataFrame, choice: agg.Choice,
             opt: Options) -> None:
    summary = agg.seed_summary(scores, agg.CONFIG_BY, opt.n_boot, seed=opt.seed, interval=opt.interval)
    w.csv(summary, "config_summary")
    sel = choice.per_seed
    arm_summary = agg.seed_summary(sel, agg.ARM_BY, opt.n_boot, seed=opt.seed, interval=opt.interval)
    w.csv(arm_summary, "arm_summary")
    for model in sorted(set(sel["model"])):
        _model_section(w, df, model, sel, scores, arm_summary, choice, opt)
    _ablations(w, scores, choice.best, opt.ablations)
    _best_section(w, choice.best, opt)


def _model_section(w: PageWriter, df: pd.DataFrame, model: str, sel: pd.DataFrame, scores: pd.DataFrame,
                   arm_summary: pd.DataFrame, choice: agg.Choice, opt: Options) -> None:
    ms = arm_summary[arm_summary["model"] == model]
    msel = sel[sel["model"] == model]
    w.lines += [f"## {model}", ""]
    info = plots.seed_box_info(msel)
    evals = df[df["kind"] == "eval"]
    keys = pd.MultiIndex.from_frame(msel[["experiment", "trial"]].drop_duplicates())
    curves = plots.learning_curve_info(evals[pd.MultiIndex.from_frame(evals[["experiment",
        "trial"]]).isin(keys)])
    hp = plots.hparam_info(scores[scores["model"] == model])
    # the figures are started first (each drawn in a child process while the tables below are built) and
    # embedded in page order
    box = w.start_figure(lambda: plots.seed_box_plot(info, f"{model}: dev task score per seed, chosen "
                         "configuration"), f"seed_box_{slug(model)}") if len(info.data) else None
    curve = w.start_figure(lambda: plots.learning_curve_plot(curves), f"learning_curves_{slug(model)}") \
        if len(curves) and curves["step"].nunique() > 1 else None
    search = w.start_figure(lambda: plots.hparam_plot(hp), f"hparams_{slug(model)}") if len(hp) else None
    _model_tables(w, model, ms, opt, choice.note)
    if box:
        w.lines += ["### Per-seed scores (Figure 3 layout)", ""]
        w.embed(box, "Per-seed dev task scores by task and arm (multi-metric tasks averaged)")
    _baseline_section(w, model, msel, choice.best[choice.best["model"] == model], opt)
    _comparisons(w, model, msel, opt)
    if curve:
        w.lines += ["### Learning curves", ""]
        w.embed(curve, "Dev score over intermediate evaluations (chosen configurations; mean ± std over "
                "seeds)")
    if search:
        w.lines += ["### Hyperparameter search", ""]
        w.embed(search, "Dev score of every finished trial against each searched hyperparameter")


def _summary_text(counts: dict[str, int], skips: list[tuple[str, str]], report: Path, usable: bool,
                  files: list[Path]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{counts.get(s, 0)} {label}" for s, label in STATUS_LABELS.items())
    n_tables = len({p.stem for p in files if p.parent.name == "tables"})
    n_figs = len({p.stem for p in files if p.parent.name == "figures"})
    lines = [f"{total} trials ({parts}); {len(skips)} input(s) skipped"]
    if usable:
        lines.append(f"wrote {report} ({n_tables} tables, {n_figs} figures)")
    else:
        lines.append(f"wrote {report} (status and skipped inputs only)")
    return "\n".join(lines)
