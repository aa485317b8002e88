"""NNI 3.0's experiment folder and its sqlite store, as the trials and the analysis read them (no nni import).

An experiment lives in ``<nni_dir>/<id>/``: its store ``db/nni.sqlite`` (tables ``ExperimentProfile``,
``TrialJobEvent``, ``MetricData``), each trial's working folder ``environments/<env>/trials/<trial>`` (the
trial's ``$NNI_SYS_DIR`` and ``$NNI_OUTPUT_DIR`` on the local training service) and the folder NNI's web UI
starts TensorBoard on, ``trials/<trial>/output/tensorboard``. The store is opened read-only (sqlite URI
``mode=ro``), so a running experiment is not disturbed. ``trials/`` reads the experiment config from it
(``trialConcurrency``); ``analysis`` reads every table (:mod:`analysis.nni_store`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

STORE = Path("db") / "nni.sqlite"  # an experiment's store, in its folder
EVENTS_QUERY = "SELECT * FROM TrialJobEvent ORDER BY rowid"
METRICS_QUERY = "SELECT * FROM MetricData ORDER BY rowid"
_PROFILE_QUERY = "SELECT params, endTime FROM ExperimentProfile ORDER BY revision DESC LIMIT 1"


def store_path(experiment_dir: str | os.PathLike[str]) -> Path:
    """The store of the experiment in ``experiment_dir``: ``<experiment_dir>/db/nni.sqlite``."""
    return Path(experiment_dir) / STORE


def experiment_dir_above(path: str | os.PathLike[str]) -> Path | None:
    """The experiment folder holding ``path`` (a trial's ``$NNI_SYS_DIR``): the nearest parent with a store;
    None outside a local NNI experiment."""
    return next((p for p in Path(path).resolve().parents if store_path(p).is_file()), None)


def trial_dirs(experiment_dir: Path, trial: str, environment: str | None = None) -> list[Path]:
    """The working folders of ``trial`` (``environments/<env>/trials/<trial>``): the one of ``environment``
    when it exists, else every one found, sorted."""
    own = experiment_dir / "environments" / (environment or "") / "trials" / trial
    if environment is not None and own.is_dir():
        return [own]
    return sorted((experiment_dir / "environments").glob(f"*/trials/{trial}"))


def webui_tensorboard_dir(experiment_dir: Path, trial: str) -> Path:
    """Where NNI 3.0's web UI starts TensorBoard for ``trial`` (its ``getTrialOutputLocalPath``)."""
    return experiment_dir / "trials" / trial / "output" / "tensorboard"


def connect(db: str | os.PathLike[str], timeout: float = 5.0) -> sqlite3.Connection:
    """Open a store read-only (sqlite URI ``mode=ro``).

    Raises:
        FileNotFoundError: no such file.
        sqlite3.Error: not a database.
    """
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"no NNI database at {path}")
    return sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=timeout)


def latest_profile(con: sqlite3.Connection) -> tuple[dict[str, Any], int | None]:
    """The experiment config (``params`` of the latest ``ExperimentProfile`` revision, ``{}`` when there is
    none) and that revision's ``endTime`` (ms since the epoch; set once the experiment is DONE or stopped,
    None while it runs).

    Raises:
        sqlite3.Error: no such table. ValueError: the config is not JSON.
    """
    row = con.execute(_PROFILE_QUERY).fetchone()
    profile = json.loads(row[0]) if row and row[0] else {}
    end_time = int(row[1]) if row and isinstance(row[1], (int, float)) else None
    return profile, end_time
