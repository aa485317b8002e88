"""Vanilla fine-tuning: the HF ``run_glue.py`` step (one forward and backward, AdamW, scheduler step)."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor

from mat.methods.base import Method, register_method
from mat.spec.methods import VANILLA_SPEC, VanillaArgs


@register_method(VANILLA_SPEC)
class Vanilla(Method[VanillaArgs]):
    """Plain fine-tuning: loss = L(f(θ, x), y); one optimizer step and one scheduler step per batch.

    Returns ``loss`` (the task loss), ``lr`` (the learning rate the step used), ``grad_norm`` (before
    clipping: every step when clipping, else every 10th) and, every 10th step, ``update_norm`` (‖Δθ‖₂ of the
    optimizer step; :mod:`mat.methods.stats`).
    """

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        inp = self.inputs(batch)
        self.zero_grad()
        logits = self.logits_from_ids(inp)  # f(θ, x)  (B, C)
        loss = self.task_loss(logits, inp.labels)  # L(θ)
        lr = self.update(loss)
        return self.floats(loss=loss, lr=lr, **self.step_stats())
