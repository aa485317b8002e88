"""The component ladder in numbers: per task, every rung's seeds, paired differences and compute.

Trials of the ladder carry ``params.rung`` (:mod:`mat.spec.ladder`: ``vanilla`` -> ``inner_steps`` ->
``sampling`` -> ``dropout_consistency`` -> ``mat`` -> ``mat_visible_delta``, and ``r3f`` beside it). Their
rows are split off the other trials (:func:`split_rungs`: the rung becomes the ``method`` label, since several
rungs train with
``--method mat``) and summarised per (model, task, rung) by :func:`ladder_rows`:

* ``n, mean, std, ci_low, ci_high``: the dev task score over seeds (t-interval or bootstrap of the mean);
* ``vs_vanilla_*`` and ``vs_previous_*``: the paired difference (this rung − the reference, per seed, over the
  seeds both ran) with its interval, the paired t-test p, the exact Wilcoxon p and the number of pairs
  (:func:`analysis.comparison.paired_stats`); the previous rung of ``r3f`` is ``vanilla``;
* ``forward_per_step, backward_per_step, passes_per_step``: passes per training step from the records' cost
  blocks (a 2B forward counts 2), ``train_seconds``: mean training wall time.

:func:`ladder_table` lays one task out as a table and :func:`findings` says, per rung, only what the intervals
support ("no difference detectable with n seeds" where the interval holds 0; a difference with its
Holm-adjusted p over the table's comparisons). Pure functions; no torch.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd

from analysis.comparison import paired_stats
from analysis.intervals import holm, mean_interval
from analysis.tables import MISSING, Table, fmt, fmt_diff, fmt_interval, fmt_signed, p_clause
from analysis.tidy import DEV, SCORE
from mat.spec.ladder import RUNG_KEY, RUNG_NAMES, RUNGS, previous_rung
from mat.spec.tasks import task_label

PARAM = f"param.{RUNG_KEY}"
ADDS = {r.name: r.adds for r in RUNGS}
REFERENCES = ("vanilla", "previous")
STAT_COLUMNS = ["n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "wilcoxon_p"]
ROW_COLUMNS = (["model", "task", "rung", "previous", "n", "seeds", "mean", "std", "ci_low", "ci_high"]
               + [f"vs_{ref}_{c}" for ref in REFERENCES for c in STAT_COLUMNS]
               + ["forward_per_step", "backward_per_step", "passes_per_step", "train_seconds"])


def split_rungs(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows without a rung, rows with one)``; in the second the ``method`` column holds the rung."""
    if PARAM not in scores.columns:
        return scores, scores.iloc[0:0].copy()
    has = scores[PARAM].notna()
    rungs = scores[has].copy()
    rungs["method"] = rungs[PARAM].astype(str)
    return scores[~has].reset_index(drop=True), rungs.reset_index(drop=True)


def rung_order(names: Iterable[str]) -> list[str]:
    """The rungs among ``names`` in ladder order (unknown names last, alphabetically)."""
    rank = {n: i for i, n in enumerate(RUNG_NAMES)}
    return sorted(dict.fromkeys(str(n) for n in names), key=lambda n: (rank.get(n, len(rank)), n))


def _per_step(g: pd.DataFrame, column: str) -> float:
    if column not in g.columns or "cost.optimizer_steps" not in g.columns:
        return math.nan
    steps = pd.to_numeric(g["cost.optimizer_steps"], errors="coerce")
    return float((pd.to_numeric(g[column], errors="coerce") / steps.where(steps > 0)).mean())


def _mean_col(g: pd.DataFrame, column: str) -> float:
    return float(pd.to_numeric(g[column], errors="coerce").mean()) if column in g.columns else math.nan


def _paired(a: pd.Series, b: pd.Series, interval: str, n_boot: int, seed: int) -> list[float]:
    pairs = a.to_frame("a").join(b.to_frame("b"), how="inner").sort_index()
    st = paired_stats(pairs["a"].to_numpy(), pairs["b"].to_numpy(), interval, n_boot=n_boot, seed=seed)
    return [st.n_pairs, st.mean_diff, st.ci_low, st.ci_high, st.p_value, st.wilcoxon_p]


def ladder_rows(per_seed: pd.DataFrame, interval: str = "t", n_boot: int = 2000,
    seed: int = 0) -> pd.DataFrame:
    """One row per (model, task, rung) in ladder order (module docstring for the columns).

    Args:
        per_seed: per-trial score rows of one configuration per rung (``method`` = the rung, e.g. the
            ``per_seed`` of :func:`analysis.aggregate.choose_configs` over :func:`split_rungs`' second part),
            with ``seed``, ``split``, ``metric``, ``value`` and the ``cost.*`` columns where the records had
            them.
        interval, n_boot, seed: the interval of means and differences (``"t"`` or ``"bootstrap"``).
    """
    s = per_seed[(per_seed["split"] == DEV) & (per_seed["metric"] == SCORE)]
    rows = []
    for (model, task), g in s.groupby(["model", "task"], sort=True):
        by_seed = {r: gr.groupby("seed")["value"].mean() for r, gr in g.groupby("method")}
        for rung in rung_order(by_seed):
            gr = g[g["method"] == rung]
            v = gr["value"].to_numpy(dtype=float)
            lo, hi = mean_interval(v, interval, n_boot=n_boot, seed=seed) if len(v) > 1 else (math.nan,
                math.nan)
            prev = previous_rung(rung) if rung in RUNG_NAMES else None
            stats: list[float] = []
            for ref in ("vanilla", prev):
                usable = ref is not None and ref in by_seed and ref != rung
                stats += _paired(by_seed[rung], by_seed[ref], interval, n_boot,
                    seed) if usable else [0] + [math.nan] * 5
            fwd, bwd = _per_step(gr, "cost.passes.forward"), _per_step(gr, "cost.passes.backward")
            seeds = ",".join(str(x) for x in sorted(int(x) for x in gr["seed"].dropna().unique()))
            rows.append([model, task, rung, prev or "", len(v), seeds,
                float(v.mean()) if len(v) else math.nan,
                         float(v.std(ddof=1)) if len(v) > 1 else math.nan, lo, hi, *stats, fwd, bwd,
                         fwd + bwd, _mean_col(gr, "cost.wall_seconds.train")])
    out = pd.DataFrame(rows, columns=ROW_COLUMNS)
    for ref in REFERENCES:
        out[f"vs_{ref}_n_pairs"] = out[f"vs_{ref}_n_pairs"].astype(int)
    return out


