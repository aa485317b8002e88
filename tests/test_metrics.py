"""Metrics agree with scikit-learn/scipy on real labels, on the 0-100 scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from mat.spec.metrics import accuracy, compute_metrics, f1, mcc
from mat.spec.tasks import get_task, task_score
from tests.helpers import NO_SHARED_DATA, SHARED_DATA


def test_hand_values() -> None:
    p, r = [1, 1, 0, 0], [1, 0, 0, 0]
    assert accuracy(p, r) == 75.0
    assert f1(p, r) == pytest.approx(100 * 2 / 3)  # tp 1, fp 1, fn 0
    # tp=1 tn=2 fp=1 fn=0: (2 - 0) / sqrt(2*1*3*2) = 2/sqrt(12)
    assert mcc(p, r) == pytest.approx(100 * 2 / np.sqrt(12))
    assert mcc([1, 1, 1], [1, 0, 1]) == 0.0  # constant prediction: 0, as scikit-learn


def test_task_score_is_the_mean_of_all_metrics_and_refuses_a_missing_one() -> None:
    assert task_score(get_task("mrpc"), {"accuracy": 89.0, "f1": 92.1}) == pytest.approx(90.55)
    assert task_score(get_task("cola"), {"mcc": 62.6}) == 62.6
    with pytest.raises(ValueError, match=r"mrpc: cannot score without f1 \(missing\)"):
        task_score(get_task("mrpc"), {"accuracy": 89.0})
    with pytest.raises(ValueError, match=r"accuracy_mm \(nan\)"):
        task_score(get_task("mnli"), {"accuracy_m": 86.2, "accuracy_mm": float("nan")})
    with pytest.raises(ValueError, match="not among the task's metrics"):
        task_score(get_task("stsb"), {"accuracy": 1.0})
    # published rows that print one metric ("86.7/-"): the known ones stand for the task
    assert task_score(get_task("mnli"), {"accuracy_m": 86.2}, partial=True) == 86.2
    assert math.isnan(task_score(get_task("cola"), {}, partial=True))


def test_mnli_splits_give_matched_and_mismatched() -> None:
    assert compute_metrics(get_task("mnli"), [0, 1], [0, 1], split="validation_mismatched") == {"accuracy_mm": 100.0}
    assert compute_metrics(get_task("mnli"), [0, 1], [0, 0], split="validation_matched") == {"accuracy_m": 50.0}


def test_unlabelled_references_are_refused() -> None:
    with pytest.raises(ValueError, match="-1"):
        compute_metrics(get_task("rte"), [0, 1], [-1, -1])
    with pytest.raises(ValueError, match="2 predictions for 3"):
        compute_metrics(get_task("rte"), [0, 1], [0, 1, 1])


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=NO_SHARED_DATA)
def test_agree_with_sklearn_on_real_cola_and_mrpc_dev() -> None:
    from mat.data import load_raw

    rng = np.random.default_rng(0)
    for task, key, fn in (("cola", "mcc", matthews_corrcoef), ("mrpc", "f1", f1_score)):
        refs = np.array(load_raw(get_task(task), SHARED_DATA)["validation"]["label"])
        preds = np.where(rng.random(len(refs)) < 0.8, refs, 1 - refs)  # 80% right, fixed seed
        got = compute_metrics(get_task(task), preds, refs)
        assert got[key] == pytest.approx(100 * fn(refs, preds), abs=1e-9)
        if "accuracy" in got:
            assert got["accuracy"] == pytest.approx(100 * accuracy_score(refs, preds))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=NO_SHARED_DATA)
def test_agree_with_scipy_on_real_stsb_dev() -> None:
    from mat.data import load_raw

    refs = np.array(load_raw(get_task("stsb"), SHARED_DATA)["validation"]["label"], dtype=np.float64)
    preds = refs + np.random.default_rng(1).normal(0, 1.0, len(refs))
    got = compute_metrics(get_task("stsb"), preds, refs)
    assert got["pearson"] == pytest.approx(100 * pearsonr(preds, refs)[0], abs=1e-9)
    assert got["spearman"] == pytest.approx(100 * spearmanr(preds, refs)[0], abs=1e-9)
