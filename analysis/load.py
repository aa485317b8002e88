"""Load trial records and NNI experiments into one tidy long-form DataFrame.

One row per (trial, evaluation kind, step, split, metric)::

    experiment, trial, method, task, model, seed, status, error, config, source,
    kind, step, epoch, split, metric, value, param.<name>...

* ``kind`` is ``"eval"`` (every evaluation in ``evals``), ``"best"`` (the record's best dev evaluation,
  the one the authors report) or ``"final"`` (the last one), so best and final are a filter away.
* ``split`` is ``"dev"`` for an evaluation's ``metrics`` (the dev split model selection uses; for MNLI
  its two metrics come from the matched and mismatched dev sets) and the split's own name for the extra
  sets in ``splits`` (``test_r1``, ``adv_validation``, ``adv_validation_matched``...).
* ``config`` is the trial's hyperparameters without ``seed`` as canonical JSON: trials that differ only
  in their seed share it.
* Failed, running and interrupted trials are kept with their ``status`` and ``error``; a trial with no
  evaluation is one row whose ``kind``, ``metric`` and ``value`` are missing.

Bad input never stops a load: a corrupt or truncated ``trial.json``, an unknown schema version, an
unknown task or a metric the task does not have is skipped with an :class:`AnalysisWarning` naming the
file, and listed in ``df.attrs["skipped"]`` as ``(path, reason)`` pairs.

NNI experiments are read from NNI's own store, ``<nni_dir>/<id>/db/nni.sqlite``, opened read-only. Each
trial's record (``environments/<env>/trials/<trial>/trial.json``, where ``NNI_OUTPUT_DIR`` points) is
preferred where present; otherwise its metrics come from the ``MetricData`` table and its parameters from
the parameter record whose ``parameter_id`` equals the metrics' ``parameterId``, never from trial order or
from the trial's own ``TrialJobEvent``, which NNI 3.0 can fill with another trial's parameters
(microsoft/nni#5726, #5693; the recorded fixture under ``tests/fixtures/analysis/nni`` shows it).

A stopped experiment (``nnictl stop``: its latest ``ExperimentProfile`` has an ``endTime``) leaves the
trials that were running with ``RUNNING`` as their last event in NNI's store: NNI records no end for them.
They are reported INTERRUPTED, never RUNNING and never finished. ``nnictl resume`` re-runs each of them
under the same trial id, so a resumed trial is one trial (one row set), whose record and status are those of
its latest run (docs/resume.md).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sqlite3
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd

from mat.records import RECORD_FILE, EvalResult, RecordError, TrialRecord, read_record
from mat.tasks import get_task

DEV = "dev"
KINDS = ("eval", "best", "final")
STATUSES = ("SUCCEEDED", "RUNNING", "FAILED", "INTERRUPTED")
COLUMNS = (
    "experiment", "trial", "method", "task", "model", "seed", "status", "error", "config", "source",
    "kind", "step", "epoch", "split", "metric", "value",
)
TRIAL_COLUMNS = COLUMNS[:10]
LOCAL_EXPERIMENT = "local"
UNKNOWN = "unknown"
SEED_KEYS = ("seed",)
# NNI trial-job statuses -> record statuses (a cancelled or early-stopped trial is interrupted).
NNI_STATUS = {
    "WAITING": "RUNNING", "RUNNING": "RUNNING", "UNKNOWN": "RUNNING", "SUCCEEDED": "SUCCEEDED",
    "FAILED": "FAILED", "USER_CANCELED": "INTERRUPTED", "SYS_CANCELED": "INTERRUPTED",
    "EARLY_STOPPED": "INTERRUPTED",
}


class AnalysisWarning(UserWarning):
    """An input that was skipped or repaired while loading; the message names the file."""


def default_nni_dir() -> Path:
    """NNI's default experiment folder, ``~/nni-experiments``."""
    return Path.home() / "nni-experiments"


