"""A tuned-alike study in numbers (``python -m trials.study``, docs/study.md): which cells have records, each
arm's tuning and chosen point, and per task every arm's report-phase score against the study's baselines.

From the tidy frame of the study's records and its :class:`analysis.study_plan.StudyPlan`,
:func:`summarise` gives a :class:`Benchmark`:

* ``cells``: each finished trial's cell (task, phase, arm, grid point, seed), or why it is none of the
  study's (``outside``: another model or task, an arm or point the study does not have, a seed of the other
  phase, a report trial at another point than its arm's chosen one);
* ``tuning``: per task, arm and grid point, the mean selection-half score over the tuning seeds, each trial
  at the evaluation the selection half picks (:func:`analysis.selection.config_selection_scores`); an arm's
  point is ``chosen`` once all its tune cells have records, by the rule the runner uses
  (:func:`analysis.selection.choose_arm_configs`);
* ``progress``: per task and arm, the cells done and missing;
* ``report``: per task and arm, the report half's score at the evaluation the selection half picked
  (``--selection split``) over the report seeds: ``n, mean, std, ci_low, ci_high`` (t-interval), and for each
  baseline ``b`` the paired comparison ``vs_<b>_{n_pairs, mean_diff, ci_low, ci_high, p_value, wilcoxon_p}``
  (:func:`analysis.comparison.paired_comparison`) with ``vs_<b>_holm_p``, Holm's adjusted p over the task's
  comparisons; then ``updates`` (optimizer updates per trial), ``passes_per_step`` and ``train_seconds``
  (training CPU seconds, or wall seconds where a record predates CPU time: ``seconds``). Numbers only for an
  arm whose every report seed has a record (``complete``); a comparison only between two complete arms;
* ``claims``: per task, one sentence per comparison made (:func:`analysis.claims.claim`) and one per arm
  that has no comparison yet, saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis import aggregate as agg
from analysis.claims import claim, holm_within
from analysis.comparison import paired_comparison
from analysis.intervals import t_interval
from analysis.ladder import mean_of, per_step
from analysis.selection import config_selection_scores
from analysis.study_plan import StudyPlan, point_of, point_text, seeds_phrase, seeds_text
from analysis.tidy import DEV, SCORE
from mat.spec.tasks import task_label

_TRIAL = ["experiment", "trial"]
STATS = ("n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "wilcoxon_p", "holm_p")
CPU, WALL = "cost.cpu_seconds.train", "cost.wall_seconds.train"


@dataclass(frozen=True)
class Benchmark:
    """A study's state and numbers (module docstring)."""

    plan: StudyPlan
    arms: tuple[str, ...]
    cells: pd.DataFrame
    tuning: pd.DataFrame
    progress: pd.DataFrame
    report: pd.DataFrame
    claims: dict[str, list[str]]


def _outside(plan: StudyPlan, r: pd.Series, point: int | None) -> str:
    """Why a trial is no cell of the study ("" when it is one)."""
    phase, seed = r.get("param.phase"), r["seed"]
    if r["model"] != plan.model or r["task"] not in plan.tasks:
        return f"model {r['model']}, task {r['task']}: not the study's"
    if r["arm"] not in plan.arms:
        return f"arm {r['arm']} is not an arm of the study"
    if phase not in ("tune", "report"):
        return f"params.phase is {phase!r}, not tune or report"
    if point is None:
        return "ran a point outside the arm's grid"
    seeds = plan.tuning_seeds if phase == "tune" else plan.report_seeds
    return "" if not pd.isna(seed) and int(seed) in seeds else f"seed {seed} is not a {phase} seed"


