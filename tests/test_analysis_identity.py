"""Trial identity: layouts that share trial ids, copies, repeats, smoke vs full runs, refused metrics."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import AnalysisWarning, load, load_nni_experiment, load_records, load_with_notes, status_counts
from analysis import aggregate as agg
from analysis.__main__ import main
from mat.spec.records import EvalResult, TrialRecord, write_record

SEEDS = (1, 2, 3)
# dev accuracy of each method and seed on RTE: MAT is 1.0 above vanilla on every seed
ACC = {"vanilla": {1: 70.0, 2: 72.0, 3: 71.0}, "mat": {1: 71.0, 2: 73.0, 3: 72.0}}


def record(trial_id: str, method: str, seed: int, acc: float, status: str = "SUCCEEDED", task: str = "rte",
           params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None) -> TrialRecord:
    params = {"lambda_s": 1.0, "seed": seed, **(params or {})}
    rec = TrialRecord(trial_id, method, task, "bert-base-uncased", seed, params, status=status)
    ev = EvalResult(10, 1.0, metrics or {"accuracy": acc}, acc)
    rec.evals, rec.best, rec.final = [ev], ev, ev
    return rec


def write(path: Path, rec: TrialRecord, run: dict[str, Any] | None = None, mtime: float | None = None) -> Path:
    """Write ``rec`` to ``path/trial.json`` (with a top-level ``run`` object when given)."""
    path.mkdir(parents=True, exist_ok=True)
    data = rec.to_dict() if run is None else {**rec.to_dict(), "run": run}
    file = path / "trial.json"
    file.write_text(json.dumps(data))
    if mtime is not None:
        os.utime(file, (mtime, mtime))
    return file


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """``runs/<method>/seed<k>/``: every method's trials are called seed1, seed2, seed3."""
    runs = tmp_path / "runs"
    for method, by_seed in ACC.items():
        for seed, acc in by_seed.items():
            write_record(record(f"seed{seed}", method, seed, acc), runs / method / f"seed{seed}")
    return runs


@pytest.mark.parametrize("loader", ["load_records", "load"])
def test_method_seed_layout_keeps_trials_apart(layout: Path, loader: str) -> None:
    df = load_records(layout) if loader == "load_records" else load(records=[layout])
    assert status_counts(df)["SUCCEEDED"] == 6 and load_with_notes([layout]).skipped == []
    assert sorted(df["trial"].unique()) == sorted(f"{m}/seed{s}" for m in ACC for s in SEEDS)
    scores = agg.trial_scores(df)
    comp = agg.paired_comparison(scores, "mat", "vanilla").iloc[0]
    assert comp["n_pairs"] == 3 and comp["mean_diff"] == pytest.approx(1.0) and comp["warning"] == ""


def test_succeeded_copy_wins_over_a_newer_interrupted_copy(tmp_path: Path) -> None:
    ok = write(tmp_path / "runs" / "t1", record("t1", "mat", 1, 71.0), mtime=1_000_000)
    cut = write(tmp_path / "backup" / "t1", record("t1", "mat", 1, 60.0, status="INTERRUPTED"), mtime=2_000_000)
    with pytest.warns(AnalysisWarning, match="already loaded"):
        loaded = load_with_notes(records=[tmp_path / "backup", tmp_path / "runs"])
    df = loaded.frame
    assert status_counts(df) == {"SUCCEEDED": 1, "FAILED": 0, "RUNNING": 0, "INTERRUPTED": 0}
    assert set(df["source"]) == {str(ok)} and [p for p, _ in loaded.skipped] == [str(cut)]
    newer = write(tmp_path / "copy" / "t1", record("t1", "mat", 1, 71.0), mtime=3_000_000)
    with pytest.warns(AnalysisWarning, match="already loaded"):
        df = load(records=[tmp_path / "runs", tmp_path / "copy"])
    assert set(df["source"]) == {str(newer)}  # both SUCCEEDED: the newest copy


