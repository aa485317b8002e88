"""The component ladder in numbers: per task, every rung's seeds, paired differences and compute.

Trials of the ladder carry ``params.rung`` (:mod:`mat.spec.ladder`: ``vanilla`` -> ``inner_steps`` ->
``sampling`` -> ``dropout_consistency`` -> ``mat`` -> ``mat_visible_delta``, and ``r3f`` beside it): each rung
is an arm (:mod:`analysis.identity`; its ``arm`` is the rung, though several rungs train with ``--method
mat``). Their rows are split off the other trials (:func:`split_rungs`) and summarised per (model, task, rung)
by :func:`ladder_rows`, under one selection rule (which evaluation of a trial is scored: ``best``, ``last``,
``split``; :mod:`analysis.selection`):

* ``n, mean, std, ci_low, ci_high``: the dev task score over seeds (t-interval or bootstrap of the mean);
* ``vs_vanilla_*`` and ``vs_previous_*``: the paired difference (this rung − the reference, per seed, over the
  seeds both ran) with its interval, the paired t-test p, the exact Wilcoxon p and the number of pairs
  (:func:`analysis.comparison.paired_stats`); the previous rung of ``r3f`` is ``vanilla``;
* ``forward_per_step, backward_per_step, passes_per_step``: training's passes per training step (a 2B forward
  counts 2; the ``--diagnostics`` forwards are apart, in ``diagnostic_per_step``), ``updates_per_step``:
  optimizer updates per training step (K_θ for MAT), ``cost_derived``: whether some of these were derived from
  an older record's parameters (:func:`mat.spec.cost.derive_cost`), ``train_seconds``: mean training wall
  time.

:func:`selection_gap` measures, per rung, how far one selection's score lies from another's on the same trials
(best − last: what choosing the evaluation on the reported data adds). :func:`ladder_table` lays one task out,
each selection's scores and differences side by side, and :func:`findings` says, per rung, only what the
intervals support ("no difference detectable with n seeds" where the interval holds 0; a difference with its
Holm-adjusted p over the table's comparisons), and whether another selection tells the same. Pure functions;
no torch.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd

from analysis.claims import NO_SPREAD, claim, holm_within, verdict
from analysis.comparison import paired_stats
from analysis.identity import arm_order
from analysis.intervals import mean_interval
from analysis.tables import MISSING, Table, fmt, fmt_signed, p_clause
from analysis.tidy import DEV, SCORE
from mat.spec.ladder import RUNG_KEY, RUNG_NAMES, RUNGS, previous_rung
from mat.spec.tasks import task_label

PARAM = f"param.{RUNG_KEY}"
ADDS = {r.name: r.adds for r in RUNGS}
REFERENCES = ("vanilla", "previous")
STAT_COLUMNS = ["n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "wilcoxon_p"]
ROW_COLUMNS = (["model", "task", "selection", "rung", "previous", "n", "seeds", "mean", "std", "ci_low",
                "ci_high"]
               + [f"vs_{ref}_{c}" for ref in REFERENCES for c in STAT_COLUMNS]
               + ["forward_per_step", "backward_per_step", "passes_per_step", "diagnostic_per_step",
                  "updates_per_step", "cost_derived", "train_seconds"])
WORDS = {"best": "the best evaluation", "last": "the last evaluation",
         "split": "the evaluation chosen on the selection half, scored on the report half"}


def split_rungs(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows without a rung, rows with one)``; in the second the ``arm`` column is the rung."""
    if PARAM not in scores.columns:
        return scores, scores.iloc[0:0].copy()
    has = scores[PARAM].notna()
    return scores[~has].reset_index(drop=True), scores[has].reset_index(drop=True)


def rung_order(names: Iterable[str]) -> list[str]:
    """The rungs among ``names`` in ladder order (unknown names last, alphabetically): :func:`arm_order`."""
    return arm_order(names)


