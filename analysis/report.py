"""The report: tables, figures and a ``report.md`` that embeds them, from one tidy frame.

Layout of ``out_dir``::

    report.md                 everything below, embedded or linked
    tables/*.md|tex|csv       GLUE (Tables 1-2), ANLI (Table 3), AdvGLUE, ablations (Tables 4-5), summaries
    figures/*.png|pdf         per-seed box plots (Figure 3), learning curves, hyperparameters, ablations

Only finished (SUCCEEDED) trials enter tables and figures; running, failed and interrupted trials are
counted in the report's status table and listed with their errors, never counted as complete. Skipped
input files are listed with their reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis import aggregate as agg
from analysis import plots, published, tables
from analysis.load import DEV, STATUSES, skipped, status_counts
from analysis.scores import CONVENTIONS
from mat.tasks import ANLI_TASKS, GLUE_TASKS

SELECTION_NOTES = {
    "best": "Each trial contributes its best dev evaluation (the MAT authors' rule).",
    "final": "Each trial contributes its final (last) evaluation.",
}
STATUS_LABELS = {"SUCCEEDED": "finished", "RUNNING": "running", "FAILED": "failed", "INTERRUPTED": "interrupted"}
MAX_LISTED = 50


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


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def _status_section(df: pd.DataFrame, counts: dict[str, int]) -> list[str]:
    rows = [(f"{STATUS_LABELS.get(s, s.lower())} ({s})", counts.get(s, 0)) for s in STATUSES]
    rows += [(s, n) for s, n in counts.items() if s not in STATUSES]
    rows.append(("total", sum(counts.values())))
    lines = ["## Trials", "", _md_table(pd.DataFrame(rows, columns=["status", "trials"])),
             "Only finished (SUCCEEDED) trials enter the tables and figures; running, failed and interrupted "
             "trials are counted here and never as complete.", ""]
    open_trials = agg.trial_table(df)
    open_trials = open_trials[open_trials["status"] != "SUCCEEDED"]
    if len(open_trials):
        shown = open_trials.head(MAX_LISTED)[["experiment", "trial", "task", "method", "status", "error"]].fillna("")
        shown["error"] = shown["error"].astype(str).str.slice(0, 160)
        more = f" (first {MAX_LISTED} of {len(open_trials)})" if len(open_trials) > MAX_LISTED else ""
        lines += [f"### Unfinished trials{more}", "", _md_table(shown)]
    return lines


def _skipped_section(skips: list[tuple[str, str]]) -> list[str]:
    lines = [f"## Skipped inputs ({len(skips)})", ""]
    if not skips:
        return lines + ["None.", ""]
    lines += [f"- `{p}`: {r}" for p, r in skips[:MAX_LISTED]]
    if len(skips) > MAX_LISTED:
        lines.append(f"- ... and {len(skips) - MAX_LISTED} more")
    return lines + [""]


class _Writer:
    """Collects report lines and written files."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lines: list[str] = []
        self.files: list[Path] = []

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

    def figure(self, fig: object, name: str, caption: str) -> None:
        paths = plots.save_figure(fig, self.out / "figures" / name)  # type: ignore[arg-type]
        self.files += paths
        png, pdf = paths[0].name, paths[1].name
        self.lines += [f"![{caption}](figures/{png})", "", f"{caption} ([pdf](figures/{pdf}))", ""]


def _reference_rows(ref: pd.DataFrame | None) -> pd.DataFrame:
    return ref if ref is not None else pd.DataFrame(columns=["row", "task", "split", "metric", "value"])