def test_a_repeat_of_configuration_and_seed_is_not_a_second_seed(tmp_path: Path) -> None:
    write(tmp_path / "a", record("a", "mat", 1, 71.0), mtime=1_000_000)
    later = write(tmp_path / "b", record("b", "mat", 1, 75.0), mtime=2_000_000)  # a GridSearch repeat after resume
    write(tmp_path / "c", record("c", "mat", 2, 73.0))
    with pytest.warns(AnalysisWarning, match="repeat set aside"):
        loaded = load_with_notes([tmp_path])
    df = loaded.frame
    assert sorted(df["trial"].unique()) == ["b", "c"]
    rep = loaded.repeats
    assert rep[["kept", "repeat", "seed"]].values.tolist() == [["b", "a", "1"]]
    assert rep["kept_source"].tolist() == [str(later)]
    summary = agg.seed_summary(agg.trial_scores(df))
    assert summary.loc[summary["metric"] == "score", "n"].tolist() == [2]


def test_smoke_and_full_runs_are_separate_configurations(tmp_path: Path) -> None:
    for seed in SEEDS:
        write(tmp_path / f"smoke{seed}", record(f"smoke{seed}", "mat", seed, 50.0 + seed), run={"max_steps": 10})
        write(tmp_path / f"full{seed}", record(f"full{seed}", "mat", seed, 72.0 + seed),
              run={"max_steps": None, "max_train_samples": None, "max_length": 512, "eval_times": 1})
    loaded = load_with_notes([tmp_path])
    df = loaded.frame
    assert loaded.repeats.empty and df["config"].nunique() == 2
    summary = agg.seed_summary(agg.trial_scores(df))
    score = summary[summary["metric"] == "score"].sort_values("mean")
    assert score["n"].tolist() == [3, 3] and score["mean"].tolist() == [52.0, 74.0]
    assert set(df["run.max_steps"].dropna()) == {10.0}
    best = agg.best_configs(summary).iloc[0]
    assert '"max_steps": null' in best["config"] and best["n_configs"] == 2
    # run settings given as hyperparameters (an NNI search over max_steps) separate runs too
    other = tmp_path / "params"
    write(other / "s", record("s", "mat", 1, 51.0, params={"max_steps": 10}))
    write(other / "f", record("f", "mat", 1, 73.0, params={"max_steps": 1000}))
    assert load_records(other)["config"].nunique() == 2


def test_a_record_missing_a_metric_or_with_nan_is_refused(tmp_path: Path) -> None:
    no_f1 = write(tmp_path / "no_f1", record("no_f1", "mat", 1, 86.0, task="mrpc", metrics={"accuracy": 86.0}))
    rec = record("nan", "mat", 2, 86.0, task="mrpc", metrics={"accuracy": 86.0, "f1": 90.0})
    data = rec.to_dict()
    data["best"]["metrics"]["f1"] = None  # NaN is written as null
    (tmp_path / "nan").mkdir()
    (tmp_path / "nan" / "trial.json").write_text(json.dumps(data))
    write(tmp_path / "ok", record("ok", "mat", 3, 86.0, task="mrpc", metrics={"accuracy": 86.0, "f1": 90.0}))
    with pytest.warns(AnalysisWarning) as caught:
        loaded = load_with_notes([tmp_path])
    df, skipped = loaded.frame, dict(loaded.skipped)
    assert set(df["trial"]) == {"ok"}
    assert "f1 (missing)" in skipped[str(no_f1)] and "f1 (nan)" in skipped[str(tmp_path / "nan" / "trial.json")]
    assert any(str(no_f1) in str(w.message) and "f1" in str(w.message) for w in caught)
    assert agg.trial_scores(df)["value"].max() == pytest.approx(90.0)


def test_trial_scores_refuses_a_trial_without_all_its_metrics() -> None:
    values = (("a", "accuracy", 80.0), ("a", "f1", 90.0), ("b", "accuracy", 99.0))  # b has no F1
    rows = [dict(experiment="e", trial=t, method="mat", arm="mat", task="mrpc", model="m", seed=1, status="SUCCEEDED",
                 error=None, config="c", source=f"{t}.json", kind="best", step=1.0, epoch=0.0, split="dev",
                 metric=m, value=v) for t, m, v in values]
    with pytest.warns(AnalysisWarning, match=r"b\.json: not scored: mrpc: cannot score without f1"):
        s, unscored = agg.scored_trials(pd.DataFrame(rows))
    assert set(s["trial"]) == {"a"} and s.loc[s["metric"] == "score", "value"].tolist() == [85.0]
    assert [src for src, _ in unscored] == ["b.json"] and s.attrs == {}


