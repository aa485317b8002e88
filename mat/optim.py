"""Optimizers by name, from ``torch.optim`` (no hand-written Adam).

``adamw`` is what vanilla fine-tuning and the baselines use. MAT's ``sampler`` names the preconditioner of
its θ sampler, as the authors' ``--optimizer`` flag does (Charles-Zhong/MAT ``MAT.py``): ``sgld`` ->
``torch.optim.SGD`` (plain SGLD), ``rmsprop`` -> ``torch.optim.RMSprop``, ``adam`` -> ``torch.optim.AdamW``.

Which parameters decay is ``weight_decay_scope``: ``no_bias_norm`` leaves biases and LayerNorm/RMSNorm
weights out (BERT's ``exclude_from_weight_decay``, the HF convention; the baselines' default), ``all`` decays
every parameter, as the authors' ``optim(model.parameters(), lr)`` does (MAT's default).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from transformers import get_scheduler

from mat.provenance import Trial
from mat.spec.config import DECAY_SCOPES
from mat.spec.methods import OPTIMIZER_NAMES
from mat.spec.naming import unknown_name


def _adamw(groups: list[dict[str, Any]], lr: float, eps: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over every parameter) where torch has it for the parameters' device.

    torch's default on CPU is the single-tensor loop: ~10 passes over the parameters per step. The fused
    kernel makes one, the same update to float rounding (max 7e-9 apart after 5 steps on weights ~0.02);
    on a 2-core CPU a MiniLM step of it takes 0.08 s against 0.30-0.37 s on one thread, which is 30% of
    a vanilla CoLA step (docs/speed.md).
    """
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=lr, eps=eps, fused=fused or None)


def _sgd(groups: list[dict[str, Any]], lr: float, eps: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr)


def _rmsprop(groups: list[dict[str, Any]], lr: float, eps: float) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(groups, lr=lr, eps=eps)


_BUILDERS: dict[str, Callable[[list[dict[str, Any]], float, float], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "adam": _adamw,
    "sgld": _sgd,
    "rmsprop": _rmsprop,
}
assert set(_BUILDERS) == set(OPTIMIZER_NAMES), "an optimizer name (mat.spec.methods) without a builder"

OPTIMIZER_CLASSES: dict[str, type] = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.AdamW,
    "sgld": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


def _is_norm_module(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "LayerNorm" in name or "RMSNorm" in name


def decay_groups(model: nn.Module, weight_decay: float, scope: str = "no_bias_norm") -> list[dict[str, Any]]:
    """The optimizer's parameter groups, in ``model.parameters()`` order within each group.

    ``no_bias_norm``: two groups, with ``weight_decay`` and without it (biases, LayerNorm/RMSNorm weights);
    ``all``: one group, every parameter with ``weight_decay``. Only parameters with ``requires_grad`` are
    included; an empty group is left out.

    Raises:
        ValueError: unknown ``scope`` (the message lists the valid ones).
    """
    if scope not in DECAY_SCOPES:
        raise ValueError(unknown_name("weight_decay_scope", scope, DECAY_SCOPES, "Valid scopes"))
    if scope == "all":
        every = [p for p in model.parameters() if p.requires_grad]
        return [{"params": every, "weight_decay": weight_decay}] if every else []
    no_decay: set[int] = set()
    for module in model.modules():
        norm = _is_norm_module(module)
        for pname, p in module.named_parameters(recurse=False):
            if norm or pname == "bias" or pname.endswith("_bias"):
                no_decay.add(id(p))
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (plain if id(p) in no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float = 0.0, eps: float = 1e-8,
    weight_decay_scope: str = "no_bias_norm"
) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer over the trainable parameters of ``model``.

    Args:
        model: the model to train.
        name: ``adamw`` (vanilla and the baselines), or MAT's sampler: ``sgld`` (SGD), ``rmsprop``,
            ``adam`` (AdamW).
        lr: the peak learning rate (the scheduler scales it).
        weight_decay: decoupled (AdamW) or L2 (SGD, RMSprop) weight decay.
        eps: epsilon of AdamW / RMSprop (unused by SGD).
        weight_decay_scope: ``no_bias_norm`` (no decay on biases and LayerNorm weights) or ``all``.

    Raises:
        ValueError: unknown name or scope (the message lists the valid ones), or no trainable parameters.
    """
    key = name.strip().lower()
    if key not in _BUILDERS:
        raise ValueError(unknown_name("optimizer", name, OPTIMIZER_NAMES, "Valid names"))
    groups = decay_groups(model, weight_decay, weight_decay_scope)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return _BUILDERS[key](groups, float(lr), float(eps))


def warmup_steps(ratio: float, total_steps: int, rounding: str = "floor") -> float:
    """Warm-up length for ``transformers.get_scheduler``: ``ratio × total_steps``, whole steps or not.

    ``floor``: ``int(ratio × total)`` (whole steps, what ``run_glue`` does); ``none``: the product itself, as
    the authors' ``MAT.py`` passes ``args.warm_up * total_iterations`` (SST-2 preset: 0.1 × 10525 = 1052.5).
    transformers' warm-up schedules divide by it as a float, so a fractional warm-up ramps the learning rate
    by 1/1052.5 per step and decays from step 1053 on.

    Raises:
        ValueError: unknown rounding.
    """
    if rounding == "floor":
        return int(ratio * total_steps)
    if rounding == "none":
        return ratio * total_steps
    raise ValueError(f"unknown warmup_rounding {rounding!r}: use floor or none")


def make_optimizer(trial: Trial, model: Any, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """The optimizer (the method's, with the resolved decay and its scope) and the warm-up schedule over
    ``total_steps``."""
    train = trial.cfg.train
    optimizer = build_optimizer(
        model, trial.method.optimizer(trial.cfg.method), lr=float(train.learning_rate or 0.0),
        weight_decay=float(train.weight_decay or 0.0),
        eps=train.adam_epsilon, weight_decay_scope=train.weight_decay_scope or "no_bias_norm",
    )
    # a float with rounding "none"
    warmup = warmup_steps(train.warmup_ratio, total_steps, train.warmup_rounding)
    scheduler = get_scheduler(train.lr_scheduler_type, optimizer, num_warmup_steps=warmup,  # type: ignore[arg-type]
                              num_training_steps=total_steps)
    return optimizer, scheduler
