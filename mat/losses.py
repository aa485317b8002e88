"""The loss functions of the paper, as pure tensor functions.

* ``L`` (:func:`task_loss`): cross-entropy for classification, mean squared error for regression, both
  averaged over the batch (the Hugging Face heads' default), eq. (1) of the MAT paper.
* ``ℓ_s`` (:func:`consistency_loss`): the symmetric KL divergence KL(P‖Q) + KL(Q‖P) for classification,
  the squared error for regression, both averaged over the batch, eq. (2); for regression optionally summed
  over the batch (``reduction="sum"``, the authors' ``MSELoss(reduction="sum")``, MAT's
  ``consistency_reduction``).

Everything is computed in float32 at least, whatever the dtype of the logits (autocast may give bf16/fp16;
float64 stays float64, so a float64 model can be checked against a transcription to 1e-11), and
with ``log_softmax`` (never ``softmax().log()``, which gives NaN once the logits saturate). As in fairseq's
``examples/rxf`` (R3F), the consistency loss is its own small function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _at_least_fp32(x: Tensor) -> Tensor:
    """``x`` as float32, or as it is when float64 (half formats go up, float64 is not cut down)."""
    return x if x.dtype == torch.float64 else x.float()


def symmetric_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Symmetric KL divergence between the categorical distributions given by two sets of logits.

    ``ℓ_s(P, Q) = KL(P‖Q) + KL(Q‖P) = Σ_k (p_k − q_k)(log p_k − log q_k)``, summed over the classes and
    averaged over the batch. Gradients flow into both arguments (detach one to make it a target).

    Args:
        p_logits: (B, C) logits of P, any float dtype.
        q_logits: (B, C) logits of Q, same shape.

    Returns:
        A float32 scalar (float64 for float64 inputs), ``>= 0``; exactly 0 when the logits are equal.

    Raises:
        ValueError: the shapes differ.
    """
    if p_logits.shape != q_logits.shape:
        raise ValueError(f"symmetric_kl: logits shapes differ: {tuple(p_logits.shape)} vs "
            f"{tuple(q_logits.shape)}")
    log_p = F.log_softmax(_at_least_fp32(p_logits), dim=-1)  # (B, C)
    log_q = F.log_softmax(_at_least_fp32(q_logits), dim=-1)  # (B, C)
    per_example = ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)  # (B,)
    return per_example.mean()


def squared_error(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error ``Σ_j (a_j − b_j)²`` over the outputs (one for regression), averaged (``mean``) or
    summed (``sum``) over the batch.

    Args:
        a: (B, D) or (B,) predictions.
        b: same shape.
        reduction: ``mean`` or ``sum`` over the batch.

    Returns:
        A float32 scalar (float64 for float64 inputs).

    Raises:
        ValueError: the shapes differ, or an unknown reduction.
    """
    if a.shape != b.shape:
        raise ValueError(f"squared_error: shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = (_at_least_fp32(a) - _at_least_fp32(b)).reshape(a.shape[0], -1)  # (B, D)
    per_example = diff.pow(2).sum(dim=-1)  # (B,)
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    raise ValueError(f"squared_error: unknown reduction {reduction!r}: use mean or sum")


def consistency_loss(logits_a: Tensor, logits_b: Tensor, is_regression: bool,
    reduction: str = "mean") -> Tensor:
    """``ℓ_s``: symmetric KL (classification, batch mean) or squared error (regression, batch ``reduction``).

    Args:
        logits_a: (B, C) logits (C = 1 for regression).
        logits_b: (B, C) logits.
        is_regression: the task's ``TaskSpec.is_regression``.
        reduction: regression only: ``mean`` (the default) or ``sum`` over the batch (the authors'
            ``MSELoss(reduction="sum")``). The KL is a batch mean either way (the authors' ``batchmean``).

    Returns:
        A float32 scalar (float64 for float64 inputs); gradients flow into both arguments.
    """
    if is_regression:
        return squared_error(logits_a, logits_b, reduction)
    return symmetric_kl(logits_a, logits_b)


def task_loss(logits: Tensor, labels: Tensor, is_regression: bool) -> Tensor:
    """``L``: cross-entropy (classification) or mean squared error (regression), batch mean.

    The same values as the Hugging Face sequence-classification heads compute when given ``labels``.

    Args:
        logits: (B, C) logits; (B, 1) for regression.
        labels: (B,) class ids (long) or, for regression, (B,) float targets.
        is_regression: the task's ``TaskSpec.is_regression``.

    Returns:
        A float32 scalar (float64 for float64 inputs).
    """
    if is_regression:
        pred = _at_least_fp32(logits).reshape(-1)
        return F.mse_loss(pred, labels.to(pred.dtype).reshape(-1))
    return F.cross_entropy(_at_least_fp32(logits), labels.long())


__all__ = ["consistency_loss", "squared_error", "symmetric_kl", "task_loss"]
