"""Loading trial records into the tidy frame: rows, kinds, statuses, bad input, no torch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import AnalysisWarning, load, load_records, load_with_notes, status_counts
from analysis.load import COLUMNS, config_key
from mat.spec.records import EvalResult, TrialRecord, write_record

REPO = Path(__file__).resolve().parents[1]


def ev(step: int, acc: float, adv: float | None = None) -> EvalResult:
    splits = {"adv_validation": {"accuracy": adv}} if adv is not None else {}
    return EvalResult(step=step, epoch=step / 10, metrics={"accuracy": acc}, score=acc, splits=splits)


def write(root: Path, rec: TrialRecord) -> Path:
    return write_record(rec, root / rec.trial_id)


@pytest.fixture
def records(tmp_path: Path) -> Path:
    a = TrialRecord("a", "mat", "rte", "bert-base-uncased", 1, {"lambda_s": 3.0, "seed": 1}, status="SUCCEEDED")
    a.evals = [ev(10, 70.0, 50.0), ev(20, 74.0, 52.0), ev(30, 72.0, 51.0)]
    a.best, a.final = a.evals[1], a.evals[2]
    b = TrialRecord("b", "mat", "mrpc", "bert-base-uncased", 1, {"lambda_s": 3.0}, status="FAILED", error="OOM")
    c = TrialRecord("c", "smart", "anli_r1", "roberta-large", 2, {}, status="RUNNING")
    c.evals = [EvalResult(5, 0.5, {"accuracy": 40.0}, 40.0, {"test_r1": {"accuracy": 38.0}})]
    for r in (a, b, c):
        write(tmp_path, r)
    return tmp_path


def add_bad_files(root: Path) -> dict[str, str]:
    good = TrialRecord("x", "mat", "rte", "m", 1, {}, status="SUCCEEDED", evals=[ev(1, 1.0)]).to_dict()
    bad = {
        "truncated": json.dumps(good)[:40],
        "schema": json.dumps({**good, "schema": 2}),
        "metric": json.dumps({**good, "evals": [{"step": 1, "epoch": 0, "metrics": {"f1": 3.0}, "score": 3.0}]}),
        "task": json.dumps({**good, "task": "superglue"}),
        "split": json.dumps({**good, "evals": [{"step": 1, "epoch": 0, "metrics": {"accuracy": 3.0}, "score": 3.0,
                                                "splits": {"adv_validation": {"mcc": 1.0}}}]}),
    }
    for name, text in bad.items():
        (root / name).mkdir()
        (root / name / "trial.json").write_text(text)
    return bad


def test_rows_per_trial_kind_split_metric(records: Path) -> None:
    df = load_records(records)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    a = df[df["trial"] == "a"]
    # 3 evals x (dev + adv) + best (2) + final (2)
    assert len(a) == 10
    assert a["kind"].value_counts().to_dict() == {"eval": 6, "best": 2, "final": 2}
    best = a[(a["kind"] == "best") & (a["split"] == "dev")]
    assert best[["step", "metric", "value"]].values.tolist() == [[20.0, "accuracy", 74.0]]
    final_adv = a[(a["kind"] == "final") & (a["split"] == "adv_validation")]
    assert final_adv[["step", "value"]].values.tolist() == [[30.0, 51.0]]
    assert set(a["param.lambda_s"]) == {3.0}
    c = df[df["trial"] == "c"]
    assert sorted(c["split"]) == ["dev", "test_r1"] and c["status"].iloc[0] == "RUNNING"
    assert (df["experiment"] == "local").all()


def test_failed_trial_kept_as_one_row_with_error(records: Path) -> None:
    df = load_records(records)
    b = df[df["trial"] == "b"]
    assert len(b) == 1
    row = b.iloc[0]
    assert row["status"] == "FAILED" and row["error"] == "OOM"
    assert pd.isna(row["kind"]) and pd.isna(row["metric"]) and math.isnan(row["value"])
    assert status_counts(df) == {"SUCCEEDED": 1, "RUNNING": 1, "FAILED": 1, "INTERRUPTED": 0}


def test_bad_files_are_skipped_with_a_warning_and_counted(records: Path) -> None:
    bad = add_bad_files(records)
    with pytest.warns(AnalysisWarning) as caught:
        loaded = load_with_notes([records])
    df = loaded.frame
    messages = " ".join(str(w.message) for w in caught)
    for name in bad:
        assert str(records / name / "trial.json") in messages
    skipped = dict(loaded.skipped)
    assert df.attrs == {}, "lists in attrs are deep-copied into every derived frame"
    assert set(skipped) == {str(records / n / "trial.json") for n in bad}
    assert "JSON" in skipped[str(records / "truncated" / "trial.json")]
    assert "schema 2" in skipped[str(records / "schema" / "trial.json")]
    assert "f1" in skipped[str(records / "metric" / "trial.json")]
    assert "superglue" in skipped[str(records / "task" / "trial.json")]
    assert "mcc" in skipped[str(records / "split" / "trial.json")]
    assert sorted(df["trial"].unique()) == ["a", "b", "c"]  # the good ones still load


def test_config_key_ignores_seed_and_number_spelling() -> None:
    assert config_key({"lambda_s": 3, "seed": 1, "lr": 2e-5}) == config_key({"lr": 2e-5, "lambda_s": 3.0, "seed": 7})
    assert config_key({"lambda_s": 3}) != config_key({"lambda_s": 1})


def test_load_twice_keeps_each_trial_once(records: Path) -> None:
    with pytest.warns(AnalysisWarning, match="already loaded"):
        loaded = load_with_notes([records, records])
    df = loaded.frame
    assert df.groupby("trial")["source"].nunique().max() == 1
    assert status_counts(df)["SUCCEEDED"] == 1 and status_counts(load([records]))["SUCCEEDED"] == 1
    assert len(loaded.skipped) == 3  # the second copy of each of the 3 trials


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    df = load_records(tmp_path)
    assert len(df) == 0 and list(df.columns) == list(COLUMNS)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_records(tmp_path / "nope")


def test_analysis_needs_no_torch_or_nni() -> None:
    # A meta-path finder that refuses torch, nni and transformers: importing any of them fails.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'nni', 'transformers'):\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import analysis, analysis.report, analysis.__main__, analysis.plots\n"
        "from analysis.load import load_nni_experiment\n"
        "df = load_nni_experiment('w9ja2tlf', 'tests/fixtures/analysis/nni')\n"
        "assert len(df)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'nni', 'transformers')]\n"
        "assert not bad, bad\n"
        "try:\n"
        "    import torch\n"
        "except ImportError:\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
