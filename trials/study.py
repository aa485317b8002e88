"""The study runner: every arm tuned alike on the selection half of dev, then reported on other seeds.

``python -m trials.study {status,space,run,collect} STUDY.yml`` (docs/study.md). A study config
(:mod:`trials.study_config`) names the tasks, the model, the flags every arm shares, the arms (a method plus
fixed settings), one tuning grid of the same size for every arm, the tuning seeds, the report seeds and the
concurrency. Per task, ``run`` does:

1. **tune**: every arm × grid point × tuning seed without a record, one NNI experiment (GridSearch over
   exactly those cells), each SUCCEEDED record copied to ``<records>/<task>/tune/<arm>-<point>-seed<k>/`` as
   it lands; an arm's report cells join the next experiment once its own tuning is complete
   (:func:`trials.study_cells.ready_cells`);
2. **choose**: per arm, the grid point with the highest mean selection-half score over the tuning seeds, each
   trial at the evaluation the selection half picks (:func:`analysis.selection.choose_arm_configs`; the report
   half is never looked at);
3. **report**: each arm at its chosen point × report seed, records at
   ``<records>/<task>/report/<arm>-seed<k>/``; the study's page (``python -m analysis benchmark --study
   STUDY.yml --out docs``) scores them on the report half at the evaluation the selection half picked
   (``--selection split``).

A study without a grid has no tune phase: every arm runs at its fixed settings on the report seeds (the
component study, ``studies/components.yml``, whose ``layout: flat`` keeps its records at
``<records>/<task>/<arm>-seed<k>/``). Report cells run seed-major (every arm of the first seed first), so a
run stopped half-way leaves whole seeds to pair.

Every trial gets its arm's method and settings, the grid point, the seed and the labels ``arm`` and ``phase``
as NNI parameters (:mod:`mat.spec.arms`); the records carry them in ``params``. A run is resumable by cells:
only cells without a record run, a stopped or killed run loses only its trials' steps since their last
checkpoint, and ``run`` exits non-zero unless every cell of the tasks it ran has a record. Its trials keep
their checkpoints in a checkpoint store keyed by configuration (``--checkpoint_store``, default
``~/.cache/mat_harness/study-checkpoints/<study name>``; :func:`mat.checkpoint.claim_store`), so a cell whose
trial was stopped or killed resumes, in the next ``run``, from its last checkpoint (the study's
``--checkpoint_every`` flag, or the one a stop writes) as long as the ``mat`` package's code is unchanged;
committing records or docs in between does not matter. It refuses a checkout with uncommitted changes unless
``--allow_dirty``. ``status`` prints the estimate before a run (:mod:`trials.study_estimate`) and estimate
against actual after.

``trials`` imports ``analysis`` here (one way: ``analysis`` never imports ``trials``) so the choice is the
analysis's own function on the analysis's own frame, not a second implementation. No ``import nni``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from analysis.study_plan import edge_note
from mat.provenance import git_state
from mat.spec.arms import ARM_KEY
from mat.spec.records import read_record
from trials import experiment
from trials.nni_store import copy_first_record
from trials.study_cells import (
    RECORD,
    cell_of,
    chosen_points,
    done_cells,
    longest_first,
    missing,
    ready_cells,
    resumable,
)
from trials.study_config import (
    Arm,
    Cell,
    Study,
    load_study,
    report_cells,
    resolve,
    tune_cells,
)
from trials.study_estimate import actual_seconds, hours_line, task_reference, trial_seconds

__all__ = ["cell_of", "chosen_points", "collect", "done_cells", "longest_first", "main", "missing",
           "nni_config", "ready_cells", "resumable", "space"]

REPO = Path(__file__).resolve().parents[1]


def space(study: Study, cells: Sequence[Cell]) -> dict[str, Any]:
    """An NNI search space that GridSearch walks through exactly ``cells``, in order: one nested choice per
    cell, named by the arm, each parameter a one-value choice (the trial flattens it)."""
    if not cells:
        raise ValueError("no cells: nothing to search")
    one = lambda v: {"_type": "choice", "_value": [v]}  # noqa: E731
    entries = []
    for cell in cells:
        params = {k: v for k, v in cell.params(study.arm(cell.arm)).items() if k != ARM_KEY}
        entries.append({"_name": cell.arm, **{k: one(v) for k, v in params.items()}})
    return {ARM_KEY: {"_type": "choice", "_value": entries}}


def collect(study: Study, sources: Iterable[Path]) -> list[Path]:
    """Copy every SUCCEEDED record of a study cell found under ``sources`` to its cell; returns the new ones.
    A cell keeps its first record; other records are left where they are."""
    new: list[Path] = []
    for source in sources:
        for path in sorted(Path(source).rglob(RECORD)):
            try:
                rec = read_record(path)
            except ValueError:
                continue  # half-written or not a record
            cell = cell_of(study, rec)
            if cell is None or rec.status != "SUCCEEDED":
                continue
            dest = study.records / cell.folder() / RECORD
            if copy_first_record(path, dest):
                new.append(dest)
    return new


def nni_config(study: Study, task: str, phase: str, cells: Sequence[Cell], workdir: Path,
    at_once: int, store: Path | None = None) -> Path:
    """The NNI experiment config of ``cells`` (GridSearch, local), written to ``workdir``; its trials keep
    their checkpoints in the checkpoint store ``store`` when given."""
    space_file = workdir / "space.json"
    space_file.write_text(json.dumps(space(study, cells), indent=1) + "\n")
    words = [study.python or sys.executable, "trials/mat_trial.py", "--task", task, "--model", study.model,
             *study.flags, *(["--checkpoint_store", str(store)] if store is not None else [])]
    config = {"experimentName": f"{study.name}_{task}_{phase}", "searchSpaceFile": str(space_file),
              "trialCommand": " ".join(shlex.quote(w) for w in words), "trialCodeDirectory": str(REPO),
              "trialConcurrency": at_once, "maxTrialNumber": len(cells), "maxExperimentDuration": "7d",
              "tuner": {"name": "GridSearch", "classArgs": {"optimize_mode": "maximize"}},
              "trainingService": {"platform": "local"}}
    out = workdir / f"{study.name}_{task}_{phase}.yml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def estimate_lines(study: Study, arms: Sequence[Arm], tasks: Sequence[str]) -> list[str]:
    """The estimate of every cell of ``tasks``, per task and in all (:mod:`trials.study_estimate`), and the
    actuals."""
    if study.estimate_from is None:
        return ["no estimate: the study config names no estimate_from records"]
    lines, total, left = [], 0.0, 0.0
    todo: list[tuple[str, float]] = []  # (arm, estimated seconds) of every cell still to run
    spent: dict[str, list[float]] = {}  # per arm: [actual CPU seconds, their estimate] over its records
    for task in tasks:
        ref = task_reference(study.estimate_from, task)
        if ref is None:
            lines.append(f"{task}: no reference records under {study.estimate_from / task}: not estimated")
            continue
        done = done_cells(study, task)
        per_arm = {a.name: trial_seconds(resolve(study, Cell(task, "tune", a.name, 0, a.points[0])), ref)
                   for a in arms}
        n = len(study.tuning_seeds) * len(arms[0].points) + len(study.report_seeds)
        secs = sum(per_arm.values()) * n
        cells = [*tune_cells(study, task, arms), *report_cells(study, task, {a.name: () for a in arms})]
        todo += [(c.arm, per_arm[c.arm]) for c in cells if c.folder() not in done]  # report: point not named
        total, left = total + secs, left + sum(per_arm[c.arm] for c in cells if c.folder() not in done)
        lines.append(hours_line(f"{task}, {n * len(arms)} trials estimated", secs, study.concurrency))
        for a in arms:
            paths = [p for c, p in done.values() if c.arm == a.name]
            real, cpu = actual_seconds(paths), actual_seconds(paths, "cpu_seconds")
            sums = spent.setdefault(a.name, [0.0, 0.0])
            sums[0], sums[1] = sums[0] + sum(cpu), sums[1] + per_arm[a.name] * len(cpu)
            got = f"; actual {sum(real) / len(real):.0f} s a trial over {len(real)}" if real else ""
            got += f" (CPU {sum(cpu) / len(cpu):.0f} s a trial over {len(cpu)})" if cpu else ""
            lines.append(f"  {a.name:<20} estimate {per_arm[a.name]:.0f} s a trial{got}")
    whole = "whole study" if tuple(tasks) == study.tasks else ", ".join(tasks)
    lines.append(hours_line(f"{whole}, estimate", total, study.concurrency))
    lines.append(hours_line("still to run, estimate", left, study.concurrency))
    # The records' own pace: each arm at its CPU seconds / estimate so far (an arm without records at the
    # pooled ratio). CPU seconds, not wall: a trial's wall time also counts whatever else shared the machine.
    pace = {arm: real / est for arm, (real, est) in spent.items() if est > 0}
    ratios = ", ".join(f"{arm} {ratio:.1f}x" for arm, ratio in pace.items())
    if pace and todo:
        pooled = sum(r for r, _ in spent.values()) / sum(e for _, e in spent.values())
        paced = sum(secs * pace.get(arm, pooled) for arm, secs in todo)
        lines.append(hours_line("still to run, at the records' pace", paced, study.concurrency)
                     + f" (their CPU seconds / the estimate: {ratios}; with nothing else on the machine)")
    elif pace:  # every cell has its record: what the estimate missed by, for the next study's plan
        lines.append(f"every cell has its record; the records' CPU seconds / the estimate: {ratios}")
    return lines


def status_lines(study: Study, arms: Sequence[Arm], tasks: Sequence[str] | None = None,
    store: Path | None = None) -> list[str]:
    """Per task (``tasks``, default the study's): which cells have a record, per arm its tune cells, chosen
    point and report cells (``done`` or ``-`` per seed), the cells whose trial resumes from a checkpoint in
    ``store``; then the estimate."""
    lines = []
    for task in tasks or study.tasks:
        waiting = resumable(study, task, arms, store) if store is not None else []
        done = done_cells(study, task)
        tune, chosen = tune_cells(study, task, arms), chosen_points(study, task, arms)
        report = report_cells(study, task, chosen) if chosen else []
        n_report = len(arms) * len(study.report_seeds)
        n_tune = sum(c.folder() in done for c in tune)
        head = f"tune {n_tune}/{len(tune)} cells, " if study.tuning_seeds else ""
        lines.append(f"{task}: {head}report {sum(c.folder() in done for c in report)}/{n_report} cells have "
                     "a record")

        def marks(cells: Sequence[Cell], arm: str) -> str:
            return " ".join("done" if c.folder() in done else "-" for c in cells if c.arm == arm)

        for arm in arms:
            parts = [f"tune: {marks(tune, arm.name)}"] if study.tuning_seeds else []
            if chosen and chosen[arm.name]:
                # a value beyond the grid's edge was not tried
                parts.append(f"chosen {dict(chosen[arm.name])}{edge_note(arm.points, chosen[arm.name])}")
            if report:
                n = sum(c.folder() in done for c in report if c.arm == arm.name)
                parts.append(f"report {n}/{len(study.report_seeds)}: {marks(report, arm.name)}")
            lines.append(f"  {arm.name:<20} " + "; ".join(parts))
        if waiting:
            lines.append("  latest checkpoints in the store (a stopped trial resumes there): " + ", ".join(
                f"{c.folder().split('/', 1)[1]} at step {step}" for c, step in waiting))
    return lines + estimate_lines(study, arms, tasks or study.tasks)


def run_phase(study: Study, task: str, phase: str, cells: list[Cell], args: argparse.Namespace) -> bool:
    """One NNI experiment of ``cells``, records collected as they land; stopped at the end. Returns whether
    it ran to its end (every trial done), not stopped, killed or timed out."""
    at_once = args.concurrency or study.concurrency
    workdir = Path(tempfile.mkdtemp(prefix=f"study-{study.name}-{task}-{phase}-"))
    config = nni_config(study, task, phase, cells, workdir, at_once, args.store)
    exp = experiment.create(str(config), args.port)
    exp_dir = Path(args.nni_home).expanduser() / exp
    print(f"experiment {exp}: {task} {phase}, {len(cells)} cells; web UI http://127.0.0.1:{args.port}",
        flush=True)
    last = 0.0

    def harvest(force: bool = False) -> None:
        nonlocal last
        if force or time.monotonic() - last >= args.collect_every:
            last = time.monotonic()
            for path in collect(study, [exp_dir]):
                print(f"record: {path}", flush=True)

    try:
        state = experiment.wait(args.port, args.timeout, on_poll=harvest, expected=len(cells))
    except experiment.ExperimentError as e:  # stopped or killed from elsewhere, or the timeout
        state = f"ended early ({e})"
    finally:
        harvest(force=True)
        experiment.stop(exp)
    print(f"experiment {exp}: {state}", flush=True)
    return state == "DONE" or state in experiment.NO_MORE  # not STOPPED, ERROR or ended early


def refuse_dirty(allow_dirty: bool) -> str | None:
    """Why a study must not start from this checkout (tracked files differ from the commit, so its records
    would not name the code they ran), or None; ``allow_dirty`` lets it start, and the records then carry
    ``git_dirty`` and the diff's hash (:func:`mat.provenance.git_state`)."""
    code = git_state()
    if not code.dirty or allow_dirty:
        return None
    return (f"the checkout has uncommitted changes to tracked files (git diff HEAD is not empty; diff "
            f"sha256 {(code.diff_sha or '')[:12]}): the study's records would name commit "
            f"{(code.sha or '')[:7]} but ran other code. Commit (or stash) the changes and run again, or "
            "pass --allow_dirty to run anyway (the records then say git_dirty and carry the diff's hash)")


def default_store(study: Study) -> Path:
    """Where ``run`` keeps its trials' checkpoints by default: ``<cache>/study-checkpoints/<study name>``, the
    cache being mat's (``$XDG_CACHE_HOME/mat_harness`` or ``~/.cache/mat_harness``)."""
    from mat.batching import default_cache_dir  # torch: only when a run starts

    return default_cache_dir() / "study-checkpoints" / study.name


def store_of(study: Study, args: argparse.Namespace) -> Path:
    """The checkpoint store of a ``run`` or ``status``: ``--checkpoint_store``, else :func:`default_store`."""
    return Path(args.checkpoint_store).expanduser() if args.checkpoint_store else default_store(study)


def _run(study: Study, args: argparse.Namespace) -> int:
    refused = refuse_dirty(args.allow_dirty)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    from mat.checkpoint import prune_store

    args.store = store_of(study, args)
    for gone in prune_store(args.store):
        print(f"checkpoint store: removed {gone.name}, written by other code (it cannot be resumed)",
              flush=True)
    print(f"checkpoint store: {args.store}", flush=True)
    arms, tasks = study.enabled(args.arms), args.tasks or study.tasks
    print("\n".join(status_lines(study, arms, tasks, args.store)), flush=True)
    for task in tasks:
        while True:  # tune and the tuned arms' report together; then the report of the arms tuned last
            label, cells = ready_cells(study, task, arms)
            if not cells:
                break
            landed = len(done_cells(study, task))
            ended = run_phase(study, task, label, cells, args)
            if not ended or len(done_cells(study, task)) == landed:
                break  # stopped from elsewhere, or every trial failed: the status below says what is missing
    print("\n".join(status_lines(study, arms, tasks, args.store)))
    return 1 if any(chosen_points(study, t, arms) is None or missing(study, t, "report", arms)
                    for t in tasks) else 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``status``, ``space``, ``run`` and ``collect`` (module docstring)."""
    p = argparse.ArgumentParser(prog="python -m trials.study", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    commands = {"status": "which cells have a record, the chosen configurations, estimate (and actual)",
                "space": "write the NNI search space of a task's missing cells of a phase",
                "run": "run every missing cell through NNI, tune then report, collecting records",
                "collect": "copy SUCCEEDED records of the study's cells from experiment or trial folders"}
    subs = {name: sub.add_parser(name, help=text) for name, text in commands.items()}
    for q in subs.values():
        q.add_argument("study", help="a study config, e.g. studies/benchmark_cpu.yml")
        q.add_argument("--arms", type=lambda s: [a for a in s.split(",") if a], default=None,
                       help="comma-separated arms (default: those the config enables)")
    subs["space"].add_argument("--task", required=True)
    subs["space"].add_argument("--phase", choices=("tune", "report"), default=None,
                               help="default: tune, or report in a study without a tune phase")
    subs["space"].add_argument("--out", required=True, help="search-space JSON file to write")
    subs["collect"].add_argument("sources", nargs="+", help="folders searched for trial.json")
    for q in subs["status"], subs["run"]:
        q.add_argument("--checkpoint_store", default=None, help="where trials keep their checkpoints, keyed "
            "by configuration, so a stopped or killed cell resumes in the next run (default: "
            "~/.cache/mat_harness/study-checkpoints/<study name>); how often: --checkpoint_every in the "
            "study's flags")
        q.add_argument("--tasks", type=lambda s: [t for t in s.split(",") if t], default=None,
                       help="comma-separated tasks, in this order (default: the study's, in its order)")
    r = subs["run"]
    r.add_argument("--port", type=int, default=8080, help="web UI / REST port (default 8080)")
    r.add_argument("--concurrency", type=_positive_int, default=None, help="trials at a time (default: the "
        "study's); change it later with: nnictl update concurrency <id> --value N")
    r.add_argument("--timeout", type=float, default=7 * 86400, help="seconds to wait per phase (default 7 "
        "days)")
    r.add_argument("--collect_every", type=float, default=30.0, help="seconds between collections (default "
        "30)")
    r.add_argument("--nni_home", default="~/nni-experiments", help="NNI's experiments folder")
    r.add_argument("--allow_dirty", action="store_true", help="run although tracked files have uncommitted "
        "changes")
    args = p.parse_args(argv)
    try:
        study = load_study(args.study)
        arms = study.enabled(args.arms)
        unknown = [t for t in getattr(args, "tasks", None) or [] if t not in study.tasks]
        if unknown:
            raise ValueError(f"--tasks {','.join(unknown)}: not in the study (its tasks: "
                             f"{', '.join(study.tasks)})")
        if args.cmd == "status":
            print("\n".join(status_lines(study, arms, args.tasks, store_of(study, args))))
        elif args.cmd == "space":
            phase = args.phase or ("tune" if study.tuning_seeds else "report")
            cells = missing(study, args.task, phase, arms)
            Path(args.out).write_text(json.dumps(space(study, cells), indent=1) + "\n")
            print(f"{args.out}: {len(cells)} missing {phase} cells of {args.task}")
        elif args.cmd == "collect":
            new = collect(study, [Path(x).expanduser() for x in args.sources])
            print("\n".join([f"record: {x}" for x in new] + [f"{len(new)} new records in {study.records}"]))
        else:
            return _run(study, args)
    except (ValueError, OSError, experiment.ExperimentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
