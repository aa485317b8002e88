"""Which autocast format a trial computes in, and whether that format can hold the method's perturbation.

The adversarial methods add a perturbation of size ~1e-5 to the word embeddings (MAT's ``adv_max_norm``,
SMART's ``adv_epsilon``, R3F's ``eps``). Autocast keeps the sum e + δ in float32, but the first matrix
product rounds the (LayerNorm-ed) hidden states to the autocast format. A relative change smaller than the
format's machine epsilon (the spacing of representable numbers at 1: bf16 2^-7 = 7.8e-3, fp16 2^-10 =
9.8e-4, ``torch.finfo(dtype).eps``) is then below the format's resolution: which way the rounding falls,
not δ, decides what the model sees.

The rule (:func:`resolves`): a half format is admissible for a method when its perturbation bound, relative
to the RMS of the word-embedding table (the scale of what δ is added to), is at least the format's machine
epsilon: ``bound / rms(E) >= finfo(dtype).eps``. For BERT-like tables (RMS ~0.02-0.05) a 1e-5 bound is
~2-5e-4 relative: below bf16's and fp16's resolution. Measured with :func:`measure_rounding` on the house
tiny BERT (RMS 0.020), CPU autocast: at 1e-5 (4.9e-4 relative) δ changes the logits by 2.9e-6 in fp32 while
rounding alone changes them by 4.6e-5 (bf16) and 4.9e-6 (fp16); at 1e-3 (0.049 relative) δ's 2.9e-4 is 6x
bf16's rounding. The two cross where the relative perturbation is about the format's epsilon.

* ``--precision auto`` on CUDA picks bf16 (fp16 where bf16 is unsupported) when the rule admits it, else
  fp32, with the reason in the log and in the record; on CPU it is fp32.
* ``--precision bf16``/``fp16`` runs as asked (CUDA or CPU autocast); for a method that perturbs, the
  trial first measures on its first batch the logit change the perturbation causes against the change
  rounding alone causes (:func:`measure_rounding`), logs both and stores them in ``trial.json``.
* ``--precision fp32``: no autocast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from mat.methods.base import forward_keys, input_embeddings
from mat.spec.methods import MethodSpec

log = logging.getLogger("mat.precision")

HALF_DTYPES: Mapping[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Precision:
    """The format a trial computes in.

    Attributes:
        name: ``fp32``, ``bf16`` or ``fp16`` (what the record's ``params.precision`` says).
        dtype: the autocast dtype, None for fp32.
        requested: the ``--precision`` asked for.
        reason: why this format, one sentence (logged and recorded).
        bound: the method's perturbation bound (None: the method perturbs nothing).
        embedding_rms: RMS of the word-embedding table.
        check: measure on the first batch (an explicit half format with a perturbing method).
    """

    name: str
    dtype: torch.dtype | None
    requested: str
    reason: str
    bound: float | None = None
    embedding_rms: float = 0.0
    check: bool = False

    def record(self) -> dict[str, Any]:
        """The record's ``precision`` entry: requested, used, reason (:func:`check_precision` adds its
        measurement)."""
        return {"requested": self.requested, "used": self.name, "reason": self.reason}


def embedding_rms(model: nn.Module) -> float:
    """RMS of the word-embedding weights (V, H): the scale the perturbation is added to."""
    weight: Tensor = getattr(input_embeddings(model), "weight")  # (V, H)
    return float(weight.detach().float().pow(2).mean().sqrt())


def resolves(bound: float, scale: float, dtype: torch.dtype) -> bool:
    """Whether a perturbation of ``bound`` on embeddings of RMS ``scale`` is at least ``dtype``'s resolution:
    ``bound / scale >= torch.finfo(dtype).eps``."""
    return scale > 0 and bound / scale >= torch.finfo(dtype).eps


def _preferred_half(device: torch.device) -> torch.dtype:
    """bf16 where the CUDA device supports it, else fp16 (what ``auto`` tries first)."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.bfloat16 if cuda_bf16 else torch.float16


def choose_precision(requested: str, device: torch.device, spec: MethodSpec[Any], args: Any,
    model: nn.Module) -> Precision:
    """The format a trial runs in (module docstring).

    Args:
        requested: ``--precision``: auto, bf16, fp16 or fp32.
        device: the training device.
        spec: the method (its ``perturbation_bound`` of ``args``).
        args: the method's argument dataclass.
        model: the model (its word-embedding table gives the scale).

    Raises:
        ValueError: an unknown ``requested``.
    """
    if requested not in ("auto", "fp32", *HALF_DTYPES):
        raise ValueError(f"unknown precision {requested!r}: use auto, bf16, fp16 or fp32")
    method = spec.name
    bound, scale = spec.perturbation_bound(args), embedding_rms(model)
    common: dict[str, Any] = {"requested": requested, "bound": bound, "embedding_rms": scale}
    if requested == "fp32":
        return Precision("fp32", None, reason="--precision fp32", **common)
    if requested in HALF_DTYPES:
        dtype = HALF_DTYPES[requested]
        why = f"--precision {requested}" + (f" ({method}'s perturbation {bound:g} is measured against "
            "rounding on the first batch)" if bound else "")
        return Precision(requested, dtype, reason=why, check=bound is not None, **common)
    if device.type != "cuda":
        return Precision("fp32", None, reason=f"--precision auto on {device.type}: fp32 (autocast only on "
            "CUDA)", **common)
    half = _preferred_half(device)
    name = _NAMES[half]
    if bound is None or resolves(bound, scale, half):
        why = f"--precision auto: {name}" + (f" ({method}'s perturbation {bound:g} is {bound / scale:.2g} of "
            f"the embedding RMS, >= {name}'s resolution {torch.finfo(half).eps:.2g})" if bound else "")
        return Precision(name, half, reason=why, **common)
    why = (
        f"--precision auto: fp32, not {name}: {method}'s perturbation {bound:g} is {bound / scale:.2g} of "
        f"the embedding RMS {scale:.3g}, below {name}'s resolution {torch.finfo(half).eps:.2g}, so rounding "
        "would decide what it does"
    )
    return Precision("fp32", None, reason=why, **common)


