"""FreeLB: free large-batch adversarial training (Zhu et al., ICLR 2020).

Follows the authors' Hugging Face script, zhuchen03/FreeLB ``huggingface-transformers/examples/
run_glue_freelb.py`` (flags ``--adv-lr --adv-steps --adv-init-mag --adv-max-norm --norm-type``), fields of
:class:`mat.spec.methods.FreeLBArgs`. Per batch, with e the word embeddings (B, T, H):

* δ_0 = 0 if ``adv_init_mag`` = 0; else uniform on the real tokens: l2: U(−1, 1)·init_mag/sqrt(n·H) with n
  the example's real tokens; linf: U(−init_mag, init_mag).
* for t = 1..K (``adv_steps``): loss_t = L(f(θ, e + δ_{t−1}))/K; backward (parameter gradients accumulate
  over the K steps; the lookup of e is redone each step, as the script does); except after the last step:
  δ_t = δ_{t−1} + adv_lr·g/‖g‖ per example (l2 norm, or for linf ‖g‖∞ as in the script, not sign(g)),
  ‖g‖ clamped at 1e-8; if ``adv_max_norm`` > 0, project: l2 rescales each example into the ball, linf
  clamps each element to [−adv_max_norm, adv_max_norm].
* one optimizer step on the accumulated gradients (clipped to ``max_grad_norm``), one scheduler step.

Not reproduced: the script's ``dp_masks`` (one dropout mask reused across the K steps needs a patched
model); here each step draws fresh dropout masks. Cost: K forward+backward passes.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from mat.methods.base import Inputs, Method, per_example_norm, register_method
from mat.spec.methods import FREELB_SPEC, FreeLBArgs

_GRAD_NORM_FLOOR = 1e-8  # the script's clamp of the gradient norm


def freelb_init(embeds: Tensor, mask: Tensor, init_mag: float, norm_type: str) -> Tensor:
    """δ_0 (B, T, H): zero, or uniform on the real tokens (``mask`` (B, T)) scaled as the script does."""
    if init_mag <= 0:
        return torch.zeros_like(embeds)
    m = mask.unsqueeze(-1).to(embeds.dtype)  # (B, T, 1)
    if norm_type == "l2":
        delta = torch.empty_like(embeds).uniform_(-1, 1) * m
        dims = mask.sum(dim=1).to(embeds.dtype) * embeds.shape[-1]  # (B,) real tokens · H
        return delta * (init_mag / dims.sqrt()).view(-1, 1, 1)
    return torch.empty_like(embeds).uniform_(-init_mag, init_mag) * m


@torch.no_grad()
def freelb_update(delta: Tensor, grad: Tensor, adv_lr: float, max_norm: float, norm_type: str) -> Tensor:
    """One ascent step and projection (a new tensor): δ + adv_lr·g/‖g‖, then into the max_norm ball."""
    p = "l2" if norm_type == "l2" else "inf"
    delta = delta + adv_lr * grad / per_example_norm(grad, p).clamp_min(_GRAD_NORM_FLOOR)
    if max_norm > 0:
        if norm_type == "l2":
            norm = per_example_norm(delta, "l2")
            delta = delta * (max_norm / norm.clamp_min(torch.finfo(norm.dtype).tiny)).clamp(max=1.0)
        else:
            delta = delta.clamp(-max_norm, max_norm)
    return delta


@register_method(FREELB_SPEC)
class FreeLB(Method[FreeLBArgs]):
    """FreeLB step (module docstring); ``args`` is a :class:`mat.spec.methods.FreeLBArgs`.

    ``step`` returns ``loss`` (mean over the K steps of L(f(θ, e+δ_t))), ``delta_norm`` (mean
    per-example norm of the last δ used, in ``norm_type``), ``lr``, ``grad_norm`` (every step: FreeLB clips)
    and, every 10th step, ``update_norm``.
    """

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        a = self.args
        inp = self.inputs(batch)
        k = a.adv_steps
        self.zero_grad()
        delta = freelb_init(self.embeddings(inp.input_ids).detach(), inp.mask, a.adv_init_mag, a.norm_type)
        total = torch.zeros((), device=self.device)
        for t in range(k):
            delta.requires_grad_(True)
            loss = self._adv_loss(inp, delta)  # L(f(θ, e + δ_{t−1}))
            self.backward(loss / k)  # parameter gradients accumulate over the K steps
            total = total + loss.detach()
            if t == k - 1:
                break
            g = delta.grad
            assert g is not None  # delta is a leaf that requires grad
            if self.scaler is not None:
                g = torch.nan_to_num(g / self.scaler.get_scale(), nan=0.0, posinf=0.0, neginf=0.0)
            delta = freelb_update(delta.detach(), g, a.adv_lr, a.adv_max_norm, a.norm_type)
        delta_norm = per_example_norm(delta.detach(), "l2" if a.norm_type == "l2" else "inf").mean()
        lr = self.update()  # the gradients accumulated over the K ascent steps
        return self.floats(loss=total / k, delta_norm=delta_norm, lr=lr, **self.step_stats())

    def _adv_loss(self, inp: Inputs, delta: Tensor) -> Tensor:
        e = self.embeddings(inp.input_ids)  # lookup redone each step: gradients reach the table
        return self.task_loss(self.logits(e + delta, inp.kwargs), inp.labels)
