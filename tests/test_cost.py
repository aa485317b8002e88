"""The record's cost block: phases, tokens, padding and passes, counted by hand on a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mat.batching import make_loader, tokenize
from mat.cli import parse_cli
from mat.spec.cost import derive_cost
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
    assert cost["optimizer_updates"] == 5 and cost["diagnostic_passes"] == {"forward": 0.0, "backward": 0.0}
    task = get_task("sst2")
    _, tok = load_model_and_tokenizer(str(tiny["model"]), task)
    ds = tokenize(load_raw(task, tiny["data"])["train"], tok, task, 512, tmp_path / "cache2")
    masks = [b["attention_mask"] for b in make_loader(ds, tok, 8, shuffle=True, seed=42)]
    assert cost["train_tokens"] == sum(int(m.sum()) for m in masks)
    assert cost["padded_tokens"] == sum(int(m.numel() - m.sum()) for m in masks)
    w = cost["wall_seconds"]
    assert w["startup"] == 1.5 and w["train"] > 0 and w["evaluate"] > 0
    assert w["total"] >= sum(v for k, v in w.items() if k != "total") - 1e-3
    c = cost["cpu_seconds"]  # one torch thread: CPU time of a phase cannot much exceed its wall time
    assert set(c) == set(w) - {"startup", "total"} and c["train"] > 0
    assert all(c[k] <= w[k] * 1.5 + 0.05 for k in c)


def test_mat_passes_follow_the_algorithm(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None) -> None:
    """Per step with K_δ = 2, K_θ = 3: forwards 1 (clean) + 2 (δ) + 2·3 (2B θ forwards); backwards 2 + 2·3; three
    optimizer updates. With --diagnostics the δ-own-KL forward (one per step) is counted apart from training's."""
    cost = _run(tiny, tmp_path / "m", "--method", "mat", "--sampling_times_delta", "2", "--sampling_times_theta", "3")
    assert cost["passes"] == {"forward": 5 * 9.0, "backward": 5 * 8.0}
    assert cost["optimizer_steps"] == 5 and cost["optimizer_updates"] == 5 * 3
    assert cost["diagnostic_passes"] == {"forward": 0.0, "backward": 0.0}
    measured = _run(tiny, tmp_path / "d", "--method", "mat", "--sampling_times_delta", "2", "--sampling_times_theta",
                    "3", "--diagnostics")
    assert measured["passes"] == cost["passes"] and measured["optimizer_updates"] == 5 * 3
    assert measured["diagnostic_passes"] == {"forward": 5 * 1.0, "backward": 0.0}


def test_an_older_records_cost_is_derived_and_marked() -> None:
    """A record written before optimizer updates and diagnostic passes were counted (the component study's
    ``mat`` rung on STS-B: 540 batches, K_θ = 2, --diagnostics, 8 forwards per step of which 1 diagnostic)."""
    old = {"optimizer_steps": 540, "passes": {"forward": 4320.0, "backward": 3240.0}}
    params = {"sampling_times_theta": 2, "rung": "mat"}
    new = derive_cost(old, "mat", params, {"loss", "dropout_kl", "delta_own_kl"})
    assert new["optimizer_updates"] == 1080 and new["diagnostic_passes"] == {"forward": 540.0, "backward": 0.0}
    assert new["passes"] == {"forward": 3780.0, "backward": 3240.0}
    assert new["derived"] == ["optimizer_updates", "diagnostic_passes", "passes"] and old["passes"]["forward"] == 4320.0
    plain = derive_cost({"optimizer_steps": 10, "passes": {"forward": 10.0, "backward": 10.0}}, "vanilla", {}, set())
    assert plain["optimizer_updates"] == 10 and plain["passes"]["forward"] == 10.0
    assert plain["derived"] == ["optimizer_updates", "diagnostic_passes"]
    counted = {"optimizer_steps": 5, "optimizer_updates": 15, "passes": {"forward": 45.0, "backward": 40.0},
               "diagnostic_passes": {"forward": 5.0, "backward": 0.0}}
    assert derive_cost(counted, "mat", params, {"dropout_kl"}) == counted and derive_cost({}, "mat", params) == {}


def test_group_by_length_is_recorded_and_counts_the_same_tokens(tiny: dict[str, Path], tmp_path: Path, one_torch_thread: None) -> None:
    plain = _run(tiny, tmp_path / "p", "--method", "vanilla")
    grouped = _run(tiny, tmp_path / "g", "--method", "vanilla", "--group_by_length")
    assert grouped["train_tokens"] == plain["train_tokens"]  # each example once per epoch either way
    assert grouped["padded_tokens"] <= plain["padded_tokens"]


def test_a_resumed_meter_adds_the_checkpointed_cost_to_its_own() -> None:
    from mat.spec.cost import CostMeter

    first = CostMeter()
    first.seconds.update(startup=1.0, data=2.0, train=30.0)
    first.cpu.update(data=1.5, train=28.0)
    first.train_tokens, first.padded_tokens = 1000, 200
    saved = first.state_dict()
    assert saved["elapsed"] >= 0.0 and saved["seconds"]["train"] == 30.0

    second = CostMeter(earlier=0.0)
    second.seconds.update(startup=0.5, data=2.5, train=10.0)
    second.cpu.update(train=9.0)
    second.train_tokens = 300
    second.load_state_dict({**saved, "elapsed": 40.0})
    cost = second.to_dict(7, {"forward": 7.0, "backward": 7.0})
    assert cost["wall_seconds"]["startup"] == 1.5 and cost["wall_seconds"]["data"] == 4.5
    assert cost["wall_seconds"]["train"] == 40.0 and cost["cpu_seconds"]["train"] == 37.0
    assert cost["cpu_seconds"]["data"] == 1.5 and (cost["train_tokens"], cost["padded_tokens"]) == (1300, 200)
    assert 41.5 <= cost["wall_seconds"]["total"] < 42.5  # both start-ups + 40 s of the first fit + this one's
    second.load_state_dict({})  # a checkpoint from before the cost was carried changes nothing
    assert second.to_dict(7, {})["train_tokens"] == 1300
