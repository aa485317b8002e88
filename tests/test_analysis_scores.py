"""GLUE score conventions, checked against the MAT paper's Score column (Tables 1 and 2)."""

from __future__ import annotations

import math

import pytest

from analysis import glue_score, task_score
from analysis.scores import PAPER_TASKS, round_half_up
from mat.spec.tasks import get_task
from tests.paper_tables import TABLE1, TABLE2, glue_row_metrics

# Per-task numbers and the printed Score of every scored row of the MAT paper's Table 1 (BERT-base) and
# Table 2 (RoBERTa-large), from the one transcription (checked against the paper text in
# test_analysis_tables.py). Where a row prints only one of a task's metrics ("90.9/-"), only that one is given.
_NAMES = {
    "Table 1": (TABLE1, [None, "BERT (Jiang et al.)", "+SMART", "+SALT", "+MAT"]),
    "Table 2": (TABLE2, ["RoBERTa", "+FreeLB", "+SMART", None, "+MAT"]),  # R3F prints no STS-B, so no Score
}
PAPER_ROWS = {
    f"{table} {name}": glue_row_metrics(row)
    for table, (rows, names) in _NAMES.items()
    for row, name in zip(rows, names)
    if name is not None
}
# Two printed Scores are the exact mean truncated, not rounded: SALT's cells give 84.4875 (printed
# 84.48) and RoBERTa-large MAT's 90.35625 (printed 90.35), 0.0075 and 0.00625 away. Every other row
# matches within 0.006; all eight equal the exact mean rounded half-up or truncated to 2 decimals.
TRUNCATED = {"Table 1 +SALT": 84.4875, "Table 2 +MAT": 90.35625}


@pytest.mark.parametrize("name", list(PAPER_ROWS))
def test_paper_score_column_reproduced(name: str) -> None:
    cells, printed = PAPER_ROWS[name]
    score = glue_score(cells, "paper", partial=True)  # published rows print some metrics as "-"
    if name in TRUNCATED:
        assert score == pytest.approx(TRUNCATED[name], abs=1e-9)
        assert math.floor(score * 100 + 1e-9) / 100 == pytest.approx(printed)
    else:
        assert score == pytest.approx(printed, abs=0.006)
        assert round_half_up(score, 2) == f"{printed:.2f}"


def test_bert_mat_score_by_hand() -> None:
    # (62.6 + 93.8 + 90.55 + 90.4 + 90.35 + 86.1 + 92.4 + 74.7) / 8 = 680.9 / 8
    assert glue_score(PAPER_ROWS["Table 1 +MAT"][0]) == pytest.approx(85.1125)  # a full row: strict scoring


def test_task_score_is_mean_of_metrics_and_one_stands_alone_only_for_published_rows() -> None:
    assert task_score(get_task("mrpc"), {"accuracy": 89.0, "f1": 92.1}) == pytest.approx(90.55)
    # published rows ("90.9/-"): the known metrics stand for the task
    assert task_score(get_task("mrpc"), {"accuracy": 90.9}, partial=True) == pytest.approx(90.9)
    assert task_score(get_task("mnli"), {"accuracy_m": 86.2, "accuracy_mm": float("nan")}, partial=True) == pytest.approx(86.2)
    assert math.isnan(task_score(get_task("cola"), {}, partial=True))
    # anything else (a trial record) is refused, naming the metric
    with pytest.raises(ValueError, match="f1"):
        task_score(get_task("mrpc"), {"accuracy": 90.9})
    with pytest.raises(ValueError, match="accuracy_mm"):
        task_score(get_task("mnli"), {"accuracy_m": 86.2, "accuracy_mm": float("nan")})
    with pytest.raises(ValueError, match="accuracy"):
        task_score(get_task("cola"), {"accuracy": 50.0})


def test_one_scoring_rule() -> None:
    import analysis
    import mat.spec.tasks

    assert analysis.task_score is mat.spec.tasks.task_score and analysis.scores.task_score is mat.spec.tasks.task_score


def test_glue_score_is_strict_unless_partial() -> None:
    cells = {t: {m: 80.0 for m in get_task(t).metrics} for t in PAPER_TASKS}
    assert glue_score(cells) == pytest.approx(80.0)
    with pytest.raises(ValueError, match="f1"):
        glue_score({**cells, "mrpc": {"accuracy": 80.0}})
    assert glue_score({**cells, "mrpc": {"accuracy": 80.0}}, partial=True) == pytest.approx(80.0)


def test_conventions_differ_by_wnli() -> None:
    scores = {t: 80.0 for t in PAPER_TASKS}
    assert glue_score(scores, "paper") == pytest.approx(80.0)
    assert glue_score({**scores, "wnli": 35.0}, "glue") == pytest.approx((8 * 80 + 35) / 9)
    assert glue_score({**scores, "wnli": 35.0}, "paper") == pytest.approx(80.0)  # WNLI ignored
    assert glue_score({**scores, "anli_r1": 10.0}, "paper") == pytest.approx(80.0)  # non-GLUE ignored


def test_missing_tasks_are_named_unless_allowed() -> None:
    scores = {"cola": 60.0, "rte": 70.0}
    with pytest.raises(ValueError) as err:
        glue_score(scores, "paper")
    for t in ("sst2", "mrpc", "qqp", "stsb", "mnli", "qnli"):
        assert t in str(err.value)
    assert "'cola'" not in str(err.value)
    with pytest.raises(ValueError, match="wnli"):
        glue_score({t: 80.0 for t in PAPER_TASKS}, "glue")
    assert glue_score(scores, "paper", allow_missing=True) == pytest.approx(65.0)
    assert glue_score({"cola": float("nan"), "rte": 70.0}, allow_missing=True) == pytest.approx(70.0)
    assert math.isnan(glue_score({}, allow_missing=True))


def test_unknown_convention_and_task_names() -> None:
    with pytest.raises(ValueError, match="paper"):
        glue_score({}, "superglue")
    assert glue_score({"SST-2": 90.0, **{t: 90.0 for t in PAPER_TASKS if t != "sst2"}}) == pytest.approx(90.0)


def test_round_half_up() -> None:
    assert round_half_up(88.92500000000001) == "88.93"
    assert round_half_up(81.475) == "81.48"  # stored as 81.47499999..., the paper prints 81.48
    assert round_half_up(84.45, 1) == "84.5"
    assert round_half_up(float("nan")) == "-"
