"""The bad-input catalogue (issue 6): each bad input gives a clear error naming the problem and the fix,
a non-zero exit, and a FAILED record with the reason. Real trial script, tiny model, tiny local data."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from mat.cli import parse_cli
from mat.spec.records import TrialRecord, read_record, write_record
from tests.helpers import NO_SHARED_DATA, REPO, SHARED_DATA, TRIAL_SCRIPT, make_tiny_glue_dir, make_tiny_setup

TRIAL = TRIAL_SCRIPT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_setup(tmp_path_factory.mktemp("bad"), n_train=16, n_dev=8)


def _trial(tiny: dict[str, Path], out: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict[str, Any] | None]:
    args = [sys.executable, str(TRIAL), "--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]),
            "--method", "vanilla", "--epochs", "1", "--batch_size", "8", "--device", "cpu", "--output_dir", str(out), *extra]
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {}), "OMP_NUM_THREADS": "1"})
    rec = json.loads((out / "trial.json").read_text()) if (out / "trial.json").exists() else None
    return proc, rec


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--task", "sst3"], "unknown task 'sst3'. Did you mean 'sst2'?"),
        (["--model", "/nonexistent/model"], "model path '/nonexistent/model' does not exist"),
        (["--data_dir", "/nonexistent/data"], "data dir '/nonexistent/data' (from --data_dir) does not exist"),
        (["--task", "mnli"], "no data files for task 'mnli' under "),
        (["--eval_splits", "adv_validation"], "sst2: split 'adv_validation' is not available (expected file: "),
    ],
)
def test_bad_run_settings_fail_with_a_record(tiny: dict[str, Path], tmp_path: Path, extra: list[str], message: str) -> None:
    proc, rec = _trial(tiny, tmp_path / "out", *extra)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert rec is not None and rec["status"] == "FAILED" and message in rec["error"]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=NO_SHARED_DATA)
def test_missing_train_file_names_it(tiny: dict[str, Path], tmp_path: Path) -> None:
    proc, rec = _trial({**tiny, "data": SHARED_DATA}, tmp_path / "out", "--task", "mnli")  # MNLI: dev only
    assert proc.returncode == 1 and rec is not None and rec["status"] == "FAILED"
    assert f"mnli: split 'train' is not available (expected file: {SHARED_DATA}/glue/MNLI/train.tsv)" in rec["error"]


def test_corrupt_data_row_names_file_and_line(tiny: dict[str, Path], tmp_path: Path) -> None:
    data = make_tiny_glue_dir(tmp_path / "data", n_train=8, n_dev=4)
    dev = data / "glue" / "SST-2" / "dev.tsv"
    dev.write_text(dev.read_text() + "a sentence with no label\n")
    proc, rec = _trial({**tiny, "data": data}, tmp_path / "out")
    assert proc.returncode == 1 and rec is not None and rec["status"] == "FAILED"
    assert f"{dev}:6: expected 2 tab-separated fields, got 1" in rec["error"]


def test_bad_cli_value_is_an_argparse_error(tiny: dict[str, Path], tmp_path: Path) -> None:
    proc, _ = _trial(tiny, tmp_path / "out", "--epochs", "many")
    assert proc.returncode == 2 and "--epochs" in proc.stderr and "invalid float value" in proc.stderr
    proc, _ = _trial(tiny, tmp_path / "out2", "--method", "vanilla", "--batch_size", "0")
    assert proc.returncode != 0 and "error: --batch_size=0 is out of range [1, 65536]\n" in proc.stderr


# ------------------------------------------------------------------------- in-process fit failures


def _cfg(tiny: dict[str, Path], out: Path, *extra: str) -> Any:
    return parse_cli(["--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]), "--method", "vanilla",
                      "--epochs", "1", "--batch_size", "4", "--device", "cpu", "--output_dir", str(out), *extra])


def test_nan_loss_stops_the_run_with_the_step(tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mat.methods.vanilla import Vanilla
    from mat.provenance import resolve
    from mat.train import NonFiniteLossError, fit

    real = Vanilla.step
    calls = {"n": 0}

    def step(self: Vanilla, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        calls["n"] += 1
        out = real(self, batch)
        return {**out, "loss": float("nan")} if calls["n"] == 3 else out

    monkeypatch.setattr(Vanilla, "step", step)
    with pytest.raises(NonFiniteLossError, match="non-finite loss \\(nan\\) at step 3"):
        fit(resolve(_cfg(tiny, tmp_path / "nan")), show_progress=False)
    rec = read_record(tmp_path / "nan" / "trial.json")
    assert rec.status == "FAILED" and "at step 3" in (rec.error or "") and rec.train_steps == 3


def test_out_of_memory_reports_batch_size_and_a_hint(tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mat.methods.vanilla import Vanilla
    from mat.provenance import resolve
    from mat.train import fit

    def step(self: Vanilla, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Vanilla, "step", step)
    with pytest.raises(torch.OutOfMemoryError):
        fit(resolve(_cfg(tiny, tmp_path / "oom", "--max_length", "64")), show_progress=False)
    rec = read_record(tmp_path / "oom" / "trial.json")
    assert rec.status == "FAILED"
    assert "out of memory at step 0 with batch_size 4 and max_length 64: lower --batch_size or --max_length" in (rec.error or "")


def test_model_without_input_embeddings_is_refused() -> None:
    from mat.modeling import ModelError, check_embeddings

    class NoEmbeddings(torch.nn.Module):
        def get_input_embeddings(self) -> None:
            raise NotImplementedError

    with pytest.raises(ModelError, match="NoEmbeddings does not expose its word embeddings through get_input_embeddings"):
        check_embeddings(NoEmbeddings())


def test_full_disk_keeps_the_previous_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = TrialRecord(trial_id="t", method="mat", task="rte", model="m", seed=1, params={"lambda_s": 1.0})
    write_record(rec, tmp_path)
    before = (tmp_path / "trial.json").read_text()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    rec.status = "SUCCEEDED"
    with pytest.raises(OSError, match="no space left on the device while writing .*trial.json: free disk space"):
        write_record(rec, tmp_path)
    assert (tmp_path / "trial.json").read_text() == before  # intact, never half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial.json"]  # no temp file left behind


# ------------------------------------------------------------------------------------ search spaces


def test_bad_search_space_files_are_named(tmp_path: Path) -> None:
    from trials.search_space import main, search_space_problems

    assert search_space_problems({"lambda_s": {"_type": "choice", "_value": [1, 3]}}, "mat") == []
    problems = search_space_problems(
        {
            "lamda_s": {"_type": "choice", "_value": [1]},
            "beta_s": {"_type": "choise", "_value": [0.1]},
            "sampler": {"_type": "choice", "_value": []},
            "sampling_times": {"_type": "choice", "_value": [5, -1]},
        },
        "mat",
    )
    assert problems[0].startswith("'lamda_s': not a parameter of method mat; valid keys: ")
    assert problems[1] == "'beta_s': unknown _type 'choise'; NNI's types are " + ", ".join(
        ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal", "qlognormal"))
    assert problems[2] == "'sampler': _value must be a non-empty list, got []"
    assert "value -1 is refused" in problems[3] and "sampling_times_delta=-1 is out of range" in problems[3]
    f = tmp_path / "space.json"
    f.write_text(json.dumps({"lambda_s": {"_type": "choice", "_value": []}}))
    assert main([str(f), "--method", "mat"]) == 1
    assert main([str(REPO / "search_spaces" / "mat_paper.json"), "--method", "mat"]) == 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--lamda_s", "1"], "unrecognized arguments: --lamda_s 1. Did you mean '--lambda_s'?"),
        (["--method", "vanilla", "--sampling_times", "2"], "--sampling_times is a flag of --method mat, not of vanilla"),
        (["--sampling_times", "2", "--sampling_times_theta", "3"], "give either --sampling_times or --sampling_times_theta"),
        (["--sampling_times_delta", "-1"], "sampling_times_delta=-1 is out of range"),
    ],
)
def test_bad_flag_is_a_usage_error_with_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_cli(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err and "Traceback" not in err


def test_trial_script_mistyped_flag_exits_2_without_traceback() -> None:
    proc = subprocess.run([sys.executable, str(TRIAL), "--lamda_s", "1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Did you mean '--lambda_s'?" in proc.stderr and "Traceback" not in proc.stderr


def test_nni_aliases_work_as_flags() -> None:
    cfg = parse_cli(["--method", "mat", "--sampling_times", "3", "--beta", "0.5"])
    assert (cfg.method.sampling_times_delta, cfg.method.sampling_times_theta) == (3, 3)
    assert (cfg.method.beta_s, cfg.method.beta_p) == (0.5, 0.5)
