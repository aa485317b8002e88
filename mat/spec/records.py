"""The trial record (``trial.json``, schema 1): what every trial writes and what ``analysis`` reads.

Format: docs/design.md, "The trial record", the one copy of the schema (``tests/test_record_schema.py``
checks it against the dataclasses here).

``metrics`` and ``score`` are those of the task's dev split (the one model selection uses). ``splits``
(optional, additive) holds the metrics of extra evaluation sets (ANLI test, AdvGLUE) at that step.
``telemetry`` (optional, additive; in ``evals`` only) holds the mean of each training-step statistic
(:mod:`mat.telemetry`: loss, adv_loss, lr, grad_norm, update_norm, MAT's delta/noise statistics) over the
steps since the previous evaluation.
``predictions`` (optional, additive; in ``evals`` only) holds the evaluation's predictions on each dev split
and ``dev_labels`` the gold labels once, in the dev set's order (example 0 first), as :func:`encode_values`
writes them: comma-separated class ids, or regression scores rounded to :data:`REGRESSION_DECIMALS` decimals.
With them the analysis rescores any subset of the dev set without the data or torch (``--selection split``). A
12-evaluation STS-B record (1,500 dev pairs) is about 0.13 MB (``tests/test_predictions.py`` measures it).
``git_dirty`` says whether tracked files differed from ``git_sha`` when the trial started (null: unknown, e.g.
an installed copy), ``git_diff_sha`` the SHA-256 of that diff (``git diff HEAD``), so two runs from the same
edited tree can be told from runs of different edits (:mod:`mat.provenance`).
``precision`` (optional, additive; ``params.precision`` holds the format used) says why the trial ran in
its format and, for an explicit bf16/fp16 run of a perturbing method, what the first-batch measurement of
:func:`mat.precision.measure_rounding` found.
Metric values are on the 0-100 scale. Written atomically (temp file + rename). No torch here.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = 1
RECORD_FILE = "trial.json"
STATUSES = ("SUCCEEDED", "FAILED", "RUNNING", "INTERRUPTED")
REGRESSION_DECIMALS = 4  # stored regression predictions: 1e-4 on STS-B's 0-5 scale


def encode_values(values: Iterable[float], regression: bool) -> str:
    """Predictions or labels as the record keeps them: ``"0,1,1"`` (class ids) or ``"3.1416,0.25"``
    (regression scores rounded to :data:`REGRESSION_DECIMALS` decimals); one string, one line in the JSON."""
    if regression:
        return ",".join(f"{round(float(v), REGRESSION_DECIMALS):g}" for v in values)
    return ",".join(str(int(v)) for v in values)


def decode_values(text: str) -> list[float]:
    """The numbers :func:`encode_values` wrote (empty text: none).

    Raises:
        ValueError: a field is not a number.
    """
    return [float(v) for v in text.split(",")] if text else []


class RecordError(ValueError):
    """A trial record that cannot be read: the message names the file and the problem."""


@dataclass
class EvalResult:
    """One evaluation: dev metrics (0-100), their mean as ``score``, optional extra splits, and the mean
    training statistics of the steps since the previous evaluation (``telemetry``)."""

    step: int
    epoch: float
    metrics: dict[str, float]
    score: float
    splits: dict[str, dict[str, float]] = field(default_factory=dict)
    telemetry: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, str] = field(default_factory=dict)  # dev split -> its predictions (encode_values)


@dataclass
class TrialRecord:
    """A trial's whole result. Mutable while the trial runs; written with :func:`write_record`."""

    trial_id: str
    method: str
    task: str
    model: str
    seed: int
    params: dict[str, Any]
    experiment_id: str | None = None
    status: str = "RUNNING"
    error: str | None = None
    evals: list[EvalResult] = field(default_factory=list)
    best: EvalResult | None = None
    final: EvalResult | None = None
    test_predictions: str | None = None
    wall_seconds: float = 0.0
    train_steps: int = 0
    versions: dict[str, str | None] = field(default_factory=dict)
    git_sha: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    git_dirty: bool | None = None
    git_diff_sha: str | None = None
    dev_labels: dict[str, str] = field(default_factory=dict)  # dev split -> its gold labels (encode_values)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, keys in the documented order."""
        d = asdict(self)
        for key in ("best", "final"):
            if d[key] is not None:
                d[key] = {k: d[key][k] for k in ("step", "epoch", "metrics", "score", "splits")}
        optional = ("telemetry", "predictions")
        d["evals"] = [{k: v for k, v in e.items() if k not in optional or v} for e in d["evals"]]
        if not d["dev_labels"]:
            del d["dev_labels"]
        schema, run = d.pop("schema"), d.pop("run")
        ordered: dict[str, Any] = {"schema": schema}
        for k, v in d.items():
            ordered[k] = v
            if k == "params":
                ordered["run"] = run
        return ordered

    def nni_metric(self, which: str = "best") -> dict[str, float]:
        """The NNI report dict ``{"default": score, <metric>: value, ...}`` of ``best`` or ``final``."""
        ev = self.best if which == "best" else self.final
        if ev is None:
            raise ValueError(f"the record has no {which} evaluation yet")
        return nni_metric(ev)