def _canonical(v: Any) -> Any:
    """Numbers as floats (NNI stores ``3`` where the record has ``3.0``), so equal settings share a key."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return v


def config_key(params: Mapping[str, Any]) -> str:
    """Canonical JSON of ``params`` without the seed: the identity of a configuration over seeds."""
    items = {k: _canonical(params[k]) for k in sorted(params) if k not in SEED_KEYS}
    return json.dumps(items, sort_keys=True, default=str)


@dataclass
class _Builder:
    """Collects trials and evaluation rows as plain lists; :meth:`frame` makes one DataFrame."""

    trials: list[tuple[Any, ...]] = field(default_factory=list)
    params: list[Mapping[str, Any]] = field(default_factory=list)
    # (trial index, kind, step, epoch, split, metric, value)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str | os.PathLike[str], reason: str) -> None:
        self.skipped.append((str(path), reason))
        warnings.warn(f"skipped {path}: {reason}", AnalysisWarning, stacklevel=3)

    def add_trial(self, info: Sequence[Any], params: Mapping[str, Any]) -> int:
        self.trials.append(tuple(info))
        self.params.append(params)
        return len(self.trials) - 1

    def add(self, trial: int, kind: str | None, step: float, epoch: float, split: str | None,
            metric: str | None, value: float) -> None:
        self.rows.append((trial, kind, step, epoch, split, metric, value))

    def add_eval(self, trial: int, kind: str, ev: EvalResult) -> None:
        step, epoch = ev.step, ev.epoch
        self.rows.extend([(trial, kind, step, epoch, DEV, m, v) for m, v in ev.metrics.items()])
        for split, metrics in ev.splits.items():
            self.rows.extend([(trial, kind, step, epoch, split, m, v) for m, v in metrics.items()])

    def close_trial(self, trial: int, n_before: int) -> None:
        """Give a trial that got no evaluation row its one placeholder row."""
        if len(self.rows) == n_before:
            self.add(trial, None, math.nan, math.nan, None, None, math.nan)

    def frame(self) -> pd.DataFrame:
        trials = pd.DataFrame(self.trials, columns=list(TRIAL_COLUMNS))
        params = pd.DataFrame.from_records(list(self.params), index=range(len(self.params)))
        params.columns = [f"param.{c}" for c in params.columns]
        trials = pd.concat([trials, params], axis=1)
        cols: list[Sequence[Any]] = list(zip(*self.rows)) if self.rows else [()] * 7
        df = trials.iloc[np.asarray(cols[0], dtype=np.int64)].reset_index(drop=True)
        evals = pd.DataFrame({
            "kind": pd.array(cols[1], dtype=object),
            "step": np.asarray(cols[2], dtype=float),
            "epoch": np.asarray(cols[3], dtype=float),
            "split": pd.array(cols[4], dtype=object),
            "metric": pd.array(cols[5], dtype=object),
            "value": np.asarray(cols[6], dtype=float),
        })
        df = pd.concat([df, evals], axis=1)
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
        df = df[list(COLUMNS) + [c for c in df.columns if c.startswith("param.")]]
        df.attrs["skipped"] = list(self.skipped)
        return df


def check_record(record: TrialRecord) -> str | None:
    """Why a parsed record cannot be used, or None: an unknown task, or a metric (dev or extra split) that
    the task does not have (``mat.metrics`` names every split's metrics with the task's metric keys)."""
    try:
        spec = get_task(record.task)
    except KeyError as e:
        return str(e.args[0])
    evals = [*record.evals, *(e for e in (record.best, record.final) if e is not None)]
    names = {m for ev in evals for m in ev.metrics}
    names |= {m for ev in evals for split in ev.splits.values() for m in split}
    extra = sorted(names - set(spec.metrics))
    if extra:
        return f"metric(s) {extra} are not metrics of task {spec.name!r} {list(spec.metrics)}"
    return None


def _record_info(rec: TrialRecord, source: str, status: str | None = None,
                 error: str | None = None, experiment: str | None = None) -> tuple[Any, ...]:
    return (
        experiment or rec.experiment_id or LOCAL_EXPERIMENT, rec.trial_id, rec.method, get_task(rec.task).name,
        rec.model, rec.seed, status or rec.status, error if error is not None else rec.error,
        config_key(rec.params), source,
    )


def _add_record(b: _Builder, rec: TrialRecord, info: Sequence[Any]) -> None:
    n = len(b.rows)
    t = b.add_trial(info, rec.params)
    for ev in rec.evals:
        b.add_eval(t, "eval", ev)
    for kind, ev in (("best", rec.best), ("final", rec.final)):
        if ev is not None:
            b.add_eval(t, kind, ev)
    b.close_trial(t, n)


def _read_checked(b: _Builder, path: Path) -> TrialRecord | None:
    try:
        rec = read_record(path)
    except RecordError as e:
        b.skip(path, str(e).removeprefix(f"{path}: "))
        return None
    reason = check_record(rec)
    if reason:
        b.skip(path, reason)
        return None
    return rec


def find_record_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every ``trial.json`` under ``root`` (or ``root`` itself if it is a file), sorted.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"no such records file or folder: {root}")
    found = [os.path.join(d, RECORD_FILE) for d, _dirs, files in os.walk(root) if RECORD_FILE in files]
    return [Path(p) for p in sorted(found)]


def load_records(roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Load every ``trial.json`` under one or more folders into the tidy frame (module docstring).

    Args:
        roots: folders searched recursively, or record files.

    Returns:
        The tidy frame; ``attrs["skipped"]`` lists ``(path, reason)`` for each file that was skipped.

    Raises:
        FileNotFoundError: a root does not exist.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    b = _Builder()
    for root in roots:
        for path in find_record_files(root):
            rec = _read_checked(b, path)
            if rec is not None:
                _add_record(b, rec, _record_info(rec, str(path)))
    return b.frame()


# ----------------------------------------------------------------------------------------------- NNI


@dataclass(frozen=True)
class NniStore:
    """The three tables of an NNI 3.0 ``db/nni.sqlite``, as read (see ``docs/analysis.md``).

    Attributes:
        profile: the ``params`` JSON of the latest ``ExperimentProfile`` revision (the experiment config).
        events: ``TrialJobEvent`` rows (timestamp, trialJobId, event, data, logPath, sequenceId, message,
            environmentId) in insertion order.
        metrics: ``MetricData`` rows (timestamp, trialJobId, parameterId, type, sequence, data).
        end_time: the latest revision's ``endTime`` (ms since the epoch): set once the experiment is DONE
            or STOPPED, unset while it runs (``nnictl resume`` clears it); None when unset.
    """

    path: Path
    profile: dict[str, Any]
    events: pd.DataFrame
    metrics: pd.DataFrame
    end_time: int | None = None

    @property
    def ended(self) -> bool:
        """The experiment is over (DONE or stopped): none of its trials can still be running."""
        return self.end_time is not None


def read_nni_store(db_path: str | os.PathLike[str]) -> NniStore:
    """Read an NNI ``nni.sqlite`` read-only (sqlite URI ``mode=ro``: a running experiment is not disturbed).

    Raises:
        FileNotFoundError: no such file.
        sqlite3.DatabaseError: not an NNI database.
    """
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"no NNI database at {path}")
    con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    try:
        prof = con.execute("SELECT params, endTime FROM ExperimentProfile ORDER BY revision DESC LIMIT 1").fetchone()
        events = pd.read_sql_query("SELECT * FROM TrialJobEvent ORDER BY rowid", con)
        metrics = pd.read_sql_query("SELECT * FROM MetricData ORDER BY rowid", con)
    finally:
        con.close()
    profile = json.loads(prof[0]) if prof and prof[0] else {}
    end_time = int(prof[1]) if prof and isinstance(prof[1], (int, float)) else None
    return NniStore(path=path, profile=profile, events=events, metrics=metrics, end_time=end_time)


def _loads_twice(text: str | None) -> Any:
    """NNI stores a metric as a JSON string of a JSON string: decode until it is not a string."""
    value: Any = text
    for _ in range(3):
        if not isinstance(value, str):
            break
        value = json.loads(value)
    return value


def parameter_records(store: NniStore) -> dict[str, dict[str, Any]]:
    """``{parameter_id: parameters}`` from every ``TrialJobEvent`` that carries a parameter record (the first
    record of each id; see :func:`parameter_history` for ids NNI issued twice)."""
    return {pid: history[0][1] for pid, history in parameter_history(store).items()}


def parameter_history(store: NniStore) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """``{parameter_id: [(timestamp, parameters), ...]}``: every parameter set issued under each id, in order.

    After ``nnictl resume`` NNI 3.0's dispatcher restarts its parameter ids at (the largest id among the
    trials it re-dispatches) + 1, or at 0 when none was running, so one id can name two parameter sets:
    the one issued before the stop and the one issued after it. Re-dispatches of the same set are kept once.
    """
    out: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for ts, data in zip(store.events["timestamp"], store.events["data"]):
        if not isinstance(data, str):
            continue
        try:
            d = json.loads(data)
        except (TypeError, ValueError):
            continue
        if isinstance(d, dict) and "parameter_id" in d and isinstance(d.get("parameters"), dict):
            history = out.setdefault(str(d["parameter_id"]), [])
            if not any(p == d["parameters"] for _t, p in history):
                t = float(ts) if isinstance(ts, (int, float)) and not pd.isna(ts) else math.nan
                history.append((t, d["parameters"]))
    return out


def _issued_params(history: Sequence[tuple[float, dict[str, Any]]], first_metric: float) -> dict[str, Any] | None:
    """The parameter set an id named when a trial first reported under it: the latest issued no later."""
    if not history:
        return None
    if len(history) == 1 or math.isnan(first_metric):
        return history[0][1] if len(history) == 1 else None
    before = [p for t, p in history if not math.isnan(t) and t <= first_metric]
    return before[-1] if before else None


def _flag_values(command: str) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs of a trial command (for task/method/model/seed)."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        words = (command or "").split()
    flags: dict[str, str] = {}
    for i, w in enumerate(words):
        if w.startswith("--"):
            if "=" in w:
                k, v = w[2:].split("=", 1)
                flags[k] = v
            elif i + 1 < len(words) and not words[i + 1].startswith("--"):
                flags[w[2:]] = words[i + 1]
    return flags


def _identity(params: Mapping[str, Any], flags: Mapping[str, str]) -> tuple[str, str, str, Any]:
    """(method, task, model, seed) of an NNI-only trial: parameters first, then trial-command flags."""
    def pick(*keys: str) -> Any:
        for k in keys:
            if k in params:
                return params[k]
            if k in flags:
                return flags[k]
        return None

    task = pick("task", "task_name")
    return (
        str(pick("method") or UNKNOWN),
        str(task) if task is not None else UNKNOWN,
        str(pick("model", "model_name_or_path") or UNKNOWN),
        pick("seed"),
    )


def _trial_status(events: pd.DataFrame) -> str:
    statuses = events.loc[events["event"].isin(list(NNI_STATUS)), "event"]
    return str(statuses.iloc[-1]) if len(statuses) else "UNKNOWN"


def _stderr_tail(trial_dir: Path | None) -> str | None:
    if trial_dir is None:
        return None
    try:
        lines = [ln for ln in (trial_dir / "trial.stderr").read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1][:500] if lines else None


def _trial_dir(exp_dir: Path, trial: str, env: Any) -> Path | None:
    if isinstance(env, str) and (exp_dir / "environments" / env / "trials" / trial).is_dir():
        return exp_dir / "environments" / env / "trials" / trial
    found = sorted((exp_dir / "environments").glob(f"*/trials/{trial}"))
    return found[0] if found else None


STOPPED_WHILE_RUNNING = (
    "the experiment was stopped (nnictl stop) while the trial was {status} (partial; `nnictl resume` re-runs it)"
)


def _nni_status(nni_status: str, ended: bool) -> tuple[str, str | None]:
    """Record status of an NNI status; in an ended experiment a trial NNI still lists as running was stopped."""
    mapped = NNI_STATUS.get(nni_status, "RUNNING")
    if ended and mapped == "RUNNING":
        return "INTERRUPTED", STOPPED_WHILE_RUNNING.format(status=nni_status)
    return mapped, None


def _merge_status(rec: TrialRecord, nni_status: str, ended: bool = False) -> tuple[str, str | None]:
    """A record still RUNNING whose NNI process has ended (or whose experiment was stopped) is partial:
    FAILED or INTERRUPTED, never done. Any other record status is the trial's own word."""
    mapped, stopped = _nni_status(nni_status, ended)
    if rec.status == "RUNNING" and mapped != "RUNNING":
        status = "FAILED" if mapped == "FAILED" else "INTERRUPTED"
        return status, rec.error or stopped or f"NNI reports the trial {nni_status} but its record says RUNNING (partial)"
    return rec.status, rec.error


