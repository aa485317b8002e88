"""Where a trial's record comes from and where it lives: versions, the code (commit, and whether and how the
tracked files differ from it), the output folder, a new record for a configuration, and the configuration
resolved once (:func:`resolve`: the task's and the method's specs and the output folder, what ``fit`` takes).

Beside :mod:`mat.spec.records` (the record format itself): this module knows the configuration
(:class:`mat.spec.config.TrialConfig`), the record module does not. No torch here.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mat import __version__
from mat.spec.config import TrialConfig
from mat.spec.methods import MethodSpec, get_method_spec
from mat.spec.records import TrialRecord
from mat.spec.tasks import TaskSpec, get_task

STACK = ("torch", "transformers", "datasets", "nni")


def versions() -> dict[str, str | None]:
    """Versions of python, mat-harness and the stack (None for a package that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "mat": __version__}
    for pkg in STACK:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class GitState:
    """The code a run comes from: the commit, whether tracked files differ from it, and a hash of how.

    Attributes:
        sha: ``git rev-parse HEAD`` (None outside a git checkout, e.g. an installed copy).
        dirty: tracked files differ from ``sha`` (``git diff HEAD`` is not empty); None when unknown.
        diff_sha: the SHA-256 of ``git diff HEAD --binary`` when dirty, so runs from one edited tree share it
            and runs from different edits do not; None when clean or unknown. Untracked files are not in it.
    """

    sha: str | None
    dirty: bool | None
    diff_sha: str | None


def _git(args: list[str], cwd: Path) -> bytes | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(path: str | Path | None = None) -> GitState:
    """The :class:`GitState` of the git checkout holding ``path`` (default: this mat-harness checkout)."""
    cwd = Path(path) if path is not None else HERE
    head = _git(["rev-parse", "HEAD"], cwd)
    sha = head.decode().strip() or None if head is not None else None
    if sha is None:
        return GitState(None, None, None)
    diff = _git(["diff", "HEAD", "--binary", "--no-ext-diff", "--no-color"], cwd)
    if diff is None:
        return GitState(sha, None, None)
    return GitState(sha, bool(diff), hashlib.sha256(diff).hexdigest() if diff else None)


@functools.lru_cache(maxsize=None)
def code_sha(root: Path = HERE) -> str:
    """SHA-256 of the package's Python sources: the relative path and bytes of every ``*.py`` under ``root``
    (default: this ``mat`` package), in sorted order.

    The code a checkpoint was written by (:func:`mat.checkpoint.fingerprint`). Unlike the commit, it does not
    move when files outside the package are committed (records, docs), and it does see uncommitted edits and
    an installed copy's code.
    """
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def task_name(name: str) -> str:
    """The registry's name of a task (``SST-2`` -> ``sst2``); an unknown name is kept as given, so the
    record of a trial that failed on its task name still says what it was asked."""
    try:
        return get_task(name).name
    except KeyError:
        return name


def default_output_dir(cfg: TrialConfig) -> Path:
    """``--output_dir`` (the trial script passes ``$NNI_OUTPUT_DIR`` under NNI), else
    ``runs/<task>-<method>-seed<k>``."""
    if cfg.run.output_dir:
        return Path(cfg.run.output_dir)
    return Path("runs") / f"{task_name(cfg.run.task)}-{cfg.run.method}-seed{cfg.train.seed}"


def new_record(cfg: TrialConfig, trial_id: str | None = None,
    experiment_id: str | None = None) -> TrialRecord:
    """A RUNNING record for ``cfg`` with its parameters, run settings, versions and code state (commit,
    whether tracked files were edited, the hash of the edit) filled in."""
    out = default_output_dir(cfg)
    code = git_state()
    return TrialRecord(
        trial_id=trial_id or cfg.run.trial_id or out.name,
        experiment_id=experiment_id,
        method=cfg.run.method,
        task=task_name(cfg.run.task),
        model=cfg.run.model,
        seed=cfg.train.seed,
        params=cfg.params(),
        run=cfg.run_settings(),
        versions=versions(),
        git_sha=code.sha,
        git_dirty=code.dirty,
        git_diff_sha=code.diff_sha,
    )


@dataclass(frozen=True)
class Trial:
    """A configuration with its names resolved once, by :func:`resolve`: what ``fit`` trains.

    Attributes:
        cfg: the configuration.
        task: the spec of ``cfg.run.task``.
        method: the spec of ``cfg.run.method``.
        out_dir: where the record, checkpoints and predictions go (:func:`default_output_dir`).
    """

    cfg: TrialConfig
    task: TaskSpec
    method: MethodSpec[Any]
    out_dir: Path


def resolve(cfg: TrialConfig) -> Trial:
    """Look up ``cfg``'s task and method and fix its output folder, once for the whole trial.

    Raises:
        KeyError: an unknown task (the message lists the valid names and the closest match).
    """
    return Trial(cfg, get_task(cfg.run.task), get_method_spec(cfg.run.method), default_output_dir(cfg))
