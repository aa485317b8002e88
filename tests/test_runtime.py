"""Threads per trial: the flag, then OMP_NUM_THREADS, then cores / trialConcurrency read from NNI's store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from mat.runtime import available_cores, trial_threads
from trials.nni_store import nni_concurrency


def test_flag_then_omp_then_concurrency() -> None:
    cores = available_cores()
    assert trial_threads(3, 2, {"OMP_NUM_THREADS": "5"}) == (3, "--num_threads")
    assert trial_threads(0, 2, {"OMP_NUM_THREADS": "5"}) == (5, "OMP_NUM_THREADS")
    assert trial_threads(0, 2, {}) == (max(1, cores // 2), f"{cores} cores / trialConcurrency 2")
    assert trial_threads(0, 4 * cores, {})[0] == 1  # never 0
    assert trial_threads(0, None, {})[1] == "torch default"


def _store(exp: Path, revisions: list[dict[str, object]]) -> None:
    (exp / "db").mkdir(parents=True)
    con = sqlite3.connect(exp / "db" / "nni.sqlite")
    con.execute("CREATE TABLE ExperimentProfile (params TEXT, id TEXT, execDuration INTEGER, startTime INTEGER, endTime INTEGER, logDir TEXT, nextSequenceId INTEGER, revision INTEGER)")
    for i, params in enumerate(revisions):
        con.execute("INSERT INTO ExperimentProfile (params, revision) VALUES (?, ?)", (json.dumps(params), i + 1))
    con.commit()
    con.close()


def test_concurrency_is_read_from_the_experiment_store(tmp_path: Path) -> None:
    exp = tmp_path / "nni-experiments" / "abc123"
    trial = exp / "environments" / "local-env" / "trials" / "T1"
    trial.mkdir(parents=True)
    assert nni_concurrency({"NNI_SYS_DIR": str(trial)}) is None  # no store yet
    _store(exp, [{"trialConcurrency": 1}, {"trialConcurrency": 3}])  # the latest revision counts
    assert nni_concurrency({"NNI_SYS_DIR": str(trial)}) == 3
    assert nni_concurrency({}) is None  # not an NNI trial
