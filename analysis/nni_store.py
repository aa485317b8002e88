"""Reading NNI's own store: an experiment's ``db/nni.sqlite`` and its trials' records.

NNI experiments are read from ``<nni_dir>/<id>/db/nni.sqlite``, opened read-only. Each trial's record
(``environments/<env>/trials/<trial>/trial.json``, where ``NNI_OUTPUT_DIR`` points) is preferred where
present; otherwise its metrics come from the ``MetricData`` table and its parameters from the parameter
record whose ``parameter_id`` equals the metrics' ``parameterId``, never from trial order or from the
trial's own ``TrialJobEvent``, which NNI 3.0 can fill with another trial's parameters (microsoft/nni#5726,
#5693; the recorded fixture under ``tests/fixtures/analysis/nni`` shows it). Run settings of a trial
without a record (``--max_steps``...) come from the experiment's trial command.

A stopped experiment (an NNI stop (``stop`` command): its latest ``ExperimentProfile`` has an ``endTime``)
leaves the trials that were running with ``RUNNING`` as their last event in NNI's store: NNI records no end
for them. They are reported INTERRUPTED, never RUNNING and never finished. an NNI resume (``resume`` command)
re-runs each of them under the same trial id, so a resumed trial is one trial (one row set), whose record and
status are those of its latest run (docs/resume.md).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from analysis.tidy import DEV, UNKNOWN, Builder, config_key, run_settings
from mat.spec.nni_layout import EVENTS_QUERY, METRICS_QUERY, connect, latest_profile, store_path, trial_dirs
from mat.spec.records import RECORD_FILE, TrialRecord
from mat.spec.tasks import get_task

# NNI trial-job statuses -> record statuses (a cancelled or early-stopped trial is interrupted).
NNI_STATUS = {
    "WAITING": "RUNNING", "RUNNING": "RUNNING", "UNKNOWN": "RUNNING", "SUCCEEDED": "SUCCEEDED",
    "FAILED": "FAILED", "USER_CANCELED": "INTERRUPTED", "SYS_CANCELED": "INTERRUPTED",
    "EARLY_STOPPED": "INTERRUPTED",
}


def default_nni_dir() -> Path:
    """NNI's default experiment folder, ``~/nni-experiments``."""
    return Path.home() / "nni-experiments"


@dataclass(frozen=True)
class NniStore:
    """The three tables of an NNI 3.0 ``db/nni.sqlite``, as read (see ``docs/analysis.md``).

    Attributes:
        profile: the ``params`` JSON of the latest ``ExperimentProfile`` revision (the experiment config).
        events: ``TrialJobEvent`` rows (timestamp, trialJobId, event, data, logPath, sequenceId, message,
            environmentId) in insertion order.
        metrics: ``MetricData`` rows (timestamp, trialJobId, parameterId, type, sequence, data).
        end_time: the latest revision's ``endTime`` (ms since the epoch): set once the experiment is DONE
            or STOPPED, unset while it runs (an NNI resume (``resume`` command) clears it); None when unset.
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
    con = connect(path)
    try:
        profile, end_time = latest_profile(con)
        events = pd.read_sql_query(EVENTS_QUERY, con)
        metrics = pd.read_sql_query(METRICS_QUERY, con)
    finally:
        con.close()
    return NniStore(path=path, profile=profile, events=events, metrics=metrics, end_time=end_time)


def _loads_twice(text: str | None) -> Any:
    """NNI stores a metric as a JSON string of a JSON string: decode until it is not a string."""
    value: Any = text
    for _ in range(3):
        if not isinstance(value, str):
            break
        value = json.loads(value)
    return value


def parameter_history(store: NniStore) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """``{parameter_id: [(timestamp, parameters), ...]}``: every parameter set issued under each id, in order.

    After an NNI resume (``resume`` command) NNI 3.0's dispatcher restarts its parameter ids at (the largest
    id among the
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


def _issued_params(history: Sequence[tuple[float, dict[str, Any]]],
    first_metric: float) -> dict[str, Any] | None:
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
        text = (trial_dir / "trial.stderr").read_text(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1][:500] if lines else None


def _trial_dir(exp_dir: Path, trial: str, env: Any) -> Path | None:
    found = trial_dirs(exp_dir, trial, env if isinstance(env, str) else None)
    return found[0] if found else None


STOPPED_WHILE_RUNNING = (
    "the experiment was stopped (NNI stop command) while the trial was {status} (partial; resuming the "
    "experiment re-runs it)"
)


