"""The record's cost block: phases, tokens, padding and passes, counted by hand on a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mat.batching import make_loader, tokenize
from mat.cli import parse_cli
from mat.data import load_raw
from mat.modeling import load_model_and_tokenizer
from mat.provenance import resolve
from mat.spec.tasks import get_task
from mat.train import fit
from tests.helpers import make_tiny_setup


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_setup(tmp_path_factory.mktemp("cost"), n_train=40, n_dev=8)


def _run(tiny: dict[str, Path], out: Path, *flags: str) -> dict:
    cfg = parse_cli(["--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]), "--device", "cpu",
                     "--epochs", "1", "--batch_size", "8", "--output_dir", str(out), "--cache_dir", str(out.parent / "cache"), *flags])
    rec = fit(resolve(cfg), show_progress=False, startup_seconds=1.5)
    assert rec.status == "SUCCEEDED"
    return rec.cost


def test_vanilla_counts_one_forward_and_one_backward_per_step(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None) -> None:
    cost = _run(tiny, tmp_path / "v", "--method", "vanilla")
    assert cost["optimizer_steps"] == 5 and cost["passes"] == {"forward": 5.0, "backward": 5.0}
    task = get_task("sst2")
    _, tok = load_model_and_tokenizer(str(tiny["model"]), task)
    ds = tokenize(load_raw(task, tiny["data"])["train"], tok, task, 512, tmp_path / "cache2")
    masks = [b["attention_mask"] for b in make_loader(ds, tok, 8, shuffle=True, seed=42)]
    assert cost["train_tokens"] == sum(int(m.sum()) for m in masks)
    assert cost["padded_tokens"] == sum(int(m.numel() - m.sum()) for m in masks)
    w = cost["wall_seconds"]
    assert w["startup"] == 1.5 and w["train"] > 0 and w["evaluate"] > 0
    assert w["total"] >= sum(v for k, v in w.items() if k != "total") - 1e-3


def test_mat_passes_follow_the_algorithm(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None) -> None:
    """Per step with K_δ = 2, K_θ = 3: forwards 1 (clean) + 2 (δ) + 2·3 (2B θ forwards); backwards 2 + 2·3."""
    cost = _run(tiny, tmp_path / "m", "--method", "mat", "--sampling_times_delta", "2", "--sampling_times_theta", "3")
    assert cost["passes"] == {"forward": 5 * 9.0, "backward": 5 * 8.0}


def test_group_by_length_is_recorded_and_counts_the_same_tokens(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None) -> None:
    plain = _run(tiny, tmp_path / "p", "--method", "vanilla")
    grouped = _run(tiny, tmp_path / "g", "--method", "vanilla", "--group_by_length")
    assert grouped["train_tokens"] == plain["train_tokens"]  # each example once per epoch either way
    assert grouped["padded_tokens"] <= plain["padded_tokens"]