def per_step(g: pd.DataFrame, column: str) -> float:
    """The mean over ``g``'s rows of ``column`` divided by ``cost.optimizer_steps`` (a per-trial count per
    training step, e.g. ``cost.passes.forward``); NaN where either is missing."""
    if column not in g.columns or "cost.optimizer_steps" not in g.columns:
        return math.nan
    steps = pd.to_numeric(g["cost.optimizer_steps"], errors="coerce")
    return float((pd.to_numeric(g[column], errors="coerce") / steps.where(steps > 0)).mean())


def mean_of(g: pd.DataFrame, column: str) -> float:
    """The mean of ``g[column]`` as numbers (NaN where the column is missing)."""
    return float(pd.to_numeric(g[column], errors="coerce").mean()) if column in g.columns else math.nan


def _paired(a: pd.Series, b: pd.Series, interval: str, n_boot: int, seed: int) -> list[float]:
    pairs = a.to_frame("a").join(b.to_frame("b"), how="inner").sort_index()
    st = paired_stats(pairs["a"].to_numpy(), pairs["b"].to_numpy(), interval, n_boot=n_boot, seed=seed)
    return [st.n_pairs, st.mean_diff, st.ci_low, st.ci_high, st.p_value, st.wilcoxon_p]


def _derived(g: pd.DataFrame) -> bool:
    if "cost.derived" not in g.columns:
        return False
    return bool(g["cost.derived"].fillna("").astype(str).str.len().gt(0).any())


def ladder_rows(per_seed: pd.DataFrame, interval: str = "t", n_boot: int = 2000, seed: int = 0,
                selection: str = "best") -> pd.DataFrame:
    """One row per (model, task, rung) in ladder order (module docstring for the columns).

    Args:
        per_seed: per-trial score rows of one configuration per rung (``arm`` = the rung, e.g. the
            ``per_seed`` of :func:`analysis.aggregate.choose_configs` over :func:`split_rungs`' second part),
            with ``seed``, ``split``, ``metric``, ``value`` and the ``cost.*`` columns where the records had
            them.
        interval, n_boot, seed: the interval of means and differences (``"t"`` or ``"bootstrap"``).
        selection: the selection rule ``per_seed`` was scored under (the ``selection`` column).
    """
    s = per_seed[(per_seed["split"] == DEV) & (per_seed["metric"] == SCORE)]
    rows = []
    for (model, task), g in s.groupby(["model", "task"], sort=True):
        by_seed = {r: gr.groupby("seed")["value"].mean() for r, gr in g.groupby("arm")}
        for rung in rung_order(by_seed):
            gr = g[g["arm"] == rung]
            v = gr["value"].to_numpy(dtype=float)
            lo, hi = mean_interval(v, interval, n_boot=n_boot, seed=seed) if len(v) > 1 else (math.nan,
                math.nan)
            prev = previous_rung(rung) if rung in RUNG_NAMES else None
            stats: list[float] = []
            for ref in ("vanilla", prev):
                usable = ref is not None and ref in by_seed and ref != rung
                stats += _paired(by_seed[rung], by_seed[ref], interval, n_boot,
                    seed) if usable else [0] + [math.nan] * 5
            fwd, bwd = per_step(gr, "cost.passes.forward"), per_step(gr, "cost.passes.backward")
            seeds = ",".join(str(x) for x in sorted(int(x) for x in gr["seed"].dropna().unique()))
            mean = float(v.mean()) if len(v) else math.nan
            std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            rows.append([model, task, selection, rung, prev or "", len(v), seeds, mean, std, lo, hi, *stats,
                         fwd, bwd, fwd + bwd, per_step(gr, "cost.diagnostic_passes.forward"),
                         per_step(gr, "cost.optimizer_updates"), _derived(gr),
                         mean_of(gr, "cost.wall_seconds.train")])
    out = pd.DataFrame(rows, columns=ROW_COLUMNS)
    for ref in REFERENCES:
        out[f"vs_{ref}_n_pairs"] = out[f"vs_{ref}_n_pairs"].astype(int)
    return out


