"""A study config (``studies/*.yml``) read for its page: the cells a study should have, where its records are.

The study runner reads and checks a config in full (``trials.study_config``, docs/study.md); ``analysis`` may
not import ``trials``, so :func:`read_plan` reads the fields a page needs, and trusts the runner's checks
for the rest: ``name``, ``records``, ``tasks``, ``model``, ``grid`` (or an arm's own ``grid``), the arms
(their ``method``, ``enabled``, ``about``), ``tuning_seeds``, ``report_seeds`` and ``baselines``.

A study's cells, per task: every arm × grid point × tuning seed (phase ``tune``), then every arm at its
chosen point × report seed (phase ``report``). A record names its cell in ``params`` (``arm``, ``phase``, the
grid keys) and ``seed``. No torch, no ``trials``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

Point = tuple[tuple[str, Any], ...]  # a grid point: ((key, value), ...) in the grid's key order


@dataclass(frozen=True)
class StudyPlan:
    """What a study should run (module docstring).

    Attributes:
        name, path, records: the study's name, its config file and its records folder (relative to the
            repository root for a config under ``studies/``, as the runner reads it; else to the current
            folder).
        tasks, model: the tasks in the config's order and the model every trial runs.
        arms: every declared arm, in the config's order; ``enabled`` those a plain run runs.
        methods, about: per arm, its method and its one-line description.
        points: per arm, its grid points (every arm has as many).
        tuning_seeds, report_seeds, baselines: as in the config.
    """

    name: str
    path: Path
    records: Path
    tasks: tuple[str, ...]
    model: str
    arms: tuple[str, ...]
    enabled: tuple[str, ...]
    methods: Mapping[str, str]
    about: Mapping[str, str]
    points: Mapping[str, tuple[Point, ...]]
    tuning_seeds: tuple[int, ...]
    report_seeds: tuple[int, ...]
    baselines: tuple[str, ...]


def _number(value: Any) -> Any:
    """YAML reads ``3e-5`` (no dot) as a string: a numeric string is its float (as the runner reads it)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def _points(grid: Any) -> tuple[Point, ...]:
    if not grid:
        return ((),)
    keys = list(grid)
    return tuple(tuple(zip(keys, (_number(v) for v in combo))) for combo in itertools.product(*grid.values()))


def _seeds(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    return tuple(int(s) for s in items)


def read_plan(path: str | Path) -> StudyPlan:
    """The :class:`StudyPlan` of the study config at ``path``.

    Raises:
        ValueError: the file cannot be read, is not a mapping, or lacks ``name``, ``tasks``, ``model``,
            ``arms`` or ``report_seeds`` (the message names the file and the field).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read the study config ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a study config is a YAML mapping")
    for key in ("name", "tasks", "model", "arms", "report_seeds"):
        if key not in raw:
            raise ValueError(f"{path}: {key}: required")
    arms: dict[str, dict[str, Any]] = {str(k): dict(v or {}) for k, v in raw["arms"].items()}
    grid = _points(raw.get("grid"))
    base = path.resolve().parent.parent if path.resolve().parent.name == "studies" else Path.cwd()
    tasks = raw["tasks"] if isinstance(raw["tasks"], list) else [raw["tasks"]]
    return StudyPlan(
        name=str(raw["name"]), path=path, records=base / str(raw.get("records", f"results/{raw['name']}")),
        tasks=tuple(str(t) for t in tasks), model=str(raw["model"]), arms=tuple(arms),
        enabled=tuple(a for a, spec in arms.items() if spec.get("enabled", True)),
        methods={a: str(spec.get("method", "")) for a, spec in arms.items()},
        about={a: str(spec.get("about", "")) for a, spec in arms.items()},
        points={a: _points(spec["grid"]) if "grid" in spec else grid for a, spec in arms.items()},
        tuning_seeds=_seeds(raw.get("tuning_seeds")), report_seeds=_seeds(raw["report_seeds"]),
        baselines=tuple(str(b) for b in raw.get("baselines") or ()))


def same_value(a: Any, b: Any) -> bool:
    """Two parameter values are equal (numbers with a relative tolerance of 1e-9, as the runner compares)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return bool(a == b)


def point_of(plan: StudyPlan, arm: str, params: Mapping[str, Any]) -> int | None:
    """The index of the grid point of ``arm`` that ``params`` (a record's parameters) ran, or None."""
    for i, point in enumerate(plan.points[arm]):
        if all(k in params and same_value(params[k], v) for k, v in point):
            return i
    return None


def point_text(point: Point) -> str:
    """``learning_rate 3e-05`` for ``(("learning_rate", 3e-5),)``; ``default`` for no grid."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in point) or "default"


def grid_edges(points: tuple[Point, ...], chosen: Point) -> list[str]:
    """The grid's numeric parameters (3 values or more) whose chosen value is the smallest or the largest
    the grid tried: ``["lowest learning_rate"]`` for 3e-5 of {3e-5, 1e-4, 3e-4}. A point chosen there may be
    beaten beyond the grid, which was not searched."""
    out = []
    for i, (key, value) in enumerate(chosen):
        values = {p[i][1] for p in points if len(p) > i and p[i][0] == key}
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if len(values) < 3 or not numeric:
            continue
        if value == min(values):
            out.append(f"lowest {key}")
        elif value == max(values):
            out.append(f"highest {key}")
    return out


def edge_note(points: tuple[Point, ...], chosen: Point) -> str:
    """`` (the grid's lowest learning_rate)`` where :func:`grid_edges` finds the choice at an edge, else
    ``""``: the words the page's tuning table and ``trials.study status`` append to a chosen point."""
    edges = grid_edges(points, chosen)
    return f" (the grid's {', '.join(edges)})" if edges else ""


def seeds_text(seeds: Any) -> str:
    """``1-5`` for 1, 2, 3, 4, 5; ``1,3`` otherwise; ``-`` for none."""
    s = sorted(int(x) for x in seeds)
    if not s:
        return "-"
    if len(s) > 2 and s == list(range(s[0], s[-1] + 1)):
        return f"{s[0]}-{s[-1]}"
    return ",".join(str(x) for x in s)


def seeds_phrase(seeds: Any) -> str:
    """``seed 101``, ``seeds 1-5`` (:func:`seeds_text`), ``no seeds``."""
    s = list(seeds)
    return "no seeds" if not s else f"seed {s[0]}" if len(s) == 1 else f"seeds {seeds_text(s)}"
