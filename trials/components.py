"""The component study's bookkeeping (docs/components.md): which (task, rung, seed) cells have a record, an
NNI search space of only the missing ones, and an experiment's records copied into the repository as they
finish.

The study's records live at ``<records>/<task>/<rung>-seed<k>/trial.json`` (``results/components`` in this
repository): SUCCEEDED trial records only, no checkpoints. A cell is done when its record is there; ``status``
also estimates the trial-hours the other cells need from the finished records::

    python -m trials.components status --records results/components --task rte
    python -m trials.components space --records results/components --task rte --out missing.json
    python -m trials.components collect ~/nni-experiments/<id> --records results/components
    python -m trials.components run nni_configs/components_rte.yml --records results/components --port 8080

``run`` is the one a study needs: it reads the task from the config's ``trialCommand``, writes a search space
of the missing cells only (an NNI nested choice, seed-major: every rung of seed 1, then of seed 2, ..., so a
study stopped half-way still has whole seeds to pair), starts the experiment with ``nnictl`` (GridSearch: each
missing cell once), copies each SUCCEEDED record into ``<records>`` as it lands, and exits non-zero unless
every cell then has one. A stopped run loses only its running trials; the next ``run`` does the rest. It
refuses a checkout whose tracked files have uncommitted changes (the records would name a commit that is not
the code they ran) unless ``--allow_dirty``.

No ``import nni`` here: ``nnictl`` runs as a subprocess (:mod:`trials.experiment`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from mat.provenance import git_state
from mat.spec.ladder import RUNG_KEY, RUNG_NAMES, get_rung
from mat.spec.records import TrialRecord, read_record
from trials import experiment

Cell = tuple[str, int]  # (rung, seed)
DEFAULT_SEEDS = (1, 2, 3, 4, 5)
RECORD = "trial.json"


def cell_dir(records: Path, task: str, rung: str, seed: int) -> Path:
    """``<records>/<task>/<rung>-seed<seed>``: the folder of one cell's record."""
    return records / task / f"{rung}-seed{seed}"


def done_cells(records: Path, task: str) -> dict[Cell, Path]:
    """The cells of ``task`` that have a SUCCEEDED record under ``records``, with the record's path.

    Raises:
        ValueError: a record there is unreadable, not SUCCEEDED, of another task, or in the wrong folder
            (the message names the file): the study's folder holds finished cells only.
    """
    out: dict[Cell, Path] = {}
    for path in sorted((records / task).glob(f"*/{RECORD}")):
        rec = read_record(path)
        rung, seed = _cell_of(rec)
        if rec.status != "SUCCEEDED" or rec.task != task or path.parent != cell_dir(records, task, rung,
            seed):
            raise ValueError(f"{path}: a {rec.status} {rec.task} record of cell ({rung}, seed {seed}) does "
                             "not belong here; the folder holds SUCCEEDED records at "
                             f"<task>/<rung>-seed<k>/{RECORD} only")
        out[(rung, seed)] = path
    return out


def _cell_of(rec: TrialRecord) -> Cell:
    rung = rec.params.get(RUNG_KEY)
    if not isinstance(rung, str):
        raise ValueError(f"trial {rec.trial_id} has no params.{RUNG_KEY}: not a component-ladder trial")
    return get_rung(rung).name, int(rec.seed)


def missing_cells(records: Path, task: str, rungs: Sequence[str], seeds: Sequence[int]) -> list[Cell]:
    """The (rung, seed) cells without a record, seed-major (every rung of the first seed first)."""
    done = done_cells(records, task)
    return [(r, s) for s in seeds for r in rungs if (r, s) not in done]


