"""Looking names up: the one "Did you mean ...?" rule every registry of the project uses, and the error
that names a bad value by its field (:class:`FieldError`).

Tasks, methods, optimizers, configuration keys and command-line flags all answer an unknown name the same
way: the name as given, the closest valid name, and every valid name. No torch here.
"""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest of ``valid`` to ``name``, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str], valid_label: str | None = None) -> str:
    """The message for an unknown ``name`` of ``kind``: ``unknown task 'sst'. Did you mean 'sst2'? Valid
    tasks: ...``.

    Args:
        kind: what was looked up (``task``, ``method``, ``parameter``...).
        name: the name as the user gave it.
        valid: the valid names, in the order to list them.
        valid_label: how to introduce the list (default ``Valid <kind>s``).
    """
    names = list(valid)
    label = valid_label or f"Valid {kind}s"
    return f"unknown {kind} {name!r}.{did_you_mean(name.strip().lower(), names)} {label}: {', '.join(names)}"


class FieldError(ValueError):
    """A bad value of one configuration field: ``str(e)`` is ``field=value problem``.

    ``field`` lets a caller name the field as the user wrote it (:meth:`renamed`): the command line names
    its flag (``--sampling_times_delta=-1 is out of range [0, 10000]``), an NNI trial its parameter key.
    """

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(f"{field}={value!r} {problem}")
        self.field, self.value, self.problem = field, value, problem

    def renamed(self, name: str) -> FieldError:
        """The same error about ``name``: a flag (``--sampling_times_delta``) or a key (``beta``)."""
        return FieldError(name, self.value, self.problem)
