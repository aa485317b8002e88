"""When a trial evaluates (``--eval_schedule``) and which evaluation is its best (``--select_metric``).

The authors' rule (Charles-Zhong/MAT ``MAT.py``): after each batch, ``if current_iteration > 0 and
current_iteration % eval_step == 0`` with the 0-based counter moved on only after the test, and
``eval_step = len(train_dataloader) // eval_times``; their best is the first maximum of their first metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mat.cli import parse_cli
from mat.spec.config import RunArgs
from mat.evaluation import eval_steps, selection_value
from mat.spec.records import EvalResult
from mat.provenance import resolve
from mat.train import fit
from tests.helpers import make_tiny_setup


def authors_loop_evaluations(batches_per_epoch: int, epochs: int, eval_times: int) -> list[int]:
    """The authors' loop run dry: the 1-based batches after which ``MAT.py`` evaluates."""
    eval_step = batches_per_epoch // eval_times
    current_iteration, after = 0, []
    for _epoch in range(epochs):
        for _batch in range(batches_per_epoch):
            if current_iteration > 0 and current_iteration % eval_step == 0:
                after.append(current_iteration + 1)  # this batch, 1-based
            current_iteration += 1
    return after


def test_authors_schedule_of_the_issue_by_hand() -> None:
    """64 examples, batch 8 (8 batches an epoch), 2 epochs, eval_times 3: e = 2, after batches 3, 5, ..., 15."""
    assert sorted(eval_steps(8, 16, 3, "authors")) == [3, 5, 7, 9, 11, 13, 15]
    assert authors_loop_evaluations(8, 2, 3) == [3, 5, 7, 9, 11, 13, 15]
    assert sorted(eval_steps(8, 16, 3)) == [3, 5, 8, 11, 13, 16]  # per_epoch (the default): 3 an epoch, and the end


@pytest.mark.parametrize("batches, epochs, times", [(8, 2, 3), (134, 20, 5), (2105, 5, 10), (7, 3, 7), (10, 1, 3), (5, 4, 1)])
def test_authors_schedule_is_their_loop(batches: int, epochs: int, times: int) -> None:
    assert sorted(eval_steps(batches, batches * epochs, times, "authors")) == authors_loop_evaluations(batches, epochs, times)


def test_cola_preset_evaluates_where_the_authors_log_does() -> None:
    """BEST_LOGs/CoLA_bert-base-uncased_*.log: 103 evaluations, logged at iterations 26 ... 2678 (0-based), where
    the harness's per-epoch rule makes 100. CoLA 8551 examples at batch 64: 134 batches, 20 epochs."""
    authors = sorted(eval_steps(134, 2680, 5, "authors"))
    assert (len(authors), authors[0], authors[-1]) == (103, 27, 2679)
    assert 2680 not in authors, "no evaluation at the end: their best is over the periodic ones"
    assert len(eval_steps(134, 2680, 5)) == 100


def test_authors_schedule_refuses_runs_it_cannot_evaluate() -> None:
    with pytest.raises(ValueError, match=r"3 // 5 = 0; give --eval_times at most 3"):
        eval_steps(3, 30, 5, "authors")
    with pytest.raises(ValueError, match=r"first evaluates after batch 5, and this run has 4 step"):
        eval_steps(8, 4, 2, "authors")
    with pytest.raises(ValueError, match="unknown eval_schedule 'weekly'"):
        eval_steps(8, 16, 2, "weekly")


def test_flags_are_checked_when_the_config_is_built() -> None:
    assert RunArgs(task="qqp", select_metric="accuracy").select_metric == "accuracy"
    with pytest.raises(ValueError, match=r"--select_metric 'f1' is not a metric of sst2: use score or one of \['accuracy'\]"):
        RunArgs(task="sst2", select_metric="f1")
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        RunArgs(task="nope", select_metric="accuracy")
    with pytest.raises(ValueError, match="choose one of \\['per_epoch', 'authors'\\]"):
        RunArgs(eval_schedule="authorss")


def test_selection_value() -> None:
    ev = EvalResult(step=1, epoch=0.1, metrics={"accuracy": 70.0, "f1": 50.0}, score=60.0)
    assert (selection_value(ev, "score"), selection_value(ev, "accuracy"), selection_value(ev, "f1")) == (60.0, 70.0, 50.0)


# ------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    setup = make_tiny_setup(tmp_path_factory.mktemp("evaluation"), n_train=64, n_dev=8)
    mrpc = setup["data"] / "glue" / "MRPC"  # a tiny MRPC (accuracy and F1) in the glue_data layout
    mrpc.mkdir(parents=True)
    for split, n in (("train", 16), ("dev", 8)):
        rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        rows += [f"{i % 2}\t{i}\t{i + 100}\tgood film number {i}\tthe film {i} was good" for i in range(n)]
        (mrpc / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return setup


def _fit(tiny: dict[str, Path], out: Path, *flags: str) -> Any:
    cfg = parse_cli(["--model", str(tiny["model"]), "--data_dir", str(tiny["data"]), "--device", "cpu", "--output_dir", str(out),
                     "--cache_dir", str(out.parent / "cache"), "--max_length", "32", *flags])
    rec = fit(resolve(cfg), show_progress=False)
    assert rec.status == "SUCCEEDED"
    return rec


def test_a_64_example_run_evaluates_after_batches_3_to_15(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None) -> None:
    """The issue's check, a whole MAT trial: 64 examples, batch 8, 2 epochs, eval_times 3, the authors' schedule."""
    rec = _fit(tiny, tmp_path / "authors", "--task", "sst2", "--method", "mat", "--sampling_times", "1", "--max_train_samples", "64",
               "--batch_size", "8", "--epochs", "2", "--eval_times", "3", "--eval_schedule", "authors")
    assert [ev.step for ev in rec.evals] == [3, 5, 7, 9, 11, 13, 15]
    assert rec.train_steps == 16 and rec.final.step == 15  # no evaluation after the last batch
    assert (rec.run["eval_schedule"], rec.run["select_metric"]) == ("authors", "score")


def test_select_metric_picks_the_best_evaluation(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripted dev metrics on an MRPC run: accuracy peaks at the 2nd evaluation (tied by the 4th: the first
    wins, as the authors' ``index(max(...))``), the mean of accuracy and F1 at the 3rd."""
    import mat.train

    script = [(60.0, 80.0), (70.0, 50.0), (65.0, 90.0), (70.0, 60.0)]

    def scripted(model: Any, sets: Any, task: Any, device: Any, autocast: Any, step: int, epoch: float) -> EvalResult:
        acc, f1 = script[len(seen)]
        seen.append(step)
        return EvalResult(step=step, epoch=epoch, metrics={"accuracy": acc, "f1": f1}, score=(acc + f1) / 2)

    monkeypatch.setattr(mat.train, "evaluate", scripted)
    common = ("--task", "mrpc", "--method", "vanilla", "--batch_size", "4", "--epochs", "1", "--eval_times", "4")
    seen: list[int] = []
    by_accuracy = _fit(tiny, tmp_path / "accuracy", *common, "--select_metric", "accuracy")
    assert seen == [1, 2, 3, 4] and by_accuracy.best.step == 2 and by_accuracy.run["select_metric"] == "accuracy"
    seen.clear()
    by_score = _fit(tiny, tmp_path / "score", *common)
    assert by_score.best.step == 3 and by_score.run["select_metric"] == "score"
