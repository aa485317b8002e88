"""SMART: smoothness-inducing adversarial regularization + Bregman proximal point (Jiang et al., ACL 2020).

loss = L(θ) + adv_alpha·R_s(θ) + bregman_mu·D_Breg(θ, θ̃), fields of :class:`mat.spec.methods.SMARTArgs`.

R_s follows Algorithm 1 of the paper with the ``--adv_*`` flags of namisan/mt-dnn
(``mt_dnn/perturbation.py`` ``SmartPerturbation``; ``adv_alpha`` weighs it in ``mt_dnn/model.py``):

* x̃ = e + ν, ν ~ N(0, σ²) with σ = ``adv_noise_var`` (mt-dnn multiplies N(0, 1) by it: the value is a
  standard deviation despite the name), on the word embeddings e (B, T, H);
* ``adv_k`` ascent steps on ℓ_s(f(x̃), f(e).detach()), gradient w.r.t. ν only: ν ← ν + η·g/‖g‖
  (η = ``adv_step_size``; ‖g‖ per token (``adv_norm_level`` 0, mt-dnn's default) or per example (1);
  ``adv_p_norm`` inf: g/max|g|, l2: g/‖g‖₂, l1: sign(g) as mt-dnn); then ν is projected into the
  ``adv_epsilon`` ball of that norm (paper, Algorithm 1; inf: clamp each element, l2/l1: rescale);
* R_s = ℓ_s(f(e + ν), f(e)) with gradients to θ through both forwards, weighed as mt-dnn's
  ``SymKlCriterion`` (``mt_dnn/loss.py``) does: KL(sg(Q)‖P) + KL(sg(P)‖Q), the target distribution of each
  KL term detached (:func:`symmetric_kl_detached`). Its value is the symmetric KL; its gradient is about half
  that of the symmetric KL through both sides, so ``adv_alpha`` means what it means in mt-dnn. Regression:
  the squared error, through both sides as for the other methods.

Where mt-dnn differs: after its step it *normalises* ν + η·g (so ν has unit norm) and uses ``adv_epsilon``
only as the denominator's stabiliser; it perturbs the embedding layer's output (after position embeddings
and LayerNorm) rather than the word embeddings; its ascent loss is a one-sided ``stable_kl``.

D_Breg (the paper's momentum Bregman proximal point; mt-dnn's public flags have no such term):
ℓ_s(f(x; θ), f(x; θ̃)) against a teacher θ̃ = EMA of the iterates, θ̃ ← β·θ̃ + (1−β)·θ after every
optimizer step (β = ``bregman_beta``). The teacher is one contiguous copy of the trainable parameters
(the parameters are made contiguous too, :class:`mat.methods.flat.FlatParams`, so the EMA is one
kernel), run through the same module with ``torch.func.functional_call`` under ``no_grad`` and in the
model's current (train) mode; it is this method's state for checkpoints. The paper's β schedule (0.99
for the first 10% of updates, 0.999 after) is not built in: β is constant.
Cost per batch: 2 forwards with gradients and one backward through both, adv_k forwards with input-only
backwards, one teacher forward without gradients.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from mat.methods.base import Inputs, Method, register_method
from mat.methods.flat import FlatParams
from mat.spec.methods import SMART_SPEC, SMARTArgs


def symmetric_kl_detached(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """mt-dnn's ``SymKlCriterion``: KL(sg(Q)‖P) + KL(sg(P)‖Q), batch mean, float32 ``log_softmax``.

    The value equals :func:`mat.losses.symmetric_kl`; the gradient reaches P only through log P in the
    first term and Q only through log Q in the second (sg = stop-gradient), as ``F.kl_div(log_softmax(input),
    softmax(target.detach())) + F.kl_div(log_softmax(target), softmax(input.detach()))`` there.

    Args:
        p_logits: (B, C) logits of P.
        q_logits: (B, C) logits of Q.

    Returns:
        A float32 scalar.
    """
    log_p = F.log_softmax(p_logits.float(), dim=-1)  # (B, C)
    log_q = F.log_softmax(q_logits.float(), dim=-1)  # (B, C)
    sg_p, sg_q = log_p.detach(), log_q.detach()
    kl_q_p = (sg_q.exp() * (sg_q - log_p)).sum(dim=-1)  # KL(sg(Q)‖P)  (B,)
    kl_p_q = (sg_p.exp() * (sg_p - log_q)).sum(dim=-1)  # KL(sg(P)‖Q)  (B,)
    return (kl_q_p + kl_p_q).mean()


def _reduce_dims(level: int) -> tuple[int, ...]:
    return (-1,) if level == 0 else (-2, -1)


def normalize_grad(grad: Tensor, p_norm: str, level: int) -> Tensor:
    """The ascent direction: g/‖g‖∞ (``inf``), g/‖g‖₂ (``l2``) or sign(g) (``l1``, as mt-dnn), per token
    (``level`` 0) or per example (1)."""
    if p_norm == "l1":
        return grad.sign()
    dims = _reduce_dims(level)
    if p_norm == "inf":
        norm = grad.abs().amax(dim=dims, keepdim=True)
    elif p_norm == "l2":
        norm = grad.pow(2).sum(dim=dims, keepdim=True).sqrt()
    else:
        raise ValueError(f"unknown adv_p_norm {p_norm!r}: use inf, l2 or l1")
    return grad / norm.clamp_min(torch.finfo(norm.dtype).tiny)


def project(noise: Tensor, p_norm: str, level: int, epsilon: float) -> Tensor:
    """Into the ε ball of ``p_norm`` per token (``level`` 0) or per example (1); inf clamps each element."""
    if p_norm == "inf":
        return noise.clamp(-epsilon, epsilon)
    dims = _reduce_dims(level)
    if p_norm == "l2":
        norm = noise.pow(2).sum(dim=dims, keepdim=True).sqrt()
    elif p_norm == "l1":
        norm = noise.abs().sum(dim=dims, keepdim=True)
    else:
        raise ValueError(f"unknown adv_p_norm {p_norm!r}: use inf, l2 or l1")
    return noise * (epsilon / norm.clamp_min(torch.finfo(norm.dtype).tiny)).clamp(max=1.0)


@register_method(SMART_SPEC)
class SMART(Method[SMARTArgs]):
    """SMART step (module docstring); ``args`` is a :class:`mat.spec.methods.SMARTArgs`.

    ``step`` returns ``loss`` (L), ``adv_loss`` (adv_alpha·R_s), ``bregman_loss`` (bregman_mu·D_Breg),
    ``noise_norm`` (mean per-example ‖ν‖∞), ``lr``, ``grad_norm`` (every step when clipping) and, every 10th
    step, ``update_norm``.
    """

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, task: Any, args: Any, **kw: Any) -> None:
        super().__init__(model, optimizer, scheduler, task, args, **kw)
        self.param_names = [n for n, _ in self.named_params()]
        self.flat: FlatParams | None = None
        self._teacher_buf: list[Tensor] = []
        self.teacher: list[Tensor] = []  # θ̃, one view per trainable parameter
        if args.bregman_mu > 0:
            self.flat = FlatParams(self.params)  # θ contiguous: the EMA is one kernel
            self._teacher_buf, self.teacher = self.flat.like()
            with torch.no_grad():
                torch._foreach_copy_(self._teacher_buf, self.flat.buffers)  # θ̃_0 = θ_0

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        a = self.args
        inp = self.inputs(batch)
        self.zero_grad()
        e = self.embeddings(inp.input_ids)  # (B, T, H)
        logits = self.logits(e, inp.kwargs)  # f(x; θ)
        loss = self.task_loss(logits, inp.labels)  # L(θ)
        zero = torch.zeros((), device=self.device)
        adv_loss, noise_norm, breg = zero, zero, zero
        if a.adv_alpha > 0:
            noise = self._adversarial_noise(e.detach(), logits.detach(), inp)
            adv_loss = a.adv_alpha * self.smoothness(self.logits(e + noise, inp.kwargs), logits)  # α·R_s
            noise_norm = noise.abs().flatten(1).amax(dim=1).mean()
        if a.bregman_mu > 0:
            with torch.no_grad():
                teacher_logits = self._teacher_logits(inp)  # f(x; θ̃)
            breg = a.bregman_mu * self.consistency(logits, teacher_logits)  # μ·D_Breg(θ, θ̃)
        lr = self.update(loss + adv_loss + breg)
        if self.flat is not None:
            self.flat.rebind()
            with torch.no_grad():
                # θ̃ ← β·θ̃ + (1−β)·θ
                torch._foreach_lerp_(self._teacher_buf, self.flat.buffers, 1.0 - a.bregman_beta)
        return self.floats(loss=loss, adv_loss=adv_loss, bregman_loss=breg, noise_norm=noise_norm, lr=lr,
            **self.step_stats())

    def smoothness(self, adv: Tensor, clean: Tensor) -> Tensor:
        """R_s's ℓ_s, (B, C) x (B, C) -> scalar: mt-dnn's detached-target symmetric KL; squared error for
        regression."""
        if self.is_regression:
            return self.consistency(adv, clean)
        return symmetric_kl_detached(adv, clean)

    def _adversarial_noise(self, e: Tensor, target: Tensor, inp: Inputs) -> Tensor:
        """ν after ``adv_k`` projected ascent steps on ℓ_s(f(e+ν), f(e)) (ν only; e and target detached)."""
        a = self.args
        noise = torch.randn_like(e).mul_(a.adv_noise_var)  # ν ~ N(0, σ²)
        for _ in range(a.adv_k):
            noise.requires_grad_(True)
            kl = self.consistency(self.logits(e + noise, inp.kwargs), target)
            g = self.input_grad(kl, noise)
            if self.scaler is not None:
                g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            with torch.no_grad():
                step = noise + a.adv_step_size * normalize_grad(g, a.adv_p_norm, a.adv_norm_level)
                noise = project(step, a.adv_p_norm, a.adv_norm_level, a.adv_epsilon)
        return noise.detach()

    def _teacher_logits(self, inp: Inputs) -> Tensor:
        params = dict(zip(self.param_names, self.teacher))
        with self.autocast():
            out = functional_call(self.model, params, args=(),
                kwargs={"input_ids": inp.input_ids, **inp.kwargs}, strict=False)
        return out.logits

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.teacher:
            state["teacher"] = {n: t.detach().clone() for n, t in zip(self.param_names, self.teacher)}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.teacher and "teacher" in state:
            saved = state["teacher"]
            missing = [n for n in self.param_names if n not in saved]
            if missing:
                raise KeyError(f"SMART teacher state lacks {len(missing)} parameters, e.g. {missing[:3]}")
            with torch.no_grad():
                torch._foreach_copy_(self.teacher,
                    [saved[n].to(t.device, t.dtype) for n, t in zip(self.param_names, self.teacher)])