def trial_cells(df: pd.DataFrame, plan: StudyPlan) -> pd.DataFrame:
    """Each finished trial's cell: ``experiment, trial, source, task, phase, arm, seed, point`` (the index of
    its arm's grid point, -1 for none) and ``outside`` (why it is no cell of the study, else "")."""
    one = df[df["status"] == "SUCCEEDED"].drop_duplicates(_TRIAL)
    params = [c for c in one.columns if c.startswith("param.")]
    rows = []
    for _i, r in one.iterrows():
        got = {c.removeprefix("param."): r[c] for c in params if not _missing(r[c])}
        point = point_of(plan, r["arm"], got) if r["arm"] in plan.points else None
        rows.append((r["experiment"], r["trial"], r["source"], r["task"], got.get("phase", ""), r["arm"],
                     r["seed"], -1 if point is None else point, _outside(plan, r, point)))
    return pd.DataFrame(rows, columns=_TRIAL + ["source", "task", "phase", "arm", "seed", "point", "outside"])


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _tuning(df: pd.DataFrame, cells: pd.DataFrame, plan: StudyPlan, arms: tuple[str, ...]) -> pd.DataFrame:
    """``task, arm, point, n, selection_mean, complete, chosen`` for every grid point of every arm."""
    tune = cells[(cells["phase"] == "tune") & (cells["outside"] == "")]
    keys = pd.MultiIndex.from_frame(tune[_TRIAL])
    scores: dict[tuple[str, str, int | None], tuple[int, float, int]] = {}
    if len(tune):
        rows = config_selection_scores(df[pd.MultiIndex.from_frame(df[_TRIAL]).isin(keys)], "tune")
        for r in rows.itertuples():
            p = point_of(plan, str(r.arm), r.params)
            scores.setdefault((r.task, r.arm, p), (r.n, r.selection_mean, len(scores)))
    out = []
    for task in plan.tasks:
        for arm in arms:
            done = tune[(tune["task"] == task) & (tune["arm"] == arm)]
            complete = len(done) == len(plan.points[arm]) * len(plan.tuning_seeds)
            pts = plan.points[arm]
            got = [(p, *scores.get((task, arm, p), (0, math.nan, math.inf))) for p in range(len(pts))]
            untuned = (len(pts) == 1 and not pts[0]) or not plan.tuning_seeds  # as the runner: one point
            chosen = -1 if not complete else 0 if untuned else min(got, key=lambda g: g[3])[0]
            for p, n, mean, _rank in got:
                out.append((task, arm, p, n, mean, complete, p == chosen))
    return pd.DataFrame(out, columns=["task", "arm", "point", "n", "selection_mean", "complete", "chosen"])


def _report_cells(cells: pd.DataFrame, tuning: pd.DataFrame, plan: StudyPlan) -> pd.DataFrame:
    """``cells`` with a report trial that ran another point than its arm's chosen one (or before its arm had
    one) marked ``outside``."""
    chosen = {(r.task, r.arm): int(r.point) for r in tuning[tuning["chosen"]].itertuples()}
    cells = cells.copy()
    for i, r in cells[(cells["phase"] == "report") & (cells["outside"] == "")].iterrows():
        want = chosen.get((r["task"], r["arm"]))
        if want is None:
            cells.at[i, "outside"] = "a report trial of an arm whose tune phase is incomplete"
        elif want != r["point"]:
            pts = plan.points[r["arm"]]
            cells.at[i, "outside"] = (f"ran {point_text(pts[r['point']])}, but the tune records choose "
                                      f"{point_text(pts[want])}")
    return cells


def _missing_tune(plan: StudyPlan, arm: str, done: pd.DataFrame) -> str:
    pts = plan.points[arm]
    have = {(int(p), int(s)) for p, s in zip(done["point"], done["seed"])}
    lacking = [(p, [s for s in plan.tuning_seeds if (p, s) not in have]) for p in range(len(pts))]
    lacking = [(p, s) for p, s in lacking if s]
    if len(lacking) == len(pts) and not have:
        return f"all {len(pts)} points ({seeds_phrase(plan.tuning_seeds)})"
    return "; ".join(f"{point_text(pts[p])} ({seeds_phrase(s)})" for p, s in lacking) or "-"


