"""The paper's table layouts, built from long rows and rendered as Markdown, LaTeX and CSV.

Every builder takes long rows ``row, task, split, metric, value`` (plus optional ``std``, ``n``,
``published_score``, ``source``): published rows from :mod:`analysis.published` and our rows from
:func:`arm_rows` fit the same shape, so they sit in one table.

* :func:`glue_table`: Tables 1-2. Tasks as columns, a task's metrics as ``a/b`` (``-`` for an unknown
  one), a Score column, the convention named under the table.
* :func:`anli_table`: Table 3. ANLI dev and test, R1-R3 (``anli_r1``... on splits ``dev``/``test_r1``...).
* :func:`advglue_table`: AdvGLUE dev (splits ``adv_validation``, MNLI ``adv_validation_matched`` /
  ``adv_validation_mismatched``).
* :func:`ablation_table`: Tables 4-5. A swept hyperparameter as columns, task metrics as rows,
  ``mean ± std`` where there are several seeds.

Task names and order come from the task registry (``mat.spec.tasks.task_label``, ``sort_tasks``). A row's GLUE
Score is ``mat.spec.tasks.task_score`` per task, strict for our rows and ``partial=True`` for published rows
(``published`` column true), which print some metrics as ``-``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from analysis.scores import convention_note, convention_tasks, glue_score, round_half_up
from analysis.tidy import DEV
from mat.spec.tasks import ANLI_TASKS, get_task, sort_tasks, task_label

METRIC_LABELS: Mapping[str, str] = {
    "mcc": "Mcc", "accuracy": "Acc", "f1": "F1", "pearson": "P", "spearman": "S", "accuracy_m": "Acc-m",
    "accuracy_mm": "Acc-mm", "score": "Score",
}
ADVGLUE_COLUMNS = (
    ("SST-2", "sst2", "adv_validation"), ("QQP", "qqp", "adv_validation"), ("QNLI", "qnli", "adv_validation"),
    ("RTE", "rte", "adv_validation"), ("MNLI-m", "mnli", "adv_validation_matched"),
    ("MNLI-mm", "mnli", "adv_validation_mismatched"),
)
MISSING = "-"


@dataclass(frozen=True)
class Column:
    """One table column: a header and the (task, split, metrics) its cells show as ``a/b``."""

    header: str
    task: str
    split: str
    metrics: tuple[str, ...]

    @property
    def keys(self) -> list[str]:
        """The ``task.split.metric`` names of the values behind the cells (the CSV columns)."""
        return [f"{self.task}.{self.split}.{m}" for m in self.metrics]


@dataclass(frozen=True)
class Table:
    """A built table: display cells, the numbers behind them, and the notes printed under it.

    Attributes:
        name: file stem (``glue_bert-base-uncased``).
        title: caption.
        cells: display strings; index = row labels, columns = headers.
        numbers: the numbers behind the cells (wide, one column per ``task.split.metric`` plus extras);
            this is what the CSV holds.
        notes: sentences printed under the table (the GLUE convention, the selection rule, sources).
    """

    name: str
    title: str
    cells: pd.DataFrame
    numbers: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)


def fmt(value: float, digits: int = 1) -> str:
    """A table number (rounded half up, as the paper prints), ``-`` when missing."""
    return round_half_up(value, digits)


def _lookup(rows: pd.DataFrame, col: str = "value") -> dict[tuple[str, str, str, str], float]:
    keys = zip(rows["row"], rows["task"], rows["split"], rows["metric"])
    return dict(zip(keys, rows[col]))


def _row_order(rows: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(rows["row"]))


def _cell(values: dict, row: str, col: Column, std: dict | None = None) -> str:
    parts = []
    for m in col.metrics:
        v = values.get((row, col.task, col.split, m), math.nan)
        s = std.get((row, col.task, col.split, m), math.nan) if std else math.nan
        parts.append(fmt(v) + (f" ± {fmt(s)}" if not math.isnan(s) else ""))
    return MISSING if all(p == MISSING for p in parts) else "/".join(parts)


def _grid(rows: pd.DataFrame, columns: Sequence[Column],
    show_std: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    values = _lookup(rows)
    std = _lookup(rows, "std") if show_std and "std" in rows.columns else None
    order = _row_order(rows)
    cells = pd.DataFrame({c.header: [_cell(values, r, c, std) for r in order] for c in columns}, index=order)
    keys = [(c.task, c.split, m) for c in columns for m in c.metrics]
    numbers = pd.DataFrame({f"{t}.{s}.{m}": [values.get((r, t, s, m), math.nan) for r in order]
                            for t, s, m in keys}, index=order)
    cells.index.name = numbers.index.name = "row"
    return cells, numbers


def _extras(rows: pd.DataFrame, numbers: pd.DataFrame) -> pd.DataFrame:
    """Add ``n`` (seeds, max over cells) and ``source`` per row to the CSV numbers where known."""
    first = rows.drop_duplicates("row").set_index("row")
    if "n" in rows.columns:
        numbers["n"] = rows.groupby("row")["n"].max().reindex(numbers.index)
    if "source" in rows.columns:
        numbers["source"] = first["source"].reindex(numbers.index)
    return numbers


def glue_columns(convention: str = "paper") -> list[Column]:
    """Tables 1-2's task columns for a convention: ``CoLA (Mcc)``, ``MRPC (Acc/F1)``..."""
    cols = []
    for t in convention_tasks(convention):
        metrics = get_task(t).metrics
        cols.append(Column(f"{task_label(t)} ({'/'.join(METRIC_LABELS[m] for m in metrics)})", t, DEV,
            metrics))
    return cols


