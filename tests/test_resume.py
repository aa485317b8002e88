"""Nothing lost: a trial killed with SIGKILL resumes bit for bit; SIGTERM leaves a checkpoint and an
INTERRUPTED record; a checkpoint of another config is refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import TRIAL_SCRIPT, make_tiny_setup

TRIAL = TRIAL_SCRIPT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_setup(tmp_path_factory.mktemp("resume"), n_train=48, n_dev=16)


# Each method with draws of its own in every step: MAT's Langevin noise, SALT's δ_0 (and the dropout of both).
METHOD_FLAGS = {
    "mat": ("--method", "mat", "--sampling_times_delta", "1", "--sampling_times_theta", "2", "--sampling_noise_ratio", "1"),
    "salt": ("--method", "salt", "--inner_steps", "2", "--inner_lr", "10", "--init_std", "1e-2"),
}


def _args(tiny: dict[str, Path], out: Path, *extra: str, method: str = "mat") -> list[str]:
    return [
        sys.executable, str(TRIAL), "--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]),
        *METHOD_FLAGS[method], "--epochs", "4", "--batch_size", "8", "--eval_times", "2", "--learning_rate", "3e-3",
        "--device", "cpu", "--save_model", "--checkpoint_every", "2", "--output_dir", str(out), *extra,
    ]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "OMP_NUM_THREADS": "1"}


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


def _wait_for_step(folder: Path, at: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until a checkpoint of step >= ``at`` exists (older ones are pruned as newer ones land)."""
    start = time.time()
    while not any(int(p.stem.split("-")[1]) >= at for p in folder.glob("checkpoint-*.pt")):
        assert proc.poll() is None, "the trial ended before writing the checkpoint"
        assert time.time() - start < timeout, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("method", sorted(METHOD_FLAGS))
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tiny: dict[str, Path], tmp_path: Path, method: str) -> None:
    env = _env(tmp_path)
    small_batches = ("--batch_size", "2")  # 24 steps an epoch, 96 in all: the kill lands in the first half
    ref = tmp_path / "uninterrupted"
    subprocess.run(_args(tiny, ref, *small_batches, method=method), env=env, check=True, capture_output=True)

    out = tmp_path / "killed"
    rng = random.Random(os.getpid())
    # A random checkpointed step in the first half, so at least 48 steps (about a second on an idle machine, 20 ms
    # a step) remain when the kill lands: a kill that came after the last step would find a SUCCEEDED record.
    at = rng.choice(range(2, 49, 2))
    proc = subprocess.Popen(_args(tiny, out, *small_batches, method=method), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_step(out / "checkpoints", at, proc)
    time.sleep(rng.uniform(0.0, 0.05))  # and often in the middle of the step after it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    record = json.loads((out / "trial.json").read_text())
    assert record["status"] == "RUNNING"  # killed: never claims to be complete

    rerun = subprocess.run(_args(tiny, out, *small_batches, method=method), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed from" in rerun.stderr
    a = json.loads((ref / "trial.json").read_text())
    b = json.loads((out / "trial.json").read_text())
    assert b["status"] == "SUCCEEDED" and b["train_steps"] == a["train_steps"]
    assert b["evals"] == a["evals"] and b["best"] == a["best"] and b["final"] == a["final"]
    wa, wb = _weights(ref), _weights(out)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert differ == [], f"tensors differ after resume: {differ}"
    assert len(list((out / "checkpoints").glob("checkpoint-*.pt"))) == 1  # older ones pruned


def test_sigterm_writes_a_checkpoint_and_an_interrupted_record(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "term"
    proc = subprocess.Popen(_args(tiny, out, "--checkpoint_every", "0", "--epochs", "20"), env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while not (out / "trial.json").exists() or json.loads((out / "trial.json").read_text())["evals"] == []:
        assert proc.poll() is None and time.time() - start < 120
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    record = json.loads((out / "trial.json").read_text())
    assert record["status"] == "INTERRUPTED" and "SIGTERM" in record["error"]
    ckpts = list((out / "checkpoints").glob("checkpoint-*.pt"))
    assert len(ckpts) == 1 and ckpts[0].name == f"checkpoint-{record['train_steps']}.pt"
    state = torch.load(ckpts[0], weights_only=True)  # loadable without unrestricted pickle
    assert state["step"] == record["train_steps"] and len(state["record"]["evals"]) == len(record["evals"])


def test_checkpoint_of_another_config_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cfg"
    env = _env(tmp_path)
    subprocess.run(_args(tiny, out, "--max_steps", "2", "--checkpoint_every", "1"), env=env, check=True, capture_output=True)
    # max_steps=2 with checkpoint_every=1 leaves checkpoint-1.pt (none is written at the last step)
    assert (out / "checkpoints" / "checkpoint-1.pt").exists()
    bad = subprocess.run(_args(tiny, out, "--max_steps", "2", "--checkpoint_every", "1", "--lambda_s", "2"), env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1
    record = json.loads((out / "trial.json").read_text())
    assert record["status"] == "FAILED"
    assert "another config or code version" in record["error"] and "params.lambda_s: checkpoint 1.0 != now 2.0" in record["error"]