def _model_tables(w: _Writer, model: str, ms: pd.DataFrame, convention: str, selection: str) -> None:
    ours = tables.method_rows(ms)
    sel_note = SELECTION_NOTES[selection] + " Our rows: mean over seeds of the best configuration per task."
    dev = ours[ours["split"] == DEV]
    if dev["task"].isin(GLUE_TASKS).any():
        ref = published.glue_reference(model)
        table_no = {"bert-base": "Table 1", "roberta-large": "Table 2"}.get(published.model_family(model) or "")
        published_note = (f"Published rows: MAT paper {table_no} as printed (sources in the CSV); their Score "
                          "is the printed one.")
        notes = [sel_note] + ([published_note] if ref is not None else [])
        rows = pd.concat([_reference_rows(ref), ours[ours["task"].isin(GLUE_TASKS)]], ignore_index=True)
        w.lines += ["### GLUE", ""]
        w.table(tables.glue_table(rows, convention, f"GLUE dev results, {model}", f"glue_{slug(model)}", notes))
        both = pd.concat([agg.glue_scores(ms, c) for c in CONVENTIONS], ignore_index=True)
        both["glue_score"] = both["glue_score"].map(lambda v: tables.fmt(v, 2))
        w.lines += ["GLUE scores under both conventions (`-`: tasks missing):", "",
                    _md_table(both[["method", "convention", "glue_score", "n_tasks", "missing"]])]
    if ours["task"].isin(ANLI_TASKS).any():
        ref = published.anli_reference(model)
        rows = pd.concat([_reference_rows(ref), ours[ours["task"].isin(ANLI_TASKS)]], ignore_index=True)
        notes = [sel_note] + (["Published rows: MAT paper Table 3 (sources in the CSV)."] if ref is not None else [])
        w.lines += ["### ANLI", ""]
        w.table(tables.anli_table(rows, f"ANLI results, {model}", f"anli_{slug(model)}", notes))
    adv = ours[ours["split"].astype(str).str.startswith("adv_validation")]
    if len(adv):
        w.lines += ["### AdvGLUE", ""]
        w.table(tables.advglue_table(adv, f"AdvGLUE dev results, {model}", f"advglue_{slug(model)}", [sel_note]))


def _comparisons(w: _Writer, model: str, sel: pd.DataFrame, n_boot: int, seed: int) -> None:
    methods = sorted(set(sel["method"]))
    if "mat" not in methods or len(methods) < 2:
        return
    frames = [agg.paired_comparison(sel, "mat", m, n_boot=n_boot, seed=seed) for m in methods if m != "mat"]
    comp = pd.concat(frames, ignore_index=True).sort_values(["task", "method_b"], kind="stable")
    w.csv(comp, f"comparison_{slug(model)}")
    shown = pd.DataFrame({
        "task": comp["task"], "vs": comp["method_b"],
        "n (mat/other)": comp["n_a"].astype(str) + "/" + comp["n_b"].astype(str),
        "mean diff": comp["mean_diff"].map(lambda v: tables.fmt(v, 2)),
        "95% CI": [f"[{tables.fmt(a, 2)}, {tables.fmt(b, 2)}]" for a, b in zip(comp["ci_low"], comp["ci_high"])],
        "Welch p": comp["p_value"].map(lambda p: "-" if pd.isna(p) else f"{p:.3g}"),
    })
    w.lines += ["### MAT vs each baseline (dev task score, best configurations)", "",
                "Mean difference MAT - other over seeds, percentile-bootstrap 95% CI, Welch's t-test.", "",
                _md_table(shown)]