def selection_gap(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task, rung): the mean over trials of a trial's dev task score under one selection minus its
    score under another (``first`` − ``second``, the same trials), with the standard deviation and n.

    Args:
        first, second: per-trial score rows (``experiment, trial, model, task, arm, split, metric, value``)
            of the two selections, e.g. the ``per_seed`` of :func:`analysis.aggregate.choose_configs` under
            each.

    Returns:
        ``model, task, rung, gap, gap_std, gap_n``.
    """
    keys = ["experiment", "trial", "model", "task", "arm"]
    pick = [(f[(f["split"] == DEV) & (f["metric"] == SCORE)][keys + ["value"]]) for f in (first, second)]
    both = pick[0].merge(pick[1], on=keys, suffixes=("_a", "_b"))
    both["gap"] = both["value_a"] - both["value_b"]
    g = both.groupby(["model", "task", "arm"], sort=True)["gap"].agg(["mean", "std", "count"]).reset_index()
    return g.rename(columns={"arm": "rung", "mean": "gap", "std": "gap_std", "count": "gap_n"})


def diff_cell(r: pd.Series, ref: str) -> str:
    """``+1.20 [-0.40, +2.80]; t p=0.12, W p=0.19 (5 pairs)`` for the difference to ``ref`` (``vanilla`` or
    ``previous``): the interval, the paired t-test p and the exact Wilcoxon signed-rank p."""
    d = r[f"vs_{ref}_mean_diff"]
    if pd.isna(d):
        return MISSING
    lo, hi = r[f"vs_{ref}_ci_low"], r[f"vs_{ref}_ci_high"]
    return (f"{fmt_signed(d)} [{fmt_signed(lo)}, {fmt_signed(hi)}]; t {p_clause(r[f'vs_{ref}_p_value'])}, "
            f"W {p_clause(r[f'vs_{ref}_wilcoxon_p'])} ({int(r[f'vs_{ref}_n_pairs'])} pairs)")


def _score_cell(m: float, sd: float, n: int) -> str:
    return f"{fmt(m, 2)}" + ("" if pd.isna(sd) else f" ± {fmt(sd, 2)}") + f" ({n})"


def ladder_table(rows: pd.DataFrame, title: str, name: str, notes: Sequence[str] = (),
                 gap: pd.DataFrame | None = None) -> Table:
    """One task's ladder: a row per rung with its dev score (mean ± std (n)) and its paired differences to
    vanilla and to the previous rung under each selection in ``rows`` side by side, then its compute
    (training passes per step, optimizer updates per step, training seconds; ``*``: derived from an older
    record's parameters).

    Args:
        rows: :func:`ladder_rows` of one task, of one selection or several (stacked; the ``selection`` column
            tells them apart, the first is the page's).
        gap: :func:`selection_gap` rows of the task (``best − last``), shown after the scores when given.
    """
    sels = list(dict.fromkeys(rows["selection"]))
    first = rows[rows["selection"] == sels[0]].set_index("rung")
    rungs = list(first.index)
    by = {sel: rows[rows["selection"] == sel].set_index("rung").reindex(rungs) for sel in sels}
    cols: dict[str, list[str]] = {}
    for sel in sels:
        cols[f"dev score, {sel}"] = [MISSING if pd.isna(r["n"]) else
                                     _score_cell(r["mean"], r["std"], int(r["n"]))
                                     for _k, r in by[sel].iterrows()]
    if gap is not None and len(sels) > 1:
        g = gap.set_index("rung").reindex(rungs)
        cols[f"{sels[0]} − {sels[1]}"] = [fmt_signed(v) for v in g["gap"]]
    for ref, label in (("vanilla", "− vanilla"), ("previous", "− previous rung")):
        for sel in sels:
            rows_of = by[sel].fillna({"previous": ""}).iterrows()
            cols[f"{label}, {sel}"] = [(f"vs {r['previous']}: " if ref == "previous" and r["previous"] else
                                        "") + diff_cell(r, ref) for _k, r in rows_of]
    star = ["*" if bool(d) else "" for d in first["cost_derived"]]
    cols["passes/step"] = [fmt(v, 1) + s for v, s in zip(first["passes_per_step"], star)]
    cols["updates/step"] = [fmt(v, 1) + s for v, s in zip(first["updates_per_step"], star)]
    cols["train s"] = [fmt(v, 0) for v in first["train_seconds"]]
    cells = pd.DataFrame(cols, index=rungs)
    numbers = rows.drop(columns=["model", "task"]).set_index("rung")
    if gap is not None and len(sels) > 1:
        numbers = numbers.join(gap.set_index("rung")[["gap", "gap_std", "gap_n"]].add_prefix(
            f"{sels[0]}_minus_{sels[1]}_"), how="left")
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


def _other_clause(o: pd.Series | None, ref: str, ours: str | None) -> str:
    """What another selection gives for the same comparison (``ours``: this one's verdict), and whether it
    tells the same."""
    if o is None or ours is None:
        return ""
    d, lo, hi, n = (o[f"vs_{ref}_{c}"] for c in ("mean_diff", "ci_low", "ci_high", "n_pairs"))
    theirs = verdict(d, lo, hi, int(n))
    if theirs is None:
        return ""
    words = WORDS.get(o["selection"], o["selection"])
    said = f" With {words}: {fmt_signed(d)} [{fmt_signed(lo)}, {fmt_signed(hi)}]"
    if theirs == ours:
        return said + ", the same conclusion."
    if theirs == NO_SPREAD:
        return said + (", the same difference on every seed (no interval): this conclusion depends on which "
                       "evaluation is scored.")
    return said + f", which {theirs} 0: this conclusion depends on which evaluation is scored."


def findings(rows: pd.DataFrame, alpha: float = 0.05, other: pd.DataFrame | None = None) -> list[str]:
    """One sentence per rung and reference: a difference where the interval excludes 0, else "no difference
    detectable with n seeds" (never more than the intervals support). A difference also says whether it holds
    once the table's comparisons are taken together: Holm's adjusted p over the comparisons of its (model,
    task) that have a p-value (:func:`analysis.intervals.holm`), at level ``alpha``.

    Args:
        rows: :func:`ladder_rows` of one selection (the page's).
        alpha: the level of Holm's correction.
        other: :func:`ladder_rows` of another selection of the same trials: each sentence then adds what it
            gives and whether it reaches the same conclusion (interval excluding or holding 0).
    """
    comps = _comparisons(rows)
    raw = [rows.iloc[i][f"vs_{ref}_p_value"] if rows.iloc[i][f"vs_{ref}_n_pairs"] >= 2 else math.nan
           for i, ref, _l in comps]
    keys = [tuple(rows.iloc[i][["model", "task"]]) for i, _r, _l in comps]
    adjusted, family = holm_within(keys, raw)
    theirs = {} if other is None else {(r["model"], r["task"], r["rung"]): r for _k, r in other.iterrows()}
    out = []
    for j, (i, ref, label) in enumerate(comps):
        r = rows.iloc[i]
        d, lo, hi, n = (r[f"vs_{ref}_{c}"] for c in ("mean_diff", "ci_low", "ci_high", "n_pairs"))
        tail = _other_clause(theirs.get((r["model"], r["task"], r["rung"])), ref, verdict(d, lo, hi, int(n)))
        out.append(claim(f"{task_label(r['task'])}, {r['rung']} − {label}", label, d, lo, hi, int(n),
                         r[f"vs_{ref}_p_value"], r[f"vs_{ref}_wilcoxon_p"], adjusted[j], family[j], alpha,
                         tail))
    return out
