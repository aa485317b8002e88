"""Aggregation stages on hand-built frames with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis import aggregate as agg
from analysis.load import COLUMNS
from analysis.scores import PAPER_TASKS


def rows(trial: str, task: str, status: str, entries: list[tuple], seed: int = 1, config: str = "c",
         method: str = "mat") -> list[dict]:
    """Tidy rows: ``entries`` are (kind, step, split, metric, value)."""
    base = dict(experiment="e", trial=trial, method=method, arm=method, task=task, model="m", seed=seed, status=status,
                error=None, config=config, source=f"{trial}.json", epoch=0.0)
    return [{**base, "kind": k, "step": s, "split": sp, "metric": m, "value": v} for k, s, sp, m, v in entries]


@pytest.fixture
def tidy() -> pd.DataFrame:
    r = []
    r += rows("t1", "mrpc", "SUCCEEDED", [
        ("eval", 10, "dev", "accuracy", 80.0), ("eval", 10, "dev", "f1", 84.0),
        ("eval", 20, "dev", "accuracy", 86.0), ("eval", 20, "dev", "f1", 90.0),
        ("eval", 30, "dev", "accuracy", 84.0), ("eval", 30, "dev", "f1", 88.0),
        ("best", 20, "dev", "accuracy", 86.0), ("best", 20, "dev", "f1", 90.0),
        ("final", 30, "dev", "accuracy", 84.0), ("final", 30, "dev", "f1", 88.0),
    ])
    r += rows("t2", "rte", "SUCCEEDED", [  # no best/final entries: fall back to the evals
        ("eval", 1, "dev", "accuracy", 60.0), ("eval", 2, "dev", "accuracy", 65.0),
        ("eval", 3, "dev", "accuracy", 65.0),
    ])
    r += rows("t3", "rte", "FAILED", [("eval", 1, "dev", "accuracy", 99.0)])
    r += rows("t4", "anli_r1", "SUCCEEDED", [
        ("best", 5, "dev", "accuracy", 50.0), ("best", 5, "test_r1", "accuracy", 48.0),
    ])
    df = pd.DataFrame(r)
    return df[list(COLUMNS)]


def pick(scores: pd.DataFrame, trial: str, split: str, metric: str) -> pd.Series:
    return scores[(scores["trial"] == trial) & (scores["split"] == split) & (scores["metric"] == metric)].iloc[0]


def test_best_selection_and_score_rows(tidy: pd.DataFrame) -> None:
    s = agg.trial_scores(tidy, "best")
    assert set(s["trial"]) == {"t1", "t2", "t4"}  # the FAILED trial is not counted as complete
    assert pick(s, "t1", "dev", "score")["value"] == pytest.approx(88.0)  # (86 + 90) / 2
    assert pick(s, "t1", "dev", "score")["step"] == 20
    assert pick(s, "t2", "dev", "accuracy")["step"] == 2  # highest dev score, earliest of the tie
    assert pick(s, "t4", "test_r1", "score")["value"] == pytest.approx(48.0)
    assert len(s[s["trial"] == "t1"]) == 3  # accuracy, f1, score


def test_final_selection(tidy: pd.DataFrame) -> None:
    s = agg.trial_scores(tidy, "final")
    assert pick(s, "t1", "dev", "score")["value"] == pytest.approx(86.0)  # (84 + 88) / 2
    assert pick(s, "t2", "dev", "accuracy")["step"] == 3
    assert "t4" not in set(s["trial"])  # no final entry and no evals to fall back on
    everything = agg.trial_scores(tidy, "final", statuses=None)
    assert pick(everything, "t3", "dev", "score")["value"] == pytest.approx(99.0)
    last = agg.trial_scores(tidy, "last")
    assert last.drop(columns="kind", errors="ignore").equals(s.drop(columns="kind", errors="ignore")), \
        "'final' is another name for 'last'"
    with pytest.raises(ValueError, match="best"):
        agg.trial_scores(tidy, "latest")


def per_seed(values_by_config: dict[str, list[float]], task: str = "rte", method: str = "mat") -> pd.DataFrame:
    out = []
    for config, values in values_by_config.items():
        for seed, v in enumerate(values, 1):
            out.append(dict(experiment="e", trial=f"{method}-{task}-{config}-{seed}", method=method, arm=method, task=task,
                            model="m", seed=seed, status="SUCCEEDED", config=config, step=1.0, split="dev",
                            metric="score", value=v))
    return pd.DataFrame(out)


def test_seed_summary_statistics() -> None:
    frame = per_seed({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 10.0], "c": [7.0, 7.0, 7.0], "d": [5.0]})
    s = agg.seed_summary(frame, interval="bootstrap")
    s = s.set_index("config")
    assert s.loc["a", ["n", "mean", "median", "min", "max"]].tolist() == [4, 2.5, 2.5, 1.0, 4.0]
    assert s.loc["a", "std"] == pytest.approx(math.sqrt(5 / 3))  # sample std, ddof 1
    # two values 0 and 10: bootstrap means are 0, 5, 10 with probabilities 1/4, 1/2, 1/4
    assert (s.loc["b", "ci_low"], s.loc["b", "ci_high"]) == (0.0, 10.0)
    assert (s.loc["c", "ci_low"], s.loc["c", "ci_high"]) == (7.0, 7.0)
    assert (s.loc["d", "ci_low"], s.loc["d", "ci_high"]) == (5.0, 5.0) and math.isnan(s.loc["d", "std"])
    assert agg.bootstrap_ci([0.0, 10.0]) == (0.0, 10.0)


def test_bootstrap_is_seeded_and_group_independent() -> None:
    frame = per_seed({"a": [1.0, 2.0, 3.0, 4.0], "b": [3.0, 9.0, 4.0, 1.0]})
    one = agg.seed_summary(frame, interval="bootstrap").set_index("config")
    alone = agg.seed_summary(frame[frame["config"] == "a"], interval="bootstrap").set_index("config")
    assert one.loc["a", "ci_low"] == alone.loc["a", "ci_low"] and one.loc["a", "ci_high"] == alone.loc["a", "ci_high"]
    assert (one.loc["a", "ci_low"], one.loc["a", "ci_high"]) == agg.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    lo, hi = agg.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert agg.bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0) == agg.bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    v = [3.1, 1.7, 2.2, 5.9, 4.4, 0.3, 2.8, 3.3]
    assert agg.bootstrap_ci(v, seed=1) != agg.bootstrap_ci(v, seed=2)


def test_best_config_on_mean_over_seeds() -> None:
    frame = pd.concat([
        per_seed({"a": [80.0, 82.0], "b": [85.0, 70.0], "c": [81.0]}),  # means 81, 77.5, 81
        per_seed({"x": [60.0, 62.0], "y": [65.0]}, task="cola"),
    ])
    summary = agg.seed_summary(frame)
    best = agg.best_configs(summary).set_index("task")
    assert best.loc["rte", "config"] == "a"  # ties with c on the mean; more seeds wins
    assert best.loc["cola", "config"] == "y"
    chosen = agg.select_configs(frame, agg.best_configs(summary))
    assert sorted(chosen["trial"]) == ["mat-cola-y-1", "mat-rte-a-1", "mat-rte-a-2"]


def test_glue_scores_both_conventions() -> None:
    metrics = {"cola": {"mcc": 60.0}, "sst2": {"accuracy": 92.0}, "mrpc": {"accuracy": 88.0, "f1": 92.0},
               "qqp": {"accuracy": 91.0, "f1": 89.0}, "stsb": {"pearson": 90.0, "spearman": 89.0},
               "mnli": {"accuracy_m": 86.0, "accuracy_mm": 85.0}, "qnli": {"accuracy": 92.0}, "rte": {"accuracy": 70.0}}
    summary = pd.DataFrame([dict(model="m", arm="mat", task=t, split="dev", metric=k, mean=v)
                            for t, d in metrics.items() for k, v in d.items()])
    summary = pd.concat([summary, summary.assign(metric="score", mean=0.0)])  # score rows are ignored
    task_means = [60, 92, 90, 90, 89.5, 85.5, 92, 70]
    paper = agg.glue_scores(summary, "paper").iloc[0]
    assert paper["glue_score"] == pytest.approx(sum(task_means) / 8) and paper["missing"] == ""
    glue = agg.glue_scores(summary, "glue").iloc[0]
    assert math.isnan(glue["glue_score"]) and glue["missing"] == "wnli" and glue["n_tasks"] == 8
    with_wnli = pd.concat([summary, pd.DataFrame([dict(model="m", arm="mat", task="wnli", split="dev",
                                                       metric="accuracy", mean=56.0)])])
    assert agg.glue_scores(with_wnli, "glue").iloc[0]["glue_score"] == pytest.approx((sum(task_means) + 56) / 9)
    assert len(PAPER_TASKS) == 8


def test_unpaired_comparison_welch_by_hand() -> None:
    a = per_seed({"c": [1.0, 2.0, 3.0, 4.0]}, method="mat")
    b = per_seed({"c": [2.0, 4.0, 6.0, 8.0]}, method="smart")
    res = agg.unpaired_comparison(pd.concat([a, b]), "mat", "smart", by=("task",)).iloc[0]
    # mean diff 2.5 - 5 = -2.5; se^2 = (5/3)/4 + (20/3)/4 = 25/12; t = -2.5 / sqrt(25/12) = -sqrt(3)
    dof = (25 / 12) ** 2 / ((5 / 12) ** 2 / 3 + (20 / 12) ** 2 / 3)
    assert res["mean_diff"] == pytest.approx(-2.5) and res["test"] == "Welch t-test (unpaired)"
    assert res["t"] == pytest.approx(-math.sqrt(3)) and res["dof"] == pytest.approx(dof)
    assert dof == pytest.approx(4.41176, abs=1e-5)
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(math.sqrt(3), dof))
    assert (res["n_a"], res["n_b"]) == (4, 4)
    assert res["ci_low"] < -2.5 < res["ci_high"]
    half = stats.t.ppf(0.975, dof) * math.sqrt(25 / 12)  # Welch's t-interval
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((-2.5 - half, -2.5 + half), abs=1e-9)
    boot = agg.unpaired_comparison(pd.concat([a, b]), "mat", "smart", by=("task",), interval="bootstrap").iloc[0]
    assert boot["ci_low"] < -2.5 < boot["ci_high"] and boot["interval"] == "bootstrap"
    const = agg.unpaired_comparison(pd.concat([per_seed({"c": [5.0, 5.0]}, method="mat"),
                                               per_seed({"c": [3.0, 3.0]}, method="smart")]), "mat", "smart").iloc[0]
    assert (const["ci_low"], const["ci_high"]) == (2.0, 2.0)
    assert math.isnan(const["p_value"])  # no variance: no t-test


def test_paired_comparison_by_hand() -> None:
    a = per_seed({"c": [1.0, 2.0, 3.0, 4.0]}, method="mat")
    b = per_seed({"c": [2.0, 4.0, 6.0, 8.0]}, method="smart")
    res = agg.paired_comparison(pd.concat([a, b]), "mat", "smart", by=("task",)).iloc[0]
    # per-seed differences -1, -2, -3, -4: mean -2.5, sd sqrt(5/3), t = -2.5 / (sd / 2), 3 degrees of freedom
    assert res["mean_diff"] == pytest.approx(-2.5) and (res["n_a"], res["n_b"], res["n_pairs"]) == (4, 4, 4)
    assert res["t"] == pytest.approx(-2.5 / (math.sqrt(5 / 3) / 2)) and res["dof"] == 3
    assert res["p_value"] == pytest.approx(stats.ttest_rel([1, 2, 3, 4], [2, 4, 6, 8]).pvalue, abs=1e-12)
    assert res["test"] == "paired t-test" and res["warning"] == ""
    const = agg.paired_comparison(pd.concat([per_seed({"c": [5.0, 5.0]}, method="mat"),
                                             per_seed({"c": [3.0, 3.0]}, method="smart")]), "mat", "smart").iloc[0]
    assert (const["ci_low"], const["ci_high"]) == (2.0, 2.0)
    assert math.isnan(const["p_value"])  # no variance: no t-test


def test_group_cis_match_single_bootstrap_for_many_groups() -> None:
    rng = np.random.default_rng(3)
    values = {f"g{i}": list(rng.normal(80, 2, size=int(rng.integers(1, 6)))) for i in range(30)}
    s = agg.seed_summary(per_seed(values), interval="bootstrap").set_index("config")
    for cfg, v in values.items():
        assert (s.loc[cfg, "ci_low"], s.loc[cfg, "ci_high"]) == pytest.approx(agg.bootstrap_ci(v))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=8))
def test_summary_bounds_property(values: list[float]) -> None:
    s = agg.seed_summary(per_seed({"a": values}), interval="bootstrap").iloc[0]
    eps = 1e-9 * max(1.0, s["max"])  # a mean of equal floats can differ from them in the last bit
    assert s["min"] - eps <= s["ci_low"] <= s["ci_high"] <= s["max"] + eps
    assert s["min"] - eps <= s["mean"] <= s["max"] + eps and s["n"] == len(values)
    assert (s["ci_low"], s["ci_high"]) == agg.bootstrap_ci(values)
