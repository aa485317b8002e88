"""Paired comparisons by seed, t-intervals and honest selection, on per-seed rows with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import aggregate as agg
from analysis import load_records
from analysis.comparison import (
    SeedMismatch,
    compare_to_baseline,
    comparison_table,
    paired_stats,
    seed_problems,
)
from analysis.intervals import bootstrap_ci, holm, mean_interval, t_interval
from analysis.options import Options
from analysis.report import build_report
from mat.spec.records import EvalResult, TrialRecord, write_record

# The issue's example: five seeds whose MAT - vanilla differences are 1, 1.5, 0.5, 1.5, 1.5.
BASE = [80.0, 82.0, 79.0, 81.0, 80.5]
DIFFS = [1.0, 1.5, 0.5, 1.5, 1.5]


def per_seed(method: str, values: list[float], seeds: list[int] | None = None, task: str = "rte",
             config: str = "c") -> pd.DataFrame:
    seeds = seeds or list(range(1, len(values) + 1))
    return pd.DataFrame([dict(experiment="e", trial=f"{method}-{task}-{config}-{s}", method=method, arm=method, task=task,
                              model="m", seed=s, status="SUCCEEDED", config=config, step=1.0, split="dev",
                              metric="score", value=v) for s, v in zip(seeds, values)])


def example() -> pd.DataFrame:
    return pd.concat([per_seed("vanilla", BASE), per_seed("mat", [b + d for b, d in zip(BASE, DIFFS)])])


def test_the_issue_example_is_significant_when_paired() -> None:
    res = agg.paired_comparison(example(), "mat", "vanilla").iloc[0]
    assert res["n_pairs"] == 5 and res["mean_diff"] == pytest.approx(1.2)
    assert res["p_value"] == pytest.approx(0.004, abs=5e-4)  # paired t-test: t = 6, 4 dof
    assert (round(res["ci_low"], 2), round(res["ci_high"], 2)) == (0.64, 1.76)  # t-interval [0.645, 1.755]
    assert res["t"] == pytest.approx(6.0) and res["dof"] == 4 and res["interval"] == "t"
    # the same data read as unpaired (Welch) says "nothing": the seeds' shared variation is not removed
    welch = agg.unpaired_comparison(example(), "mat", "vanilla").iloc[0]
    assert welch["p_value"] > 0.1 and welch["ci_low"] < 0 < welch["ci_high"]


def test_paired_stats_reproduce_scipy_to_1e9() -> None:
    rng = np.random.default_rng(7)
    for n in (2, 3, 5, 8, 12):
        b = rng.normal(80, 2, n)
        a = b + rng.normal(0.5, 1, n)
        st = paired_stats(a, b)
        ref = stats.ttest_rel(a, b)
        assert abs(st.t - ref.statistic) < 1e-9 and abs(st.p_value - ref.pvalue) < 1e-9 and st.dof == n - 1
        assert abs(st.wilcoxon_p - stats.wilcoxon(a - b, method="exact").pvalue) < 1e-9
        d = a - b
        lo, hi = stats.t.interval(0.95, n - 1, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(n))
        assert abs(st.ci_low - lo) < 1e-9 and abs(st.ci_high - hi) < 1e-9
        assert abs(st.mean_diff - d.mean()) < 1e-9 and st.n_pairs == n


def test_wilcoxon_exact_by_hand() -> None:
    # 5 positive differences without ties: the exact two-sided p is 2 / 2^5
    assert paired_stats([2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 1.0, 1.0, 1.0, 1.0]).wilcoxon_p == pytest.approx(2 / 32)
    # a zero difference is dropped: 4 positive ones left, p = 2 / 2^4
    assert paired_stats([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0]).wilcoxon_p == pytest.approx(2 / 16)
    same = paired_stats([1.0, 2.0], [1.0, 2.0])
    assert math.isnan(same.wilcoxon_p) and math.isnan(same.p_value) and (same.ci_low, same.ci_high) == (0.0, 0.0)
    assert paired_stats([], []).n_pairs == 0


def test_t_interval_of_a_mean_to_1e9_and_bootstrap_on_request() -> None:
    v = [61.0, 63.5, 60.2, 62.8, 61.9]
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(v), scale=np.std(v, ddof=1) / math.sqrt(5))
    assert abs(t_interval(v)[0] - lo) < 1e-9 and abs(t_interval(v)[1] - hi) < 1e-9
    assert mean_interval(v, "bootstrap", seed=3) == bootstrap_ci(v, seed=3)
    assert all(math.isnan(x) for x in t_interval([5.0]))  # one seed: no interval
    with pytest.raises(ValueError, match="bootstrap"):
        mean_interval(v, "normal")
    s = agg.seed_summary(per_seed("mat", v)).iloc[0]  # the default summary interval is the t-interval
    assert s["interval"] == "t" and abs(s["ci_low"] - lo) < 1e-9 and abs(s["ci_high"] - hi) < 1e-9


def test_paired_bootstrap_interval_resamples_pairs() -> None:
    res = agg.paired_comparison(example(), "mat", "vanilla", interval="bootstrap", seed=2).iloc[0]
    assert res["interval"] == "bootstrap"
    assert (res["ci_low"], res["ci_high"]) == bootstrap_ci(DIFFS, seed=2)


def test_mismatched_and_repeated_seeds_are_flagged_and_refused_when_strict() -> None:
    mat = per_seed("mat", [81.0, 83.0, 80.0, 82.0], seeds=[1, 2, 3, 4])
    van = per_seed("vanilla", [80.0, 82.0, 79.0, 81.0], seeds=[1, 2, 3, 6])
    res = agg.paired_comparison(pd.concat([mat, van]), "mat", "vanilla").iloc[0]
    assert res["n_pairs"] == 3 and (res["n_a"], res["n_b"]) == (4, 4)
    assert res["seeds_only_a"] == "4" and res["seeds_only_b"] == "6"
    assert "seed sets differ" in res["warning"] and res["mean_diff"] == pytest.approx(1.0)
    with pytest.raises(SeedMismatch, match="only mat ran 4"):
        agg.paired_comparison(pd.concat([mat, van]), "mat", "vanilla", strict=True)
    twice = pd.concat([mat, per_seed("mat", [90.0], seeds=[2], config="c")])
    rep = agg.paired_comparison(pd.concat([twice, van]), "mat", "vanilla").iloc[0]
    assert rep["repeated_seeds"] == "2 (mat)" and "repeat" in rep["warning"]
    problems = seed_problems(pd.concat([twice, van]))
    assert any("seed sets differ" in p for p in problems) and any("seed(s) 2 repeat in mat" in p for p in problems)
    assert seed_problems(example()) == []


def test_compare_to_baseline_table_and_welch_only_without_shared_seeds() -> None:
    scores = pd.concat([example(), per_seed("smart", [70.0, 71.0, 72.0], seeds=[7, 8, 9])])
    comp = compare_to_baseline(scores, "vanilla").set_index("arm")
    assert comp.loc["vanilla", "n"] == 5 and comp.loc["vanilla", "mean"] == pytest.approx(np.mean(BASE))
    assert math.isnan(comp.loc["vanilla", "mean_diff"]) and comp.loc["vanilla", "test"] == ""
    assert comp.loc["mat", "test"] == "paired t-test" and comp.loc["mat", "p_value"] == pytest.approx(0.0039, abs=1e-4)
    assert comp.loc["smart", "test"] == "Welch t-test (unpaired)" and comp.loc["smart", "n_pairs"] == 0
    assert "seed sets differ" in comp.loc["smart", "warning"]
    table = comparison_table(comp.reset_index(), "vanilla")
    assert list(table.cells.index) == ["vanilla", "mat", "smart", "mat − vanilla", "smart − vanilla"]
    assert table.cells.loc["mat − vanilla", "RTE"].startswith("+1.20 [+0.64, +1.76]; p=0.0039 (t), 0.062 (W)")
    assert "Welch" in table.cells.loc["smart − vanilla", "RTE"]
    with pytest.raises(ValueError, match="baseline 'freelb'"):
        compare_to_baseline(scores, "freelb")


def configs(method: str, means: dict[str, float], seeds: list[int]) -> pd.DataFrame:
    return pd.concat([per_seed(method, [m + 0.1 * s for s in seeds], seeds, config=c) for c, m in means.items()])


def test_configurations_searched_and_selection_on_held_out_seeds() -> None:
    scores = pd.concat([configs("mat", {"a": 80.0, "b": 81.0, "c": 79.0}, [1, 2, 3, 4, 5]),
                        configs("vanilla", {"x": 78.0}, [1, 2, 3, 4, 5])])
    same = agg.choose_configs(scores)
    best = same.best.set_index("arm")
    assert best.loc["mat", "n_configs"] == 3 and best.loc["vanilla", "n_configs"] == 1
    assert (best["selected_on"] == "same seeds").all() and "best of K" in same.note
    assert sorted(same.per_seed.loc[same.per_seed["arm"] == "mat", "seed"]) == [1, 2, 3, 4, 5]
    held = agg.choose_configs(scores, select_seeds=[1, 2], report_seeds=[3, 4, 5])
    assert held.best.set_index("arm").loc["mat", "config"] == "b"
    assert sorted(held.per_seed["seed"].unique()) == [3, 4, 5]
    assert (held.per_seed["config"].isin(["b", "x"])).all() and "held out" in held.note
    assert set(agg.choose_configs(scores, select_seeds=[1, 2]).per_seed["seed"]) == {3, 4, 5}
    with pytest.raises(ValueError, match="overlap"):
        agg.choose_configs(scores, select_seeds=[1, 2], report_seeds=[2, 3])
    marked = comparison_table(compare_to_baseline(same.per_seed, "vanilla", same.best), "vanilla")
    assert marked.cells.loc["mat", "RTE"].endswith("(5) †") and not marked.cells.loc["vanilla", "RTE"].endswith("†")


def test_holm_step_down_by_hand() -> None:
    """m = 4 p-values 0.01, 0.04, 0.03, 0.005 (NaN does not count): sorted 0.005, 0.01, 0.03, 0.04 scale by 4, 3,
    2, 1 to 0.02, 0.03, 0.06, 0.04, and the running maximum makes the last 0.06; back in input order."""
    got = holm([0.01, 0.04, math.nan, 0.03, 0.005])
    assert np.allclose(got[[0, 1, 3, 4]], [0.03, 0.06, 0.06, 0.02]) and math.isnan(got[2])
    assert np.allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,) and np.allclose(holm([0.02]), [0.02])  # one comparison: unchanged


def test_arms_at_different_precisions_are_flagged(tmp_path: Path) -> None:
    """vanilla in bf16 against MAT in fp32 (``--precision auto`` on CUDA) is flagged in the comparison's warning
    and in the report; one precision for both, or an unknown one (no record), is not."""
    rows = example()
    rows["param.precision"] = np.where(rows["method"] == "mat", "fp32", "bf16")
    res = agg.paired_comparison(rows, "mat", "vanilla").iloc[0]
    assert "different precisions (mat: fp32; vanilla: bf16)" in res["warning"] and res["n_pairs"] == 5
    assert "different precisions" in compare_to_baseline(rows, "vanilla").set_index("arm").loc["mat", "warning"]
    for same in ("fp32", None):
        rows["param.precision"] = same
        assert agg.paired_comparison(rows, "mat", "vanilla").iloc[0]["warning"] == ""

    for method, precision, values in (("mat", "fp32", [b + d for b, d in zip(BASE, DIFFS)]), ("vanilla", "bf16", BASE)):
        for seed, v in enumerate(values, 1):
            rec = TrialRecord(f"{method}-s{seed}", method, "rte", "bert-base-uncased", seed,
                              {"seed": seed, "precision": precision}, status="SUCCEEDED")
            rec.evals = [EvalResult(10, 1.0, {"accuracy": v}, v)]
            rec.best = rec.final = rec.evals[0]
            write_record(rec, tmp_path / "records" / rec.trial_id)
    build_report(load_records(tmp_path / "records"), tmp_path / "out", Options(n_boot=50))
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- warning: rte, mat vs vanilla: the arms ran at different precisions (mat: fp32; vanilla: bf16)" in md
