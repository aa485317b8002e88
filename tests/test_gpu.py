"""CUDA checks: every method learning under bf16 autocast, fp16 with its GradScaler (and a skipped fp16 step
leaving θ and θ̄ alone), the memory each holds between steps (vanilla 3 parameter copies, MAT 6), a whole trial with ``--device
cuda --precision bf16`` (its first-batch precision measurement in the record) and one with ``auto`` (fp32
for MAT's 1e-5 bound).

Marked ``gpu`` and skipped without a CUDA device (``make test`` deselects them; run ``pytest -m gpu`` on a
GPU machine, or ``bash benchmarks/gpu_check.sh``, which also runs the step benchmark on BERT-base in bf16).
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from mat.methods import METHODS
from mat.spec.methods import MATArgs, VanillaArgs
from tests.helpers import TRIAL_SCRIPT, make_tiny_setup
from tests.test_methods import FAST_ARGS, LEARN_STEPS, accuracy, build, make_batch, separable_data, tiny_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]

CUDA = torch.device("cuda")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_learns_on_cuda_in_bf16(method: str) -> None:
    torch.manual_seed(0)
    data = separable_data()
    model = tiny_model().to(CUDA)
    m = build(method, FAST_ARGS[method], model=model, lr=2e-3, total_steps=LEARN_STEPS[method], max_grad_norm=1.0,
              autocast_dtype=torch.bfloat16)
    assert m.device.type == "cuda" and m.scaler is None
    n = data["labels"].shape[0]
    for _ in range(LEARN_STEPS[method]):
        idx = torch.randperm(n)[:16]
        stats = m.step({k: v[idx] for k, v in data.items()})
        assert math.isfinite(stats["loss"])
    assert all(p.dtype == torch.float32 and p.is_cuda for p in m.params)  # autocast, not a cast of the weights
    assert accuracy(m.model, data) >= 0.95


def test_fp16_mat_step_on_cuda_scales_and_stays_finite() -> None:
    m = build("mat", FAST_ARGS["mat"], model=tiny_model().to(CUDA), autocast_dtype=torch.float16)
    assert m.scaler is not None and m.scaler.is_enabled()
    before = [p.detach().clone() for p in m.params]
    for seed in range(3):
        assert math.isfinite(m.step(make_batch(seed=seed))["loss"])
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, m.params))
    assert m.scaler.get_scale() > 0


def test_a_skipped_fp16_step_on_cuda_leaves_theta_and_theta_bar_unchanged() -> None:
    """Real CUDA fp16: an inf gradient in every θ step; the GradScaler skips them, MAT adds no noise and no θ̄ update."""
    args = MATArgs(sampling_times_delta=1, sampling_times_theta=3, beta_s=0.5, beta_p=0.5, sampling_noise_ratio=1.0)
    m = build("mat", args, model=tiny_model().to(CUDA), autocast_dtype=torch.float16)
    assert m.scaler is not None and m.scaler.is_enabled()
    m.model.classifier.weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    theta_t = [p.detach().clone() for p in m.params]
    scale = m.scaler.get_scale()
    inp = m.inputs(make_batch())
    delta_bar, _ = m.delta_phase(inp)
    m.theta_phase(inp, delta_bar)
    assert m.scaler.get_scale() == scale * 0.5**3
    for p, b, t in zip(m.params, m.theta_bar, theta_t):
        assert torch.equal(p.detach(), t) and torch.equal(b, t)


def _resident_bytes(method: str, args: Any) -> tuple[int, int]:
    """(CUDA bytes the model + method hold between steps, bytes of one copy of the trainable parameters).

    The method runs twice on fresh models, and only the second run is measured: the first allocates what a
    process allocates once (cuBLAS workspaces, about 68 MB on an H200, which the caching allocator counts),
    so the figure does not depend on which test ran first.
    """
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                     max_position_embeddings=128, num_labels=2)
    used = one_copy = 0
    for _ in range(2):
        gc.collect()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.manual_seed(0)
        model = BertForSequenceClassification(cfg).to(CUDA)  # ~3.5M parameters: allocator rounding is noise
        m = build(method, args, model=model)
        one_copy = sum(p.numel() * p.element_size() for p in m.params)
        for seed in range(2):
            m.step(make_batch(seed=seed))
        torch.cuda.synchronize()
        used = torch.cuda.memory_allocated() - base
        del m, model
    gc.collect()
    return used, one_copy


def test_resident_parameter_copies_vanilla_three_mat_six() -> None:
    # vanilla between steps: θ + AdamW's two moments (gradients freed by zero_grad; the update-norm telemetry's
    # θ snapshot freed after its measured update) = 3 copies. tests/test_memory.py counts every method on CPU.
    used, p = _resident_bytes("vanilla", VanillaArgs())
    assert abs(used - 3 * p) <= 0.02 * p, f"vanilla holds {used / p:.3f} parameter copies, expected 3"
    # MAT: θ (moved into one flat buffer, the old storage freed) + its gradient buffer (kept between steps) +
    # two moments + the two copies of the algorithm, θ̂ and θ̄ = 6.
    # On an H200, before the warm-up run was added, MAT measured 0.179 copies (2.5 MB on 14 MB of parameters) over
    # the count of its live tensors on CPU; most likely a cuBLAS workspace. The bound catches any further
    # parameter-sized buffer.
    used, p = _resident_bytes("mat", MATArgs(sampling_times_delta=2, sampling_times_theta=2))
    assert abs(used - 6 * p) <= 0.2 * p, f"MAT holds {used / p:.3f} parameter copies, expected 6 (θ, grad, 2 moments, θ̂, θ̄)"


def test_trial_on_cuda_in_bf16(tmp_path: Path) -> None:
    tiny = make_tiny_setup(tmp_path, n_train=64, n_dev=32)
    out = tmp_path / "run"
    cmd = [
        sys.executable, str(TRIAL_SCRIPT), "--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]),
        "--method", "mat", "--epochs", "3", "--batch_size", "8", "--learning_rate", "3e-3", "--sampling_times_delta", "1",
        "--sampling_times_theta", "2", "--device", "cuda", "--precision", "bf16", "--output_dir", str(out),
    ]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "trial.json").read_text())
    assert record["status"] == "SUCCEEDED" and record["train_steps"] == 24
    assert all(math.isfinite(e["metrics"]["accuracy"]) for e in record["evals"])
    # explicit bf16 with MAT's 1e-5 bound: it runs, and the first-batch measurement is in the record
    assert record["params"]["precision"] == "bf16"
    assert {"logit_change_fp32", "logit_change", "rounding_change", "resolved"} <= set(record["precision"])


def test_auto_precision_on_cuda_keeps_mat_in_fp32(tmp_path: Path) -> None:
    """MAT's 1e-5 bound is below bf16's (and fp16's) resolution: ``auto`` picks fp32 and says why."""
    tiny = make_tiny_setup(tmp_path, n_train=16, n_dev=8)
    out = tmp_path / "run"
    cmd = [
        sys.executable, str(TRIAL_SCRIPT), "--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]),
        "--method", "mat", "--max_steps", "1", "--device", "cuda", "--output_dir", str(out),
    ]
    proc = subprocess.run(cmd, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "trial.json").read_text())
    assert record["params"]["precision"] == "fp32" and "below" in record["precision"]["reason"]