def diff_cell(r: pd.Series, ref: str) -> str:
    """``+1.20 [-0.40, +2.80]; p=0.12 (5 pairs)`` for the difference to ``ref`` (``vanilla``/``previous``)."""
    d = r[f"vs_{ref}_mean_diff"]
    if pd.isna(d):
        return MISSING
    lo, hi = r[f"vs_{ref}_ci_low"], r[f"vs_{ref}_ci_high"]
    return f"{fmt_diff(d, lo, hi, r[f'vs_{ref}_p_value'])} ({int(r[f'vs_{ref}_n_pairs'])} pairs)"


def ladder_table(rows: pd.DataFrame, title: str, name: str, notes: Sequence[str] = ()) -> Table:
    """One task's ladder: a row per rung with what it adds, mean ± std (n), the 95% interval, the paired
    differences to vanilla and to the previous rung, and its compute (passes per step, training seconds)."""
    cells = pd.DataFrame({
        "adds": [ADDS.get(r, "") for r in rows["rung"]],
        "dev score": [f"{fmt(m, 2)}" + ("" if pd.isna(sd) else f" ± {fmt(sd, 2)}") + f" ({n})"
                      for m, sd, n in zip(rows["mean"], rows["std"], rows["n"])],
        "95% CI": [fmt_interval(a, b) for a, b in zip(rows["ci_low"], rows["ci_high"])],
        "− vanilla": [diff_cell(r, "vanilla") for _i, r in rows.iterrows()],
        "− previous rung": [(f"vs {r['previous']}: " if r["previous"] else "") + diff_cell(r, "previous")
                            for _i, r in rows.iterrows()],
        "passes/step": [fmt(v, 1) for v in rows["passes_per_step"]],
        "train s": [fmt(v, 0) for v in rows["train_seconds"]],
    }, index=list(rows["rung"]))
    numbers = rows.drop(columns=["model", "task"]).set_index("rung")
    cells.index.name = numbers.index.name = "rung"
    return Table(name, title, cells, numbers, tuple(notes))


def _comparisons(rows: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(row position, reference, its label) of every comparison :func:`findings` speaks of, in page order."""
    out = []
    for i, (_k, r) in enumerate(rows.iterrows()):
        for ref, label in (("previous", r["previous"]), ("vanilla", "vanilla")):
            if label and r["rung"] != "vanilla" and not (ref == "vanilla" and r["previous"] == "vanilla"):
                out.append((i, ref, label))
    return out


def findings(rows: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One sentence per rung and reference: a difference where the interval excludes 0, else "no difference
    detectable with n seeds" (never more than the intervals support). A difference also says whether it holds
    once the table's comparisons are taken together: Holm's adjusted p over the comparisons of its (model,
    task) that have a p-value (:func:`analysis.intervals.holm`), at level ``alpha``."""
    comps = _comparisons(rows)
    raw = [rows.iloc[i][f"vs_{ref}_p_value"] if rows.iloc[i][f"vs_{ref}_n_pairs"] >= 2 else math.nan
           for i, ref, _l in comps]
    keys = [tuple(rows.iloc[i][["model", "task"]]) for i, _r, _l in comps]
    adjusted, family = [math.nan] * len(comps), {}
    for key in dict.fromkeys(keys):
        idx = [j for j, k in enumerate(keys) if k == key]
        for j, a in zip(idx, holm([raw[j] for j in idx])):
            adjusted[j] = a
        family[key] = sum(not pd.isna(raw[j]) for j in idx)
    out = []
    for j, (i, ref, label) in enumerate(comps):
        r = rows.iloc[i]
        d, lo, hi, n = (r[f"vs_{ref}_{c}"] for c in ("mean_diff", "ci_low", "ci_high", "n_pairs"))
        what = f"{task_label(r['task'])}, {r['rung']} − {label}"
        if n == 0:
            out.append(f"{what}: no seeds in common ({label} has no results here, or ran other seeds).")
        elif pd.isna(d) or n < 2:
            out.append(f"{what}: one paired seed only: nothing to conclude.")
        elif pd.isna(lo) or lo <= 0 <= hi:
            out.append(f"{what}: no difference detectable with {int(n)} seeds ({fmt_signed(d)}, interval "
                       f"[{fmt_signed(lo)}, {fmt_signed(hi)}] holds 0).")
        else:
            m, a = family[keys[j]], adjusted[j]
            held = "holds" if a < alpha else "does not hold"
            out.append(f"{what}: {fmt_signed(d)} points, interval [{fmt_signed(lo)}, {fmt_signed(hi)}] "
                       f"excludes 0 (paired t {p_clause(r[f'vs_{ref}_p_value'])}, {int(n)} seeds); Holm over "
                       f"the table's {m} comparisons: {p_clause(a)}, {held} at {alpha:.0%}.")
    return out