def _add_nni_only(b: _Builder, store: NniStore, exp_id: str, trial: str, metrics: pd.DataFrame,
                  params_by_id: Mapping[str, Sequence[tuple[float, dict[str, Any]]]], event_params: dict[str, Any] | None,
                  status: str, error: str | None) -> None:
    """A trial without a usable record: metrics from MetricData, parameters joined on parameterId (for an id
    NNI issued twice, around a resume, the set issued last before the trial's first metric)."""
    pids = metrics["parameterId"].dropna().astype(str).unique().tolist()
    source = f"{store.path}#{trial}"
    if len(pids) > 1:
        b.skip(source, f"trial reported metrics for {len(pids)} parameter ids {pids}; using the last")
    params = None
    if pids:
        mine = metrics[metrics["parameterId"].astype(str) == pids[-1]]["timestamp"]
        first = float(mine.min()) if len(mine) and not pd.isna(mine.min()) else math.nan
        params = _issued_params(params_by_id.get(pids[-1], []), first)
    if params is None:
        params = event_params or {}
    method, task, model, seed = _identity(params, _flag_values(store.profile.get("trialCommand", "")))
    values: list[tuple[str, float, dict[str, Any]]] = []
    for row in metrics.itertuples(index=False):
        data = _loads_twice(row.data)
        data = data if isinstance(data, dict) else {"default": data}
        if len(data) > 1:
            data = {k: v for k, v in data.items() if k != "default"}
        values.append((row.type, row.sequence, data))
    if task != UNKNOWN:
        try:
            spec = get_task(task)
        except KeyError as e:
            b.skip(source, str(e.args[0]))
            return
        extra = sorted({m for _t, _s, d in values for m in d} - set(spec.metrics) - {"default"})
        if extra:
            b.skip(source, f"metric(s) {extra} are not metrics of task {spec.name!r} {list(spec.metrics)}")
            return
        task = spec.name
    n = len(b.rows)
    info = (exp_id, trial, method, task, model, seed, status, error, config_key(params), source)
    t = b.add_trial(info, params)
    for mtype, seq, data in values:
        kind, step = ("eval", float(seq) + 1) if mtype == "PERIODICAL" else ("best", math.nan)
        for m, v in data.items():
            b.add(t, kind, step, math.nan, DEV, m, math.nan if v is None else float(v))
    b.close_trial(t, n)


