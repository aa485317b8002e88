"""Figures drawn and saved in child processes while the report goes on.

Drawing and saving a figure (PNG and PDF) is a third of a large report's time and needs nothing the report
computes after it. Where the platform can ``fork`` (Linux, macOS), :class:`FigureJobs` draws each figure in a
forked child, which inherits the data and writes the files, while the parent goes on with the tables; at most
``max_children`` children run at once, and :meth:`FigureJobs.wait` (called before the page is written) waits
for all of them and raises if one failed, naming the figure. The files are the same bytes either way: the
child runs the same drawing code on the same data. Elsewhere, or with ``MAT_ANALYSIS_FIGURE_PROCESSES=0``
in the environment, figures are drawn in line.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Callable

import matplotlib.backends.backend_pdf  # noqa: F401  (see below)
from matplotlib import font_manager
from matplotlib.figure import Figure

from analysis import plots
from analysis.forking import exit_code, fork_call

ENV = "MAT_ANALYSIS_FIGURE_PROCESSES"

# What every figure needs the first time and keeps: the PDF backend (it imports fontTools, ~0.3 s) and the
# default font. Loaded once here, in the parent, so that the forked children inherit them instead of each
# loading its own copy.
font_manager.get_font(font_manager.findfont(font_manager.FontProperties()))


def forking_allowed() -> bool:
    """Whether figures go to child processes: ``os.fork`` exists and ``$MAT_ANALYSIS_FIGURE_PROCESSES`` is
    not ``0``."""
    return hasattr(os, "fork") and os.environ.get(ENV, "1") != "0"


class FigureJobs:
    """Draws and saves figures, in forked children where allowed (module docstring).

    Args:
        max_children: children running at once (further jobs wait for the oldest).
        fork: draw in children; None: :func:`forking_allowed`.
    """

    def __init__(self, max_children: int = 3, fork: bool | None = None) -> None:
        self.max_children = max(1, max_children)
        self.fork = forking_allowed() if fork is None else fork
        self.running: list[tuple[int, Path]] = []
        self.failed: list[str] = []

    def submit(self, make: Callable[[], Figure], stem: Path) -> list[Path]:
        """Draw ``make()`` and save it as ``<stem>.png`` and ``<stem>.pdf``
        (:func:`analysis.plots.save_figure`); return both paths (written once :meth:`wait` returns)."""
        if not self.fork:
            return plots.save_figure(make(), stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        while len(self.running) >= self.max_children:
            self._reap(self.running.pop(0))
        gc.freeze()  # the child's collections then leave the parent's objects (and their pages) alone
        pid = fork_call(lambda: plots.save_figure(make(), stem))
        self.running.append((pid, stem))
        return [stem.with_suffix(".png"), stem.with_suffix(".pdf")]

    def _reap(self, job: tuple[int, Path]) -> None:
        pid, stem = job
        code = exit_code(pid)
        if code != 0:
            self.failed.append(f"{stem.name} (exit {code})")

    def wait(self) -> None:
        """Wait for every child.

        Raises:
            RuntimeError: a figure could not be drawn or saved (its traceback is on stderr).
        """
        while self.running:
            self._reap(self.running.pop(0))
        if self.failed:
            failed, self.failed = self.failed, []
            raise RuntimeError(f"figure(s) not written: {', '.join(failed)}; the traceback is above")
