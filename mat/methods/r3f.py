"""R3F: robust representations through regularized fine-tuning (Aghajanyan et al., ICLR 2021).

Follows fairseq ``examples/rxf/rxf_src/sentence_prediction_r3f.py`` (flags ``--eps --r3f-lambda
--noise-type``), fields of :class:`mat.spec.methods.R3FArgs`. Per batch, with e the word embeddings (B, T, H):

* z ~ N(0, eps²) (``normal``) or U(−eps, eps) (``uniform``), shape (B, T, H);
* loss = L(f(θ, e)) + r3f_lambda·ℓ_s(f(θ, e), f(θ, e.detach() + z)), gradients to θ through both forwards
  (fairseq detaches the embeddings on the noisy side, so the lookup table gets gradients from the clean
  forward only; so here). The two forwards run as one 2B batch.
* ℓ_s is the symmetric KL (fairseq's ``_get_symm_kl``: float32 ``log_softmax``, batch mean). fairseq adds no
  R3F term for regression (STS-B); here it is the squared error, as for the other methods.

No inner loop: two forward passes (one 2B forward here) and one backward. R4F (spectral norm on the
classification head) is not included.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from mat.methods.base import Method, register_method
from mat.spec.methods import R3F_SPEC, R3FArgs


def r3f_noise(embeds: Tensor, kind: str, eps: float) -> Tensor:
    """z (B, T, H): N(0, eps²) for ``normal``, U(−eps, eps) for ``uniform``."""
    if kind == "normal":
        return torch.randn_like(embeds).mul_(eps)
    if kind == "uniform":
        return torch.empty_like(embeds).uniform_(-eps, eps)
    raise ValueError(f"unknown noise_type {kind!r}: use normal or uniform")


@register_method(R3F_SPEC)
class R3F(Method[R3FArgs]):
    """R3F step (module docstring); ``args`` is a :class:`mat.spec.methods.R3FArgs`.

    ``step`` returns ``loss`` (L on the clean forward), ``adv_loss`` (r3f_lambda·ℓ_s), ``lr`` and, every 10th
    step, ``grad_norm`` and ``update_norm`` (:mod:`mat.methods.stats`).
    """

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        a = self.args
        inp = self.inputs(batch)
        self.zero_grad()
        e = self.embeddings(inp.input_ids)  # (B, T, H)
        if a.r3f_lambda > 0:
            noisy = e.detach() + r3f_noise(e, a.noise_type, a.eps)  # e + z
            both = self.logits(torch.cat([e, noisy]), inp.repeated(2))  # [f(θ,e); f(θ,e+z)]  (2B, C)
            clean, perturbed = both.split(inp.batch_size)
            adv_loss = a.r3f_lambda * self.consistency(clean, perturbed)
        else:
            clean = self.logits(e, inp.kwargs)
            adv_loss = torch.zeros((), device=self.device)
        loss = self.task_loss(clean, inp.labels)
        lr = self.update(loss + adv_loss)
        return self.floats(loss=loss, adv_loss=adv_loss, lr=lr, **self.step_stats())
