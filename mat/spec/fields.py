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

from mat.spec.naming import FieldError

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
            check_field(f, value)


def type_name(f: dataclasses.Field[Any]) -> str:
    """'float', 'int | None'...: the annotation as text (HfArgumentParser resolves it in place)."""
    t = f.type
    if isinstance(t, str):
        return t
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def check_field(f: dataclasses.Field[Any], value: Any) -> None:
    """Check ``value`` of field ``f``.

    Raises:
        FieldError: None where the field is not optional, the wrong type, not finite, out of range or not
            one of the choices (the message names the field and what is allowed; the command line renames it
            to its flag, an NNI trial to its parameter key).
    """
    if value is None:
        if "None" in type_name(f):
            return
        raise FieldError(f.name, value, "must be set")
    rng = f.metadata.get("range")
    choices = f.metadata.get("choices")
    ftype = type_name(f)
    if ftype.startswith("bool"):
        if not isinstance(value, bool):
            raise FieldError(f.name, value, "must be true or false")
        return
    if ftype.startswith(("int", "float")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(f.name, value, f"must be a number, not a {type(value).__name__}")
        if not math.isfinite(value):
            raise FieldError(f.name, value, "must be finite")
        if rng is not None and not (rng[0] <= value <= rng[1]):
            raise FieldError(f.name, value, f"is out of range [{rng[0]}, {rng[1]}]")
    if choices is not None and value not in choices:
        raise FieldError(f.name, value, f"is not allowed: choose one of {list(choices)}")