def nested_space(cells: Iterable[Cell]) -> dict[str, Any]:
    """An NNI search space that GridSearch walks through exactly ``cells``, in their order.

    ``{"seed": {"_type": "choice", "_value": [{"_name": 1, "rung": {"_type": "choice", "_value": [...]}},
    ...]}}``: a nested choice (the trial flattens it: :func:`trials.mat_trial.flatten_nested`), one entry per
    seed in order of first appearance, each with that seed's rungs.

    Raises:
        ValueError: no cells.
    """
    by_seed: dict[int, list[str]] = {}
    for rung, seed in cells:
        by_seed.setdefault(int(seed), []).append(rung)
    if not by_seed:
        raise ValueError("no cells: nothing to search")
    return {"seed": {"_type": "choice", "_value": [
        {"_name": seed, RUNG_KEY: {"_type": "choice", "_value": rungs}} for seed, rungs in by_seed.items()]}}


def collect(sources: Iterable[Path], records: Path) -> list[Path]:
    """Copy every SUCCEEDED component-ladder ``trial.json`` found under ``sources`` to its cell; returns the
    new ones.

    A cell that already has a record keeps it (the first finished trial of a cell is the study's); records
    that are not SUCCEEDED or carry no rung are left where they are.
    """
    new: list[Path] = []
    for source in sources:
        for path in sorted(Path(source).rglob(RECORD)):
            try:
                rec = read_record(path)
                rung, seed = _cell_of(rec)
            except ValueError:
                continue  # unreadable, half-written or not a ladder trial
            if rec.status != "SUCCEEDED":
                continue
            dest = cell_dir(records, rec.task, rung, seed) / RECORD
            if copy_first_record(path, dest):
                new.append(dest)
    return new


def copy_first_record(path: Path, dest: Path) -> bool:
    """Copy the record at ``path`` to ``dest`` atomically unless ``dest`` has one (a cell's first finished
    trial is the study's); whether it was copied."""
    if dest.exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(path, tmp)
    tmp.replace(dest)
    return True


def trial_flags(config: dict[str, Any]) -> list[str]:
    """The flags of an NNI config's ``trialCommand`` after the trial script (``.../mat_trial.py``)."""
    words = shlex.split(str(config.get("trialCommand", "")))
    script = next((i for i, w in enumerate(words) if w.endswith("mat_trial.py")), -1)
    return words[script + 1:]


def config_task(config: dict[str, Any]) -> str:
    """The ``--task`` of an NNI config's ``trialCommand``.

    Raises:
        ValueError: the command has no ``--task``.
    """
    words = trial_flags(config)
    for i, word in enumerate(words):
        if word == "--task" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--task="):
            return word.split("=", 1)[1]
    raise ValueError("the config's trialCommand has no --task: cannot tell which task's cells to run")


