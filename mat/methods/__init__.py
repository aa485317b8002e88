"""Training methods, one module each, all with the interface of :class:`mat.methods.base.Method`.

``METHODS`` maps the ``--method`` names to classes; :func:`get_method` looks one up. Every class is built
as ``Method(model, optimizer, scheduler, task, args, *, max_grad_norm=0.0, autocast_dtype=None,
diagnostics=False)`` and trains with ``step(batch) -> dict[str, float]``. The optimizer comes from
:func:`mat.optim.build_optimizer` with :func:`mat.optim.optimizer_name` (MAT: its ``sampler``; the others:
``adamw``).
"""

from __future__ import annotations

from typing import Mapping

from mat.methods.base import Method
from mat.methods.freelb import FreeLB
from mat.methods.mat import MAT
from mat.methods.r3f import R3F
from mat.methods.smart import SMART
from mat.methods.vanilla import Vanilla
from mat.spec.naming import unknown_name

METHODS: Mapping[str, type[Method]] = {
    "vanilla": Vanilla,
    "mat": MAT,
    "freelb": FreeLB,
    "smart": SMART,
    "r3f": R3F,
}


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name`` (case-insensitive).

    Raises:
        KeyError: unknown name; the message lists the valid names and the closest match.
    """
    key = name.strip().lower()
    if key in METHODS:
        return METHODS[key]
    raise KeyError(unknown_name("method", name, METHODS))


__all__ = ["FreeLB", "MAT", "METHODS", "Method", "R3F", "SMART", "Vanilla", "get_method"]