def nni_metric(ev: EvalResult) -> dict[str, float]:
    """``{"default": score, <metric>: value}`` of plain floats, the shape NNI's web UI shows."""
    return {"default": float(ev.score), **{k: float(v) for k, v in ev.metrics.items()}}


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _clean(o: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_json_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Path:
    """Write JSON to ``path`` through a temp file in the same folder and ``os.replace``.

    A reader never sees a half-written file; a failure (full disk) leaves the previous file intact and
    raises ``OSError``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_clean(dict(data)), f, indent=2, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                e.errno,
                f"no space left on the device while writing {path}: free disk space (or point the output dir "
                "elsewhere) and rerun; the previous version of the file is intact",
            ) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_record(record: TrialRecord, output_dir: str | os.PathLike[str]) -> Path:
    """Write ``output_dir/trial.json`` atomically and return its path."""
    return write_json_atomic(Path(output_dir) / RECORD_FILE, record.to_dict())


def _eval(d: Mapping[str, Any] | None, where: str) -> EvalResult | None:
    if d is None:
        return None
    try:
        return EvalResult(
            step=int(d["step"]),
            epoch=float(d.get("epoch") or 0.0),
            metrics={str(k): (math.nan if v is None else float(v)) for k, v in d["metrics"].items()},
            score=math.nan if d.get("score") is None else float(d["score"]),
            splits={
                str(s): {str(k): (math.nan if v is None else float(v)) for k, v in m.items()}
                for s, m in (d.get("splits") or {}).items()
            },
            telemetry={str(k): (math.nan if v is None else float(v))
                       for k, v in (d.get("telemetry") or {}).items()},
            predictions={str(k): str(v) for k, v in (d.get("predictions") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RecordError(f"{where}: malformed evaluation entry "
            f"{dict(d) if isinstance(d, Mapping) else d!r}: {e}")


def record_from_dict(d: Any, source: str = "<dict>") -> TrialRecord:
    """Build a :class:`TrialRecord` from parsed JSON.

    Raises:
        RecordError: not an object, unknown schema version, missing field or wrong type; the message
            names ``source``.
    """
    if not isinstance(d, dict):
        raise RecordError(f"{source}: a trial record must be a JSON object, got {type(d).__name__}")
    schema = d.get("schema")
    if schema != SCHEMA_VERSION:
        raise RecordError(f"{source}: unknown record schema {schema!r} (this version reads schema "
            f"{SCHEMA_VERSION})")
    missing = [k for k in ("trial_id", "method", "task", "model", "seed", "params", "status") if k not in d]
    if missing:
        raise RecordError(f"{source}: missing field(s) {missing}")
    if d["status"] not in STATUSES:
        raise RecordError(f"{source}: status {d['status']!r} is not one of {list(STATUSES)}")
    if not isinstance(d["params"], dict) or not isinstance(d.get("evals", []), list):
        raise RecordError(f"{source}: 'params' must be an object and 'evals' a list")
    try:
        return TrialRecord(
            trial_id=str(d["trial_id"]),
            method=str(d["method"]),
            task=str(d["task"]),
            model=str(d["model"]),
            seed=int(d["seed"]),
            params=dict(d["params"]),
            experiment_id=d.get("experiment_id"),
            status=d["status"],
            error=d.get("error"),
            evals=[e for e in (_eval(x, source) for x in d.get("evals", [])) if e is not None],
            best=_eval(d.get("best"), source),
            final=_eval(d.get("final"), source),
            test_predictions=d.get("test_predictions"),
            wall_seconds=float(d.get("wall_seconds") or 0.0),
            train_steps=int(d.get("train_steps") or 0),
            versions=dict(d.get("versions") or {}),
            git_sha=d.get("git_sha"),
            run=dict(d.get("run") or {}),
            precision=dict(d["precision"]) if isinstance(d.get("precision"), dict) else None,
            cost=dict(d.get("cost") or {}),
            git_dirty=d.get("git_dirty") if isinstance(d.get("git_dirty"), bool) else None,
            git_diff_sha=d.get("git_diff_sha"),
            dev_labels={str(k): str(v) for k, v in (d.get("dev_labels") or {}).items()},
        )
    except (TypeError, ValueError) as e:
        raise RecordError(f"{source}: wrong type in a field: {e}") from e


def read_record(path: str | os.PathLike[str]) -> TrialRecord:
    """Read and validate a ``trial.json``.

    Raises:
        RecordError: unreadable, not JSON (corrupt or truncated), or not a schema-1 record.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: not a readable JSON trial record ({type(e).__name__}: {e})") from e
    return record_from_dict(data, str(path))
