"""A study config (``studies/*.yml``, docs/study.md): what a study compares, read and checked before anything
runs.

A study is tasks × arms × (a tuning grid × tuning seeds, then the chosen grid point × report seeds). An arm
is a method plus fixed settings (``vanilla_steps``: vanilla with twice the epochs; a component-ladder
``rung``); every arm gets a grid of the same size (the learning rates), and the settings in ``flags`` are
shared by all. A study without a grid (and without tuning seeds) has no tune phase: every arm runs at its
fixed settings on the report seeds (the component study, ``studies/components.yml``). Every field is checked
here, and every arm × grid point is resolved into a real trial configuration (:func:`mat.cli.parse_cli` and
:func:`mat.spec.arms.apply_study_params`, the trial's own code), so a config that would fail a trial is
refused before NNI starts, with the field named.

The cells (:class:`Cell`) and their record folders are defined here too; ``layout: phased`` (the default)::

    <records>/<task>/tune/<arm>-<point>-seed<k>/trial.json      e.g. stsb/tune/mat-lr0.0001-seed101
    <records>/<task>/report/<arm>-seed<k>/trial.json            at the arm's chosen point

and ``layout: flat``, for a study without a tune phase (report records only)::

    <records>/<task>/<arm>-seed<k>/trial.json                   e.g. cola/sampling-seed3
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from mat.cli import parse_cli
from mat.spec.arms import ARM_KEY, METHOD_KEY, PHASE_KEY, apply_study_params, check_arm_name, check_method
from mat.spec.config import TrialConfig
from mat.spec.methods import DEFAULT_METHOD
from mat.spec.naming import unknown_name
from mat.spec.tasks import get_task

Point = tuple[tuple[str, Any], ...]  # a grid point: ((key, value), ...) in the grid's key order
TOP_KEYS = ("name", "records", "tasks", "model", "flags", "arms", "grid", "tuning_seeds", "report_seeds",
            "concurrency", "baselines", "estimate_from", "python", "layout")
ARM_KEYS = ("method", "settings", "grid", "enabled", "about")
# set per cell (or, --checkpoint_store, per run) by the runner
CELL_FLAGS = ("--task", "--model", "--seed", "--output_dir", "--trial_id", "--checkpoint_store")
SHORT = {"learning_rate": "lr"}  # how a grid key is written in a folder name
LAYOUTS = ("phased", "flat")  # <task>/{tune,report}/<cell>/ or <task>/<arm>-seed<k>/ (module docstring)


class StudyConfigError(ValueError):
    """A study config that cannot run: the message names the file and the field."""


@dataclass(frozen=True)
class Arm:
    """One arm: a method, its fixed settings (NNI parameters sent with every cell) and its grid points."""

    name: str
    method: str
    settings: Mapping[str, Any]
    points: tuple[Point, ...]
    enabled: bool = True
    about: str = ""


@dataclass(frozen=True)
class Study:
    """A checked study config (module docstring)."""

    name: str
    path: Path
    records: Path
    tasks: tuple[str, ...]
    model: str
    flags: tuple[str, ...]
    arms: tuple[Arm, ...]
    tuning_seeds: tuple[int, ...]
    report_seeds: tuple[int, ...]
    concurrency: int
    baselines: tuple[str, ...]
    estimate_from: Path | None
    python: str | None
    layout: str = "phased"

    def arm(self, name: str) -> Arm:
        """The arm ``name``.

        Raises:
            StudyConfigError: no such arm (the message lists the arms).
        """
        for a in self.arms:
            if a.name == name:
                return a
        raise StudyConfigError(unknown_name("arm", name, [a.name for a in self.arms]))

    def enabled(self, names: Sequence[str] | None = None) -> tuple[Arm, ...]:
        """The arms to run: ``names`` (any declared arm, on or off) or else the arms on by default."""
        if names:
            return tuple(self.arm(n) for n in names)
        return tuple(a for a in self.arms if a.enabled)


@dataclass(frozen=True, order=True)
class Cell:
    """One trial of a study: a task, a phase, an arm, a grid point and a seed; ``layout`` is its study's."""

    task: str
    phase: str
    arm: str
    seed: int
    point: Point
    layout: str = "phased"

    def folder(self) -> str:
        """The record folder under ``<records>`` (module docstring)."""
        if self.layout == "flat":
            return f"{self.task}/{self.arm}-seed{self.seed}"
        if self.phase == "report":
            return f"{self.task}/report/{self.arm}-seed{self.seed}"
        return f"{self.task}/tune/{self.arm}-{point_label(self.point)}-seed{self.seed}"

    def params(self, arm: Arm) -> dict[str, Any]:
        """The NNI parameters of the cell: method, arm, phase, the arm's settings, the grid point, the
        seed."""
        return {METHOD_KEY: arm.method, ARM_KEY: arm.name, PHASE_KEY: self.phase, **arm.settings,
                **dict(self.point), "seed": self.seed}