@torch.no_grad()
def measure_rounding(model: nn.Module, batch: Mapping[str, Tensor], dtype: torch.dtype, bound: float,
    seed: int = 0) -> dict[str, Any]:
    """On one batch: the logit change a perturbation of ``bound`` causes, and the change rounding alone
    causes.

    The model runs in eval mode (no dropout: its masks would swamp both) on its device, with autocast of
    ``dtype`` on that device type (CPU autocast too). δ (B, T, H) = ``bound``·±1 on the real tokens (the
    corner of the L∞ ball, the largest δ the bound allows), drawn from a generator of its own: the global
    RNG, and so the training run, is untouched. All changes are the mean absolute logit difference (B·C):

    * ``logit_change_fp32``: |f(e+δ) − f(e)| in fp32, what δ really does;
    * ``logit_change``: the same in ``dtype``, what training sees;
    * ``rounding_change``: |f_dtype(e) − f_fp32(e)|, rounding alone.

    ``resolved`` is ``logit_change_fp32 > rounding_change``.

    Args:
        model: an ``AutoModelForSequenceClassification`` (train or eval mode; restored afterwards).
        batch: ``input_ids`` (B, T), ``attention_mask`` (B, T), other forward inputs; labels are ignored.
        dtype: torch.bfloat16 or torch.float16.
        bound: the method's perturbation bound (:attr:`mat.spec.methods.MethodSpec.perturbation_bound`).
        seed: seed of δ's generator.
    """
    emb = input_embeddings(model)
    accepted = forward_keys(model)
    device: torch.device = getattr(emb, "weight").device
    ids = batch["input_ids"].to(device)
    kwargs = {k: v.to(device) for k, v in batch.items() if k in accepted and k not in ("input_ids", "labels",
        "inputs_embeds")}
    mask = kwargs.get("attention_mask", torch.ones_like(ids))
    was_training = model.training
    model.eval()
    try:
        e = emb(ids).float()  # (B, T, H)
        g = torch.Generator(device=device).manual_seed(seed)
        signs = torch.randint(0, 2, e.shape, generator=g, device=device).to(e.dtype).mul_(2).sub_(1)
        delta = signs.mul_(bound).mul_(mask.unsqueeze(-1).to(e.dtype))  # ±bound on real tokens  (B, T, H)

        def logits(x: Tensor, half: bool) -> Tensor:
            with torch.autocast(device.type, dtype=dtype, enabled=half):
                return model(inputs_embeds=x, **kwargs).logits.float()  # (B, C)

        clean32, pert32 = logits(e, False), logits(e + delta, False)
        clean16, pert16 = logits(e, True), logits(e + delta, True)
    finally:
        model.train(was_training)
    scale = embedding_rms(model)
    out = {
        "perturbation_bound": float(bound),
        "embedding_rms": scale,
        "relative_perturbation": float(bound) / scale if scale > 0 else float("inf"),
        "format_resolution": float(torch.finfo(dtype).eps),
        "logit_change_fp32": float((pert32 - clean32).abs().mean()),
        "logit_change": float((pert16 - clean16).abs().mean()),
        "rounding_change": float((clean16 - clean32).abs().mean()),
    }
    out["resolved"] = out["logit_change_fp32"] > out["rounding_change"]
    return out


def check_precision(precision: Precision, model: nn.Module, batch: Mapping[str, Tensor]) -> dict[str, Any]:
    """Run :func:`measure_rounding` for ``precision`` (an explicit half format of a perturbing method), log
    the two changes (a warning when rounding is as large as the perturbation's effect) and return the
    record's ``precision`` entry with the measurement."""
    assert precision.dtype is not None and precision.bound is not None, (
        "check_precision needs a half format and a perturbation")
    m = measure_rounding(model, batch, precision.dtype, precision.bound)
    msg = (
        f"{precision.name}: on the first batch the perturbation ({m['perturbation_bound']:g}, "
        f"{m['relative_perturbation']:.2g} of the embedding RMS) changes the logits by "
        f"{m['logit_change_fp32']:.3g} in fp32 and {m['logit_change']:.3g} in {precision.name}; rounding "
        f"alone changes them by {m['rounding_change']:.3g}"
    )
    if m["resolved"]:
        log.info("%s", msg)
    else:
        log.warning("%s: below the format's resolution, rounding decides what the perturbation does (use "
            "--precision fp32)", msg)
    return {**precision.record(), **m}
