"""Reading many ``trial.json`` files in two processes.

Parsing and checking records is most of a large load (10,000 records: about 3 s of one core). Where the
platform can ``fork`` and there are at least :data:`MIN_FILES` files, :func:`read_files_into` forks one
child that reads the first part of the files into its own :class:`~analysis.tidy.Builder` while the parent
reads the rest (and, first, runs ``meanwhile``: the CLI imports the report's plotting modules there); the
child sends its lists back pickled through a pipe. The parent then appends the child's trials, rows and
skipped files before its own, re-issuing the child's warnings first, so the builder ends as a serial read
in path order would leave it: same trials, rows, order, skip reasons and warnings. If the child fails, the
parent reads its part itself. ``MAT_ANALYSIS_READ_PROCESSES=1`` in the environment reads serially.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from analysis.forking import exit_code, fork_call
from analysis.plain_records import add_plain
from analysis.tidy import Builder

ENV = "MAT_ANALYSIS_READ_PROCESSES"
MIN_FILES = 2000  # below this, a fork and a pickle cost more than they save
CHILD_SHARE = 0.7  # of the files, read by the child while the parent runs ``meanwhile``
_LISTS = ("trials", "params", "runs", "costs", "codes", "meta", "rows", "skipped")


def read_file_into(b: Builder, path: Path) -> None:
    """Read one record file into ``b``: the plain fast path (:func:`analysis.plain_records.add_plain`), else
    the full parse and check; a bad file is skipped with its reason."""
    read = b.read_json(path)
    if read is None or add_plain(b, read[0], str(path), read[1]):
        return
    checked = b.check_json(read[0], path)
    if checked is not None:
        b.add_record(checked[0], str(path), checked[1], read[1])


def _read(paths: Sequence[Path]) -> tuple[Builder, list[tuple[str, type[Warning]]]]:
    """``paths`` read into a new builder, with the warnings that raised (message, category), in order."""
    part = Builder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in paths:
            read_file_into(part, path)
    return part, [(str(w.message), w.category) for w in caught]


def _append(b: Builder, part: Builder, issued: list[tuple[str, type[Warning]]]) -> None:
    """Append ``part``'s lists to ``b`` (its rows' trial indices shifted past ``b``'s trials) and re-issue
    its warnings."""
    offset = len(b.trials)
    for name in _LISTS:
        items = getattr(part, name)
        if name == "rows" and offset:
            items = [(r[0] + offset, *r[1:]) for r in items]
        getattr(b, name).extend(items)
    for message, category in issued:
        warnings.warn(message, category, stacklevel=3)


def _send(paths: Sequence[Path], fd: int, other_end: int) -> None:
    """In the forked child: close the pipe's ``other_end``, read ``paths``, write the pickled lists and
    warnings to ``fd``."""
    os.close(other_end)
    part, issued = _read(paths)
    lists = {n: getattr(part, n) for n in _LISTS}
    payload = pickle.dumps((lists, issued), protocol=pickle.HIGHEST_PROTOCOL)
    with os.fdopen(fd, "wb") as out:
        out.write(payload)


def _receive(fd: int, pid: int) -> tuple[dict[str, Any], list[tuple[str, type[Warning]]]] | None:
    """The child's lists and warnings, or None when it failed."""
    with os.fdopen(fd, "rb") as src:
        data = src.read()
    if exit_code(pid) != 0:
        return None
    lists, issued = pickle.loads(data)
    return lists, issued


def read_files_into(b: Builder, paths: Sequence[Path], meanwhile: Callable[[], object] | None = None) -> None:
    """Read ``paths`` into ``b`` in path order, in two processes when worth it (module docstring); run
    ``meanwhile()`` once, in the parent, while the child reads."""
    parallel = hasattr(os, "fork") and os.environ.get(ENV, "2") != "1" and len(paths) >= MIN_FILES
    if not parallel:
        if meanwhile is not None:
            meanwhile()
        for path in paths:
            read_file_into(b, path)
        return
    # the parent also runs ``meanwhile`` (the CLI's imports take about as long as reading 2/5 of the files)
    cut = int(len(paths) * CHILD_SHARE) if meanwhile is not None else len(paths) // 2
    first, rest = paths[:cut], paths[cut:]
    r, w = os.pipe()
    pid = fork_call(lambda: _send(first, w, r))
    os.close(w)
    if meanwhile is not None:
        meanwhile()
    own, own_issued = _read(rest)
    got = _receive(r, pid)
    if got is None:  # the child failed (its traceback is on stderr): read its part here
        part, issued = _read(first)
    else:
        part, issued = Builder(), got[1]
        for name, items in got[0].items():
            setattr(part, name, items)
    _append(b, part, issued)
    _append(b, own, own_issued)
