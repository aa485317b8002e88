"""What every training method shares: model inputs, forwards on embeddings, backward and optimizer steps.

A method is built as ``Method(model, optimizer, scheduler, task, args)`` (docs/design.md, "The method
interface") and runs one whole training step per call of :meth:`Method.step`. This module holds the plumbing
so the
method modules read like their papers:

* the word-embedding module (``model.get_input_embeddings()``) and forwards with ``inputs_embeds``, for any
  ``AutoModelForSequenceClassification`` (keys the forward does not take, e.g. DistilBERT's
  ``token_type_ids``, are dropped);
* autocast around forwards (losses are always float32, see :mod:`mat.losses`), and a ``GradScaler`` of the
  method's own when autocasting to float16;
* gradient clipping before every optimizer step, gradients w.r.t. an input only (``torch.autograd.grad``);
* per-example norms (contiguous parameter buffers are :mod:`mat.methods.flat`).

With ``inputs_embeds``, Hugging Face models add the position and token-type embeddings themselves, so a
perturbation of the word embeddings (B, T, H) is what the adversarial methods add. RoBERTa then numbers
positions 0..T-1 instead of skipping padding: identical for right-padded batches (what
``DataCollatorWithPadding`` gives), different for left padding.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Generic, Iterator, Mapping, TypeVar

import torch
from torch import Tensor, nn

from mat.losses import consistency_loss, task_loss
from mat.methods.stats import Counts, StepStats, grad_norm
from mat.spec.methods import METHOD_SPECS, MethodSpec
from mat.spec.tasks import TaskSpec

A = TypeVar("A")  # the method's argument dataclass (mat.spec.methods)
M = TypeVar("M", bound="Method[Any]")

# Batch keys that are never model keyword inputs here: ids become embeddings, labels go to our losses.
_NOT_FORWARDED = ("input_ids", "labels", "inputs_embeds")


def input_embeddings(model: nn.Module) -> nn.Module:
    """The word-embedding module of ``model`` (its ``get_input_embeddings()``).

    Raises:
        TypeError: the model has no usable ``get_input_embeddings()`` (the message names its class).
    """
    try:
        emb = model.get_input_embeddings()  # type: ignore[operator]
    except (AttributeError, NotImplementedError):
        emb = None
    if not isinstance(emb, nn.Module):
        raise TypeError(
            f"{type(model).__name__} does not expose its word embeddings through get_input_embeddings(); "
            "the training methods perturb the word embeddings and need it (use an "
            "AutoModelForSequenceClassification)"
        )
    return emb


def forward_keys(model: nn.Module) -> frozenset[str]:
    """The named keyword inputs of ``model.forward``.

    Raises:
        TypeError: the forward takes no ``inputs_embeds``.
    """
    params = inspect.signature(model.forward).parameters
    names = frozenset(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    if "inputs_embeds" not in names:
        raise TypeError(f"{type(model).__name__}.forward takes no inputs_embeds; the training methods need "
            "it")
    return names


def per_example_norm(x: Tensor, p: float | str = "inf") -> Tensor:
    """Norm of each example of ``x`` (B, ...) over all its other dims, shaped (B, 1, ..., 1) to broadcast.

    Args:
        x: (B, ...) tensor.
        p: ``"inf"``/``inf``, ``2``/``"l2"`` or ``1``/``"l1"``.
    """
    flat = x.reshape(x.shape[0], -1)
    if p in ("inf", float("inf")):
        n = flat.abs().amax(dim=1)
    elif p in (2, "l2"):
        n = flat.norm(p=2, dim=1)
    elif p in (1, "l1"):
        n = flat.abs().sum(dim=1)
    else:
        raise ValueError(f"unknown norm {p!r}: use inf, l2 or l1")
    return n.view(-1, *([1] * (x.dim() - 1)))


@dataclass
class Inputs:
    """One batch, split for our forwards.

    Attributes:
        input_ids: (B, T) token ids.
        labels: (B,) class ids, or float targets for regression.
        mask: (B, T) attention mask (ones when the batch has none).
        kwargs: the other keyword inputs the model's forward takes (``attention_mask``, ``token_type_ids``).
    """

    input_ids: Tensor
    labels: Tensor
    mask: Tensor
    kwargs: dict[str, Tensor]

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    def repeated(self, n: int) -> dict[str, Tensor]:
        """``kwargs`` with every tensor repeated ``n`` times along the batch (for one n·B forward)."""
        return {k: v.repeat(n, *([1] * (v.dim() - 1))) for k, v in self.kwargs.items()}


class Method(Generic[A]):
    """Base class of the training methods; ``class X(Method[XArgs])`` types ``self.args`` as ``XArgs``.

    Args:
        model: an ``AutoModelForSequenceClassification`` (any model with ``get_input_embeddings()`` and a
            forward taking ``inputs_embeds``), on its device, in train mode.
        optimizer: a ``torch.optim`` optimizer over the model's trainable parameters
            (:func:`mat.optim.build_optimizer`).
        scheduler: a learning-rate scheduler (``transformers.get_scheduler``); stepped once per batch.
        task: the task's ``TaskSpec`` (``is_regression`` picks the losses).
        args: the method's frozen argument dataclass (its spec's ``args``, :mod:`mat.spec.methods`).
        max_grad_norm: clip the gradient norm to this before every optimizer step (0: no clipping).
        autocast_dtype: run forwards under ``torch.autocast(device, dtype)`` (losses stay float32); with
            float16 the method also scales the loss with a ``GradScaler`` of its own.
        diagnostics: compute extra statistics (MAT: the dropout-only KL and δ's own KL, one extra forward).

    Raises:
        TypeError: the model has no ``get_input_embeddings()`` or its forward takes no ``inputs_embeds``.
    """

    name: ClassVar[str] = ""  # its spec's name, set by register_method

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        task: TaskSpec,
        args: A,
        *,
        max_grad_norm: float = 0.0,
        autocast_dtype: torch.dtype | None = None,
        diagnostics: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.task = task
        self.args = args
        self.is_regression = bool(task.is_regression)
        self.max_grad_norm = float(max_grad_norm)
        self.autocast_dtype = autocast_dtype
        self.diagnostics = bool(diagnostics)
        self.embeddings = input_embeddings(model)
        self.accepted = forward_keys(model)
        self.params: list[Tensor] = [p for g in optimizer.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError("the optimizer holds no parameters")
        self.device = self.params[0].device
        self.scaler = torch.amp.GradScaler(self.device.type) if autocast_dtype == torch.float16 else None
        self.counts = Counts()  # passes (training's, --diagnostics' apart), optimizer updates: the cost block
        self._rows = 1  # B of the current batch
        self._pending = 0.0  # forward passes with gradients since the last backward
        self.stats = StepStats(self.params)  # grad_norm, update_norm (mat.methods.stats) until the step ends

    # ------------------------------------------------------------------------------------ the step

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One whole training step on ``batch`` (inner loops, optimizer and scheduler steps).

        Args:
            batch: what ``DataCollatorWithPadding`` yields: ``input_ids``, ``attention_mask``, optional
                ``token_type_ids``, ``labels`` (long; float for regression).

        Returns:
            Plain floats: at least ``loss`` (the task loss L, NaN propagated, never swallowed).
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The method's own state across batches (not the model, optimizer or scheduler), and its counts."""
        scaler = {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}
        return {"counts": self.counts.state_dict(), **scaler}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.counts.load_state_dict(state.get("counts") or {})

    # ----------------------------------------------------------------------------------- plumbing

    def inputs(self, batch: Mapping[str, Tensor]) -> Inputs:
        """Split ``batch`` (moved to the model's device) into ids, labels, mask and forward kwargs.

        Raises:
            KeyError: ``input_ids`` or ``labels`` is missing.
        """
        for key in ("input_ids", "labels"):
            if key not in batch:
                raise KeyError(f"the batch has no {key!r} (keys: {sorted(batch)})")
        moved = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if isinstance(v, Tensor)}
        ids = moved["input_ids"]
        mask = moved.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        kwargs = {k: v for k, v in moved.items() if k not in _NOT_FORWARDED and k in self.accepted}
        self._rows = max(1, int(ids.shape[0]))
        return Inputs(input_ids=ids, labels=moved["labels"], mask=mask, kwargs=kwargs)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` with the method's dtype, or nothing."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def logits(self, embeds: Tensor, kwargs: Mapping[str, Tensor]) -> Tensor:
        """f(θ, x): logits (n·B, C) of the model on word embeddings ``embeds`` (n·B, T, H)."""
        self._count_forward(embeds.shape[0])
        with self.autocast():
            return self.model(inputs_embeds=embeds, **kwargs).logits

    def logits_from_ids(self, inp: Inputs) -> Tensor:
        """f(θ, x) from token ids: the ordinary forward (the embedding lookup inside the model)."""
        self._count_forward(inp.input_ids.shape[0])
        with self.autocast():
            return self.model(input_ids=inp.input_ids, **inp.kwargs).logits

    def _count_forward(self, rows: int) -> None:
        n = rows / self._rows
        if self.counts.forward(n) and torch.is_grad_enabled():  # training's (not a --diagnostics forward)
            self._pending += n

    def _count_backward(self) -> None:
        self.counts.passes["backward"] += self._pending
        self._pending = 0.0

    def task_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """L (float32, batch mean)."""
        return task_loss(logits, labels, self.is_regression)

    def consistency(self, a: Tensor, b: Tensor) -> Tensor:
        """ℓ_s (float32, batch mean): symmetric KL, or squared error for regression."""
        return consistency_loss(a, b, self.is_regression)

    def zero_grad(self) -> None:
        """``optimizer.zero_grad()`` (gradients set to None)."""
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor) -> None:
        """``loss.backward()``, scaled when a GradScaler is in use."""
        self._count_backward()
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self) -> bool:
        """Clip the gradient norm (if ``max_grad_norm`` > 0), then step the optimizer (via the scaler).

        Returns:
            Whether the optimizer stepped: False when the GradScaler found inf/NaN gradients and skipped the
            step (``update()`` then lowers the scale, and only then; one host sync per step, fp16 only).
        """
        self.counts.updates += 1  # every optimizer step, one the fp16 GradScaler then skips too
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        # every 10th step: θ copied
        measure = self.stats.before_update(int(getattr(self.scheduler, "last_epoch", 0)))
        if self.max_grad_norm > 0:  # the clip computes the norm (before clipping): recorded at every step
            self.stats.add("grad_norm", torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm))
        elif measure:  # no host sync: read in floats()
            self.stats.add("grad_norm", grad_norm(self.params))
        if self.scaler is None:
            self.optimizer.step()
            stepped = True
        else:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale
        self.stats.after_update()  # ‖θ_after − θ_before‖₂ of this optimizer step if measured (0 when skipped)
        return stepped

    def update(self, loss: Tensor | None = None) -> float:
        """The end of a one-update training step: backward of ``loss`` (None: gradients are already there),
        clip and optimizer step, gradients cleared, one scheduler step.

        Returns:
            The learning rate the optimizer step used.
        """
        if loss is not None:
            self.backward(loss)
        lr = self.lr()
        self.optimizer_step()
        self.zero_grad()
        self.scheduler.step()
        return lr

    def input_grad(self, loss: Tensor, x: Tensor) -> Tensor:
        """∂loss/∂x only, by ``torch.autograd.grad``: no parameter ``.grad`` is read or written."""
        self._count_backward()
        scale = self.scaler.get_scale() if self.scaler is not None else 1.0
        (g,) = torch.autograd.grad(loss * scale if scale != 1.0 else loss, [x])
        return g / scale if scale != 1.0 else g

    def lr(self) -> float:
        """The current learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step_stats(self, *always: str) -> dict[str, Tensor]:
        """Means over this step's optimizer steps of ``grad_norm``, ``update_norm`` (when measured) and the
        method's own."""
        return self.stats.means(*always)

    @staticmethod
    def floats(**values: Tensor | float) -> dict[str, float]:
        """Scalars (tensors or floats) as plain floats, with a single device synchronisation."""
        keys = list(values)
        tensors = [v for v in values.values() if isinstance(v, Tensor)]
        got = (iter(torch.stack([t.detach().float().reshape(()) for t in tensors]).tolist()) if tensors
               else iter(()))
        return {k: (next(got) if isinstance(values[k], Tensor) else float(values[k]))  # type: ignore[arg-type]
                for k in keys}

    def named_params(self) -> Iterator[tuple[str, Tensor]]:
        """(name, parameter) for the optimizer's parameters, names as in ``model.named_parameters()``."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        for p in self.params:
            yield names[id(p)], p


METHODS: dict[str, type[Method[Any]]] = {}  # spec name -> the class that trains it, filled by register_method


def register_method(spec: MethodSpec[Any]) -> Callable[[type[M]], type[M]]:
    """Class decorator: the class trains the method ``spec`` (a registered
    :class:`~mat.spec.methods.MethodSpec`), as fairseq's ``@register_criterion`` binds a criterion to its
    name.

    Raises:
        ValueError: ``spec`` is not the registered spec of its name, or another class trains it already.
    """

    def bind(cls: type[M]) -> type[M]:
        if METHOD_SPECS.get(spec.name) is not spec:
            raise ValueError(f"method {spec.name!r}: register its spec (mat.spec.methods.register_spec) "
                "first")
        if METHODS.get(spec.name, cls) is not cls:
            raise ValueError(f"method {spec.name!r} is trained by {METHODS[spec.name].__name__} already")
        cls.name = spec.name
        METHODS[spec.name] = cls
        return cls

    return bind