def _row_glue_score(values: dict, row: str, convention: str, partial: bool) -> float:
    per_task = {}
    for t in convention_tasks(convention):
        metrics = {m: values[(row, t, DEV, m)] for m in get_task(t).metrics if (row, t, DEV, m) in values}
        if metrics:
            per_task[t] = metrics
    try:
        return glue_score(per_task, convention, partial=partial)
    except ValueError:
        return math.nan


def glue_table(rows: pd.DataFrame, convention: str = "paper", title: str = "GLUE dev results",
               name: str = "glue", notes: Sequence[str] = ()) -> Table:
    """Tables 1-2 layout.

    The Score of a row is its GLUE score under ``convention`` computed from its cells (``-`` when a task
    or, for our rows, one of a task's metrics is missing); a published row (``published`` true) is scored
    on the metrics it prints, and one with a printed Score (``published_score``) shows the printed number
    under the paper convention, so the paper's rows round-trip exactly.

    Args:
        rows: long rows ``row, task, split, metric, value`` (+ ``published``, ``published_score``, ``n``,
            ``source``).
        convention: ``"paper"`` or ``"glue"``; named in the notes.
        title, name: caption and file stem.
        notes: extra sentences under the table.
    """
    columns = glue_columns(convention)
    cells, numbers = _grid(rows, columns)
    values = _lookup(rows)
    first = rows.drop_duplicates("row").set_index("row")
    published, flags = first.get("published_score"), first.get("published")
    scores = []
    for r in cells.index:
        pub = published.get(r, math.nan) if published is not None else math.nan
        use_pub = convention == "paper" and isinstance(pub, float) and not math.isnan(pub)
        partial = flags is not None and flags.get(r, False) in (True, 1)  # NaN: not a published row
        scores.append(float(pub) if use_pub else _row_glue_score(values, r, convention, partial))
    cells["Score"] = [round_half_up(s, 2) for s in scores]
    numbers["score"] = scores
    notes = (convention_note(convention), *notes)
    return Table(name, title, cells, _extras(rows, numbers), tuple(notes))


def anli_table(rows: pd.DataFrame, title: str = "ANLI results", name: str = "anli",
    notes: Sequence[str] = ()) -> Table:
    """Table 3 layout: ANLI dev R1-R3 then test R1-R3 (accuracy)."""
    columns = [Column(f"Dev R{i}", t, DEV, ("accuracy",)) for i, t in enumerate(ANLI_TASKS, 1)]
    columns += [Column(f"Test R{i}", t, get_task(t).test_splits[0],
        ("accuracy",)) for i, t in enumerate(ANLI_TASKS, 1)]
    cells, numbers = _grid(rows, columns)
    return Table(name, title, cells, _extras(rows, numbers), tuple(notes))