def _load_nni_into(b: _Builder, exp_dir: Path) -> None:
    db = exp_dir / "db" / "nni.sqlite"
    try:
        store = read_nni_store(db)
    except (sqlite3.DatabaseError, ValueError) as e:  # not a database, missing tables, bad profile JSON
        b.skip(db, f"not a readable NNI 3.0 store ({type(e).__name__}: {e})")
        return
    exp_id = exp_dir.name
    params_by_id = parameter_history(store)
    metrics_by_trial = dict(tuple(store.metrics.groupby("trialJobId", sort=False)))
    for trial, events in store.events.groupby("trialJobId", sort=False):
        trial = str(trial)
        nni_status = _trial_status(events)
        env = events["environmentId"].dropna()
        trial_dir = _trial_dir(exp_dir, trial, env.iloc[-1] if len(env) else None)
        rec_path = trial_dir / RECORD_FILE if trial_dir is not None else None
        rec = _read_checked(b, rec_path) if rec_path is not None and rec_path.is_file() else None
        if rec is not None:
            status, error = _merge_status(rec, nni_status, store.ended)
            _add_record(b, rec, _record_info(rec, str(rec_path), status, error, exp_id))
            continue
        event_params = None
        for data in events["data"].dropna():
            try:  # a resumed trial's ADD_RESUMED event has empty data
                d = json.loads(data)
            except (TypeError, ValueError):
                continue
            if isinstance(d, dict) and isinstance(d.get("parameters"), dict):
                event_params = d["parameters"]
        status, error = _nni_status(nni_status, store.ended)
        if status == "FAILED":
            error = _stderr_tail(trial_dir)
        if status == "FAILED" and error is None:
            error = "trial FAILED in NNI and wrote no trial record"
        empty = store.metrics.iloc[0:0]
        _add_nni_only(b, store, exp_id, trial, metrics_by_trial.get(trial, empty), params_by_id,
                      event_params, status, error)


