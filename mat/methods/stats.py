"""Per-step statistics kept as device tensors until the step ends (one host sync per step, in
``Method.floats``).

A method's step may run several optimizer steps (MAT's K_θ); the gradient norm, the size of each optimizer
update and the Langevin noise are measured at every one of them without reading a number back to the host:
:class:`StepStats` sums the scalar tensors and hands their means to ``Method.floats`` at the end of the step,
which converts every statistic of the step with a single ``tolist()``.

* ``grad_norm``: the global L2 norm of the parameter gradients before an optimizer step (after unscaling,
  before clipping: what ``clip_grad_norm_`` returns);
* ``update_norm``: ‖θ_after − θ_before‖₂ of one optimizer step alone (the preconditioned step, weight decay
  included; MAT's Langevin noise is added after it and measured apart);
* ``theta_noise_norm`` (MAT): ‖Σ_g std_g·ξ_g‖₂, the norm of the noise added to θ after an optimizer step.

Each costs one or more passes over all parameters (``update_norm``: a copy, a subtraction and a norm, ~10% of
a vanilla MiniLM step on CPU), so they are measured at the first optimizer step of every
:data:`MEASURE_EVERY`-th training step (scheduler steps 0, 10, 20...: the same steps after a resume), and
those steps alone report them; ``grad_norm`` is recorded at every optimizer step when gradients are clipped
(the clip computes it anyway).

Measuring ``update_norm`` keeps one copy of the parameters (allocated on first use, reused), on the device.

:func:`rng_state` and :func:`replayed_rng` let a diagnostic forward reuse the dropout masks of an earlier
forward (same shapes, same generator state), and :func:`independent_rng` gives one masks of its own; both
restore the generators afterwards, so a diagnostic never moves the training's random stream.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor

MEASURE_EVERY = 10  # training steps between two measurements of the parameter-wide norms


@dataclass
class Counts:
    """What a method's steps cost, for the record's ``cost`` block (:mod:`mat.spec.cost`).

    Forward and backward passes are in units of one pass of the batch's B examples (a 2B forward counts 2; a
    backward counts the passes of the graph it runs through). ``passes`` are training's; ``diagnostic_passes``
    the measurement forwards that only ``--diagnostics`` runs (those inside :meth:`diagnostic`); ``updates``
    every optimizer step (K_θ per batch for MAT), one the fp16 GradScaler then skips included.
    """

    passes: dict[str, float] = field(default_factory=lambda: {"forward": 0.0, "backward": 0.0})
    diagnostic_passes: dict[str, float] = field(default_factory=lambda: {"forward": 0.0, "backward": 0.0})
    updates: int = 0
    measuring: bool = False  # inside diagnostic()

    @contextlib.contextmanager
    def diagnostic(self) -> Iterator[None]:
        """Count the forwards run inside as diagnostic passes, not training's."""
        before, self.measuring = self.measuring, True
        try:
            yield
        finally:
            self.measuring = before

    def forward(self, n: float) -> bool:
        """Count ``n`` forward passes (diagnostic ones inside :meth:`diagnostic`); True for training's."""
        (self.diagnostic_passes if self.measuring else self.passes)["forward"] += n
        return not self.measuring

    def state_dict(self) -> dict[str, Any]:
        """The counts so far, for a checkpoint (a resumed trial's record counts the whole run)."""
        return {"passes": dict(self.passes), "diagnostic_passes": dict(self.diagnostic_passes),
                "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (an older checkpoint's empty state changes nothing)."""
        self.passes.update(state.get("passes") or {})
        self.diagnostic_passes.update(state.get("diagnostic_passes") or {})
        self.updates = int(state.get("updates", self.updates))

def global_norm(tensors: Sequence[Tensor]) -> Tensor:
    """‖(t_1, ..., t_n)‖₂ over all elements of ``tensors`` (a non-empty list on one device): a float32
    scalar."""
    norms = torch._foreach_norm(list(tensors))  # type: ignore[attr-defined]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def grad_norm(params: Sequence[Tensor]) -> Tensor:
    """The global L2 norm of the gradients of ``params`` (those that have one); a scalar tensor, no host
    sync."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    return global_norm(grads) if grads else torch.zeros((), device=params[0].device)


class StepStats:
    """Sums of scalar tensors per name over one step; :meth:`means` returns their means and starts over.

    Args:
        tracked: the tensors whose optimizer updates :meth:`before_update` / :meth:`after_update` measure
            (the parameters, or the contiguous buffers that hold them: the norm is the same).
    """

    def __init__(self, tracked: Sequence[Tensor]) -> None:
        self.tracked = list(tracked)
        self.device = self.tracked[0].device
        self.every = MEASURE_EVERY
        self.measuring = False  # whether the current optimizer step's norms are measured
        self._snapshot: list[Tensor] = []
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, name: str, value: Tensor) -> None:
        """Add one scalar observation of ``name`` (kept on its device)."""
        v = value.detach().float().reshape(())
        self._sums[name] = self._sums[name] + v if name in self._sums else v
        self._counts[name] = self._counts.get(name, 0) + 1

    @torch.no_grad()
    def before_update(self, step: int) -> bool:
        """Before an optimizer step of training step ``step`` (the scheduler's count, from 0): whether this
        optimizer step is measured (the first of every ``every``-th training step); if so, copy the tracked
        tensors (θ before the step)."""
        self.measuring = step % self.every == 0 and "update_norm" not in self._counts
        if self.measuring:
            self._snapshot = [t.detach().clone() for t in self.tracked]
        return self.measuring

    @torch.no_grad()
    def after_update(self) -> None:
        """Add ``update_norm`` = ‖θ_after − θ_before‖₂ when measuring, then free the snapshot: between steps
        the statistics hold no parameter-sized tensor (the copy lives only across one measured update)."""
        if self.measuring:
            # θ_before − θ_after
            torch._foreach_sub_(self._snapshot, self.tracked)  # type: ignore[attr-defined]
            self.add("update_norm", global_norm(self._snapshot))
            self._snapshot = []

    def means(self, *always: str) -> dict[str, Tensor]:
        """The mean of each statistic over this step's observations (names in ``always`` that saw none: 0),
        then reset."""
        out = {k: s / self._counts[k] for k, s in self._sums.items()}
        for name in always:
            if name not in out:
                out[name] = torch.zeros((), device=self.device)
        self._sums, self._counts = {}, {}
        return out


RngState = tuple[Tensor, Tensor | None]  # (CPU generator state, CUDA generator state of the device or None)


def rng_state(device: torch.device) -> RngState:
    """The CPU generator's state and, on CUDA, ``device``'s generator state (dropout draws from it there)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _forked(device: torch.device) -> contextlib.AbstractContextManager[None]:
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])  # type: ignore[list-item]


@contextlib.contextmanager
def replayed_rng(state: RngState, device: torch.device) -> Iterator[None]:
    """Run the block from ``state`` (a forward of the same shapes draws the same dropout masks as the forward
    that started at ``state``), then put the generators back as they were before the block."""
    with _forked(device):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


@contextlib.contextmanager
def independent_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block on generators seeded with ``seed`` (masks of their own), then restore them."""
    with _forked(device):
        torch.manual_seed(seed)
        yield