def point_label(point: Point) -> str:
    """``lr0.0001`` for ``(("learning_rate", 1e-4),)``; keys joined by ``-``; ``default`` for no grid."""
    return "-".join(f"{SHORT.get(k, k)}{v:g}" if isinstance(v, float) else f"{SHORT.get(k, k)}{v}"
                    for k, v in point) or "default"


def tune_cells(study: Study, task: str, arms: Sequence[Arm]) -> list[Cell]:
    """Every arm × grid point × tuning seed of ``task``, seed-major then arm then point."""
    return [Cell(task, "tune", a.name, s, p, study.layout) for s in study.tuning_seeds for a in arms
            for p in a.points]


def report_cells(study: Study, task: str, chosen: Mapping[str, Point]) -> list[Cell]:
    """Each arm of ``chosen`` at its chosen point × report seed, seed-major (whole seeds first)."""
    return [Cell(task, "report", a, s, p, study.layout) for s in study.report_seeds
            for a, p in chosen.items()]


def _err(path: Path, field: str, problem: str) -> StudyConfigError:
    return StudyConfigError(f"{path}: {field}: {problem}")


def _number(value: Any) -> Any:
    """YAML reads ``3e-5`` (no dot) as a string: a numeric string becomes its float."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def _seeds(path: Path, field: str, value: Any, allow_empty: bool = False) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    if (not items and not allow_empty) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in items):
        raise _err(path, field, f"a list of whole numbers >= 0 is needed; got {value!r}")
    if len(set(items)) != len(items):
        raise _err(path, field, f"a seed is listed twice: {items}")
    return tuple(items)


def _grid(path: Path, field: str, value: Any) -> tuple[Point, ...]:
    if value is None or value == {}:
        return ((),)
    if not isinstance(value, dict) or not all(isinstance(v, list) and v for v in value.values()):
        raise _err(path, field, "a mapping of parameter -> non-empty list of values is needed; got "
            f"{value!r}")
    keys = list(value)
    return tuple(tuple(zip(keys,
        (_number(x) for x in combo))) for combo in itertools.product(*value.values()))


def _arm(path: Path, name: Any, spec: Any, grid: tuple[Point, ...], base_method: str) -> Arm:
    field = f"arms.{name}"
    try:
        check_arm_name(name)
    except ValueError as e:
        raise _err(path, field, str(e)) from None
    spec = spec or {}
    if not isinstance(spec, dict):
        raise _err(path, field, f"a mapping with {', '.join(ARM_KEYS)} is needed; got {spec!r}")
    for key in spec:
        if key not in ARM_KEYS:
            raise _err(path, f"{field}.{key}", unknown_name("arm key", str(key), ARM_KEYS))
    try:
        method = check_method(spec.get("method", base_method))
    except ValueError as e:
        raise _err(path, f"{field}.method", str(e)) from None
    settings = {str(k): _number(v) for k, v in (spec.get("settings") or {}).items()}
    for key in (METHOD_KEY, ARM_KEY, PHASE_KEY, "seed"):
        if key in settings:
            raise _err(path, f"{field}.settings.{key}", "set by the study per cell; remove it from the "
                "settings")
    points = _grid(path, f"{field}.grid", spec["grid"]) if "grid" in spec else grid
    clash = sorted({k for p in points for k, _ in p} & set(settings))
    if clash:
        raise _err(path, f"{field}.settings.{clash[0]}", "is also a grid key: give it in one place")
    return Arm(str(name), method, settings, points, bool(spec.get("enabled", True)),
        str(spec.get("about", "")))


def _check_phases(path: Path, points: tuple[Point, ...], tuning: tuple[int, ...], layout: Any) -> None:
    """A grid needs tuning seeds to choose on, tuning seeds need a grid, and the flat layout no tune phase."""
    if layout not in LAYOUTS:
        raise _err(path, "layout", f"one of {', '.join(LAYOUTS)} is needed; got {layout!r}")
    if len(points) > 1 and not tuning:
        raise _err(path, "tuning_seeds", f"a grid of {len(points)} points needs tuning seeds to choose one "
                   "on (or give no grid: every arm then runs at its fixed settings)")
    if tuning and points == ((),):
        raise _err(path, "tuning_seeds", "there is no grid to tune: remove tuning_seeds (every arm runs at "
                   "its fixed settings on the report seeds) or give a grid")
    if tuning and layout == "flat":
        raise _err(path, "layout", "flat holds report records only (<task>/<arm>-seed<k>/): a study with "
                   "tuning_seeds needs layout phased")


def load_study(path: str | Path) -> Study:
    """Read and check a study config.

    Raises:
        StudyConfigError: unreadable file, an unknown key, task, method, arm or layout, arms with grids of
            different sizes, tuning and report seeds that overlap, a grid without tuning seeds or tuning seeds
            without a grid, the flat layout with a tune phase, flags the runner sets per cell, or an arm ×
            grid point the trial would refuse (each message names the field).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise StudyConfigError(f"{path}: cannot read the study config ({e})") from None
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{path}: a study config is a YAML mapping; got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_KEYS:
            raise _err(path, str(key), unknown_name("study key", str(key), TOP_KEYS))
    for key in ("name", "tasks", "model", "arms", "report_seeds"):
        if key not in raw:
            raise _err(path, key, "required")
    tasks = tuple(raw["tasks"]) if isinstance(raw["tasks"], list) else (raw["tasks"],)
    for i, task in enumerate(tasks):
        try:
            get_task(str(task))
        except (KeyError, ValueError) as e:
            raise _err(path, f"tasks[{i}]", str(e.args[0])) from None
    flags = tuple(shlex.split(str(raw.get("flags") or "")))
    for word in flags:
        if word.split("=")[0] in CELL_FLAGS:
            raise _err(path, "flags", f"{word.split('=')[0]} is set per cell by the study; remove it from "
                "flags")
    base_method = flags[flags.index("--method") + 1] if "--method" in flags[:-1] else DEFAULT_METHOD
    grid = _grid(path, "grid", raw.get("grid"))
    if not isinstance(raw["arms"], dict) or not raw["arms"]:
        raise _err(path, "arms", "a mapping of arm name -> {method, settings, ...} is needed")
    arms = tuple(_arm(path, n, s, grid, base_method) for n, s in raw["arms"].items())
    sizes = {a.name: len(a.points) for a in arms}
    if len(set(sizes.values())) > 1:
        raise _err(path, "grid", "every arm needs a tuning grid of the same size (a matched budget); got "
            f"{sizes}")
    tuning = _seeds(path, "tuning_seeds", raw.get("tuning_seeds"), allow_empty=True)
    _check_phases(path, arms[0].points, tuning, raw.get("layout", "phased"))
    report = _seeds(path, "report_seeds", raw["report_seeds"])
    both = sorted(set(tuning) & set(report))
    if both:
        raise _err(path, "report_seeds", f"seeds {both} are also tuning_seeds: the report seeds must be ones "
                                         "the choice of configuration never saw")
    concurrency = raw.get("concurrency", 1)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise _err(path, "concurrency", f"a whole number >= 1 is needed; got {concurrency!r}")
    names = [a.name for a in arms]
    baselines = tuple(raw.get("baselines") or ())
    for i, b in enumerate(baselines):
        if b not in names:
            raise _err(path, f"baselines[{i}]", unknown_name("arm", str(b), names))
    base = path.resolve().parent.parent if path.resolve().parent.name == "studies" else Path.cwd()
    study = Study(str(raw["name"]), path, base / str(raw.get("records", f"results/{raw['name']}")),
                  tuple(str(t) for t in tasks), str(raw["model"]), flags, arms, tuning, report, concurrency,
                  baselines, base / str(raw["estimate_from"]) if raw.get("estimate_from") else None,
                  str(raw["python"]) if raw.get("python") else None, str(raw.get("layout", "phased")))
    for task in study.tasks:
        for arm in study.arms:
            for point in arm.points:
                resolve(study, Cell(task, "tune", arm.name, 0, point), field=f"arms.{arm.name}")
    return study


def resolve(study: Study, cell: Cell, field: str = "flags") -> TrialConfig:
    """The trial configuration of ``cell``, built by the trial's own code (flags, then the cell's parameters).

    Raises:
        StudyConfigError: the flags or the cell's parameters are refused (``field`` names where they come
            from).
    """
    argv = ["--task", cell.task, "--model", study.model, *study.flags]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cfg = parse_cli(argv)
    except SystemExit:
        raise _err(study.path, "flags", err.getvalue().strip().splitlines()[-1]) from None
    try:
        return apply_study_params(cfg, cell.params(study.arm(cell.arm)))[0]
    except ValueError as e:
        raise _err(study.path, field, f"{point_label(cell.point)}: {e}") from None


def same_point(a: Point, b: Point) -> bool:
    """Two grid points are equal (floats compared with a relative tolerance of 1e-9)."""
    return len(a) == len(b) and all(
        ka == kb and (math.isclose(va, vb, rel_tol=1e-9) if isinstance(va, float) and isinstance(vb,
            (int, float))
                      else va == vb) for (ka, va), (kb, vb) in zip(a, b))
