"""Each evaluation's dev predictions and the dev labels, kept in the record: the compact format, its size, and a
real (tiny) run whose stored predictions rescore to the metrics it recorded."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from mat.cli import parse_cli
from mat.spec.metrics import compute_metrics
from mat.spec.tasks import get_task
from mat.spec.records import (EvalResult, TrialRecord, decode_values, encode_values, read_record, record_from_dict,
                         write_record)
from mat.provenance import resolve
from mat.train import fit
from tests.helpers import make_tiny_setup


def test_values_are_compact_and_round_trip() -> None:
    assert encode_values([0, 1, 1, 2], regression=False) == "0,1,1,2"
    assert encode_values([3.14159265, 0.25, 5.0, -0.00004], regression=True) == "3.1416,0.25,5,-0"
    assert decode_values("3.1416,0.25,5") == [3.1416, 0.25, 5.0] and decode_values("") == []
    with pytest.raises(ValueError):
        decode_values("1,x")


def test_the_record_keeps_predictions_in_evals_and_labels_once(tmp_path: Path) -> None:
    ev = EvalResult(10, 1.0, {"accuracy": 50.0}, 50.0, predictions={"validation": "0,1"})
    rec = TrialRecord("t", "vanilla", "sst2", "m", 1, {}, evals=[ev], best=ev, final=ev,
                      dev_labels={"validation": "1,1"}, status="SUCCEEDED")
    raw = json.loads(write_record(rec, tmp_path).read_text())
    assert raw["evals"][0]["predictions"] == {"validation": "0,1"} and raw["dev_labels"] == {"validation": "1,1"}
    assert "predictions" not in raw["best"] and "predictions" not in raw["final"], "kept once, in evals"
    back = read_record(tmp_path / "trial.json")
    assert back.evals[0].predictions == {"validation": "0,1"} and back.dev_labels == {"validation": "1,1"}
    older = {k: v for k, v in raw.items() if k != "dev_labels"}
    older["evals"] = [{k: v for k, v in e.items() if k != "predictions"} for e in raw["evals"]]
    old = record_from_dict(older)
    assert old.dev_labels == {} and old.evals[0].predictions == {} and old.git_dirty is None


def test_a_12_evaluation_stsb_record_stays_under_1_mb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """STS-B's 1,500 dev pairs, 12 evaluations of regression scores (4 decimals), the labels once."""
    rng = random.Random(0)
    labels = [round(rng.uniform(0, 5), 3) for _ in range(1500)]
    rec = TrialRecord("stsb", "mat", "stsb", "minilm", 1, {"seed": 1}, dev_labels={"validation":
                      encode_values(labels, True)}, status="SUCCEEDED")
    for i in range(1, 13):
        preds = [min(5.0, max(0.0, y + rng.gauss(0, 1.0 / i))) for y in labels]
        rec.evals.append(EvalResult(45 * i, 0.25 * i, {"pearson": 80.0, "spearman": 80.0}, 80.0,
                                    predictions={"validation": encode_values(preds, True)},
                                    telemetry={"loss": 0.5, "delta_own_kl": 1e-7}))
    rec.best = rec.final = rec.evals[-1]
    size = write_record(rec, tmp_path).stat().st_size
    with capsys.disabled():
        print(f"\n12-evaluation STS-B record with predictions: {size / 1e6:.3f} MB")
    assert size < 1_000_000
    back = read_record(tmp_path / "trial.json")
    assert np.allclose(decode_values(back.evals[0].predictions["validation"]),
                       [round(min(5.0, max(0.0, v)), 4) for v in decode_values(rec.evals[0].predictions["validation"])])


@pytest.mark.usefixtures("one_torch_thread")
def test_a_tiny_run_keeps_predictions_that_rescore_to_its_metrics(tmp_path: Path) -> None:
    tiny = make_tiny_setup(tmp_path / "setup", n_train=24, n_dev=12)
    cfg = parse_cli(["--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]),
                     "--device", "cpu", "--epochs", "1", "--batch_size", "8", "--eval_times", "2", "--method", "mat",
                     "--sampling_times_delta", "1", "--sampling_times_theta", "2", "--output_dir", str(tmp_path / "o"),
                     "--cache_dir", str(tmp_path / "cache")])
    fit(resolve(cfg), show_progress=False)
    rec = read_record(tmp_path / "o" / "trial.json")
    labels = decode_values(rec.dev_labels["validation"])
    assert len(labels) == 12 and set(labels) <= {0.0, 1.0}
    assert len(rec.evals) == 2
    for ev in rec.evals:
        preds = decode_values(ev.predictions["validation"])
        assert len(preds) == 12
        assert compute_metrics(get_task("sst2"), preds, labels) == ev.metrics
    assert rec.cost["optimizer_updates"] == 3 * 2, "3 batches of 8, K_θ = 2"
    assert rec.cost["diagnostic_passes"] == {"forward": 0.0, "backward": 0.0}
    assert isinstance(rec.git_dirty, bool) or rec.git_sha is None