def factor_groups(trials: pd.DataFrame, params: Sequence[str]) -> list[list[str]]:
    """Group hyperparameters that vary together (the same partition of the trials), e.g. the paper's K,
    which sets ``sampling_times_delta`` and ``sampling_times_theta`` at once: one factor each group."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for p in params:
        codes = tuple(pd.factorize(trials[f"param.{p}"], use_na_sentinel=False)[0].tolist())
        groups.setdefault(codes, []).append(p)
    return list(groups.values())


def _ablation_slices(scores: pd.DataFrame, best: pd.DataFrame,
                     forced: Sequence[str]) -> dict[tuple[str, str, str], tuple[pd.DataFrame, list[str]]]:
    """Per (model, method, param): the trials that differ from each task's best configuration only in
    ``param`` (and the parameters that always vary with it, and seed). Found without asking when a
    (model, method) varies one factor only; ``forced`` names parameters to ablate in any case."""
    out: dict[tuple[str, str, str], tuple[pd.DataFrame, list[str]]] = {}
    for (model, method), g in scores.groupby(["model", "method"], sort=True):
        trials = g.drop_duplicates(["experiment", "trial"])
        factors = factor_groups(trials, plots.searched_params(trials))
        chosen = [f for f in factors if any(p in forced for p in f)] or (factors if len(factors) == 1 else [])
        for factor in chosen:
            p = factor[0]
            skip = {f"param.{q}" for q in factor} | {"param.seed"}
            others = [c for c in g.columns if c.startswith("param.") and c not in skip]
            parts = []
            for task, gt in g.groupby("task"):
                b = best[(best["model"] == model) & (best["method"] == method) & (best["task"] == task)]
                if b.empty:
                    continue
                ref = gt[gt["config"] == b["config"].iloc[0]].iloc[0]
                same = pd.Series(True, index=gt.index)
                for c in others:
                    same &= (gt[c] == ref[c]) | (gt[c].isna() & pd.isna(ref[c]))
                parts.append(gt[same])
            sl = pd.concat(parts) if parts else g.iloc[0:0]
            if sl[f"param.{p}"].nunique() > 1:
                out[(model, method, p)] = (sl, factor)
    return out


def _ablations(w: _Writer, scores: pd.DataFrame, best: pd.DataFrame, forced: Sequence[str]) -> None:
    slices = _ablation_slices(scores, best, forced)
    if not slices:
        return
    w.lines += ["## Ablations", "",
                "Trials that differ from each task's best configuration only in the swept hyperparameter; "
                "mean ± std over seeds.", ""]
    for (model, method, p), (sl, factor) in slices.items():
        info = plots.ablation_info(sl, p)
        name = f"ablation_{slug(p)}_{slug(method)}_{slug(model)}"
        swept = " = ".join(factor)
        w.table(tables.ablation_table(info, p, f"{method}: ablation over {swept}, {model}", name))
        w.figure(plots.ablation_plot(info, p), name,
                 f"{method}, {model}: dev score against {p} (mean ± std over seeds)")


def _best_section(w: _Writer, best: pd.DataFrame) -> None:
    w.csv(best, "best_configs")
    shown = pd.DataFrame({
        "model": best["model"], "task": best["task"], "method": best["method"], "n": best["n"],
        "dev score": [tables.fmt(m, 2) + ("" if pd.isna(s) else f" ± {tables.fmt(s, 2)}")
                      for m, s in zip(best["mean"], best["std"])],
        "95% CI": [f"[{tables.fmt(a, 2)}, {tables.fmt(b, 2)}]" for a, b in zip(best["ci_low"], best["ci_high"])],
        "config": best["config"].map(lambda c: f"`{c}`"),
    })
    w.lines += ["## Best configuration per task and method", "",
                "Chosen on the mean dev task score over seeds; the 95% CI is a seeded percentile bootstrap "
                "of the mean.",
                "", _md_table(shown)]


def build_report(df: pd.DataFrame, out_dir: str | Path, selection: str = "best", convention: str = "paper",
                 sources: Sequence[str] = (), ablations: Sequence[str] = (), n_boot: int = 2000,
                 seed: int = 0) -> ReportResult:
    """Write the tables, figures and ``report.md`` for the tidy frame ``df`` into ``out_dir``.

    Args:
        df: the tidy frame of :mod:`analysis.load`.
        out_dir: output folder (created).
        selection: ``"best"`` or ``"final"`` evaluation per trial.
        convention: GLUE score convention named under the GLUE tables.
        sources: text naming where ``df`` came from (printed in the report).
        ablations: hyperparameters to tabulate as ablations even when others vary too.
        n_boot, seed: bootstrap resamples and seed.

    Returns:
        A :class:`ReportResult`; ``usable`` is False when no finished trial has an evaluation (the report
        then holds the status counts and skipped inputs only).

    Raises:
        ValueError: unknown selection or convention.
    """
    agg._check_selection(selection)
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown GLUE score convention {convention!r}; use one of {list(CONVENTIONS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out)
    counts, skips = status_counts(df), skipped(df)
    w.lines += ["# MAT harness report", ""] + [f"- Source: {s}" for s in sources] + [
        f"- Selection: `{selection}`. {SELECTION_NOTES[selection]}",
        f"- GLUE convention: `{convention}`. {tables.convention_note(convention)}",
        f"- Intervals: 95% percentile bootstrap of the mean over seeds, {n_boot} resamples, seed {seed}.", ""]
    w.lines += _status_section(df, counts) + _skipped_section(skips)
    scores = agg.trial_scores(df, selection)
    usable = not scores.empty
    if usable:
        summary = agg.seed_summary(scores, agg.CONFIG_BY, n_boot=n_boot, seed=seed)
        w.csv(summary, "config_summary")
        best = agg.best_configs(summary)
        sel = agg.select_configs(scores, best)
        method_summary = agg.seed_summary(sel, agg.METHOD_BY, n_boot=n_boot, seed=seed)
        w.csv(method_summary, "method_summary")
        for model in sorted(set(sel["model"])):
            _model_section(w, df, model, sel, scores, method_summary, convention, selection, n_boot, seed)
        _ablations(w, scores, best, ablations)
        _best_section(w, best)
    else:
        w.lines += ["## No results", "", "No finished trial with an evaluation was found.", ""]
    report = out / "report.md"
    report.write_text("\n".join(w.lines).rstrip() + "\n", encoding="utf-8")
    w.files.append(report)
    text = _summary_text(counts, skips, report, usable, w.files)
    return ReportResult(report, counts, skips, usable, w.files, text)


def _model_section(w: _Writer, df: pd.DataFrame, model: str, sel: pd.DataFrame, scores: pd.DataFrame,
                   method_summary: pd.DataFrame, convention: str, selection: str,
                   n_boot: int, seed: int) -> None:
    ms = method_summary[method_summary["model"] == model]
    msel = sel[sel["model"] == model]
    w.lines += [f"## {model}", ""]
    _model_tables(w, model, ms, convention, selection)
    info = plots.seed_box_info(msel)
    if len(info.data):
        w.lines += ["### Per-seed scores (Figure 3 layout)", ""]
        w.figure(plots.seed_box_plot(info, f"{model}: dev task score per seed, best configuration"),
                 f"seed_box_{slug(model)}",
                 "Per-seed dev task scores by task and method (multi-metric tasks averaged)")
    _comparisons(w, model, msel, n_boot, seed)
    evals = df[df["kind"] == "eval"]
    keys = pd.MultiIndex.from_frame(msel[["experiment", "trial"]].drop_duplicates())
    in_best = pd.MultiIndex.from_frame(evals[["experiment", "trial"]]).isin(keys)
    curves = plots.learning_curve_info(evals[in_best])
    if len(curves) and curves["step"].nunique() > 1:
        w.lines += ["### Learning curves", ""]
        w.figure(plots.learning_curve_plot(curves), f"learning_curves_{slug(model)}",
                 "Dev score over intermediate evaluations (best configurations; mean ± std over seeds)")
    hp = plots.hparam_info(scores[scores["model"] == model])
    if len(hp):
        w.lines += ["### Hyperparameter search", ""]
        w.figure(plots.hparam_plot(hp), f"hparams_{slug(model)}",
                 "Dev score of every finished trial against each searched hyperparameter")


def _summary_text(counts: dict[str, int], skips: list, report: Path, usable: bool, files: list[Path]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{counts.get(s, 0)} {STATUS_LABELS[s]}" for s in STATUSES)
    n_tables = len({p.stem for p in files if p.parent.name == "tables"})
    n_figs = len({p.stem for p in files if p.parent.name == "figures"})
    lines = [f"{total} trials ({parts}); {len(skips)} input(s) skipped"]
    if usable:
        lines.append(f"wrote {report} ({n_tables} tables, {n_figs} figures)")
    else:
        lines.append(f"wrote {report} (status and skipped inputs only)")
    return "\n".join(lines)
