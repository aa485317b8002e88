"""``python -m analysis report``: outputs, status counts, skipped files, exit codes, help text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.__main__ import build_parser, main
from analysis.synthetic import synthetic_records, write_records
from mat.spec.records import EvalResult, TrialRecord, write_record

REPO = Path(__file__).resolve().parents[1]
NNI_DIR = REPO / "tests" / "fixtures" / "analysis" / "nni"
TASKS = ("cola", "mrpc", "rte", "anli_r1", "sst2")


def unfinished(root: Path) -> None:
    """One failed, one running (with a too-good partial result) and one interrupted trial."""
    write_record(TrialRecord("fail-1", "mat", "rte", "bert-base-uncased", 9, {}, status="FAILED",
                             error="CUDA out of memory"), root / "fail-1")
    run = TrialRecord("run-1", "mat", "rte", "bert-base-uncased", 9, {}, status="RUNNING")
    run.evals = [EvalResult(10, 0.1, {"accuracy": 99.5}, 99.5)]
    run.best = run.evals[0]
    write_record(run, root / "run-1")
    write_record(TrialRecord("int-1", "vanilla", "cola", "bert-base-uncased", 9, {}, status="INTERRUPTED"),
                 root / "int-1")


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("records")
    n = write_records(synthetic_records(("vanilla", "mat"), TASKS, (1, 2, 3), n_configs=2, n_evals=3), root)
    assert n == 2 * 5 * 3 * 2
    unfinished(root)
    (root / "corrupt").mkdir()
    (root / "corrupt" / "trial.json").write_text('{"schema": 1, "trial_id": "cut')
    return root


@pytest.fixture(scope="module")
def report(records: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("report")
    rc = main(["report", "--records", str(records), "--out", str(out), "--bootstrap", "200"])
    return out, rc, (out / "report.md").read_text()


def test_report_counts_every_status(report: tuple[Path, int, str]) -> None:
    out, rc, md = report
    assert rc == 0
    for line in ("| finished (SUCCEEDED) | 60 |", "| running (RUNNING) | 1 |", "| failed (FAILED) | 1 |",
                 "| interrupted (INTERRUPTED) | 1 |", "| total | 63 |"):
        assert line in md
    assert "CUDA out of memory" in md


def test_report_lists_skipped_files(report: tuple[Path, int, str], records: Path) -> None:
    md = report[2]
    assert "## Skipped inputs (1)" in md
    assert f"`{records / 'corrupt' / 'trial.json'}`" in md


def test_partial_trial_never_counted_as_complete(report: tuple[Path, int, str]) -> None:
    out = report[0]
    summary = pd.read_csv(out / "tables" / "arm_summary.csv")
    assert summary["max"].max() < 99.5
    glue = pd.read_csv(out / "tables" / "glue_bert-base-uncased.csv").set_index("row")
    assert glue.loc["mat (ours)", "rte.dev.accuracy"] < 99.5
    assert glue.loc["mat (ours)", "n"] == 3  # three finished seeds, the running one excluded


def test_report_writes_tables_and_figures(report: tuple[Path, int, str]) -> None:
    out, _, md = report
    for name in ("glue_bert-base-uncased", "anli_bert-base-uncased", "advglue_bert-base-uncased"):
        for ext in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{ext}").is_file()
        assert (out / "tables" / f"{name}.md").read_text() in md
    for name in ("seed_box_bert-base-uncased", "learning_curves_bert-base-uncased", "hparams_bert-base-uncased"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 0
        assert f"](figures/{name}.png)" in md
    assert "| +MAT (paper) | 62.6 |" in md  # Table 1's published rows beside ours
    assert "the MAT paper's convention, no WNLI" in md
    assert "### MAT vs each baseline" in md
    best = pd.read_csv(out / "tables" / "best_configs.csv")
    assert len(best) == 2 * len(TASKS) and (best["n"] == 3).all()


def test_final_selection_and_glue_convention(records: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["report", "--records", str(records), "--out", str(tmp_path), "--selection", "final",
               "--convention", "glue", "--bootstrap", "50"])
    md = (tmp_path / "report.md").read_text()
    assert rc == 0
    assert f"warning: skipped {records / 'corrupt' / 'trial.json'}" in capsys.readouterr().err
    assert "Selection: `last`" in md and "WNLI included" in md and "WNLI (Acc)" in md


def test_nothing_usable_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--records", str(empty), "--out", str(tmp_path / "o1")]) == 1
    assert "nothing usable" in capsys.readouterr().err
    assert not (tmp_path / "o1" / "report.md").exists()
    failed = tmp_path / "failed"
    unfinished(failed)
    assert main(["report", "--records", str(failed), "--out", str(tmp_path / "o2")]) == 1
    captured = capsys.readouterr()
    assert "no finished trial" in captured.err and "1 running" in captured.out
    assert "| failed (FAILED) | 1 |" in (tmp_path / "o2" / "report.md").read_text()
    assert main(["report", "--records", str(tmp_path / "missing"), "--out", str(tmp_path / "o3")]) == 1
    assert "missing" in capsys.readouterr().err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["report", "--out", "x"])
    assert e.value.code == 2 and "--experiment ID or --records DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--records", "x"])  # --out is required
    with pytest.raises(SystemExit):
        main(["report", "--records", "x", "--out", "y", "--selection", "worst"])


def test_help_documents_every_option() -> None:
    parser = build_parser()
    top = subprocess.run([sys.executable, "-m", "analysis", "--help"], cwd=REPO, capture_output=True, text=True)
    assert top.returncode == 0 and "report" in top.stdout
    sub = next(a for a in parser._actions if a.dest == "command").choices["report"]
    text = sub.format_help()
    for action in sub._actions:
        for opt in action.option_strings:
            assert opt in text
        assert action.help, f"{action.dest} has no help"
    for word in ("best", "final", "paper", "glue", "nni-experiments", "trial.json"):
        assert word in text


# ``python -m analysis`` with torch, transformers and nni made unimportable (a meta-path finder refuses them).
BLOCKED_MAIN = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'nni', 'transformers'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = ['analysis'] + sys.argv[1:]
runpy.run_module('analysis', run_name='__main__', alter_sys=True)
"""


