"""The tidy long-form frame every loader builds, and the builder that makes it.

One row per (trial, evaluation kind, step, split, metric)::

    experiment, trial, method, arm, task, model, seed, status, error, config, source,
    kind, step, epoch, split, metric, value, param.<name>..., run.<name>...

* ``method`` is the method the trial trained with; ``arm`` the arm it belongs to
  (:func:`analysis.identity.arm_name`: the method's named variant, ``params.arm`` or ``params.rung``, where
  the record names one, else the method). Tables, plots and comparisons have a row per arm.

* ``kind`` is ``"eval"`` (every evaluation in ``evals``), ``"best"`` (the record's best dev evaluation,
  the one the authors report) or ``"final"`` (the last one), so best and final are a filter away; ``"half"``
  and ``"telemetry"`` rows are below.
* ``split`` is ``"dev"`` for an evaluation's ``metrics`` (the dev split model selection uses; for MNLI
  its two metrics come from the matched and mismatched dev sets) and the split's own name for the extra
  sets in ``splits`` (``test_r1``, ``adv_validation``, ``adv_validation_matched``...).
* ``config`` is the configuration as canonical JSON: the trial's hyperparameters without ``seed`` plus
  the run settings that change results (the record's ``run`` object, under ``"run"``) where the record
  has them, so seeds of one configuration share it and a smoke run never pools with a full run.
* ``run.<name>`` columns hold those run settings; ``param.<name>`` the hyperparameters; ``cost.<name>`` the
  record's cost block, flattened (``cost.passes.forward``, ``cost.wall_seconds.train``,
  ``cost.optimizer_steps``, ``cost.optimizer_updates``, ``cost.diagnostic_passes.forward``), with what an
  older record lacks derived from its parameters (:func:`mat.spec.cost.derive_cost`) and named in
  ``cost.derived`` (comma-separated); ``code.git_sha`` and ``code.<package>`` the commit and package versions
  (``code.torch``...) the record names, ``code.git_dirty`` and ``code.git_diff_sha`` whether its tracked
  files had uncommitted changes, and their hash.
* ``kind == "telemetry"`` rows (split ``"train"``) hold an evaluation's ``telemetry``: the mean of a training
  statistic (``metric``: ``loss``, ``delta_own_kl``...) over the steps before that evaluation (``step``).
* A record that kept its dev predictions (:mod:`mat.spec.records`) has, per evaluation, ``kind == "half"``
  rows on the splits ``"dev.selection"`` and ``"dev.report"``: the task's metrics on the two fixed halves of
  the dev set (:mod:`analysis.halves`), which ``--selection split`` chooses and reports on.
* Failed, running and interrupted trials are kept with their ``status`` and ``error``; a trial with no
  evaluation is one row whose ``kind``, ``metric`` and ``value`` are missing.

``(experiment, trial)`` names one trial (:mod:`analysis.identity` makes it so: copies of one trial are
kept once, repeats of one configuration and seed are counted once, and local trials that share a trial
id, as in ``runs/<method>/seed<k>/``, are told apart by their folder). The inputs skipped as
``(path, reason)`` and the repeats set aside come beside the frame (:class:`Loaded`), never in
``df.attrs``: pandas deep-copies ``attrs`` into every frame derived from one (each column access, each
filter), which made a 10,000-record report spend most of its time copying those lists.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis import identity
from analysis.halves import HALF, check_predictions, half_metrics, has_predictions
from mat.spec.cost import derive_cost
from mat.spec.records import EvalResult, RecordError, TrialRecord, record_from_dict
from mat.spec.tasks import get_task, task_score

DEV = "dev"
TELEMETRY = "telemetry"  # the kind of the rows holding an evaluation's mean training statistics
TRAIN = "train"  # their split
SCORE = "score"  # the metric name of a split's score row (analysis.aggregate.trial_scores)
COLUMNS = (
    "experiment", "trial", "method", "arm", "task", "model", "seed", "status", "error", "config", "source",
    "kind", "step", "epoch", "split", "metric", "value",
)
TRIAL_COLUMNS = COLUMNS[:11]
# What a loader gives per trial (:meth:`Builder.add_trial`): the trial columns but ``arm``, which the builder
# derives from the method and the parameters.
INFO_COLUMNS = tuple(c for c in TRIAL_COLUMNS if c != "arm")
LOCAL_EXPERIMENT = identity.LOCAL_EXPERIMENT
UNKNOWN = "unknown"
SEED_KEYS = ("seed",)
# The run settings that change a trial's result, as the trial record's ``run`` object holds them (not
# searched; flags of the trial command). A record's whole ``run`` object enters the configuration; these keys
# are read from the trial command of an NNI trial that left no record and has no sibling record to take them
# from.
RUN_KEYS = ("max_train_samples", "max_eval_samples", "max_length", "max_steps", "eval_times", "eval_splits",
            "train_mix")


@dataclass(frozen=True)
class Loaded:
    """A tidy frame and what loading it set aside.

    Attributes:
        frame: the tidy frame (module docstring).
        skipped: ``(path, reason)`` of every input skipped (unreadable, invalid, an extra copy of a trial).
        repeats: the trials set aside as repeats of a configuration and seed
            (:data:`analysis.identity.REPEAT_FIELDS` columns).
    """

    frame: pd.DataFrame
    skipped: list[tuple[str, str]]
    repeats: pd.DataFrame


class AnalysisWarning(UserWarning):
    """An input that was skipped, repaired or set aside while loading or scoring; the message names the
    file."""


def _canonical(v: Any) -> Any:
    """Numbers as floats (NNI stores ``3`` where the record has ``3.0``), so equal settings share a key."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return v


