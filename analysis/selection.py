"""Which evaluation of a trial is scored, and which configuration of an arm: the three selection rules.

A trial evaluates on the dev set several times (12 in the component study). Its score is one of them:

* ``best``: the record's best evaluation (the highest dev score), the MAT authors' rule. It is chosen on the
  same dev set it is reported on, so it is the maximum of several noisy numbers and reads high: by more the
  more evaluations and the noisier each one (the component study measured +0.8 to +1.5 points on CoLA, +0.05
  to +0.19 on STS-B). Two arms compared under ``best`` are both inflated, not necessarily equally.
* ``last``: the final evaluation (``final`` is accepted for it). No choice, so no selection bias; but the
  score of wherever the schedule stopped, noisier than a choice among several and blind to a run that peaked
  early.
* ``split``: the dev set in two fixed halves (:mod:`analysis.halves`): the evaluation is chosen on the
  selection half and the score reported is the report half's, which the choice never saw. Unbiased for the
  chosen evaluation, at the price of half the examples in each score (a wider spread per trial). It needs the
  per-evaluation predictions records keep (:mod:`mat.spec.records`); records without them are refused by name.

Across a search, the configuration of an arm is chosen the same way: under ``split`` on the mean over seeds of
the selection-half scores, reported on the report half (:func:`analysis.aggregate.choose_configs`);
:func:`choose_arm_configs` does this for a study runner's tune phase. Pure DataFrame functions on the tidy
frame (:mod:`analysis.tidy`); no torch.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.halves import HALF, REPORT, SELECTION
from analysis.tidy import DEV

SELECTIONS = ("best", "last", "split")
ALIASES = {"final": "last"}
KIND = {"best": "best", "last": "final"}  # the tidy frame's kind of each record-chosen evaluation
_TRIAL = ["experiment", "trial"]
MAX_NAMED = 5


def check_selection(selection: str) -> str:
    """The canonical name of ``selection`` (``final`` -> ``last``).

    Raises:
        ValueError: not one of :data:`SELECTIONS` (the message lists them).
    """
    name = ALIASES.get(selection, selection)
    if name not in SELECTIONS:
        raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}")
    return name


def _per_step(rows: pd.DataFrame, split: str) -> pd.DataFrame:
    """The mean of each (trial, step)'s metrics on ``split`` (a task score: the mean of its metrics)."""
    part = rows[(rows["split"] == split) & (rows["metric"] != "default")]
    return part.groupby(_TRIAL + ["step"], sort=True)["value"].mean().reset_index()


def _first_best(per_step: pd.DataFrame) -> pd.DataFrame:
    """Per trial, the step with the highest ``value`` (the earliest on ties)."""
    ordered = per_step.sort_values(_TRIAL + ["value", "step"], ascending=[True, True, False, True])
    return ordered.groupby(_TRIAL, sort=False).head(1)


def fallback_rows(evals: pd.DataFrame, selection: str) -> pd.DataFrame:
    """For trials without a ``best``/``final`` entry (an NNI trial without a record): the eval step with the
    highest dev score (earliest on ties) for ``best``, the last eval step for ``last``; its rows."""
    per_step = _per_step(evals, DEV)
    if per_step.empty:
        return evals.iloc[0:0]
    if check_selection(selection) == "best":
        chosen = _first_best(per_step)
    else:
        chosen = per_step.sort_values(_TRIAL + ["step"]).groupby(_TRIAL, sort=False).tail(1)
    return evals.merge(chosen[_TRIAL + ["step"]], on=_TRIAL + ["step"], how="inner")


def split_choice(df: pd.DataFrame) -> pd.DataFrame:
    """Per trial, the evaluation chosen on the selection half and its two half scores.

    Args:
        df: tidy-frame rows (its ``kind == "half"`` rows, on the :data:`~analysis.halves.SELECTION` and
            :data:`~analysis.halves.REPORT` splits, are used).

    Returns:
        ``experiment, trial, step, selection_score, report_score``: the step whose selection-half score is the
        highest (the earliest on ties), that score and the report half's at the same step.
    """
    ev = df[df["kind"] == HALF]
    chosen = _first_best(_per_step(ev, SELECTION)).rename(columns={"value": "selection_score"})
    report = _per_step(ev, REPORT).rename(columns={"value": "report_score"})
    return chosen.merge(report, on=_TRIAL + ["step"], how="left").reset_index(drop=True)


def without_predictions(df: pd.DataFrame) -> list[str]:
    """The sources of the trials in ``df`` that have evaluations but no dev predictions to split on."""
    ev = df[(df["kind"] == "eval") & df["metric"].notna()]
    have = df[(df["kind"] == HALF) & (df["split"] == SELECTION)][_TRIAL].drop_duplicates()
    keys = pd.MultiIndex.from_frame(ev[_TRIAL])
    lacking = ev[~keys.isin(pd.MultiIndex.from_frame(have))]
    return sorted(set(lacking["source"].astype(str)))


def split_rows(d: pd.DataFrame) -> pd.DataFrame:
    """The rows ``split`` selection reports: per trial the evaluation chosen on the selection half, its
    report-half metrics as the ``dev`` split, its selection-half metrics (kept on their split, to choose
    configurations on) and its extra splits (AdvGLUE, ANLI test) at that step.

    Raises:
        ValueError: a trial has no dev predictions (records written before they were kept, NNI trials without
            a record); the message names them and the rules that work without predictions.
    """
    lacking = without_predictions(d)
    if lacking:
        more = len(lacking) - MAX_NAMED
        named = ", ".join(lacking[:MAX_NAMED]) + (f" and {more} more" if more > 0 else "")
        raise ValueError(f"--selection split needs each trial's dev predictions, which {len(lacking)} "
                         "record(s) do not keep (written before records kept them, or NNI trials without a "
                         f"record): {named}; score them with --selection best or --selection last")
    chosen = split_choice(d)[_TRIAL + ["step"]]
    evals = d[((d["kind"] == "eval") & (d["split"] != DEV)) | (d["kind"] == HALF)]  # extra splits, halves
    rows = evals.merge(chosen, on=_TRIAL + ["step"], how="inner")
    rows.loc[rows["split"] == REPORT, "split"] = DEV
    return rows.assign(kind="split").reset_index(drop=True)


