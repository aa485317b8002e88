"""The task registry: names, split names and label ids follow the Hub datasets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mat.spec.tasks import ANLI_TASKS, GLUE_TASKS, TASKS, get_task


def test_every_task_is_registered() -> None:
    assert set(TASKS) == set(GLUE_TASKS) | set(ANLI_TASKS)
    assert len(TASKS) == 12


@pytest.mark.parametrize("alias,name", [("SST-2", "sst2"), ("sts-b", "stsb"), ("RTE", "rte"), ("anli_r2", "anli_r2")])
def test_lookup_is_forgiving_about_case_and_dashes(alias: str, name: str) -> None:
    assert get_task(alias).name == name


def test_unknown_task_lists_valid_names_and_suggests() -> None:
    with pytest.raises(KeyError) as e:
        get_task("sst")
    msg = str(e.value)
    assert "Did you mean 'sst2'" in msg and "anli_r3" in msg and "cola" in msg


def test_split_names_follow_the_hub() -> None:
    assert get_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    assert get_task("mnli").test_splits == ("test_matched", "test_mismatched")
    assert get_task("rte").all_splits[:3] == ("train", "validation", "test")
    r3 = get_task("anli_r3")
    assert (r3.train_split, r3.dev_split, r3.test_splits) == ("train_r3", "dev_r3", ("test_r3",))
    assert get_task("sst2").extra_eval_splits == ("adv_validation",)
    assert get_task("mnli").extra_eval_splits == ("adv_validation_matched", "adv_validation_mismatched")


def test_label_ids_match_the_hub() -> None:
    assert get_task("rte").label_id("entailment") == 0
    assert get_task("rte").label_id("not_entailment") == 1
    assert [get_task("anli_r1").label_id(x) for x in "enc"] == [0, 1, 2]
    assert get_task("mnli").label_id("contradiction") == 2
    assert get_task("wnli").label_id("1") == 1
    with pytest.raises(ValueError, match="not one of rte's labels"):
        get_task("rte").label_id("neutral")
    with pytest.raises(ValueError):
        get_task("cola").label_id("2")


def test_regression_and_metrics() -> None:
    stsb = get_task("stsb")
    assert stsb.is_regression and stsb.num_labels == 1 and stsb.metrics == ("pearson", "spearman")
    assert get_task("mrpc").metrics == ("accuracy", "f1")
    assert get_task("cola").metrics == ("mcc",)
    assert get_task("mnli").num_labels == 3


def test_specs_are_frozen() -> None:
    with pytest.raises(AttributeError):
        get_task("rte").num_labels = 3  # type: ignore[misc]


def test_tasks_and_records_import_no_torch() -> None:
    code = "import mat, mat.spec.tasks, mat.spec.records, mat.spec.metrics, mat.spec.submission, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