def _nni_status(nni_status: str, ended: bool) -> tuple[str, str | None]:
    """Record status of an NNI status; in an ended experiment a trial NNI still lists as running was
    stopped."""
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
        return status, rec.error or stopped or (
            f"NNI reports the trial {nni_status} but its record says RUNNING (partial)")
    return rec.status, rec.error


def _add_nni_only(b: Builder, store: NniStore, exp_id: str, trial: str, metrics: pd.DataFrame,
                  params_by_id: Mapping[str, Sequence[tuple[float, dict[str, Any]]]],
                  event_params: dict[str, Any] | None, status: str, error: str | None, written: float,
                  shared_run: Mapping[str, Any] | None) -> None:
    """A trial without a usable record: metrics from MetricData, parameters joined on parameterId (for an id
    NNI issued twice, around a resume, the set issued last before the trial's first metric); run settings
    those of the experiment's records (``shared_run``: one trial command, so one set), else the trial
    command's flags."""
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
    flags = _flag_values(store.profile.get("trialCommand", ""))
    method, task, model, seed = _identity(params, flags)
    run = dict(shared_run) if shared_run is not None else run_settings(flags)
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
    info = (exp_id, trial, method, task, model, seed, status, error, config_key(params, run), source)
    t = b.add_trial(info, params, run, written)
    for mtype, seq, data in values:
        kind, step = ("eval", float(seq) + 1) if mtype == "PERIODICAL" else ("best", math.nan)
        for m, v in data.items():
            b.add(t, kind, step, math.nan, DEV, m, math.nan if v is None else float(v))
    b.close_trial(t, n)


def load_nni_into(b: Builder, exp_dir: Path) -> None:
    """Add every trial of the NNI experiment in ``exp_dir`` to ``b`` (an unreadable store is skipped)."""
    db = store_path(exp_dir)
    try:
        store = read_nni_store(db)
    except (sqlite3.DatabaseError, ValueError) as e:  # not a database, missing tables, bad profile JSON
        b.skip(db, f"not a readable NNI 3.0 store ({type(e).__name__}: {e})")
        return
    exp_id = exp_dir.name
    params_by_id = parameter_history(store)
    pending: list[tuple[Any, ...]] = []
    runs: list[dict[str, Any]] = []
    metrics_by_trial = dict(tuple(store.metrics.groupby("trialJobId", sort=False)))
    for trial, events in store.events.groupby("trialJobId", sort=False):
        trial = str(trial)
        nni_status = _trial_status(events)
        env = events["environmentId"].dropna()
        trial_dir = _trial_dir(exp_dir, trial, env.iloc[-1] if len(env) else None)
        rec_path = trial_dir / RECORD_FILE if trial_dir is not None else None
        read = b.read_record(rec_path) if rec_path is not None and rec_path.is_file() else None
        if read is not None:
            rec, run, written = read
            status, error = _merge_status(rec, nni_status, store.ended)
            b.add_record(rec, str(rec_path), run, written, status, error, exp_id)
            runs.append(run)
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
        stamps = pd.to_numeric(events["timestamp"], errors="coerce")
        written = float(stamps.max()) / 1000 if stamps.notna().any() else math.nan  # NNI stores ms
        pending.append((trial, metrics_by_trial.get(trial, empty), event_params, status, error, written))
    shared = runs[0] if runs and all(r == runs[0] for r in runs) else None
    for trial, metrics, event_params, status, error, written in pending:
        _add_nni_only(b, store, exp_id, trial, metrics, params_by_id, event_params, status, error, written,
            shared)


def nni_experiment_dir(experiment: str, nni_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of experiment ``experiment`` under ``nni_dir`` (default ``~/nni-experiments``).

    Raises:
        FileNotFoundError: the folder or its ``db/nni.sqlite`` is missing; the message names both.
    """
    root = Path(nni_dir) if nni_dir is not None else default_nni_dir()
    exp_dir = root / experiment
    if not store_path(exp_dir).is_file():
        raise FileNotFoundError(
            f"NNI experiment {experiment!r} not found: no {store_path(exp_dir)} "
            f"(pass --nni_dir if its experiment folder is not {root})"
        )
    return exp_dir


def load_nni_experiment(experiment: str, nni_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load one NNI experiment by id (module docstring: records preferred, sqlite joined on parameterId).

    Raises:
        FileNotFoundError: no such experiment folder or database.
    """
    b = Builder()
    load_nni_into(b, nni_experiment_dir(experiment, nni_dir))
    return b.frame()

