"""Load trial records and NNI experiments into one tidy long-form DataFrame (:mod:`analysis.tidy`).

* :func:`load_records`: every ``trial.json`` under one or more folders;
* :func:`load_nni_experiment`: one NNI experiment from its own store (:mod:`analysis.nni_store`);
* :func:`load`: both at once, every trial once.

Bad input never stops a load: a corrupt or truncated ``trial.json``, an unknown schema version, an
unknown task, a metric the task does not have, and a missing or NaN metric (a record
``mat.spec.tasks.task_score`` would refuse to score) are skipped with an :class:`AnalysisWarning` naming the
file and the metric, and listed as ``(path, reason)`` pairs in the :class:`~analysis.tidy.Loaded` that
:func:`load_with_notes` returns beside the frame (never in ``df.attrs``, which pandas deep-copies into every
derived frame).

Trial identity (:mod:`analysis.identity`): a trial loaded twice is kept once (SUCCEEDED, then newest
copy; the others listed as skipped); two trials of one configuration and seed are counted once (the
other listed in ``Loaded.repeats``); local trials sharing a trial id (``runs/<method>/seed<k>/``)
are told apart by their folder.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from analysis.nni_store import (
    NNI_STATUS,
    NniStore,
    default_nni_dir,
    load_nni_experiment,
    load_nni_into,
    nni_experiment_dir,
    parameter_history,
    read_nni_store,
)
from analysis.parallel_read import read_files_into
from analysis.tidy import (
    COLUMNS,
    DEV,
    LOCAL_EXPERIMENT,
    RUN_KEYS,
    TRIAL_COLUMNS,
    AnalysisWarning,
    Builder,
    Loaded,
    check_record,
    config_key,
)
from mat.spec.records import RECORD_FILE, STATUSES

__all__ = [
    "COLUMNS", "DEV", "LOCAL_EXPERIMENT", "NNI_STATUS", "RUN_KEYS", "TRIAL_COLUMNS", "AnalysisWarning",
    "Loaded", "NniStore", "check_record", "config_key", "default_nni_dir", "find_record_files", "load",
    "load_nni_experiment", "load_records", "load_with_notes", "nni_experiment_dir", "parameter_history",
    "read_nni_store", "status_counts", "trials",
]


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


def _roots(roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    return [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)


def load_records(roots: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Load every ``trial.json`` under one or more folders into the tidy frame.

    Args:
        roots: folders searched recursively, or record files.

    Returns:
        The tidy frame (each skipped file and each repeat is named in an :class:`AnalysisWarning`;
        :func:`load_with_notes` returns their lists beside the frame).

    Raises:
        FileNotFoundError: a root does not exist.
    """
    b = Builder()
    read_files_into(b, [p for root in _roots(roots) for p in find_record_files(root)])
    return b.frame()


def load_with_notes(records: Iterable[str | os.PathLike[str]] = (), experiments: Iterable[str] = (),
                    nni_dir: str | os.PathLike[str] | None = None,
                    meanwhile: Callable[[], object] | None = None) -> Loaded:
    """Load record folders and NNI experiments together into one tidy frame, every trial once, with the
    skipped inputs and the repeats beside it.

    A trial found twice (an NNI experiment also given as a records folder, or two copies of one record)
    keeps one copy, the SUCCEEDED and newest; the others are listed as skipped. Many record files are read
    in two processes (:mod:`analysis.parallel_read`), ``meanwhile()`` running in this one while the other
    reads (the CLI imports the report's modules there); without records it runs first.

    Raises:
        FileNotFoundError: a records folder or an experiment does not exist.
    """
    dirs = [nni_experiment_dir(e, nni_dir) for e in experiments]
    with collector_paused():
        b = Builder()
        for exp_dir in dirs:
            load_nni_into(b, exp_dir)
        paths = [p for root in _roots(records) for p in find_record_files(root)]
        read_files_into(b, paths, meanwhile)
        return b.loaded()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block (restored as it was after). Reading records
    makes millions of objects and no reference cycles: the collector would walk all of them again and again
    as they pile up (a third of the frame's build time)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def load(records: Iterable[str | os.PathLike[str]] = (), experiments: Iterable[str] = (),
         nni_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The tidy frame of :func:`load_with_notes` alone.

    Raises:
        FileNotFoundError: a records folder or an experiment does not exist.
    """
    return load_with_notes(records, experiments, nni_dir).frame


def trials(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: the trial columns, ``param.*`` and ``run.*`` (drops the evaluation columns)."""
    cols = list(TRIAL_COLUMNS) + [c for c in df.columns if c.startswith(("param.", "run."))]
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
