"""Training methods, one module each, all with the interface of :class:`mat.methods.base.Method`.

Each method is two halves: its spec (name, argument dataclass, training defaults, perturbation bound,
optimizer), torch-free in :mod:`mat.spec.methods`, and its training step, a class in a module of this package
decorated with ``@register_method(SPEC)``. This package imports every module in it (as fairseq imports its
criterions), so a new module is found without being listed here. :data:`METHODS` maps spec names to classes;
:func:`get_method` gives the class of a spec. Every class is built as ``Method(model, optimizer, scheduler,
task, args, *, max_grad_norm=0.0, autocast_dtype=None, diagnostics=False)`` and trains with ``step(batch) ->
dict[str, float]``; its optimizer is :func:`mat.optim.build_optimizer` with ``spec.optimizer(args)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from mat.methods.base import METHODS, Method, register_method
from mat.spec.methods import MethodSpec

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def get_method(spec: MethodSpec[Any]) -> type[Method[Any]]:
    """The class that trains ``spec``.

    Raises:
        KeyError: no class is registered for it (its module in ``mat/methods/`` lacks ``@register_method``).
    """
    if spec.name in METHODS:
        return METHODS[spec.name]
    raise KeyError(f"method {spec.name!r} has a spec but no class: decorate its Method subclass with "
                   f"@register_method in a module of mat/methods/")


__all__ = ["METHODS", "Method", "get_method", "register_method"]
