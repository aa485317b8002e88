"""SALT: Stackelberg adversarial regularization (Zuo et al., EMNLP 2021), by unrolled differentiation.

Follows the authors' release, SimiaoZuo/Stackelberg-Adv ``fairseq/criterions/adv_unroll_loss.py`` (machine
translation, unrolled with the ``higher`` package; here ``torch.autograd.grad(..., create_graph=True)``),
fields of :class:`mat.spec.methods.SALTArgs`. Per batch, with e the word embeddings (B, T, H) and m the
attention mask:

* p = sg(f(x; θ)): the clean logits, a constant target; L(θ) the task loss on the same forward.
* ℓ(q, p) = ½·ℓ_s(q, p): the release's ``KL_loss``, ½(KL(p‖q) + KL(q‖p)) (half the squared error for
  regression), float32 ``log_softmax``.
* The follower: δ_0 ~ N(0, σ²) on the real tokens, projected into the ε ball; K times
  δ_{k+1} = Π_ε(δ_k + η·m·∇_δ Σ_b ℓ(f(e_b + δ_b; θ), p_b)): plain SGD ascent on each example's own ℓ (the
  release's loss is summed over the batch), every step kept in the autograd graph, so δ_K = δ_K(θ).
  Π_ε rescales each example's (T, H) perturbation onto ‖δ‖₂ ≤ ε (the release's ``torch.renorm(p=2, dim=0)``;
  differentiable); ε = 0: unbounded.
* The leader: loss = L(θ) + λ·ℓ(f(e + δ_K(θ); θ), p) + λ·ℓ(f(e + sg(δ_lead); θ), p), batch means. The
  backward of the middle term is the Stackelberg gradient, d/dθ of the loss at δ_K(θ): its ∂/∂θ at fixed
  δ_K plus ∂ℓ/∂δ_K·∂δ_K/∂θ, a second-order term (the double backward through the K input gradients).
  The last term is the release's "leader" regulariser: δ_lead = δ_K (``leader_delta`` final), δ_0 (initial:
  what the release's code reads, since ``higher`` leaves the module's own perturbation at its initial value)
  or no term (none). The two perturbed forwards run as one 2B batch.

The unrolled forwards run under ``sdpa_kernel(SDPBackend.MATH)``: the fused attention kernels have no double
backward. With λ = 0 the step is vanilla. Cost (passes of B): K + 3 forwards (the last one 2B), K input
backwards, and one backward through everything: forward graphs and K input-gradient graphs
(:func:`mat.spec.methods.salt_passes`).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from mat.losses import consistency_loss
from mat.methods.base import Inputs, Method, per_example_norm, register_method
from mat.spec.methods import SALT_SPEC, SALTArgs


def project_l2(delta: Tensor, eps: float) -> Tensor:
    """Π_ε: each example of ``delta`` (B, T, H) rescaled onto ‖δ_b‖₂ ≤ ε (over its T·H elements), as
    ``torch.renorm(delta, 2, 0, eps)``; differentiable; ε = 0: ``delta`` unchanged."""
    if eps <= 0:
        return delta
    norm = per_example_norm(delta, "l2")  # (B, 1, 1)
    return delta * (eps / norm.clamp_min(torch.finfo(norm.dtype).tiny)).clamp(max=1.0)


def initial_delta(embeds: Tensor, mask: Tensor, std: float, eps: float) -> Tensor:
    """δ_0 (B, T, H): N(0, std²) on the real tokens (``mask`` (B, T)), zero on padding, projected into the
    ε ball."""
    noise = torch.randn_like(embeds).mul_(std) * mask.unsqueeze(-1).to(embeds.dtype)
    return project_l2(noise, eps)


def half_consistency(adv: Tensor, target: Tensor, is_regression: bool) -> Tensor:
    """ℓ = ½·ℓ_s(f(x + δ), p), batch mean (a float32 scalar): the release's ``KL_loss``, 0.5·Σ(p − q)(log p
    − log q); half the squared error for regression. ``target`` p is taken as given (pass it detached)."""
    return 0.5 * consistency_loss(adv, target, is_regression)


@register_method(SALT_SPEC)
class SALT(Method[SALTArgs]):
    """SALT step (module docstring); ``args`` is a :class:`mat.spec.methods.SALTArgs`.

    ``step`` returns ``loss`` (L), ``adv_loss`` (λ·ℓ at δ_K(θ)), ``leader_loss`` (λ·ℓ at δ_lead, 0 for
    none), ``delta_norm`` (mean per-example ‖δ_K‖₂), ``delta_move`` (mean per-example ‖δ_K − δ_0‖₂: how far
    the follower went), ``lr``, ``grad_norm`` (every step when clipping) and, every 10th step,
    ``update_norm``.
    """

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        a = self.args
        inp = self.inputs(batch)
        self.zero_grad()
        e = self.embeddings(inp.input_ids)  # (B, T, H), in the graph of the lookup table
        clean = self.logits(e, inp.kwargs)  # f(x; θ)
        loss = self.task_loss(clean, inp.labels)  # L(θ)
        if a.adv_lambda == 0:
            lr = self.update(loss)
            return self.floats(loss=loss, lr=lr, **self.step_stats())
        target = clean.detach()  # p
        delta0 = self.initial_delta(e.detach(), inp.mask)
        delta_k = self.unroll(e, delta0, target, inp)  # δ_K(θ)
        adv_loss, leader_loss = self.leader(e, delta_k, delta0, target, inp)
        lr = self.update(loss + adv_loss + leader_loss)
        with torch.no_grad():
            delta_norm = per_example_norm(delta_k, "l2").mean()
            delta_move = per_example_norm(delta_k - delta0, "l2").mean()
        return self.floats(loss=loss, adv_loss=adv_loss, leader_loss=leader_loss, delta_norm=delta_norm,
            delta_move=delta_move, lr=lr, **self.step_stats())

    def initial_delta(self, embeds: Tensor, mask: Tensor) -> Tensor:
        """δ_0 (B, T, H) (:func:`initial_delta`; a method of its own so that a test can fix it)."""
        return initial_delta(embeds, mask, self.args.init_std, self.args.eps)

    def unroll(self, e: Tensor, delta0: Tensor, target: Tensor, inp: Inputs) -> Tensor:
        """δ_K after K differentiable ascent steps δ ← Π_ε(δ + η·m·∇_δ Σ_b ℓ_b) from ``delta0`` (B, T, H).

        The result is in the autograd graph of θ (through the forwards on ``e`` + δ and the input gradients,
        taken with ``create_graph``): a backward from a loss at δ_K reaches θ through δ_K too.
        """
        a = self.args
        m = inp.mask.unsqueeze(-1).to(e.dtype)  # (B, T, 1)
        delta = delta0.detach().requires_grad_(True)  # δ_0, a leaf: ∂/∂δ_0 is only the first step's variable
        for _ in range(a.inner_steps):
            with sdpa_kernel(SDPBackend.MATH):  # the fused kernels have no double backward
                adv = self.logits(e + delta, inp.kwargs)  # f(x + δ_k; θ)
            per_example_sum = half_consistency(adv, target, self.is_regression) * inp.batch_size  # Σ_b ℓ_b
            grad = self.unrolled_grad(per_example_sum, delta)  # ∇_δ, a function of θ
            delta = project_l2(delta + a.inner_lr * grad * m, a.eps)  # δ_{k+1}
        return delta

    def unrolled_grad(self, loss: Tensor, delta: Tensor) -> Tensor:
        """∂loss/∂δ with ``create_graph=True`` (no parameter ``.grad`` touched); counted as one backward now
        and one more for the final backward, which runs through its graph again (the second-order term)."""
        self.counts.passes["backward"] += 1.0
        self._pending += 1.0
        scale = self.scaler.get_scale() if self.scaler is not None else 1.0
        (g,) = torch.autograd.grad(loss * scale if scale != 1.0 else loss, [delta], create_graph=True)
        return g / scale if scale != 1.0 else g

    def leader(self, e: Tensor, delta_k: Tensor, delta0: Tensor, target: Tensor,
        inp: Inputs) -> tuple[Tensor, Tensor]:
        """(λ·ℓ at δ_K(θ), λ·ℓ at sg(δ_lead)): the Stackelberg term and the leader term, one 2B forward
        (the leader term 0 with ``leader_delta`` none)."""
        a = self.args
        if a.leader_delta == "none":
            adv = self.logits(e + delta_k, inp.kwargs)  # f(x + δ_K(θ); θ)
            zero = torch.zeros((), device=e.device)
            return a.adv_lambda * half_consistency(adv, target, self.is_regression), zero
        lead = (delta_k if a.leader_delta == "final" else delta0).detach()
        both = self.logits(torch.cat([e + delta_k, e + lead]), inp.repeated(2))  # (2B, C)
        adv, led = both.split(inp.batch_size)
        return (a.adv_lambda * half_consistency(adv, target, self.is_regression),
                a.adv_lambda * half_consistency(led, target, self.is_regression))