def _split_metrics(rows: pd.DataFrame, task: str, split: str) -> tuple[str, ...]:
    present = set(rows.loc[(rows["task"] == task) & (rows["split"] == split), "metric"]) - {"score"}
    preferred = [m for m in (*get_task(task).metrics, "accuracy") if m in present]
    return tuple(dict.fromkeys(preferred + sorted(present - set(preferred))))


def advglue_table(rows: pd.DataFrame, title: str = "AdvGLUE dev results", name: str = "advglue",
                  notes: Sequence[str] = ()) -> Table:
    """AdvGLUE layout: SST-2, QQP, QNLI, RTE, MNLI-m, MNLI-mm on their ``adv_validation*`` splits; a cell
    shows the metrics found for that split as ``a/b``. Columns without any value are left out."""
    columns = [Column(h, t, s, _split_metrics(rows, t, s)) for h, t, s in ADVGLUE_COLUMNS]
    columns = [c for c in columns if c.metrics]
    cells, numbers = _grid(rows, columns)
    return Table(name, title, cells, _extras(rows, numbers), tuple(notes))


def _setting_key(v: object) -> tuple[int, float, str]:
    try:
        return (0, float(v), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, math.nan, str(v))


def setting_label(v: object) -> str:
    """A swept value as the paper prints it: ``3`` not ``3.0``, ``0.1``, ``2e-05``."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else f"{f:g}"


def ablation_table(rows: pd.DataFrame, hyperparameter: str, title: str | None = None, name: str | None = None,
                   notes: Sequence[str] = ()) -> Table:
    """Tables 4-5 layout: one column per setting of ``hyperparameter``, one row per task metric.

    Args:
        rows: long rows ``task, split, metric, setting`` and ``value`` or ``mean`` (+ ``std``, ``n``); a
            cell reads ``mean ± std`` when ``std`` is known (several seeds), else ``mean``.
        hyperparameter: the swept parameter (column group name).
    """
    r = rows[rows["metric"] != "score"].copy()
    if "mean" not in r.columns:
        r["mean"] = r["value"]
    if "std" not in r.columns:
        r["std"] = math.nan
    settings = sorted(dict.fromkeys(r["setting"]), key=_setting_key)
    labels = [setting_label(s) for s in settings]
    index, keys = [], []
    for t in sort_tasks(r["task"]):
        metrics = [m for m in get_task(t).metrics if ((r["task"] == t) & (r["metric"] == m)).any()]
        for m in metrics:
            index.append(f"{task_label(t)} ({METRIC_LABELS.get(m, m)})")
            keys.append((t, m))
    cell_keys = zip(r["task"], r["metric"], r["setting"].map(setting_label))
    by = dict(zip(cell_keys, zip(r["mean"], r["std"])))
    cells = pd.DataFrame(index=index, columns=labels, dtype=object)
    numbers = pd.DataFrame(index=index, columns=labels, dtype=float)
    for label_row, (t, m) in zip(index, keys):
        for lab in labels:
            mu, sd = by.get((t, m, lab), (math.nan, math.nan))
            sd_text = f" ± {fmt(sd)}" if isinstance(sd, float) and not math.isnan(sd) else ""
            cells.loc[label_row, lab] = fmt(mu) + (sd_text if fmt(mu) != MISSING else "")
            numbers.loc[label_row, lab] = mu
    cells.index.name = numbers.index.name = f"{hyperparameter}"
    return Table(name or f"ablation_{hyperparameter}", title or f"Ablation over {hyperparameter}", cells,
                 numbers, tuple(notes))


# -------------------------------------------------------------------------------------------- render


def _md_escape(s: object) -> str:
    return str(s).replace("|", "\\|")


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table with its title in bold above and notes in italics below."""
    head = [table.cells.index.name or ""] + list(table.cells.columns)
    lines = [f"**{table.title}**", "", "| " + " | ".join(_md_escape(h) for h in head) + " |",
             "|" + "|".join([":---"] + ["---:"] * len(table.cells.columns)) + "|"]
    for label, row in table.cells.iterrows():
        lines.append("| " + " | ".join(_md_escape(x) for x in [label, *row.tolist()]) + " |")
    lines += [""] + [f"_{n}_" for n in table.notes]
    return "\n".join(lines).rstrip() + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "λ": r"$\lambda$",
          "−": r"$-$", "†": r"\dag{}", "‡": r"\ddag{}"}