def config_key(params: Mapping[str, Any], run: Mapping[str, Any] | None = None) -> str:
    """Canonical JSON of ``params`` without the seed, plus the run settings ``run`` (under ``"run"``)
    when given: the identity of a configuration over seeds."""
    items: dict[str, Any] = {k: _canonical(params[k]) for k in sorted(params) if k not in SEED_KEYS}
    if run:
        items["run"] = {k: _canonical(run[k]) for k in sorted(run)}
    return json.dumps(items, sort_keys=True, default=str)


def flat_cost(cost: Mapping[str, Any], prefix: str = "") -> dict[str, float | str]:
    """The record's ``cost`` block flattened to ``{"passes.forward": 7.0, "wall_seconds.train": 12.3, ...}``
    (numbers only, and ``derived``, the keys :func:`mat.spec.cost.derive_cost` filled in, comma-separated)."""
    out: dict[str, float | str] = {}
    for k, v in cost.items():
        if isinstance(v, Mapping):
            out.update(flat_cost(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
        elif k == "derived" and isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = ",".join(str(x) for x in v)
    return out


def run_settings(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :data:`RUN_KEYS` found in ``values`` (trial-command flags); numbers written as text are read as
    numbers."""
    out: dict[str, Any] = {}
    for k in RUN_KEYS:
        if values and k in values:
            v = values[k]
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    pass
            out[k] = v
    return out


def check_record(record: TrialRecord) -> str | None:
    """Why a parsed record cannot be used, or None.

    Refused: an unknown task; a metric (dev or extra split) the task does not have (``mat.spec.metrics`` names
    every split's metrics with the task's keys); dev predictions that do not match the dev labels
    (:func:`analysis.halves.check_predictions`); a dev evaluation missing one of the task's metrics or
    holding a NaN (``mat.spec.tasks.task_score`` refuses to score it; the reason names the metric); a NaN in
    an extra split.
    """
    try:
        spec = get_task(record.task)
    except KeyError as e:
        return str(e.args[0])
    named = [(f"evals[{i}]", ev) for i, ev in enumerate(record.evals)]
    named += [(k, ev) for k, ev in (("best", record.best), ("final", record.final)) if ev is not None]
    names = {m for _w, ev in named for m in ev.metrics}
    names |= {m for _w, ev in named for split in ev.splits.values() for m in split}
    extra = sorted(names - set(spec.metrics))
    if extra:
        return f"metric(s) {extra} are not metrics of task {spec.name!r} {list(spec.metrics)}"
    bad = check_predictions(record)
    if bad:
        return bad
    wanted = set(spec.metrics)
    for where, ev in named:
        if set(ev.metrics) != wanted or not all(math.isfinite(v) for v in ev.metrics.values()):
            try:
                task_score(spec, ev.metrics)
            except ValueError as e:
                return f"{where}: {e}"
        for split, metrics in ev.splits.items():
            nan = sorted(m for m, v in metrics.items() if not math.isfinite(v))
            if nan:
                return f"{where}: metric(s) {nan} of split {split!r} are NaN or missing values"
    return None


@dataclass
class Builder:
    """Collects trials and evaluation rows as plain lists; :meth:`frame` makes one DataFrame.

    Each added trial carries, besides its :data:`INFO_COLUMNS`, its parameters, run settings, the time
    its source was written (seconds since the epoch: ``newest`` wins among copies) and its folder (to
    tell local trials apart).
    """

    trials: list[tuple[Any, ...]] = field(default_factory=list)
    params: list[Mapping[str, Any]] = field(default_factory=list)
    runs: list[Mapping[str, Any]] = field(default_factory=list)
    costs: list[Mapping[str, Any]] = field(default_factory=list)
    codes: list[Mapping[str, Any]] = field(default_factory=list)
    meta: list[tuple[float, str]] = field(default_factory=list)
    # (trial index, kind, step, epoch, split, metric, value)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str | os.PathLike[str], reason: str) -> None:
        """List ``path`` as skipped and warn (:class:`AnalysisWarning`) naming it."""
        self.skipped.append((str(path), reason))
        warnings.warn(f"skipped {path}: {reason}", AnalysisWarning, stacklevel=3)

    def add_trial(self, info: Sequence[Any], params: Mapping[str, Any], run: Mapping[str, Any] | None = None,
                  written: float = math.nan, folder: str = "", cost: Mapping[str, Any] | None = None,
                  code: Mapping[str, Any] | None = None) -> int:
        """Add one trial (``info`` = the :data:`INFO_COLUMNS` values; ``code``: its commit and package
        versions, ``{"git_sha": ..., "torch": ...}``); return its index."""
        self.trials.append(tuple(info))
        self.params.append(params)
        self.runs.append(run or {})
        self.costs.append(flat_cost(cost or {}))
        self.codes.append({k: v for k, v in (code or {}).items() if v is not None})
        self.meta.append((written, folder))
        return len(self.trials) - 1

    def add(self, trial: int, kind: str | None, step: float, epoch: float, split: str | None,
            metric: str | None, value: float) -> None:
        """Add one evaluation row of trial ``trial``."""
        self.rows.append((trial, kind, step, epoch, split, metric, value))

    def add_eval(self, trial: int, kind: str, ev: EvalResult) -> None:
        """Add an evaluation's dev metrics and extra splits as rows of ``kind``."""
        step, epoch = ev.step, ev.epoch
        self.rows.extend([(trial, kind, step, epoch, DEV, m, v) for m, v in ev.metrics.items()])
        for split, metrics in ev.splits.items():
            self.rows.extend([(trial, kind, step, epoch, split, m, v) for m, v in metrics.items()])

    def close_trial(self, trial: int, n_before: int) -> None:
        """Give a trial that got no evaluation row its one placeholder row."""
        if len(self.rows) == n_before:
            self.add(trial, None, math.nan, math.nan, None, None, math.nan)

    def add_record(self, rec: TrialRecord, source: str, run: Mapping[str, Any], written: float,
                   status: str | None = None, error: str | None = None,
                   experiment: str | None = None) -> None:
        """Add a checked record (:func:`check_record`) with all its evaluations."""
        info = (
            experiment or rec.experiment_id or LOCAL_EXPERIMENT, rec.trial_id, rec.method,
            get_task(rec.task).name,
            rec.model, rec.seed, status or rec.status, error if error is not None else rec.error,
            config_key(rec.params, run), source,
        )
        n = len(self.rows)
        cost = derive_cost(rec.cost, rec.method, rec.params, {k for ev in rec.evals for k in ev.telemetry})
        t = self.add_trial(info, rec.params, run, written, str(Path(source).parent), cost,
                           {"git_sha": rec.git_sha, "git_dirty": rec.git_dirty,
                            "git_diff_sha": rec.git_diff_sha, **rec.versions})
        for ev in rec.evals:
            self.add_eval(t, "eval", ev)
            self.rows.extend([(t, TELEMETRY, ev.step, ev.epoch, TRAIN, k,
                v) for k, v in ev.telemetry.items()])
        if has_predictions(rec):
            for step, epoch, half, metrics in half_metrics(rec):
                self.rows.extend([(t, HALF, step, epoch, half, m, v) for m, v in metrics.items()])
        for kind, chosen in (("best", rec.best), ("final", rec.final)):
            if chosen is not None:
                self.add_eval(t, kind, chosen)
        self.close_trial(t, n)

    def read_json(self, path: Path) -> tuple[Any, float] | None:
        """Parse ``path``: ``(parsed JSON, mtime)``, or None after :meth:`skip` (unreadable, not JSON)."""
        try:
            with open(path, "rb") as f:
                text, written = f.read().decode("utf-8"), os.fstat(f.fileno()).st_mtime
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            self.skip(path, f"not a readable JSON trial record ({type(e).__name__}: {e})")
            return None
        return data, written

    def check_json(self, data: Any, path: Path) -> tuple[TrialRecord, dict[str, Any]] | None:
        """The record parsed from ``path`` as ``data``, checked: ``(record, run settings)``, or None after
        :meth:`skip`. Its run settings are the record's ``run`` object (empty in records written before it
        existed)."""
        try:
            rec = record_from_dict(data, str(path))
        except RecordError as e:
            self.skip(path, str(e).removeprefix(f"{path}: "))
            return None
        reason = check_record(rec)
        if reason:
            self.skip(path, reason)
            return None
        run = getattr(rec, "run", None) or (data.get("run") if isinstance(data, dict) else None)
        return rec, dict(run) if isinstance(run, Mapping) else {}

    def read_record(self, path: Path) -> tuple[TrialRecord, dict[str, Any], float] | None:
        """Read and check ``path``: ``(record, run settings, mtime)``, or None after :meth:`skip`
        (:meth:`read_json`, then :meth:`check_json`)."""
        read = self.read_json(path)
        checked = self.check_json(read[0], path) if read is not None else None
        return (*checked, read[1]) if read is not None and checked is not None else None

    def _trial_frame(self) -> pd.DataFrame:
        trials = pd.DataFrame(self.trials, columns=list(INFO_COLUMNS))
        trials.insert(3, "arm", [identity.arm_name(str(m), p) for m, p in zip(trials["method"], self.params)])
        params = pd.DataFrame.from_records(list(self.params), index=range(len(self.params)))
        params.columns = [f"param.{c}" for c in params.columns]
        runs = pd.DataFrame.from_records(list(self.runs), index=range(len(self.runs)))
        runs.columns = [f"run.{c}" for c in runs.columns]
        costs = pd.DataFrame.from_records(list(self.costs), index=range(len(self.costs)))
        costs.columns = [f"cost.{c}" for c in costs.columns]
        codes = pd.DataFrame.from_records(list(self.codes), index=range(len(self.codes)))
        codes.columns = [f"code.{c}" for c in codes.columns]
        meta = pd.DataFrame(self.meta, columns=["written", "folder"], index=range(len(self.meta)))
        return pd.concat([trials, params, runs, costs, codes, meta], axis=1)

    def frame(self) -> pd.DataFrame:
        """The tidy frame alone (:meth:`loaded` has what was set aside beside it)."""
        return self.loaded().frame

    def loaded(self) -> Loaded:
        """The tidy frame, trial identities resolved (:func:`analysis.identity.resolve`), rows expanded, with
        the skipped inputs and the repeats beside it."""
        trials = self._trial_frame()
        res = identity.resolve(trials)
        for path, reason in res.duplicates:
            self.skip(path, reason)
        for r in res.repeats:
            warnings.warn(r.message(), AnalysisWarning, stacklevel=2)
        cols: list[Sequence[Any]] = list(zip(*self.rows)) if self.rows else [()] * 7
        idx = np.asarray(cols[0], dtype=np.int64)
        keep = res.keep[idx] if len(idx) else np.zeros(0, dtype=bool)
        trials["trial"] = res.labels
        trials = trials.drop(columns=["written", "folder"])
        # Text columns as NumPy objects, not pandas' Arrow-backed ``str``: every row repeats its trial's text,
        # and each filter of the frame takes rows from every column, which Arrow does several times slower.
        text = [c for c, t in trials.dtypes.items() if isinstance(t, pd.StringDtype)]
        trials = trials.astype({c: object for c in text}) if text else trials
        df = trials.iloc[idx[keep]].reset_index(drop=True)
        evals = pd.DataFrame({
            "kind": pd.Series(np.asarray(cols[1], dtype=object)[keep], dtype=object),
            "step": np.asarray(cols[2], dtype=float)[keep],
            "epoch": np.asarray(cols[3], dtype=float)[keep],
            "split": pd.Series(np.asarray(cols[4], dtype=object)[keep], dtype=object),
            "metric": pd.Series(np.asarray(cols[5], dtype=object)[keep], dtype=object),
            "value": np.asarray(cols[6], dtype=float)[keep],
        })
        df = pd.concat([df, evals], axis=1)
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
        extra = [c for c in df.columns if c.startswith(("param.", "run.", "cost.", "code."))]
        df = df[list(COLUMNS) + extra]
        repeats = pd.DataFrame([r.as_tuple() for r in res.repeats], columns=list(identity.REPEAT_FIELDS))
        return Loaded(df, list(self.skipped), repeats)