def test_cli_on_the_nni_fixture_without_torch_or_nni(tmp_path: Path) -> None:
    exp = (NNI_DIR / "EXPERIMENT_ID").read_text().strip()
    args = ["report", "--experiment", exp, "--nni_dir", str(NNI_DIR), "--out", str(tmp_path), "--bootstrap", "50"]
    out = subprocess.run([sys.executable, "-c", BLOCKED_MAIN, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("12 trials (11 finished, 0 running, 1 failed, 0 interrupted); 0 input(s) skipped")
    md = (tmp_path / "report.md").read_text()
    assert "RuntimeError: stand-in crash after the first evaluation" in md
    assert "ablation over lambda_s" in md  # a one-factor sweep is tabulated as an ablation


def test_one_factor_sweep_becomes_an_ablation_table(tmp_path: Path) -> None:
    """The paper's K sets both sampling_times_* at once: one factor, tabulated like Table 4."""
    from analysis import load_records
    from analysis.options import Options
    from analysis.report import build_report

    mcc = {1: [60.0, 62.0], 5: [63.0, 63.0], 10: [61.0, 59.0]}
    for k, values in mcc.items():
        for seed, v in enumerate(values, 1):
            params = {"sampling_times_delta": k, "sampling_times_theta": k, "lambda_s": 3.0, "seed": seed}
            rec = TrialRecord(f"k{k}-s{seed}", "mat", "cola", "bert-base-uncased", seed, params, status="SUCCEEDED")
            rec.evals = [EvalResult(10, 1.0, {"mcc": v}, v)]
            rec.best = rec.final = rec.evals[0]
            write_record(rec, tmp_path / "records" / rec.trial_id)
    result = build_report(load_records(tmp_path / "records"), tmp_path / "out", Options(n_boot=50))
    assert result.usable
    table = pd.read_csv(tmp_path / "out" / "tables" / "ablation_sampling_times_delta_mat_bert-base-uncased.csv")
    assert table.columns.tolist() == ["sampling_times_delta", "1", "5", "10"]
    assert table.iloc[0].tolist() == ["CoLA (Mcc)", 61.0, 63.0, 60.0]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| CoLA (Mcc) | 61.0 ± 1.4 | 63.0 ± 0.0 | 60.0 ± 1.4 |" in md
    assert "ablation over sampling_times_delta = sampling_times_theta" in md


def test_published_ablation_beside_ours(tmp_path: Path) -> None:
    """A λ sweep of MAT on BERT-base gets the paper's Table 5 (tasks we ran) next to our ablation table."""
    from analysis import load_records
    from analysis.options import Options
    from analysis.report import build_report

    for lam, values in {1.0: [60.0, 62.0], 3.0: [63.0, 63.0]}.items():
        for seed, v in enumerate(values, 1):
            rec = TrialRecord(f"l{lam}-s{seed}", "mat", "cola", "bert-base-uncased", seed,
                              {"lambda_s": lam, "seed": seed}, status="SUCCEEDED")
            rec.evals = [EvalResult(10, 1.0, {"mcc": v}, v)]
            rec.best = rec.final = rec.evals[0]
            write_record(rec, tmp_path / "records" / rec.trial_id)
    build_report(load_records(tmp_path / "records"), tmp_path / "out", Options(n_boot=50))
    paper = pd.read_csv(tmp_path / "out" / "tables" / "ablation_lambda_s_mat_bert-base-uncased_paper.csv")
    assert paper.iloc[:, 0].tolist() == ["CoLA (Mcc)"]  # only the tasks we ran
    assert paper.columns.tolist()[1:] == ["0.1", "1", "3", "5", "10", "50"]
    assert paper.iloc[0, 1:].tolist() == [60.8, 60.1, 62.6, 61.9, 62.4, 57.8]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "MAT paper Table 5: ablation over lambda_s" in md
    assert md.index("mat: ablation over lambda_s") < md.index("MAT paper Table 5")