def _progress(cells: pd.DataFrame, tuning: pd.DataFrame, plan: StudyPlan,
              arms: tuple[str, ...]) -> pd.DataFrame:
    """Per task and arm: tune cells done and missing, the chosen point, report seeds done and missing."""
    ok = cells[cells["outside"] == ""]
    out = []
    for task in plan.tasks:
        t = tuning[tuning["task"] == task]
        for arm in arms:
            a = t[t["arm"] == arm]
            tune = ok[(ok["task"] == task) & (ok["arm"] == arm) & (ok["phase"] == "tune")]
            report = ok[(ok["task"] == task) & (ok["arm"] == arm) & (ok["phase"] == "report")]
            chosen = a[a["chosen"]]
            seeds = sorted(int(s) for s in report["seed"])
            lacking = [s for s in plan.report_seeds if s not in seeds]
            # the runner starts an arm's report cells as soon as its own tune phase is complete
            waiting = ("waits for its tune phase" if chosen.empty
                       else seeds_phrase(lacking) if lacking else "-")
            out.append((task, arm, len(tune), len(plan.points[arm]) * len(plan.tuning_seeds),
                        _missing_tune(plan, arm, tune),
                        point_text(plan.points[arm][int(chosen["point"].iloc[0])]) if len(chosen) else "",
                        len(seeds), len(plan.report_seeds), waiting, not chosen.empty and not lacking))
    return pd.DataFrame(out, columns=["task", "arm", "tune_done", "tune_cells", "tune_missing", "chosen",
                                      "report_done", "report_cells", "report_missing", "complete"])


def _arm_numbers(g: pd.DataFrame, trials: pd.DataFrame, cpu: bool) -> list[float]:
    """n, mean, std, the t-interval, optimizer updates per trial, passes per step, training seconds."""
    v = g["value"].to_numpy(dtype=float)
    lo, hi = t_interval(v)
    return [len(v), float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, lo, hi,
            mean_of(trials, "cost.optimizer_updates"),
            per_step(trials, "cost.passes.forward") + per_step(trials, "cost.passes.backward"),
            mean_of(trials, CPU if cpu else WALL)]


def compared(plan: StudyPlan, arm: str, baseline: str) -> bool:
    """Whether the page compares ``arm`` with ``baseline``: another arm, and not a baseline listed before
    ``baseline`` (``vanilla`` − ``vanilla_steps`` is ``vanilla_steps`` − ``vanilla`` negated)."""
    b = plan.baselines
    return arm != baseline and not (arm in b and b.index(arm) < b.index(baseline))


def _report(df: pd.DataFrame, cells: pd.DataFrame, progress: pd.DataFrame, plan: StudyPlan) -> pd.DataFrame:
    done = cells[(cells["phase"] == "report") & (cells["outside"] == "")]
    keys = pd.MultiIndex.from_frame(done[_TRIAL])
    sub = df[pd.MultiIndex.from_frame(df[_TRIAL]).isin(keys)]
    scores = agg.trial_scores(sub, "split") if len(sub) else sub
    scores = scores[(scores["split"] == DEV) & (scores["metric"] == SCORE)]
    trials = sub.drop_duplicates(_TRIAL)
    cols = ["task", "arm", "point", "complete", "seeds", "n", "mean", "std", "ci_low", "ci_high", "updates",
            "passes_per_step", "train_seconds", "seconds"]
    rows = []
    for task in plan.tasks:
        prog = progress[progress["task"] == task].set_index("arm")
        full = [a for a in prog.index if prog.loc[a, "complete"]]
        tt = trials[(trials["task"] == task) & trials["arm"].isin(full)]
        cpu = bool(len(tt)) and CPU in tt.columns and bool(tt[CPU].notna().all())
        for arm in prog.index:
            p = prog.loc[arm]
            numbers = [math.nan] * 8
            if p["complete"]:
                numbers = _arm_numbers(scores[(scores["task"] == task) & (scores["arm"] == arm)],
                                       tt[tt["arm"] == arm], cpu)
            seeds = seeds_text(scores[(scores["task"] == task) & (scores["arm"] == arm)]["seed"])
            rows.append([task, arm, p["chosen"], bool(p["complete"]), seeds, *numbers,
                         "cpu" if cpu else "wall"])
    out = pd.DataFrame(rows, columns=cols)
    for b in plan.baselines:
        out = _with_comparison(out, scores, plan, b)
    for b in plan.baselines:  # Holm over each task's comparisons (both baselines together)
        out[f"vs_{b}_holm_p"] = math.nan
    refs = [(i, b) for i, r in out.iterrows() for b in plan.baselines if r[f"vs_{b}_n_pairs"] > 0]
    raw = [out.at[i, f"vs_{b}_p_value"] if out.at[i, f"vs_{b}_n_pairs"] >= 2 else math.nan for i, b in refs]
    adjusted, _family = holm_within([out.at[i, "task"] for i, _b in refs], raw)
    for (i, b), a in zip(refs, adjusted):
        out.at[i, f"vs_{b}_holm_p"] = a
    return out


