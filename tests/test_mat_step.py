"""The MAT step, piece by piece, against hand-computed tensors; and each deliberate difference from the
authors' code (docs/design.md, "The MAT step") has a test here:

| authors' code                        | test                                                       |
|--------------------------------------|------------------------------------------------------------|
| ``state_dict()`` as θ̂ (aliases)      | ``test_theta_hat_is_a_real_copy``                          |
| noise after the max-norm clip        | ``test_clip_is_last``, ``test_delta_phase_respects_max_norm`` |
| δ phase fills parameter grads        | ``test_delta_phase_leaves_parameter_grads_untouched``      |
| ``softmax().log()`` in the KL        | ``tests/test_losses.py::test_symmetric_kl_finite_on_saturated_logits`` |
| EMA over the whole ``state_dict()``  | ``test_mix_touches_parameters_not_buffers``                |
| regression ``sum``                   | ``tests/test_losses.py::test_consistency_loss_regression_is_batch_mean_squared_error``; the authors' ``sum`` on request: ``test_consistency_reduction_sum_is_batch_size_times_the_mean`` |
| ``mean_theta = state_dict()``: θ̄ starts after the first inner step | ``test_theta_bar_is_the_ema_of_the_iterates`` (θ̄ starts at θ_t) |
| δ init unclipped, on padding too     | ``test_init_delta_kinds_and_mask``, ``test_delta_phase_respects_max_norm`` |
| (fp16) noise and θ̄ update after a skipped step | ``test_a_skipped_fp16_step_leaves_theta_and_theta_bar_unchanged``, ``test_theta_bar_averages_only_the_steps_taken`` |

The settings around the step (no clipping, the authors' optimizer set-up, γ_θ 1e-5), a K_δ = 3, K_θ = 4
comparison with a literal transcription of the authors' loop and the measured size of each of these
departures are in ``tests/test_fidelity.py``.

The golden-loss test compares 3 MAT steps on a tiny random BERT with the values recorded in
``tests/golden/mat_losses.json``. After an *intended* change of the algorithm, regenerate them from the
repository root with ``python -m tests.test_mat_step --regen-golden`` and say why in the commit.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.testing import assert_close

import mat.methods.mat as mat_module
from mat.methods.base import per_example_norm
from mat.methods.mat import clip_linf_, delta_ascent_, ema_, init_delta, langevin_noise_
from mat.spec.methods import MATArgs
from tests.helpers import assert_golden_steps
from tests.test_methods import build, make_batch, tiny_model

GOLDEN = Path(__file__).parent / "golden" / "mat_losses.json"


pytestmark = pytest.mark.usefixtures("one_torch_thread")

VANILLA_LIKE = MATArgs(
    sampling_times_delta=0, sampling_times_theta=1, lambda_s=0.0, beta_s=0.0, beta_p=0.0,
    sampling_noise_ratio=0.0, adv_init_type="zero",
)


# ----------------------------------------------------------------------------------------- δ pieces


def test_init_delta_kinds_and_mask() -> None:
    e = torch.zeros(4, 6, 8)
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[:, 4:] = 0
    assert torch.equal(init_delta(e, mask, "zero", 1e-3), torch.zeros_like(e))
    torch.manual_seed(0)
    rand = init_delta(e, mask, "rand", 1e-3)
    assert rand[:, :4].min() >= 0 and rand[:, :4].max() < 1e-3 and rand[:, :4].max() > 5e-4  # ε·U[0, 1)
    randn = init_delta(torch.zeros(64, 6, 8), torch.ones(64, 6), "randn", 1e-3)
    assert randn.min() < 0 and abs(randn.std().item() - 1e-3) < 1e-4  # ε·N(0, 1)
    for d in (rand, init_delta(e, mask, "randn", 1e-3)):
        assert torch.equal(d[:, 4:], torch.zeros(4, 2, 8))  # padding stays 0


def test_delta_ascent_normalized_and_raw() -> None:
    grad = torch.tensor([[[1.0, -4.0]], [[0.5, 0.25]]])  # (B=2, T=1, H=2); ‖g‖∞ = 4 and 0.5
    delta = delta_ascent_(torch.zeros(2, 1, 2), grad, 0.1, "normalized")
    assert_close(delta, torch.tensor([[[0.025, -0.1]], [[0.1, 0.05]]]))
    assert_close(delta_ascent_(torch.ones(2, 1, 2), grad, 0.1, "raw"), 1 + 0.1 * grad)


def test_langevin_noise_std_matches_sqrt_2_gamma_times_ratio_gamma() -> None:
    gamma, ratio = 1e-3, 0.1
    std = math.sqrt(2 * gamma) * ratio * gamma  # sqrt(2γ)·ε with ε = ratio·γ
    torch.manual_seed(0)
    x = langevin_noise_(torch.zeros(100, 50, 40), std)
    assert abs(x.std().item() / std - 1) < 0.01 and abs(x.mean().item()) < 3 * std / math.sqrt(x.numel())
    mask = torch.ones(100, 50)
    mask[:, 40:] = 0
    y = langevin_noise_(torch.zeros(100, 50, 40), std, mask)
    assert torch.equal(y[:, 40:], torch.zeros(100, 10, 40))


def test_delta_phase_uses_the_design_noise_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    def spy(x: torch.Tensor, std: float, mask: Any = None) -> torch.Tensor:
        seen.append(std)
        return x

    monkeypatch.setattr(mat_module, "langevin_noise_", spy)
    args = MATArgs(sampling_times_delta=3, sampling_step_delta=2e-3, sampling_noise_ratio=0.5)
    m = build("mat", args)
    m.delta_phase(m.inputs(make_batch()))
    assert seen == [math.sqrt(2 * 2e-3) * 0.5 * 2e-3] * 3


def test_clip_linf_hand_value() -> None:
    delta = torch.tensor([[[3.0, -4.0]], [[0.5, 1.0]]])
    assert_close(clip_linf_(delta.clone(), 2.0), torch.tensor([[[1.5, -2.0]], [[0.5, 1.0]]]))  # only row 0 exceeds
    assert torch.equal(clip_linf_(delta.clone(), 0.0), delta)  # 0: unbounded


def test_clip_is_last() -> None:
    max_norm, std = 1e-5, 1e-3
    torch.manual_seed(0)
    authors = langevin_noise_(clip_linf_(torch.zeros(4, 8, 16), max_norm), std)  # their order: clip, then noise
    assert per_example_norm(authors).max() > 10 * max_norm
    ours = clip_linf_(langevin_noise_(torch.zeros(4, 8, 16), std), max_norm)
    assert per_example_norm(ours).max() <= max_norm


def test_delta_phase_respects_max_norm() -> None:
    # noise std sqrt(2γ)·ratio·γ = 4.5e-3, 450x the bound: ‖δ̄‖∞ ≤ adv_max_norm still holds for every example
    args = MATArgs(sampling_times_delta=4, sampling_noise_ratio=100.0, adv_max_norm=1e-5, adv_init_epsilon=1e-2)
    m = build("mat", args)
    delta_bar, stats = m.delta_phase(m.inputs(make_batch()))
    assert delta_bar is not None
    assert per_example_norm(delta_bar).max() <= 1e-5
    assert stats["delta_norm"] > 0.5e-5


def test_ema_on_known_tensors() -> None:
    avg = torch.tensor([1.0, 2.0])
    ema_(avg, torch.tensor([3.0, 6.0]), 0.25)  # 0.25·avg + 0.75·new
    assert_close(avg, torch.tensor([2.5, 5.0]))
    avgs = [torch.tensor([1.0]), torch.tensor([[0.0, 4.0]])]
    ema_(avgs, [torch.tensor([5.0]), torch.tensor([[2.0, 0.0]])], 0.5)
    assert_close(avgs[0], torch.tensor([3.0]))
    assert_close(avgs[1], torch.tensor([[1.0, 2.0]]))


# -------------------------------------------------------------------------------------- the δ phase


def test_delta_phase_leaves_parameter_grads_untouched() -> None:
    m = build("mat", MATArgs(sampling_times_delta=3))
    for p in m.params:
        p.grad = None
    m.model.classifier.weight.grad = torch.full_like(m.model.classifier.weight, 7.0)
    delta_bar, stats = m.delta_phase(m.inputs(make_batch()))
    assert delta_bar is not None and stats["delta_kl"] > 0  # it did run
    assert all(p.grad is None for p in m.params if p is not m.model.classifier.weight)
    assert torch.equal(m.model.classifier.weight.grad, torch.full_like(m.model.classifier.weight, 7.0))


def test_forward_count_clean_logits_once() -> None:
    # λ > 0: 1 clean forward + K_δ perturbed + K_θ paired (2B); diagnostics: + 1; λ = 0: K_θ plain forwards
    for args, diagnostics, expected in (
        (MATArgs(sampling_times_delta=2, sampling_times_theta=3), False, [8, 8, 8, 16, 16, 16]),
        (MATArgs(sampling_times_delta=2, sampling_times_theta=3), True, [8, 8, 8, 8, 16, 16, 16]),
        (MATArgs(sampling_times_delta=2, sampling_times_theta=3, lambda_s=0.0), False, [8, 8, 8]),
    ):
        m = build("mat", args, diagnostics=diagnostics)
        sizes: list[int] = []
        m.model.register_forward_hook(lambda mod, a, kw, out, s=sizes: s.append(int(out.logits.shape[0])), with_kwargs=True)
        m.step(make_batch(n=8))
        assert sizes == expected


def test_consistency_reduction_sum_is_batch_size_times_the_mean() -> None:
    """Regression, ``consistency_reduction`` sum (the authors' ``MSELoss(reduction="sum")``): the step's λ·ℓ_s is
    B times the batch mean's, the same δ (its ascent is normalised, so the factor B cancels) and the same θ_t."""
    from tests.test_methods import REG

    batch = make_batch(n=8, regression=True)
    got = {}
    for reduction in ("mean", "sum"):
        args = MATArgs(sampling_times_delta=2, sampling_times_theta=1, consistency_reduction=reduction)
        m = build("mat", args, model=tiny_model(num_labels=1, seed=0), task=REG)
        a, b = torch.randn(8, 1), torch.randn(8, 1)
        assert_close(m.consistency(a, b), ((a - b) ** 2).sum() / (8 if reduction == "mean" else 1))
        torch.manual_seed(5)
        got[reduction] = m.step(batch)
    assert got["mean"]["adv_loss"] > 0
    assert math.isclose(got["sum"]["adv_loss"], 8 * got["mean"]["adv_loss"], rel_tol=1e-4)
    assert math.isclose(got["sum"]["loss"], got["mean"]["loss"], rel_tol=1e-6)  # L is a batch mean either way


def test_paired_forward_equals_two_forwards() -> None:
    m = build("mat")
    m.model.eval()  # no dropout: the 2B batch must give exactly the two B forwards
    inp = m.inputs(make_batch())
    e = m.embeddings(inp.input_ids)
    delta = torch.randn_like(e) * 1e-2
    both = m.logits(torch.cat([e, e + delta]), inp.repeated(2))
    assert_close(both[: inp.batch_size], m.logits(e, inp.kwargs), rtol=1e-5, atol=1e-6)
    assert_close(both[inp.batch_size :], m.logits(e + delta, inp.kwargs), rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------- θ phase and mix


def test_theta_hat_is_a_real_copy() -> None:
    m = build("mat", MATArgs(sampling_times_delta=1, sampling_times_theta=3, beta_p=0.5))
    before = [p.detach().clone() for p in m.params]
    assert all(h.data_ptr() != p.data_ptr() for h, p in zip(m.theta_hat, m.params))
    inp = m.inputs(make_batch())
    delta_bar, _ = m.delta_phase(inp)
    m.theta_phase(inp, delta_bar)  # 3 in-place optimizer steps
    assert any(not torch.equal(b, p) for b, p in zip(before, m.params))
    for h, b in zip(m.theta_hat, before):
        assert torch.equal(h, b)  # θ̂ is still θ_t


def test_mix_on_known_tensors() -> None:
    m = build("mat", MATArgs(beta_s=0.5, beta_p=0.25))
    with torch.no_grad():
        for p, h, b in zip(m.params, m.theta_hat, m.theta_bar):
            p.fill_(1.0), h.fill_(3.0), b.fill_(7.0)
    m.mix()
    for p in m.params:
        assert_close(p.detach(), torch.full_like(p, 0.25 * 3.0 + 0.75 * 7.0))
    # β_s = 0: θ̄ is the last iterate itself, and no θ̄ copy is kept
    m0 = build("mat", MATArgs(beta_s=0.0, beta_p=0.25))
    assert m0.theta_bar == [] and len(m0.theta_hat) == len(m0.params)
    with torch.no_grad():
        for p, h in zip(m0.params, m0.theta_hat):
            p.fill_(1.0), h.fill_(3.0)
    m0.mix()
    for p in m0.params:
        assert_close(p.detach(), torch.full_like(p, 0.25 * 3.0 + 0.75 * 1.0))


def test_theta_bar_is_the_ema_of_the_iterates() -> None:
    # sgld (SGD), noise 0: record the iterates with an optimizer hook and redo the EMA by hand
    from transformers import get_scheduler

    from mat.methods.mat import MAT
    from mat.optim import build_optimizer

    model = tiny_model()
    opt = build_optimizer(model, "sgld", lr=0.1)
    args = MATArgs(sampling_times_delta=1, sampling_times_theta=3, beta_s=0.4, beta_p=0.3, sampler="sgld", sampling_noise_ratio=0.0)
    m = MAT(model, opt, get_scheduler("constant", opt), get_method_task(), args)
    iterates: list[list[torch.Tensor]] = []
    opt.register_step_post_hook(lambda o, a, kw: iterates.append([p.detach().clone() for p in m.params]))
    theta_t = [p.detach().clone() for p in m.params]
    m.step(make_batch())
    bar = [t.clone() for t in theta_t]
    for it in iterates:
        bar = [0.4 * b + 0.6 * x for b, x in zip(bar, it)]
    for p, b, t in zip(m.params, bar, theta_t):
        assert_close(p.detach(), 0.3 * t + 0.7 * b, rtol=1e-5, atol=1e-7)


def get_method_task() -> Any:
    from mat.spec.tasks import get_task

    return get_task("sst2")


def test_theta_noise_std(monkeypatch: pytest.MonkeyPatch) -> None:
    # θ ← θ + sqrt(2·lr)·ε_θ·ξ with ε_θ = ratio·γ_θ (γ_θ = base lr); lr here: constant 1e-3
    from transformers import get_scheduler

    from mat.methods.mat import MAT
    from mat.optim import build_optimizer

    model = tiny_model()
    opt = build_optimizer(model, "adam", lr=1e-3)
    m = MAT(model, opt, get_scheduler("constant", opt), get_method_task(), MATArgs(sampling_noise_ratio=0.1))
    before = torch.cat([p.detach().flatten().clone() for p in m.params])
    torch.manual_seed(0)
    m._langevin_()
    diff = torch.cat([p.detach().flatten() for p in m.params]) - before
    expected = math.sqrt(2 * 1e-3) * 0.1 * 1e-3
    assert abs(diff.std().item() / expected - 1) < 0.03


def test_mix_touches_parameters_not_buffers() -> None:
    m = build("mat", MATArgs(sampling_times_delta=1, sampling_times_theta=2, beta_s=0.9, beta_p=0.9))
    buffers = {n: b.clone() for n, b in m.model.named_buffers()}
    assert buffers and any(b.dtype == torch.long for b in buffers.values())  # position/token-type ids
    for i in range(2):
        m.step(make_batch(seed=i))
    for n, b in m.model.named_buffers():
        assert torch.equal(b, buffers[n]), n


def test_gradients_live_in_one_buffer_and_survive_a_reset() -> None:
    m = build("mat", MATArgs(sampling_times_delta=1, sampling_times_theta=2))
    m.step(make_batch())
    assert all(p.grad is not None and p.grad.data_ptr() == g.data_ptr() for p, g in zip(m.params, m.grads))
    assert all(not p.grad.any() for p in m.params)  # zeroed at the end of the step
    m.optimizer.zero_grad(set_to_none=True)  # e.g. the loop resets them
    stats = m.step(make_batch(seed=1))
    assert math.isfinite(stats["loss"])
    assert all(p.grad is not None and p.grad.data_ptr() == g.data_ptr() for p, g in zip(m.params, m.grads))


def test_parameters_are_views_of_one_buffer_and_rebound_if_replaced() -> None:
    m = build("mat", MATArgs(sampling_times_delta=1, sampling_times_theta=2))
    assert len(m.flat.buffers) == 1
    assert all(p.data_ptr() == v.data_ptr() for p, v in zip(m.params, m.flat.views))
    w = m.model.classifier.weight
    w.data = w.data.clone() + 1.0  # e.g. something replaced the storage
    value = w.detach().clone()
    m.flat.rebind()
    assert w.data_ptr() in [v.data_ptr() for v in m.flat.views]
    assert torch.equal(w.detach(), value)  # the value is kept
    assert math.isfinite(m.step(make_batch())["loss"])


# ------------------------------------------------------------------------- fp16: a skipped step


def _inf_on_calls(param: torch.Tensor, calls: set[int]) -> None:
    """Make ``param``'s gradient inf in the backward passes numbered in ``calls`` (0-based)."""
    count = [0]

    def hook(g: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        return torch.full_like(g, float("inf")) if count[0] - 1 in calls else g

    param.register_hook(hook)


def test_a_skipped_fp16_step_leaves_theta_and_theta_bar_unchanged() -> None:
    """CPU fp16 autocast with its GradScaler (the logic CUDA runs; tests/test_gpu.py runs it on CUDA): every
    θ step sees an inf gradient, the scaler skips it, and no Langevin noise or θ̄ update follows."""
    args = MATArgs(sampling_times_delta=1, sampling_times_theta=3, beta_s=0.5, beta_p=0.5, sampling_noise_ratio=1.0)
    m = build("mat", args, autocast_dtype=torch.float16)
    assert m.scaler is not None
    _inf_on_calls(m.model.classifier.weight, {0, 1, 2})
    theta_t = [p.detach().clone() for p in m.params]
    scale = m.scaler.get_scale()
    inp = m.inputs(make_batch())
    delta_bar, _ = m.delta_phase(inp)
    m.theta_phase(inp, delta_bar)
    assert m.scaler.get_scale() == scale * 0.5**3  # three skipped steps
    for p, b, t in zip(m.params, m.theta_bar, theta_t):
        assert torch.equal(p.detach(), t) and torch.equal(b, t)  # no noise (std 4.5e-5 here), θ̄ = θ_t
    m.mix()
    assert all(torch.equal(p.detach(), t) for p, t in zip(m.params, theta_t))


def test_theta_bar_averages_only_the_steps_taken() -> None:
    """Step 2 of 3 skipped (fp16, inf gradient): θ̄ is the EMA over θ_t and the two iterates that exist."""
    args = MATArgs(sampling_times_delta=1, sampling_times_theta=3, beta_s=0.4, beta_p=0.3, sampling_noise_ratio=0.0, sampler="sgld")
    m = build("mat", args, autocast_dtype=torch.float16, lr=0.1)
    _inf_on_calls(m.model.classifier.weight, {1})
    iterates: list[list[torch.Tensor]] = []
    m.optimizer.register_step_post_hook(lambda o, a, kw: iterates.append([p.detach().clone() for p in m.params]))
    theta_t = [p.detach().clone() for p in m.params]
    m.step(make_batch())
    assert len(iterates) == 2
    bar = [t.clone() for t in theta_t]
    for it in iterates:
        bar = [0.4 * b + 0.6 * x for b, x in zip(bar, it)]
    for p, b, t in zip(m.params, bar, theta_t):
        assert_close(p.detach(), 0.3 * t + 0.7 * b, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- MAT == vanilla


@pytest.mark.parametrize("sampler", ["adam", "sgld"])
def test_mat_reduces_to_vanilla(sampler: str) -> None:
    """K_δ = 0, λ = 0, K_θ = 1, β_s = β_p = 0, noise 0: the same parameters as vanilla, step for step."""
    import dataclasses

    from transformers import get_scheduler

    from mat.methods.mat import MAT
    from mat.methods.vanilla import Vanilla
    from mat.optim import build_optimizer

    task = get_method_task()
    runs = []
    for cls, args in ((Vanilla, None), (MAT, dataclasses.replace(VANILLA_LIKE, sampler=sampler))):
        model = tiny_model(seed=3)  # dropout on: same seed, same masks
        opt = build_optimizer(model, sampler if cls is MAT else ("adamw" if sampler == "adam" else "sgld"), lr=1e-3, weight_decay=0.01)
        sched = get_scheduler("linear", opt, num_warmup_steps=1, num_training_steps=5)
        method = cls(model, opt, sched, task, args, max_grad_norm=1.0)
        torch.manual_seed(123)
        losses = [method.step(make_batch(seed=i))["loss"] for i in range(3)]
        runs.append((losses, [p.detach().clone() for p in method.params]))
    (l_v, p_v), (l_m, p_m) = runs
    assert_close(l_m, l_v)
    for a, b in zip(p_m, p_v):
        assert_close(a, b)


# ------------------------------------------------------------------------------------------- golden

GOLDEN_ARGS = MATArgs(
    sampling_times_delta=2, sampling_times_theta=3, sampling_step_delta=1e-3, sampling_noise_ratio=0.1,
    lambda_s=1.0, beta_s=0.3, beta_p=0.3, adv_init_type="randn", adv_init_epsilon=1e-5, adv_max_norm=1e-5,
    sampler="adam",
)


def golden_run() -> list[dict[str, float]]:
    """3 MAT steps on the tiny BERT (seed 0), lr 1e-3 linear over 10 steps, batches make_batch(seed=i)."""
    m = build("mat", GOLDEN_ARGS, model=tiny_model(seed=0), lr=1e-3, total_steps=10, weight_decay=0.01, diagnostics=True)
    torch.manual_seed(1234)
    return [m.step(make_batch(seed=i)) for i in range(3)]


def test_golden_losses() -> None:
    """Regenerate (only after an intended change): ``python -m tests.test_mat_step --regen-golden``."""
    assert_golden_steps(golden_run(), GOLDEN)


def _regen_golden() -> None:
    steps = golden_run()
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "what": "3 MAT steps on a tiny random BERT: tests/test_mat_step.py golden_run()",
        "command": "python -m tests.test_mat_step --regen-golden",
        "torch": torch.__version__,
        "args": {k: v for k, v in vars(GOLDEN_ARGS).items()},
        "steps": steps,
    }
    GOLDEN.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    if "--regen-golden" in sys.argv:
        torch.set_num_threads(1)  # as the test runs it
        _regen_golden()
    else:
        print("usage: python -m tests.test_mat_step --regen-golden")
