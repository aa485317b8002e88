"""A study's cells against its records: which are done, which arm chose which point, what can run now.

:func:`done_cells` reads the records folder (every record SUCCEEDED and in its own cell's folder);
:func:`chosen_points` is each arm's choice on the selection half (the analysis's own
:func:`analysis.selection.choose_arm_configs`); :func:`missing` lists a phase's cells without a record, and
:func:`ready_cells` what can run now: the tune cells, then the report cells of the arms whose tuning is
complete, each part in :func:`longest_first` order (seed by seed, the longest estimated trial first);
:func:`resumable` which of those left a checkpoint in the run's checkpoint store. :mod:`trials.study` runs
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from analysis.load import load_records
from analysis.selection import choose_arm_configs
from mat.spec.arms import ARM_KEY, PHASE_KEY
from mat.spec.ladder import RUNG_KEY
from mat.spec.records import TrialRecord, read_record
from trials.study_config import (
    Arm,
    Cell,
    Point,
    Study,
    StudyConfigError,
    report_cells,
    resolve,
    same_point,
    tune_cells,
)
from trials.study_estimate import task_reference, trial_seconds

RECORD = "trial.json"


def cell_of(study: Study, rec: TrialRecord) -> Cell | None:
    """The study cell a record belongs to; None for a record of no arm of the study.

    The arm is ``params.arm``; a record from before arms and phases (``params.rung`` only, the component
    study's first records) is a report cell of the arm whose settings set that rung, in a study without a tune
    phase.
    """
    arm_name, phase = rec.params.get(ARM_KEY), rec.params.get(PHASE_KEY)
    rung = rec.params.get(RUNG_KEY)
    if arm_name is None and phase is None and rung is not None and not study.tuning_seeds:
        arm_name = next((a.name for a in study.arms if a.settings.get(RUNG_KEY) == rung), None)
        phase = "report"
    if not isinstance(arm_name, str) or phase not in ("tune", "report") or rec.task not in study.tasks:
        return None
    try:
        arm = study.arm(arm_name)
    except StudyConfigError:
        return None
    point: Point = tuple((k, rec.params.get(k)) for k, _ in arm.points[0])
    point = next((p for p in arm.points if same_point(p, point)), point)
    return Cell(rec.task, str(phase), arm.name, int(rec.seed), point, study.layout)


def done_cells(study: Study, task: str) -> dict[str, tuple[Cell, Path]]:
    """``{cell folder: (cell, record)}`` of ``task``'s records under the study's records folder.

    Raises:
        ValueError: a record there is not SUCCEEDED, not of this study, or in another cell's folder (named).
    """
    out: dict[str, tuple[Cell, Path]] = {}
    depth = "*/" if study.layout == "flat" else "*/*/"
    for path in sorted((study.records / task).glob(f"{depth}{RECORD}")):
        rec = read_record(path)
        cell = cell_of(study, rec)
        if rec.status != "SUCCEEDED" or cell is None or path.parent != study.records / cell.folder():
            where = cell.folder() if cell else "no cell of this study"
            raise ValueError(f"{path}: a {rec.status} record of {where} does not belong here; the folder "
                             "holds SUCCEEDED records of this study's cells only, each in its own cell's "
                             "folder")
        out[cell.folder()] = (cell, path)
    return out


def chosen_points(study: Study, task: str, arms: Sequence[Arm]) -> dict[str, Point] | None:
    """Each arm's chosen grid point from its tune records, or None while a tune cell of ``arms`` has none."""
    done = done_cells(study, task)
    if any(c.folder() not in done for c in tune_cells(study, task, arms)):
        return None
    if len(arms[0].points) == 1 and not arms[0].points[0] or not study.tuning_seeds:
        return {a.name: a.points[0] for a in arms}  # nothing to tune: the one point
    rows = choose_arm_configs(load_records(study.records / task / "tune"), "tune",
        by=("task", "arm", "model"))
    out: dict[str, Point] = {}
    for arm in arms:
        row = rows[rows["arm"] == arm.name]
        params = row["params"].iloc[0]
        point: Point = tuple((k, params.get(k)) for k, _ in arm.points[0])
        out[arm.name] = next(p for p in arm.points if same_point(p, point))
    return out


def missing(study: Study, task: str, phase: str, arms: Sequence[Arm]) -> list[Cell]:
    """The cells of ``phase`` of ``arms`` without a record (report cells only once every one of ``arms`` is
    tuned).

    Raises:
        ValueError: a report record ran another point than the one now chosen for its arm (named).
    """
    done = done_cells(study, task)
    if phase == "tune":
        return [c for c in tune_cells(study, task, arms) if c.folder() not in done]
    chosen = chosen_points(study, task, arms)
    if chosen is None:
        return []
    cells = report_cells(study, task, chosen)
    for cell in cells:
        if cell.folder() in done and not same_point(done[cell.folder()][0].point, cell.point):
            raise ValueError(f"{study.records / cell.folder()}: ran {done[cell.folder()][0].point} but the "
                             f"tune records now choose {cell.point} for {cell.arm}; move the report records "
                             "away")
    return [c for c in cells if c.folder() not in done]


def longest_first(study: Study, task: str, cells: Sequence[Cell]) -> list[Cell]:
    """``cells`` seed by seed in their order (a report phase stopped half-way still leaves whole seeds), and
    within a seed the longest estimated trials first (:mod:`trials.study_estimate`; ties keep their order), so
    that a phase ends on short trials instead of one long trial running alone while the other slots wait; as
    given when the study has no estimate for ``task``."""
    ref = task_reference(study.estimate_from, task) if study.estimate_from is not None else None
    if ref is None:
        return list(cells)
    seconds = [trial_seconds(resolve(study, c), ref) for c in cells]
    seed_rank = {seed: k for k, seed in enumerate(dict.fromkeys(c.seed for c in cells))}
    order = sorted(range(len(cells)), key=lambda i: (seed_rank[cells[i].seed], -seconds[i]))  # stable
    return [cells[i] for i in order]


def ready_cells(study: Study, task: str, arms: Sequence[Arm]) -> tuple[str, list[Cell]]:
    """What can run now, and its label (``tune``, ``report`` or ``tune+report``): the tune cells without a
    record, then the report cells of the arms whose tuning is complete (each at its chosen point; an arm's
    report waits only for its own tune cells), each part in :func:`longest_first` order. Running them in one
    experiment keeps every slot busy while an arm's last tune trials run.

    Raises:
        ValueError: a report record ran another point than the one now chosen for its arm (named).
    """
    tune = missing(study, task, "tune", arms)
    pending = {c.arm for c in tune}
    tuned = [a for a in arms if a.name not in pending]
    report = missing(study, task, "report", tuned) if tuned else []
    label = "+".join(phase for phase, part in (("tune", tune), ("report", report)) if part)
    return label, longest_first(study, task, tune) + longest_first(study, task, report)


def resumable(study: Study, task: str, arms: Sequence[Arm], store: Path) -> list[tuple[Cell, int]]:
    """The cells that can run now (:func:`ready_cells`) whose stopped or killed trial left a checkpoint in the
    checkpoint store ``store``, with its step: their next trial resumes there
    (:func:`mat.checkpoint.store_key` of the cell's configuration, as the trial builds it)."""
    if not Path(store).is_dir():
        return []
    from mat.checkpoint import latest_checkpoint, store_key  # torch: only with a store

    out = []
    for cell in ready_cells(study, task, arms)[1]:
        found = latest_checkpoint(Path(store) / store_key(resolve(study, cell)))
        if found is not None:
            out.append((cell, found[0]))
    return out