def latex_escape(text: object) -> str:
    """Escape LaTeX's special characters (and write ±, λ, − in math mode, † and ‡ as \\dag, \\ddag)."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A ``table`` environment with a plain ``tabular`` (no extra packages), caption = title + notes."""
    ncol = len(table.cells.columns)
    head = [table.cells.index.name or ""] + list(table.cells.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * ncol + "}", r"\hline",
             " & ".join(latex_escape(h) for h in head) + r" \\", r"\hline"]
    for label, row in table.cells.iterrows():
        lines.append(" & ".join(latex_escape(x) for x in [label, *row.tolist()]) + r" \\")
    caption = " ".join([table.title.rstrip(".") + "."] + list(table.notes))
    lines += [r"\hline", r"\end{tabular}", r"\caption{" + latex_escape(caption) + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """The numbers behind the cells, one line per row (``row`` first)."""
    return table.numbers.to_csv()


def write_table(table: Table, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext, render in (("md", to_markdown), ("tex", to_latex), ("csv", to_csv)):
        paths[ext] = out / f"{table.name}.{ext}"
        paths[ext].write_text(render(table), encoding="utf-8")
    return paths


def arm_rows(summary: pd.DataFrame, label: str = "{arm} (ours)") -> pd.DataFrame:
    """Our rows for the table builders from a :func:`analysis.aggregate.seed_summary` by arm (a method or its
    named variant, :mod:`analysis.identity`): one row per arm.

    Args:
        summary: rows ``arm, task, split, metric, n, mean, std`` (one model).
        label: row label template; fields ``arm`` and ``model``.

    Returns:
        Long rows ``row, arm, task, split, metric, value, std, n, source``.
    """
    s = summary[summary["metric"] != "score"]
    models = s["model"] if "model" in s.columns else pd.Series([""] * len(s), index=s.index)
    rows = pd.DataFrame({
        "row": [label.format(arm=m, model=md) for m, md in zip(s["arm"], models)],
        "arm": s["arm"].to_numpy(), "task": s["task"].to_numpy(), "split": s["split"].to_numpy(),
        "metric": s["metric"].to_numpy(), "value": s["mean"].to_numpy(dtype=float),
        "std": s["std"].to_numpy(dtype=float), "n": s["n"].to_numpy(),
    })
    rows["source"] = "this harness: mean over seeds of the best configuration"
    rows["published"] = False
    return rows



def fmt_p(p: float) -> str:
    """A p-value in a table: two significant digits, ``<0.001`` below that, ``-`` when missing."""
    return MISSING if not isinstance(p, float) or math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.2g}")


def p_clause(p: float) -> str:
    """A p-value in prose: ``p=0.044``, ``p<0.001`` (not ``p=<0.001``), ``p=-`` when missing."""
    text = fmt_p(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def fmt_signed(v: float) -> str:
    """A difference with its sign (``+0.44``, ``-0.06``), two decimals rounded half up, ``-`` when missing."""
    return MISSING if math.isnan(v) else ("+" if v >= 0 else "") + fmt(v, 2)


def fmt_diff(d: float, low: float, high: float, p: float) -> str:
    """A paired difference as the comparison and ladder tables print it: ``+0.44 [+0.03, +0.84]; p=0.044``."""
    return f"{fmt_signed(d)} [{fmt_signed(low)}, {fmt_signed(high)}]; {p_clause(p)}"


def fmt_interval(low: float, high: float, digits: int = 2) -> str:
    """``[low, high]`` as a table prints it."""
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def plain_markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a plain Markdown table (header, one line per row; ``|`` in cells escaped)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " "
        "|" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"