def selected_rows(d: pd.DataFrame, selection: str, keep: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of each trial's selected evaluation (``d``: tidy-frame rows with a metric, or those where
    ``keep`` is true: one filter of the large frame instead of several).

    ``best``/``last``: the record's ``best``/``final`` entry, else :func:`fallback_rows`; ``split``:
    :func:`split_rows`.

    Raises:
        ValueError: unknown selection; ``split`` and a trial without dev predictions.
    """
    selection = check_selection(selection)
    keep = np.ones(len(d), dtype=bool) if keep is None else keep
    kind = d["kind"].to_numpy(dtype=object)
    if selection == "split":
        return split_rows(d[keep & ((kind == "eval") | (kind == HALF))])
    chosen = keep & (kind == KIND[selection])
    picked = d[chosen]
    have = pd.MultiIndex.from_frame(picked[_TRIAL].drop_duplicates())
    evals = keep & (kind == "eval")
    rest = d.iloc[0:0]
    if evals.any():
        rest = d[evals][~pd.MultiIndex.from_frame(d.loc[evals, _TRIAL]).isin(have)]
    if not rest.empty:
        picked = pd.concat([picked, fallback_rows(rest, selection)], ignore_index=True)
    return picked


def config_selection_scores(df: pd.DataFrame, phase: str | None = "tune",
                            by: Sequence[str] = ("task", "arm", "model")) -> pd.DataFrame:
    """Every configuration's mean selection-half score over its seeds, each trial at the evaluation the
    selection half picks (:func:`split_choice`), best first within each ``by`` group.

    Args:
        df, phase, by: as in :func:`choose_arm_configs`.

    Returns:
        ``by`` + ``config, n, selection_mean, params`` (``params``: the configuration's parameters, a dict
        without ``seed`` and ``phase``), sorted by ``by``, then ``selection_mean`` descending, more seeds,
        the configuration text: the first row of a group is the one :func:`choose_arm_configs` chooses.

    Raises:
        ValueError: no trial of ``phase``, or one without dev predictions (named).
    """
    d = df[(df["status"] == "SUCCEEDED") & df["metric"].notna()]
    if phase is not None:
        d = d[d["param.phase"] == phase] if "param.phase" in d.columns else d.iloc[0:0]
    if d.empty:
        raise ValueError(f"no finished trial with params.phase = {phase!r} to choose configurations on")
    split_rows(d)  # refuses trials without predictions, by name
    per_trial = split_choice(d).merge(d.drop_duplicates(_TRIAL), on=_TRIAL)
    keys = list(by) + ["config"]
    g = per_trial.groupby(keys, sort=True)["selection_score"].agg(["count", "mean"]).reset_index()
    g = g.rename(columns={"count": "n", "mean": "selection_mean"})
    g = g.sort_values(list(by) + ["selection_mean", "n", "config"],
                      ascending=[True] * len(by) + [False, False, True]).reset_index(drop=True)
    params = per_trial.drop_duplicates(keys).set_index(keys)
    g["params"] = [_params(params.loc[tuple(k)]) for k in g[keys].itertuples(index=False)]
    return g


def choose_arm_configs(df: pd.DataFrame, phase: str | None = "tune",
                       by: Sequence[str] = ("task", "arm", "model")) -> pd.DataFrame:
    """Each arm's configuration chosen on the selection half of its tune records, for a study runner.

    Per trial the evaluation is chosen on the selection half (:func:`split_choice`); per ``by`` group the
    configuration with the highest mean selection-half score over its seeds (ties: more seeds, then the
    configuration text) is chosen (:func:`config_selection_scores`, the first of its group). The report half
    is not looked at: the report phase's trials, run on other seeds, give the numbers.

    Args:
        df: the tidy frame of the study's records (SUCCEEDED trials count).
        phase: keep the trials whose ``params.phase`` is this (None: all trials).
        by: the groups a configuration is chosen in.

    Returns:
        ``by`` + ``config, n, selection_mean, n_configs, params``: ``params`` is the chosen configuration's
        parameters (a dict, without ``seed`` and ``phase``), as its trials' records hold them.

    Raises:
        ValueError: no trial of ``phase``, or one without dev predictions (named).
    """
    g = config_selection_scores(df, phase, by)
    best = g.groupby(list(by), sort=True).head(1).reset_index(drop=True)
    best = best.merge(g.groupby(list(by))["config"].nunique().rename("n_configs").reset_index(), on=list(by))
    return best[list(by) + ["config", "n", "selection_mean", "n_configs", "params"]]


def _params(row: pd.Series) -> dict[str, object]:
    """A trial's parameters from its ``param.*`` columns, without seed and phase (missing ones left out)."""
    out: dict[str, object] = {}
    for col, value in row.items():
        name = str(col)
        if name.startswith("param.") and name not in ("param.seed", "param.phase") and not _missing(value):
            out[name.removeprefix("param.")] = value.item() if hasattr(value, "item") else value
    return json.loads(json.dumps(out, default=str))


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