def missing_config(config_path: Path, space: dict[str, Any], n_trials: int, workdir: Path,
                   concurrency: int | None = None) -> Path:
    """A copy of ``config_path`` in ``workdir`` that searches ``space`` for ``n_trials`` trials (paths made
    absolute),
    ``concurrency`` trials at a time when given (else the config's ``trialConcurrency``)."""
    config = yaml.safe_load(config_path.read_text())
    base = config_path.resolve().parent
    space_file = workdir / "space.json"
    space_file.write_text(json.dumps(space, indent=1) + "\n")
    config.update(searchSpaceFile=str(space_file), maxTrialNumber=n_trials,
                  trialCodeDirectory=str((base / config.get("trialCodeDirectory", ".")).resolve()))
    if concurrency is not None:
        config["trialConcurrency"] = concurrency
    config.pop("searchSpace", None)
    out = workdir / config_path.name
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def _parse_rungs(text: str) -> list[str]:
    try:
        return [get_rung(name).name for name in text.split(",") if name.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1; got {text!r}")
    return value


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds must look like 1-5 or 1,2,7; got {text!r}") from None
    return seeds


def rung_seconds(records: Path, task: str) -> dict[str, float]:
    """Median wall seconds of a finished trial per rung (the records' ``cost.wall_seconds.total``): this
    task's
    records where a rung has some, else those of every task under ``records``."""
    def medians(paths: Iterable[Path]) -> dict[str, float]:
        by: dict[str, list[float]] = {}
        for path in paths:
            rec = read_record(path)
            wall = rec.cost.get("wall_seconds")
            total = wall.get("total") if isinstance(wall, dict) else None
            if rec.status == "SUCCEEDED" and isinstance(total,
                (int, float)) and isinstance(rec.params.get(RUNG_KEY), str):
                by.setdefault(get_rung(rec.params[RUNG_KEY]).name, []).append(float(total))
        return {r: statistics.median(v) for r, v in by.items()}

    anywhere = medians(sorted(records.glob(f"*/*/{RECORD}")))
    return anywhere | medians(sorted((records / task).glob(f"*/{RECORD}")))


def estimate(records: Path, task: str, cells: Sequence[Cell], concurrency: int = 2) -> str:
    """One line: the trial-hours the ``cells`` would take by :func:`rung_seconds`, and the hours at
    ``concurrency`` trials at a time (the records' seconds: the same machine and concurrency assumed)."""
    secs = rung_seconds(records, task)
    known = [secs[r] for r, _s in cells if r in secs]
    unknown = sorted({r for r, _s in cells if r not in secs})
    hours = sum(known) / 3600
    line = (f"{len(cells)} cells to run: about {hours:.1f} trial-hours by the finished records' median wall "
            f"time per rung, {hours / concurrency:.1f} h at {concurrency} at a time")
    return line + (f"; not counted (no record of the rung yet): {', '.join(unknown)}" if unknown else "")


def _status_table(records: Path, task: str, rungs: Sequence[str], seeds: Sequence[int],
    concurrency: int = 2) -> str:
    done = done_cells(records, task)
    lines = [f"{task}: {sum((r, s) in done for r in rungs for s in seeds)}/{len(rungs) * len(seeds)} cells "
        "have a record",
             f"{'rung':<20} " + " ".join(f"s{s:<3}" for s in seeds)]
    for rung in rungs:
        lines.append(f"{rung:<20} " + " ".join(f"{'done' if (rung, s) in done else '-':<4}" for s in seeds))
    missing = missing_cells(records, task, rungs, seeds)
    if missing:
        lines.append(estimate(records, task, missing, concurrency))
    return "\n".join(lines)


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


def _run(args: argparse.Namespace) -> int:
    refused = refuse_dirty(args.allow_dirty)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    config_path = Path(args.config)
    config = yaml.safe_load(config_path.read_text())
    task = config_task(config)
    records = Path(args.records)
    missing = missing_cells(records, task, args.rungs, args.seeds)
    # the one value the run and its estimate use
    at_once = args.concurrency or int(config.get("trialConcurrency", 1))
    print(_status_table(records, task, args.rungs, args.seeds, at_once), flush=True)
    if not missing:
        print(f"every cell of {task} has a record: nothing to run")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix=f"components-{task}-"))
    run_config = missing_config(config_path, nested_space(missing), len(missing), workdir, at_once)
    exp = experiment.create(str(run_config), args.port)
    exp_dir = Path(args.nni_home).expanduser() / exp
    print(f"experiment {exp}: {len(missing)} missing cells of {task}; web UI http://127.0.0.1:{args.port} "
          f"(stop it with: nnictl stop {exp}; run this again to continue); config {run_config}", flush=True)
    last = 0.0

    def harvest() -> None:
        nonlocal last
        if time.monotonic() - last >= args.collect_every:
            last = time.monotonic()
            for path in collect([exp_dir], records):
                print(f"record: {path}", flush=True)

    try:
        status = experiment.wait(args.port, args.timeout, on_poll=harvest, expected=len(missing))
    except experiment.ExperimentError as e:  # stopped from elsewhere, or the timeout: keep what finished
        status = f"ended early ({e})"
    finally:
        last = 0.0
        harvest()
        if args.stop:
            experiment.stop(exp)
    left = missing_cells(records, task, args.rungs, args.seeds)
    print(f"experiment {exp}: {status}; {len(missing) - len(left)}/{len(missing)} missing cells now have a "
        "record")
    print(_status_table(records, task, args.rungs, args.seeds, at_once))
    return 1 if left else 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``status``, ``space``, ``collect`` and ``run`` (module docstring)."""
    p = argparse.ArgumentParser(prog="python -m trials.components", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def cells_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--records", default="results/components", help="the study's records (default "
            "results/components)")
        q.add_argument("--rungs", type=_parse_rungs, default=list(RUNG_NAMES),
                       help=f"comma-separated rungs, in this order (default all: {','.join(RUNG_NAMES)})")
        q.add_argument("--seeds", type=_parse_seeds, default=list(DEFAULT_SEEDS), help="seeds, e.g. 1-5 or "
            "1,3 (default 1-5)")

    s = sub.add_parser("status", help="which cells of a task have a record, and the trial-hours the others "
        "need")
    s.add_argument("--task", required=True, help="GLUE task name, e.g. rte")
    cells_args(s)
    sp = sub.add_parser("space", help="write the NNI search space of the missing cells")
    sp.add_argument("--task", required=True, help="GLUE task name, e.g. rte")
    sp.add_argument("--out", required=True, help="search-space JSON file to write")
    cells_args(sp)
    c = sub.add_parser("collect", help="copy SUCCEEDED ladder records from experiment or trial folders into "
        "--records")
    c.add_argument("sources", nargs="+", help="folders searched for trial.json (e.g. ~/nni-experiments/<id>)")
    c.add_argument("--records", default="results/components", help="the study's records (default "
        "results/components)")
    r = sub.add_parser("run", help="run the missing cells of a components config through NNI, collecting "
        "records")
    r.add_argument("config", help="a components config, e.g. nni_configs/components_rte.yml")
    cells_args(r)
    r.add_argument("--port", type=int, default=8080, help="web UI / REST port (default 8080)")
    r.add_argument("--concurrency", type=_positive_int, default=None,
                   help="trials at a time (default: the config's trialConcurrency); each trial takes cores / "
                        "this many threads unless OMP_NUM_THREADS is set. Change it later with: nnictl "
                        "update concurrency <id> --value N")
    r.add_argument("--timeout", type=float, default=7 * 86400, help="seconds to wait for the end (default 7 "
        "days)")
    r.add_argument("--collect_every", type=float, default=30.0, help="seconds between record collections "
        "(default 30)")
    r.add_argument("--nni_home", default="~/nni-experiments", help="NNI's experiments folder (default "
        "~/nni-experiments)")
    r.add_argument("--stop", action="store_true", help="nnictl stop the experiment at the end (default: keep "
        "the web UI up)")
    r.add_argument("--allow_dirty", action="store_true",
                   help="run even though tracked files have uncommitted changes (refused by default: the "
                        "records would name a commit that is not the code they ran; with this they say "
                        "git_dirty and carry the diff's hash)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "status":
            print(_status_table(Path(args.records), args.task, args.rungs, args.seeds))
        elif args.cmd == "space":
            missing = missing_cells(Path(args.records), args.task, args.rungs, args.seeds)
            if not missing:
                print(f"every cell of {args.task} has a record: no search space written")
                return 0
            Path(args.out).write_text(json.dumps(nested_space(missing), indent=1) + "\n")
            print(f"{args.out}: {len(missing)} missing cells of {args.task}")
        elif args.cmd == "collect":
            new = collect([Path(x).expanduser() for x in args.sources], Path(args.records))
            for path in new:
                print(f"record: {path}")
            print(f"{len(new)} new records in {args.records}")
        else:
            return _run(args)
    except (ValueError, OSError, experiment.ExperimentError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
