"""The common trial record read straight into the tidy builder's rows, without building a
:class:`~mat.spec.records.TrialRecord` first.

:func:`add_plain` takes a parsed ``trial.json`` only when every field is already of the type
:func:`mat.spec.records.record_from_dict` would convert it to and :func:`analysis.tidy.check_record` would
accept it as it is: a known task, each evaluation's dev metrics exactly the task's and finite, extra splits
finite and of the task's metrics, no dev predictions. It then adds the same trial and the same rows, in the
same order, as ``record_from_dict`` + ``check_record`` + :meth:`analysis.tidy.Builder.add_record` would.
Anything else (a NaN, a number written as text, a missing field, predictions to rescore) is declined, and
the caller reads the record the full way, which gives the same skip reasons as before. This is where a
10,000-record load spends its time, hence the shortcut.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from analysis.tidy import DEV, LOCAL_EXPERIMENT, TELEMETRY, TRAIN, Builder, config_key
from mat.spec.cost import derive_cost
from mat.spec.records import SCHEMA_VERSION, STATUSES
from mat.spec.tasks import TASKS

_REQUIRED = ("trial_id", "method", "task", "model", "seed", "params", "status")
_ROW = tuple[Any, ...]


def _finite(values: dict[str, Any]) -> bool:
    for v in values.values():
        t = type(v)
        if not (t is int or (t is float and math.isfinite(v))):
            return False
    return True


def _numbers(values: Any) -> bool:
    """Falsy (the record converts it to ``{}``) or a dict of ints and floats (NaN allowed)."""
    if not values:
        return True
    return type(values) is dict and all(type(v) is float or type(v) is int for v in values.values())


def _plain_eval(e: Any, wanted: frozenset[str]) -> bool:
    if type(e) is not dict or type(e.get("step")) is not int or e.get("predictions"):
        return False
    epoch, score, metrics, splits = e.get("epoch"), e.get("score"), e.get("metrics"), e.get("splits")
    if epoch and type(epoch) is not float and type(epoch) is not int:
        return False
    if score is not None and type(score) is not float and type(score) is not int:
        return False
    if type(metrics) is not dict or metrics.keys() != wanted or not _finite(metrics):
        return False
    if splits:
        if type(splits) is not dict:
            return False
        for m in splits.values():
            if type(m) is not dict or not wanted.issuperset(m) or not _finite(m):
                return False
    return _numbers(e.get("telemetry"))


def _eval_rows(t: int, kind: str, e: dict[str, Any]) -> list[_ROW]:
    step, epoch = e["step"], float(e.get("epoch") or 0.0)
    rows: list[_ROW] = [(t, kind, step, epoch, DEV, m, float(v)) for m, v in e["metrics"].items()]
    for split, metrics in (e.get("splits") or {}).items():
        rows += [(t, kind, step, epoch, split, m, float(v)) for m, v in metrics.items()]
    return rows


def plain_task(d: Any) -> str | None:
    """The task's canonical name when ``d`` is a record :func:`add_plain` takes as it is, else None."""
    if type(d) is not dict or d.get("schema") != SCHEMA_VERSION or any(k not in d for k in _REQUIRED):
        return None
    if type(d["status"]) is not str or d["status"] not in STATUSES or type(d["params"]) is not dict:
        return None
    if type(d["seed"]) is not int or type(d.get("evals", [])) is not list or d.get("dev_labels"):
        return None
    wall, steps = d.get("wall_seconds"), d.get("train_steps")
    if (wall and type(wall) is not float and type(wall) is not int) or (steps and type(steps) is not int):
        return None
    if any(d.get(k) and type(d.get(k)) is not dict for k in ("versions", "run", "cost")):
        return None
    spec = TASKS.get(str(d["task"]).strip().lower().replace("-", ""))  # as mat.spec.tasks.get_task
    if spec is None:
        return None
    wanted = frozenset(spec.metrics)
    if not all(_plain_eval(e, wanted) for e in d.get("evals", [])):
        return None
    if any(d.get(k) is not None and not _plain_eval(d.get(k), wanted) for k in ("best", "final")):
        return None
    return spec.name


def add_plain(b: Builder, d: Any, source: str, written: float) -> bool:
    """Add the parsed record ``d`` read from ``source`` to ``b`` as
    :meth:`~analysis.tidy.Builder.add_record` would, when :func:`plain_task` takes it; return whether it
    was added (False: nothing was added; read it the full way)."""
    task = plain_task(d)
    if task is None:
        return False
    params, run = dict(d["params"]), dict(d.get("run") or {})
    method, evals = str(d["method"]), d.get("evals", [])
    info = (d.get("experiment_id") or LOCAL_EXPERIMENT, str(d["trial_id"]), method, task, str(d["model"]),
            d["seed"], d["status"], d.get("error"), config_key(params, run), source)
    telemetry_keys = {k for e in evals for k in (e.get("telemetry") or {})}
    cost = derive_cost(dict(d.get("cost") or {}), method, params, telemetry_keys)
    dirty = d.get("git_dirty")
    code = {"git_sha": d.get("git_sha"), "git_dirty": dirty if isinstance(dirty, bool) else None,
            "git_diff_sha": d.get("git_diff_sha"), **dict(d.get("versions") or {})}
    n = len(b.rows)
    t = b.add_trial(info, params, run, written, str(Path(source).parent), cost, code)
    for e in evals:
        b.rows += _eval_rows(t, "eval", e)
        step, epoch = e["step"], float(e.get("epoch") or 0.0)
        telemetry = e.get("telemetry") or {}
        b.rows += [(t, TELEMETRY, step, epoch, TRAIN, k, float(v)) for k, v in telemetry.items()]
    for kind in ("best", "final"):
        if d.get(kind) is not None:
            b.rows += _eval_rows(t, kind, d[kind])
    b.close_trial(t, n)
    return True