def _with_comparison(out: pd.DataFrame, scores: pd.DataFrame, plan: StudyPlan, b: str) -> pd.DataFrame:
    """``out`` with the paired comparison to baseline ``b`` of each complete arm, where ``b`` is complete."""
    for c in STATS[:-1]:
        out[f"vs_{b}_{c}"] = 0 if c == "n_pairs" else math.nan
    for i, r in out.iterrows():
        base = out[(out["task"] == r["task"]) & (out["arm"] == b)]
        if not (r["complete"] and len(base) and base["complete"].iloc[0] and compared(plan, r["arm"], b)):
            continue
        comp = paired_comparison(scores[scores["task"] == r["task"]], r["arm"], b, by=("task",))
        for c in STATS[:-1]:
            out.at[i, f"vs_{b}_{c}"] = comp[c].iloc[0]
    out[f"vs_{b}_n_pairs"] = out[f"vs_{b}_n_pairs"].astype(int)
    return out


def _claims(report: pd.DataFrame, progress: pd.DataFrame, plan: StudyPlan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task in plan.tasks:
        rows, lines = report[report["task"] == task], []
        family = sum(int(np.isfinite(r[f"vs_{b}_holm_p"])) for _i, r in rows.iterrows()
                     for b in plan.baselines)
        for _i, r in rows.iterrows():
            p = progress[(progress["task"] == task) & (progress["arm"] == r["arm"])].iloc[0]
            if not r["complete"]:
                lines.append(f"{task_label(task)}, {r['arm']}: {p['report_done']} of {p['report_cells']} "
                             "report seeds have records: no comparison yet.")
                continue
            for b in plan.baselines:
                if not compared(plan, r["arm"], b):
                    continue
                if r[f"vs_{b}_n_pairs"] == 0:
                    lines.append(f"{task_label(task)}, {r['arm']} − {b}: {b} has not all its report seeds "
                                 "yet: no comparison yet.")
                    continue
                d, lo, hi, n, t_p, w_p, h_p = (r[f"vs_{b}_{c}"] for c in (
                    "mean_diff", "ci_low", "ci_high", "n_pairs", "p_value", "wilcoxon_p", "holm_p"))
                what = f"{task_label(task)}, {r['arm']} − {b}"
                lines.append(claim(what, b, d, lo, hi, int(n), t_p, w_p, h_p, family))
        out[task] = lines
    return out


def summarise(df: pd.DataFrame, plan: StudyPlan) -> Benchmark:
    """The :class:`Benchmark` of the study ``plan`` from the tidy frame of its records (any statuses)."""
    cells = trial_cells(df, plan)
    used = set(cells.loc[cells["outside"] == "", "arm"])
    arms = tuple(a for a in plan.arms if a in plan.enabled or a in used)
    tuning = _tuning(df, cells, plan, arms)
    cells = _report_cells(cells, tuning, plan)
    progress = _progress(cells, tuning, plan, arms)
    report = _report(df, cells, progress, plan)
    return Benchmark(plan, arms, cells, tuning, progress, report, _claims(report, progress, plan))
