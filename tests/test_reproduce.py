"""``python -m trials.reproduce``: a recorded trial trained again equals its record bit for bit (every
evaluation's score, metrics, predictions and training statistics, then the cost counts); an edited record is
caught at the evaluation that was edited, and the rerun stops there; a record that cannot be rebuilt is
refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mat.spec.records import decode_values, encode_values, read_record, write_record
from tests.helpers import REPO, TRIAL_SCRIPT, make_tiny_setup


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A MAT trial on the tiny SST-2 (2 epochs, 2 evaluations an epoch), labelled as a study's report
    trial."""
    base = tmp_path_factory.mktemp("reproduce")
    tiny = make_tiny_setup(base, n_train=48, n_dev=16)
    out = base / "trial"
    subprocess.run([sys.executable, str(TRIAL_SCRIPT), "--task", "sst2", "--model", str(tiny["model"]),
                    "--data_dir", str(tiny["data"]), "--method", "mat", "--output_dir", str(out),
                    "--epochs", "2",
                    "--batch_size", "8", "--eval_times", "2", "--max_length", "32", "--group_by_length",
                    "--num_threads", "1", "--device", "cpu", "--learning_rate", "1e-3", "--seed", "7"],
                   check=True, capture_output=True, text=True, timeout=600)
    rec = read_record(out / "trial.json")
    rec.params.update({"arm": "mat", "phase": "report"})  # a study's labels: not settings
    write_record(rec, out)
    return {**tiny, "record": out / "trial.json"}


def reproduce(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trials.reproduce", *args, "--data_dir", str(data)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def edited(trained: dict[str, Path], tmp_path: Path, edit) -> Path:  # edit: TrialRecord -> None
    rec = read_record(trained["record"])
    edit(rec)
    write_record(rec, tmp_path)
    return tmp_path / "trial.json"


def test_a_record_trained_again_is_reproduced_bit_for_bit(trained: dict[str, Path], tmp_path: Path) -> None:
    rec = read_record(trained["record"])
    assert rec.status == "SUCCEEDED" and len(rec.evals) == 4, "2 epochs x 2 evaluations"
    assert rec.evals[-1].telemetry, "the training statistics are compared too"
    r = reproduce(str(trained["record"]), "--json", str(tmp_path / "out.json"), data=trained["data"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reproduced bit for bit: every evaluation and the cost counts" in r.stdout
    assert r.stdout.count("= record; predictions, metrics and training statistics equal") == 4
    assert "the mat package is as at the record's commit" in r.stdout or \
        "differs from the record's commit" in r.stdout
    out = json.loads((tmp_path / "out.json").read_text())
    assert out == [{"record": str(trained["record"]), "reproduced": True, "compared": 4, "evaluations": 4,
                    "complete": True, "differs": []}]


def test_an_edited_score_is_caught_at_its_evaluation_and_the_rerun_stops_there(trained: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    def nudge(rec) -> None:  # the second evaluation's score, in its last bit
        ev = rec.evals[1]
        ev.score = float.fromhex(ev.score.hex()[:-1] + ("1" if ev.score.hex()[-1] == "0" else "0")) \
            if ev.score != 0 else 5e-324
    path = edited(trained, tmp_path, nudge)
    r = reproduce(str(path), "--json", str(tmp_path / "out.json"), data=trained["data"])
    assert r.returncode == 1, r.stdout + r.stderr
    step = read_record(path).evals[1].step
    assert f"NOT reproduced: evaluation 2 (step {step}): score" in r.stdout
    out = json.loads((tmp_path / "out.json").read_text())[0]
    assert (out["compared"], out["complete"], out["reproduced"]) == (2, False, False), \
        "stopped at the difference"


def test_an_edited_prediction_is_counted(trained: dict[str, Path], tmp_path: Path) -> None:
    def flip(rec) -> None:  # two dev predictions of the first evaluation
        values = decode_values(rec.evals[0].predictions["validation"])
        values[0], values[3] = 1 - values[0], 1 - values[3]
        rec.evals[0].predictions["validation"] = encode_values(values, False)
    r = reproduce(str(edited(trained, tmp_path, flip)), data=trained["data"])
    assert r.returncode == 1 and "validation predictions: 2 of 16 differ" in r.stdout, r.stdout + r.stderr


def test_evaluations_n_compares_the_first_n_and_stops(trained: dict[str, Path], tmp_path: Path) -> None:
    r = reproduce(str(trained["record"].parent), "--evaluations", "1", "--json", str(tmp_path / "o.json"),
                  data=trained["data"])
    assert r.returncode == 0 and "reproduced bit for bit: 1 of 4 evaluations" in r.stdout, r.stdout + r.stderr
    assert json.loads((tmp_path / "o.json").read_text())[0]["complete"] is False


def test_a_record_that_cannot_be_rebuilt_is_refused_by_name(trained: dict[str, Path], tmp_path: Path) -> None:
    path = edited(trained, tmp_path / "a", lambda rec: rec.params.update(sampling_stepz=0.1))
    r = reproduce(str(path), data=trained["data"])
    assert r.returncode == 2 and "cannot reproduce" in r.stderr and "'sampling_stepz'" in r.stderr, r.stderr
    (tmp_path / "b.json").write_text('{"not": "a record"}')
    r = reproduce(str(tmp_path / "b.json"), data=trained["data"])
    assert r.returncode == 2 and "b.json: cannot reproduce" in r.stderr, r.stderr
    r = reproduce(str(trained["record"]), "--evaluations", "0", data=trained["data"])
    assert r.returncode == 2 and "--evaluations 0" in r.stderr