def test_compare_command_markdown_and_csv(layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md, csv = tmp_path / "c.md", tmp_path / "c.csv"
    assert main(["compare", "--records", str(layout), "--baseline", "vanilla", "--markdown", str(md),
                 "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out == md.read_text() and "| mat − vanilla | +1.00 [+1.00, +1.00]; p=- (t), 0.25 (W) |" in out
    assert "| vanilla | 71.00 ± 1.00 (3) |" in out and "paired t-test" in out
    long = pd.read_csv(csv).set_index("arm")
    assert long.loc["mat", "mean_diff"] == pytest.approx(1.0) and long.loc["mat", "n_pairs"] == 3
    assert main(["compare", "--records", str(layout), "--baseline", "smart"]) == 1
    assert "baseline 'smart' has no results" in capsys.readouterr().err


def test_strict_refuses_mismatched_seeds(layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_record(record("seed4", "mat", 4, 74.0), layout / "mat" / "seed4")
    assert main(["compare", "--records", str(layout), "--baseline", "vanilla"]) == 0
    captured = capsys.readouterr()
    assert "warning: model bert-base-uncased, task rte: seed sets differ" in captured.err and "‡" in captured.out
    assert main(["compare", "--records", str(layout), "--baseline", "vanilla", "--strict"]) == 1
    assert "only mat ran 4" in capsys.readouterr().err
    assert main(["report", "--records", str(layout), "--out", str(tmp_path / "r"), "--strict"]) == 1
    assert "seed sets differ" in capsys.readouterr().err and not (tmp_path / "r" / "report.md").exists()
    assert main(["report", "--records", str(layout), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Seed checks (1)" in md and "seed sets differ: mat 1,2,3,4; vanilla 1,2,3" in md
    assert "### Arms against vanilla" in md and "Intervals: `t`" in md


def test_report_selects_on_some_seeds_and_reports_others(layout: Path, tmp_path: Path) -> None:
    assert main(["report", "--records", str(layout), "--out", str(tmp_path), "--select_seeds", "1",
                 "--report_seeds", "2,3", "--interval", "bootstrap", "--bootstrap", "50"]) == 0
    best = pd.read_csv(tmp_path / "tables" / "best_configs.csv")
    assert (best["selected_on"] == "seeds 1").all() and (best["n"] == 1).all()
    arms = pd.read_csv(tmp_path / "tables" / "arm_summary.csv")
    assert (arms["n"] == 2).all() and (arms["interval"] == "bootstrap").all()
    md = (tmp_path / "report.md").read_text()
    assert "chosen on the mean dev score over seeds 1 and reported on seeds 2,3" in md
    with pytest.raises(SystemExit):
        main(["report", "--records", str(layout), "--out", str(tmp_path), "--select_seeds", "1,2",
              "--report_seeds", "2,3"])


def test_an_nni_trial_without_record_takes_the_experiments_run_settings(tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parent / "fixtures" / "analysis" / "nni"
    exp = (fixtures / "EXPERIMENT_ID").read_text().strip()
    shutil.copytree(fixtures / exp, tmp_path / exp)
    for file in (tmp_path / exp).glob("environments/*/trials/*/trial.json"):
        file.write_text(json.dumps({**json.loads(file.read_text()), "run": {"max_steps": 7, "max_length": 128}}))
    df = load_nni_experiment(exp, tmp_path)
    from_db = df[df["source"].str.contains("nni.sqlite#")]
    assert len(from_db) and (from_db["run.max_steps"] == 7).all() and (df["run.max_steps"] == 7).all()
    assert set(from_db["config"]) <= set(df.loc[~df["source"].str.contains("nni.sqlite#"), "config"])
