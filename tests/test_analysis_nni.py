"""Loading NNI experiments from NNI's sqlite store (recorded fixture; one live run marked ``nni``).

The fixture ``tests/fixtures/analysis/nni/<id>`` was recorded by ``make_nni_fixture.py``: 12 trials of a
stand-in whose accuracy is ``50 + 10 * lambda_s + seed``, so a trial paired with another trial's
parameters is caught. In it NNI's own ``TrialJobEvent`` parameter records disagree with what some trials
actually ran (microsoft/nni#5726); ``MetricData.parameterId`` is right.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import AnalysisWarning, load, load_nni_experiment, load_with_notes, status_counts
from analysis.load import read_nni_store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "analysis"
NNI_DIR = FIXTURES / "nni"
EXP = (NNI_DIR / "EXPERIMENT_ID").read_text().strip()
DB = NNI_DIR / EXP / "db" / "nni.sqlite"
# NNI 3.0's tables as found in the recorded store (documented in docs/analysis.md).
SCHEMA = {
    "TrialJobEvent": ["timestamp", "trialJobId", "event", "data", "logPath", "sequenceId", "message", "environmentId"],
    "MetricData": ["timestamp", "trialJobId", "parameterId", "type", "sequence", "data"],
    "ExperimentProfile": ["params", "id", "execDuration", "startTime", "endTime", "logDir", "nextSequenceId",
                          "revision"],
}


def expected_accuracy(lambda_s: float, seed: int) -> float:
    return 50.0 + 10.0 * lambda_s + seed


def best_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["kind"] == "best") & (df["metric"] == "accuracy")].set_index("trial")


def test_fixture_schema_is_nni_3() -> None:
    con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    try:
        for table, cols in SCHEMA.items():
            assert [r[1] for r in con.execute(f"PRAGMA table_info({table})")] == cols
    finally:
        con.close()


def test_each_trial_paired_with_its_own_parameters() -> None:
    df = load_nni_experiment(EXP, NNI_DIR)
    best = best_rows(df)
    assert len(best) == 11  # the failed trial never reported a final result
    for trial, row in best.iterrows():
        assert row["value"] == pytest.approx(expected_accuracy(row["param.lambda_s"], row["param.seed"])), trial
        assert row["seed"] == row["param.seed"]


def test_trial_job_events_alone_would_mispair() -> None:
    """The fixture shows the NNI defect the loader avoids: pairing by each trial's own event record."""
    store = read_nni_store(DB)
    finals = store.metrics[store.metrics["type"] == "FINAL"]
    wrong = 0
    for row in finals.itertuples():
        ev = store.events[(store.events["trialJobId"] == row.trialJobId) & store.events["data"].notna()]
        params = json.loads(ev["data"].iloc[0])["parameters"]
        acc = json.loads(json.loads(row.data))["accuracy"]
        wrong += acc != pytest.approx(expected_accuracy(params["lambda_s"], params["seed"]))
    assert wrong >= 1


def test_statuses_and_nni_only_trials() -> None:
    df = load_nni_experiment(EXP, NNI_DIR)
    assert status_counts(df) == {"SUCCEEDED": 11, "RUNNING": 0, "FAILED": 1, "INTERRUPTED": 0}
    assert (df["experiment"] == EXP).all()
    from_db = df[[src.endswith(f"nni.sqlite#{t}") for src, t in zip(df["source"], df["trial"])]]
    # Two trials have no trial.json: one succeeded without writing it, one crashed.
    assert sorted(from_db.drop_duplicates("trial")["status"]) == ["FAILED", "SUCCEEDED"]
    ok = from_db[from_db["status"] == "SUCCEEDED"]
    assert ok[ok["kind"] == "eval"][["step", "value"]].values.tolist() == [[1.0, 72.9], [2.0, 76.95]]
    assert (ok["param.task"] == "rte").all() and (ok["param.lambda_s"] == 3.0).all() and (ok["seed"] == 1).all()
    failed = from_db[from_db["status"] == "FAILED"]
    assert failed["error"].iloc[0] == "RuntimeError: stand-in crash after the first evaluation"
    assert failed[["kind", "metric", "value"]].values.tolist() == [["eval", "accuracy", 73.8], ["eval", "f1", 74.8]]
    assert (failed["param.seed"] == 2).all() and (failed["param.lambda_s"] == 3.0).all()


