"""Checked dataclass fields: the building blocks of every argument dataclass (:mod:`mat.spec.config`,
:mod:`mat.spec.methods`).

A field is declared with :func:`arg`, which stores its help text and its allowed range or choices in the
field's ``metadata`` (``HfArgumentParser`` turns that into the flag's help); a dataclass that inherits
:class:`Checked` checks every field's type, range and choices in ``__post_init__``, so an out-of-range value
fails when the config is built, with the field name and the allowed range in the message.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field, fields
from typing import Any, ClassVar, Iterable, Mapping

INF = math.inf


def arg(
    default: Any, help: str, rng: tuple[float, float] | None = None, choices: Iterable[Any] | None = None
) -> Any:
    """A dataclass field with its help text and its allowed ``rng`` (inclusive) or ``choices``.

    ``choices`` may be a registry (a ``Mapping``): it stays live, so a name registered later is allowed.
    """
    meta: dict[str, Any] = {"help": help}
    if rng is not None:
        meta["range"] = rng
        meta["help"] = f"{help} Allowed: [{rng[0]}, {rng[1]}]."
    if choices is not None:
        meta["choices"] = choices if isinstance(choices, Mapping) else tuple(choices)
    return field(default=default, metadata=meta)


class Checked:
    """Mixin: validate every field's type, range and choices after construction."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            check_field(type(self).__name__, f, value)


def type_name(f: dataclasses.Field[Any]) -> str:
    """'float', 'int | None'...: the annotation as text (HfArgumentParser resolves it in place)."""
    t = f.type
    if isinstance(t, str):
        return t
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def check_field(owner: str, f: dataclasses.Field[Any], value: Any) -> None:
    """Check ``value`` of field ``f`` of the dataclass named ``owner``.

    Raises:
        ValueError: None where the field is not optional, the wrong type, not finite, out of range or not
            one of the choices (the message names ``owner.field`` and what is allowed).
    """
    if value is None:
        if "None" in type_name(f):
            return
        raise ValueError(f"{owner}.{f.name} must be set")
    rng = f.metadata.get("range")
    choices = f.metadata.get("choices")
    ftype = type_name(f)
    if ftype.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"{owner}.{f.name} must be true or false, got {value!r}")
        return
    if ftype.startswith(("int", "float")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{owner}.{f.name} must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{owner}.{f.name} must be finite, got {value!r}")
        if rng is not None and not (rng[0] <= value <= rng[1]):
            raise ValueError(f"{owner}.{f.name}={value!r} is out of range: allowed [{rng[0]}, {rng[1]}]")
    if choices is not None and value not in choices:
        raise ValueError(f"{owner}.{f.name}={value!r} is not allowed: choose one of {list(choices)}")
