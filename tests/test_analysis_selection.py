"""The three selection rules on hand-written predictions: the fixed halves of the dev set, the evaluation chosen
on the selection half and scored on the report half, configurations chosen the same way, and records without
predictions refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis import aggregate, load_records
from analysis.__main__ import main
from analysis.halves import REPORT, SELECTION, half_metrics, selection_half, splitmix64
from analysis.selection import choose_arm_configs, split_choice
from mat.spec.records import EvalResult, TrialRecord, encode_values, write_record

# SST-2-like dev set of 8: splitmix64 puts examples 2, 4, 5, 6 in the selection half and 0, 1, 3, 7 in the report half
LABELS = [1, 0, 1, 1, 0, 0, 1, 0]
# per evaluation (step): predictions, and by hand: selection-half accuracy, report-half accuracy, whole-dev accuracy
EVALS = {
    10: ([1, 0, 1, 1, 0, 1, 0, 0], 50.0, 100.0, 75.0),  # the best on the whole dev set (first of two at 75)
    20: ([1, 1, 1, 0, 0, 0, 1, 1], 100.0, 25.0, 62.5),  # the best on the selection half
    30: ([1, 0, 1, 1, 0, 0, 0, 1], 75.0, 75.0, 75.0),  # the last
}
OTHER = {10: ([1, 0, 1, 1, 0, 0, 0, 0], 75.0, 100.0, 87.5)}  # a second configuration: best on the dev set


def record(trial: str, evals: dict[int, tuple[list[int], float, float, float]], params: dict[str, object],
           seed: int = 1, predictions: bool = True) -> TrialRecord:
    rec = TrialRecord(trial, "mat", "sst2", "m", seed, {**params, "seed": seed}, status="SUCCEEDED")
    for step, (preds, _s, _r, full) in evals.items():
        rec.evals.append(EvalResult(step, step / 10, {"accuracy": full}, full,
                                    predictions={"validation": encode_values(preds, False)} if predictions else {}))
    rec.best = max(rec.evals, key=lambda e: e.score)
    rec.final = rec.evals[-1]
    if predictions:
        rec.dev_labels = {"validation": encode_values(LABELS, False)}
    return rec


def test_the_halves_are_splitmix64_of_the_index() -> None:
    assert int(splitmix64(np.array([0]))[0]) == 0xE220A8397B1DCDAF  # SplitMix64's first output from seed 0
    assert list(np.flatnonzero(selection_half(8))) == [2, 4, 5, 6]
    assert (selection_half(1500)[:8] == selection_half(8)).all(), "a fixed rule of the index alone"
    assert abs(int(selection_half(1500).sum()) - 750) < 40


def test_half_metrics_by_hand() -> None:
    rec = record("t", EVALS, {"learning_rate": 1e-4})
    got = {(step, half): m["accuracy"] for step, _e, half, m in half_metrics(rec)}
    for step, (_p, sel, rep, _f) in EVALS.items():
        assert got[(step, SELECTION)] == sel and got[(step, REPORT)] == rep


def test_split_chooses_on_the_selection_half_and_reports_the_other(tmp_path: Path) -> None:
    write_record(record("t", EVALS, {"learning_rate": 1e-4}), tmp_path / "t")
    df = load_records(tmp_path)
    assert df[df["kind"] == "eval"]["step"].tolist() == [10, 20, 30], "the record's evaluations, one row each"
    assert len(df[df["kind"] == "half"]) == 6, "the halves' rows apart: 3 evaluations x 2 halves x 1 metric"
    [choice] = split_choice(df).to_dict("records")
    assert (choice["step"], choice["selection_score"], choice["report_score"]) == (20, 100.0, 25.0)
    score = {sel: aggregate.trial_scores(df, sel).query("metric == 'score' and split == 'dev'")["value"].item()
             for sel in ("best", "last", "split")}
    assert score == {"best": 75.0, "last": 75.0, "split": 25.0}
    rows = aggregate.trial_scores(df, "split")
    assert rows.query(f"split == '{SELECTION}' and metric == 'score'")["value"].item() == 100.0


def test_configurations_are_chosen_on_the_selection_half(tmp_path: Path) -> None:
    """Config A's evaluations peak at 100 on the selection half (25 on the report half); config B's best whole-dev
    evaluation is better (87.5 against 75). ``best`` picks B; ``split`` picks A and reports A's report half."""
    write_record(record("a", EVALS, {"learning_rate": 1e-4, "phase": "tune"}), tmp_path / "a")
    write_record(record("b", OTHER, {"learning_rate": 3e-4, "phase": "tune"}), tmp_path / "b")
    write_record(record("r", OTHER, {"learning_rate": 3e-4, "phase": "report"}, seed=7), tmp_path / "r")
    df = load_records(tmp_path)
    tune = df[df["param.phase"] == "tune"]
    best = aggregate.choose_configs(aggregate.trial_scores(tune, "best")).best.iloc[0]
    split = aggregate.choose_configs(aggregate.trial_scores(tune, "split"))
    assert '"learning_rate": 0.0003' in best["config"] and best["mean"] == 87.5
    chosen = split.best.iloc[0]
    assert '"learning_rate": 0.0001' in chosen["config"] and chosen["mean"] == 25.0 and chosen["n_configs"] == 2
    assert chosen["selected_on"] == "selection half" and "report half" in split.note
    arms = choose_arm_configs(df)  # the study runner's call: the tune phase only
    assert arms[["arm", "n", "selection_mean", "n_configs"]].values.tolist() == [["mat", 1, 100.0, 2]]
    assert arms["params"].iloc[0] == {"learning_rate": 1e-4}, "without seed and phase, as the records hold them"
    with pytest.raises(ValueError, match="phase = 'final'"):
        choose_arm_configs(df, phase="final")


def test_records_without_predictions_get_best_and_last_and_a_refusal_for_split(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_record(record("new", EVALS, {"learning_rate": 1e-4}), tmp_path / "new")
    old = write_record(record("old", OTHER, {"learning_rate": 3e-4}, predictions=False), tmp_path / "old")
    df = load_records(tmp_path)
    assert set(aggregate.trial_scores(df, "last")["trial"]) == {"new", "old"}
    with pytest.raises(ValueError, match=f"1 record.*{old}.*--selection best or --selection last"):
        aggregate.trial_scores(df, "split")
    assert main(["compare", "--records", str(tmp_path), "--baseline", "mat", "--selection", "split"]) == 1
    assert str(old) in capsys.readouterr().err
    assert main(["report", "--records", str(tmp_path / "new"), "--out", str(tmp_path / "page"), "--selection",
                 "split"]) == 0
    assert "Selection: `split`" in (tmp_path / "page" / "report.md").read_text()


def test_a_record_whose_predictions_do_not_match_its_labels_is_skipped_with_the_reason(tmp_path: Path) -> None:
    rec = record("bad", EVALS, {"learning_rate": 1e-4})
    rec.evals[1].predictions = {"validation": "1,0,1"}
    write_record(rec, tmp_path / "bad")
    from analysis import load_with_notes

    with pytest.warns(UserWarning, match="evals\\[1\\] has 3 predictions on 'validation' for 8 dev labels"):
        loaded = load_with_notes([tmp_path])
    assert len(loaded.frame) == 0 and "3 predictions" in loaded.skipped[0][1]
