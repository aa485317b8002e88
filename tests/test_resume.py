"""Nothing lost: a trial killed with SIGKILL resumes bit for bit; SIGTERM leaves a checkpoint and an
INTERRUPTED record; a checkpoint of another config is refused; a checkpoint store lets a rerun in another output
dir resume, costs the whole run, is held by one live run per configuration and pruned of other code's folders."""

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

from mat.checkpoint import claim_store, prune_store, store_key, try_lock
from mat.cli import parse_cli
from mat.provenance import code_sha
from mat.spec.config import TrialConfig
from tests.helpers import TRIAL_SCRIPT, make_tiny_setup

TRIAL = TRIAL_SCRIPT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_setup(tmp_path_factory.mktemp("resume"), n_train=48, n_dev=16)


# Each method with draws of its own in every step: MAT's Langevin noise, SALT's δ_0 (and the dropout of all).
METHOD_FLAGS = {
    "mat": ("--method", "mat", "--sampling_times_delta", "1", "--sampling_times_theta", "2", "--sampling_noise_ratio", "1"),
    "salt": ("--method", "salt", "--inner_steps", "2", "--inner_lr", "10", "--init_std", "1e-2"),
    # the rest of the benchmark's methods at their defaults: FreeLB's and R3F's random starts, SMART's teacher
    "vanilla": ("--method", "vanilla"),
    "freelb": ("--method", "freelb"),
    "smart": ("--method", "smart"),
    "r3f": ("--method", "r3f"),
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


COST_COUNTS = ("optimizer_steps", "optimizer_updates", "passes", "diagnostic_passes", "train_tokens", "padded_tokens")


def test_a_killed_run_resumes_from_the_checkpoint_store_in_another_output_dir(tiny: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    """The study runner's case: the cell's trial was killed in one NNI experiment and runs again in another
    (another output dir). It resumes from the store bit for bit, its record costs the whole run, and the
    store's folder is gone once it succeeds."""
    env = _env(tmp_path)
    small_batches = ("--batch_size", "2")
    ref = tmp_path / "uninterrupted"  # and never checkpointed: writing checkpoints changes no number
    subprocess.run(_args(tiny, ref, *small_batches, "--checkpoint_every", "0"), env=env, check=True, capture_output=True)

    store = tmp_path / "store"
    first, second = tmp_path / "experiment1" / "trial", tmp_path / "experiment2" / "trial"
    at = random.Random(os.getpid()).choice(range(2, 49, 2))
    proc = subprocess.Popen(_args(tiny, first, *small_batches, "--checkpoint_store", str(store)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.time()
    while not list(store.glob("*/checkpoint-*.pt")):
        assert proc.poll() is None and time.time() - start < 120, "no checkpoint appeared in the store"
        time.sleep(0.05)
    folder = next(store.glob("*/checkpoint-*.pt")).parent
    _wait_for_step(folder, at, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((first / "trial.json").read_text())["status"] == "RUNNING"
    assert not (first / "checkpoints").exists(), "the checkpoints went to the store"
    fingerprint = json.loads((folder / "fingerprint.json").read_text())
    assert fingerprint["params"]["seed"] == 42 and len(fingerprint["code_sha"]) == 64

    rerun = subprocess.run(_args(tiny, second, *small_batches, "--checkpoint_store", str(store)), env=env,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from {folder}" in rerun.stderr
    a = json.loads((ref / "trial.json").read_text())
    b = json.loads((second / "trial.json").read_text())
    assert b["status"] == "SUCCEEDED" and b["train_steps"] == a["train_steps"] == 96
    assert b["evals"] == a["evals"] and b["best"] == a["best"] and b["final"] == a["final"]
    wa, wb = _weights(ref), _weights(second)
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []
    # The cost is the whole run's: every step's tokens, passes and updates, counted once (the killed process's
    # steps after its last checkpoint are trained again and counted once).
    assert {k: b["cost"][k] for k in COST_COUNTS} == {k: a["cost"][k] for k in COST_COUNTS}
    assert b["cost"]["cpu_seconds"]["train"] > 0 and b["wall_seconds"] >= b["cost"]["wall_seconds"]["train"]
    assert list(store.iterdir()) == [], "a succeeded run deletes its store folder"


def _cfg(*flags: str) -> TrialConfig:
    return parse_cli(["--task", "sst2", "--model", "minilm", "--method", "vanilla", *flags])


def test_a_store_folder_is_held_by_one_live_run_and_keyed_by_the_configuration(tmp_path: Path) -> None:
    cfg = _cfg("--seed", "1")
    assert store_key(cfg) == store_key(_cfg("--seed", "1", "--output_dir", "elsewhere", "--checkpoint_every", "9"))
    assert store_key(cfg) != store_key(_cfg("--seed", "2"))  # the seed is part of the configuration
    assert store_key(cfg) != store_key(_cfg("--seed", "1", "--eval_times", "2"))  # so is what changes the result
    held = claim_store(tmp_path, cfg)
    assert held is not None and held.path == tmp_path / store_key(cfg)
    assert claim_store(tmp_path, cfg) is None, "a second live run of the same configuration must not share it"
    other = claim_store(tmp_path, _cfg("--seed", "2"))
    assert other is not None
    held.release(delete=False)
    again = claim_store(tmp_path, cfg)
    assert again is not None and again.path.is_dir()
    again.release(delete=True)
    assert not (tmp_path / store_key(cfg)).exists()
    other.release(delete=False)


def test_prune_store_removes_only_folders_no_run_of_this_code_can_resume(tmp_path: Path) -> None:
    mine = claim_store(tmp_path, _cfg("--seed", "1"))
    assert mine is not None
    mine.release(delete=False)
    stale, busy, bare = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder in (stale, busy):
        folder.mkdir()
        theirs = json.loads((mine.path / "fingerprint.json").read_text())
        (folder / "fingerprint.json").write_text(json.dumps({**theirs, "code_sha": "0" * 64}))
    bare.mkdir()  # no fingerprint: nothing can resume it
    handle = try_lock(busy / ".lock")  # a live run of other code (another checkout) holds it
    assert handle is not None
    assert prune_store(tmp_path) == [stale, bare]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["b", mine.path.name])
    handle.close()


def test_the_code_hash_follows_the_package_sources_only(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    before = code_sha.__wrapped__(pkg)
    (pkg / "notes.md").write_text("not code")
    assert code_sha.__wrapped__(pkg) == before
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert code_sha.__wrapped__(pkg) != before