def test_store_is_opened_read_only() -> None:
    before = hashlib.sha256(DB.read_bytes()).hexdigest()
    load_nni_experiment(EXP, NNI_DIR)
    assert hashlib.sha256(DB.read_bytes()).hexdigest() == before
    assert not DB.with_name("nni.sqlite-journal").exists()


@pytest.fixture
def exp_copy(tmp_path: Path) -> Path:
    shutil.copytree(NNI_DIR / EXP, tmp_path / EXP)
    return tmp_path


def test_partial_and_corrupt_records(exp_copy: Path) -> None:
    trials = exp_copy / EXP / "environments" / "local-env" / "trials"
    rec_files = sorted(trials.glob("*/trial.json"))
    partial, corrupt = rec_files[0], rec_files[1]
    d = json.loads(partial.read_text())
    partial.write_text(json.dumps({**d, "status": "RUNNING", "best": None, "final": None}))
    corrupt.write_text(corrupt.read_text()[:100])
    with pytest.warns(AnalysisWarning, match=str(corrupt)):
        loaded = load_with_notes(experiments=[EXP], nni_dir=exp_copy)
    df = loaded.frame
    assert [p for p, _ in loaded.skipped] == [str(corrupt)]
    p = df[df["trial"] == partial.parent.name]
    assert p["status"].iloc[0] == "INTERRUPTED" and "partial" in p["error"].iloc[0]
    c = df[df["trial"] == corrupt.parent.name]  # falls back to the sqlite metrics, still correctly paired
    best = c[(c["kind"] == "best") & (c["metric"] == "accuracy")].iloc[0]
    assert best["value"] == pytest.approx(expected_accuracy(best["param.lambda_s"], best["param.seed"]))
    assert status_counts(df)["SUCCEEDED"] == 10


def test_unreadable_store_is_skipped_not_fatal(exp_copy: Path) -> None:
    db = exp_copy / EXP / "db" / "nni.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.warns(AnalysisWarning, match="not a readable NNI"):
        loaded = load_with_notes(experiments=[EXP], nni_dir=exp_copy)
    assert len(loaded.frame) == 0 and loaded.skipped[0][0] == str(db)
    with pytest.warns(AnalysisWarning, match="not a readable NNI"):
        assert len(load_nni_experiment(EXP, exp_copy)) == 0


def test_experiment_and_its_folder_together_count_once() -> None:
    with pytest.warns(AnalysisWarning, match="already loaded"):
        df = load(records=[NNI_DIR / EXP], experiments=[EXP], nni_dir=NNI_DIR)
    assert df.drop_duplicates(["experiment", "trial"]).shape[0] == 12


def test_missing_experiment_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nni_dir"):
        load_nni_experiment("nosuchid", tmp_path)


@pytest.mark.nni
@pytest.mark.slow
def test_live_experiment_pairs_parameters(tmp_path: Path) -> None:
    """Run the fixture's experiment for real (NNI 3.0, concurrency 3) and load it from its folder."""
    pytest.importorskip("nni")
    if shutil.which("nnictl") is None:
        pytest.skip("nnictl not on PATH")
    sys.path.insert(0, str(FIXTURES))
    try:
        import make_nni_fixture
    finally:
        sys.path.remove(str(FIXTURES))
    exp_id, exp_dir = make_nni_fixture.run_experiment(tmp_path)
    df = load_nni_experiment(exp_id, exp_dir.parent)
    assert status_counts(df) == {"SUCCEEDED": 11, "RUNNING": 0, "FAILED": 1, "INTERRUPTED": 0}
    for trial, row in best_rows(df).iterrows():
        assert row["value"] == pytest.approx(expected_accuracy(row["param.lambda_s"], row["param.seed"])), trial