def nni_experiment_dir(experiment: str, nni_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of experiment ``experiment`` under ``nni_dir`` (default ``~/nni-experiments``).

    Raises:
        FileNotFoundError: the folder or its ``db/nni.sqlite`` is missing; the message names both.
    """
    root = Path(nni_dir) if nni_dir is not None else default_nni_dir()
    exp_dir = root / experiment
    if not (exp_dir / "db" / "nni.sqlite").is_file():
        raise FileNotFoundError(
            f"NNI experiment {experiment!r} not found: no {exp_dir / 'db' / 'nni.sqlite'} "
            f"(pass --nni_dir if its experiment folder is not {root})"
        )
    return exp_dir


def load_nni_experiment(experiment: str, nni_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load one NNI experiment by id (module docstring: records preferred, sqlite joined on parameterId).

    Raises:
        FileNotFoundError: no such experiment folder or database.
    """
    b = _Builder()
    _load_nni_into(b, nni_experiment_dir(experiment, nni_dir))
    return b.frame()


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate tidy frames, keeping every ``skipped`` entry and each (experiment, trial) once.

    A trial loaded twice (an NNI experiment also given as a records folder, or two copies of one record)
    keeps its first copy; the others are listed as skipped.
    """
    skipped = [s for f in frames for s in f.attrs.get("skipped", [])]
    frames = [f.assign(_frame=i) for i, f in enumerate(frames) if len(f)]
    if not frames:
        out = _Builder().frame()
    else:
        out = pd.concat(frames, ignore_index=True, sort=False)
        origin = out["_frame"].astype(str) + "\x00" + out["source"].astype(str)
        dup = origin != origin.groupby([out["experiment"], out["trial"]], sort=False).transform("first")
        if dup.any():
            for src in out.loc[dup, "source"].unique():
                reason = "trial already loaded from another source"
                warnings.warn(f"skipped {src}: {reason}", AnalysisWarning, stacklevel=2)
                skipped.append((str(src), reason))
            out = out[~dup].reset_index(drop=True)
        params = sorted(c for c in out.columns if c.startswith("param."))
        out = out[list(COLUMNS) + params]
    out.attrs["skipped"] = skipped
    return out


def load(records: Iterable[str | os.PathLike[str]] = (), experiments: Iterable[str] = (),
         nni_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load record folders and NNI experiments together into one tidy frame.

    Raises:
        FileNotFoundError: a records folder or an experiment does not exist.
    """
    frames = [load_nni_experiment(e, nni_dir) for e in experiments]
    frames += [load_records(r) for r in records]
    return concat_frames(frames)


def trials(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: the trial columns and ``param.*`` (drops the evaluation columns)."""
    cols = list(TRIAL_COLUMNS) + [c for c in df.columns if c.startswith("param.")]
    return df.drop_duplicates(["experiment", "trial"])[cols].reset_index(drop=True)


def status_counts(df: pd.DataFrame) -> dict[str, int]:
    """Trials per status: ``{"SUCCEEDED": n, "RUNNING": n, "FAILED": n, "INTERRUPTED": n}``.

    Only a trial whose status is SUCCEEDED counts as finished; a partial one keeps its own status.
    """
    counts = trials(df)["status"].value_counts()
    out = {s: int(counts.get(s, 0)) for s in STATUSES}
    for s, n in counts.items():
        if s not in out:
            out[str(s)] = int(n)
    return out


def skipped(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The ``(path, reason)`` pairs of the inputs skipped while loading ``df``."""
    return list(df.attrs.get("skipped", []))
