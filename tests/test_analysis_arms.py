"""Arms: a method's named variant (``params.rung``, ``params.arm``) is its own row in compare, report and tables.

The records are written by hand in the component study's layout ``<records>/<task>/<rung>-seed<k>/trial.json``,
with ``sampling`` scoring above ``mat``: before arms existed, ``compare`` showed one row called ``mat`` holding the
best rung's numbers (``sampling``'s).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from analysis import aggregate, load_records
from analysis.__main__ import main
from analysis.identity import arm_name, arm_order
from analysis.seed_pairs import paired_points_info, paired_points_plot
from mat.spec.records import EvalResult, TrialRecord, write_record

# CoLA MCC of each rung and seed (by hand): sampling is above mat on every seed
MCC = {"vanilla": {1: 30.0, 2: 31.0, 3: 32.0}, "sampling": {1: 34.0, 2: 35.0, 3: 36.0},
       "mat": {1: 32.0, 2: 33.0, 3: 33.5}}
METHOD = {"vanilla": "vanilla", "sampling": "mat", "mat": "mat"}


def ladder_layout(root: Path, mcc: dict[str, dict[int, float]] = MCC, key: str = "rung") -> Path:
    """``<root>/cola/<rung>-seed<k>/trial.json``, trial ids as NNI gives them (unrelated to the folder)."""
    for rung, by_seed in mcc.items():
        for seed, v in by_seed.items():
            params = {"learning_rate": 1e-4, "seed": seed, key: rung}
            rec = TrialRecord(f"n{sorted(mcc).index(rung)}{seed}", METHOD.get(rung, "mat"), "cola", "minilm", seed, params,
                              experiment_id="abcd1234", status="SUCCEEDED")
            rec.evals = [EvalResult(10, 1.0, {"mcc": v - 1.0}, v - 1.0), EvalResult(20, 2.0, {"mcc": v}, v)]
            rec.best, rec.final = rec.evals[1], rec.evals[1]
            write_record(rec, root / "cola" / f"{rung}-seed{seed}")
    return root


def test_arm_names_and_order() -> None:
    assert arm_name("mat", {"rung": "sampling"}) == "sampling"
    assert arm_name("mat", {"arm": "mat-small-lr", "rung": "mat"}) == "mat-small-lr", "params.arm comes first"
    assert arm_name("smart", {"lambda_s": 1.0}) == "smart" and arm_name("mat", {"rung": None}) == "mat"
    assert arm_order(["mat", "smart", "sampling", "vanilla", "freelb"]) == ["vanilla", "sampling", "mat", "freelb",
                                                                           "smart"]


def test_each_rung_is_its_own_arm_in_the_tidy_frame_and_the_choice(tmp_path: Path) -> None:
    df = load_records(ladder_layout(tmp_path))
    one = df.drop_duplicates("trial")
    assert dict(zip(one["trial"], one["arm"]))["n11"] == "sampling" and set(one["arm"]) == set(MCC)
    choice = aggregate.choose_configs(aggregate.trial_scores(df))
    best = choice.best.set_index("arm")
    assert (best["n_configs"] == 1).all(), "a rung is not a configuration of the method mat"
    assert best.loc["mat", "mean"] == pytest.approx((32.0 + 33.0 + 33.5) / 3)
    assert best.loc["sampling", "mean"] == pytest.approx(35.0)


def test_compare_shows_sampling_and_mat_as_two_rows_with_their_own_numbers(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    records = ladder_layout(tmp_path / "results")
    csv = tmp_path / "compare.csv"
    assert main(["compare", "--records", str(records), "--baseline", "vanilla", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert rows["sampling"].split("|")[2].strip() == "35.00 ± 1.00 (3)"
    assert rows["mat"].split("|")[2].strip() == "32.83 ± 0.76 (3)"
    assert rows["vanilla"].split("|")[2].strip() == "31.00 ± 1.00 (3)"
    assert rows["sampling − vanilla"].split("|")[2].strip().startswith("+4.00 [+4.00, +4.00]")
    assert rows["mat − vanilla"].split("|")[2].strip().startswith("+1.83 ")
    assert "(3) †" not in out, "no arm searched several configurations"
    long = pd.read_csv(csv).set_index("arm")
    assert long.loc["sampling", "mean"] == pytest.approx(35.0) and long.loc["mat", "mean"] == pytest.approx(98.5 / 3)
    assert long.loc["mat", "mean_diff"] == pytest.approx(98.5 / 3 - 31.0) and long.loc["mat", "n_configs"] == 1


def test_params_arm_names_a_study_arm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mcc = {"vanilla": MCC["vanilla"], "mat-short": MCC["sampling"], "mat": MCC["mat"]}
    records = ladder_layout(tmp_path, mcc, key="arm")
    assert main(["compare", "--records", str(records), "--baseline", "vanilla"]) == 0
    out = capsys.readouterr().out
    assert "| mat-short | 35.00 ± 1.00 (3) |" in out and "| mat | 32.83 ± 0.76 (3) |" in out
    assert main(["compare", "--records", str(records), "--baseline", "bert"]) == 1
    assert "arms found: ['mat', 'mat-short', 'vanilla']" in capsys.readouterr().err


def test_report_has_a_ladder_row_per_rung_with_its_own_numbers(tmp_path: Path) -> None:
    records = ladder_layout(tmp_path / "results")
    assert main(["report", "--records", str(records), "--out", str(tmp_path / "out")]) == 0
    both = pd.read_csv(tmp_path / "out" / "tables" / "ladder.csv")
    assert set(both["selection"]) == {"best", "last"}
    rows = both[both["selection"] == "best"].set_index("rung")
    assert list(rows.index) == ["vanilla", "sampling", "mat"]
    assert rows.loc["sampling", "mean"] == pytest.approx(35.0) and rows.loc["mat", "mean"] == pytest.approx(98.5 / 3)
    assert rows.loc["mat", "vs_vanilla_mean_diff"] == pytest.approx(98.5 / 3 - 31.0)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| sampling |" in md and "| mat |" in md


def test_paired_points_info_and_plot_by_hand(tmp_path: Path) -> None:
    df = load_records(ladder_layout(tmp_path))
    info = paired_points_info(aggregate.choose_configs(aggregate.trial_scores(df)).per_seed, "vanilla")
    assert info.arms == ["vanilla", "sampling", "mat"]
    means = info.means.set_index("arm")
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sampling: 34, 35, 36 (sd 1)
    assert (means.loc["sampling", "mean"], means.loc["sampling", "ci_low"]) == pytest.approx((35.0, 35.0 - half))
    diffs = info.diffs[info.diffs["arm"] == "mat"].set_index("seed")["diff"]
    assert diffs.to_dict() == {1: 2.0, 2: 2.0, 3: 1.5}  # mat − vanilla per seed
    mat = info.paired.set_index("arm").loc["mat"]
    assert mat["mean_diff"] == pytest.approx(5.5 / 3) and mat["n_pairs"] == 3
    assert mat["p_value"] == pytest.approx(stats.ttest_rel([32.0, 33.0, 33.5], [30.0, 31.0, 32.0]).pvalue)
    fig = paired_points_plot(info)
    left, right = fig.axes
    seed_lines = [ln for ln in left.get_lines() if len(ln.get_xdata()) == 3]
    assert len(seed_lines) == 3, "one line per seed joining its three arms"
    assert sorted(list(ln.get_ydata()) for ln in seed_lines) == [[30.0, 34.0, 32.0], [31.0, 35.0, 33.0],
                                                                  [32.0, 36.0, 33.5]]
    assert [t.get_text() for t in right.get_xticklabels()] == ["sampling", "mat"]
    with pytest.raises(ValueError, match="baseline 'bert'"):
        paired_points_info(aggregate.trial_scores(df), "bert")
