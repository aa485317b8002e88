"""The figures' look, set per figure with matplotlib alone (no pyplot, no rcParams changed).

* :func:`new_figure`: a figure on its own Agg canvas whose axes have :func:`grid_look`.
* :func:`grid_look`: white background, light grey grid lines behind the data, light grey spines.
* :func:`colours_for`: a fixed qualitative colour per arm (or rung, or group), in order; :func:`muted` a
  softer version of one for filled areas (box plot boxes).
"""

from __future__ import annotations

import colorsys
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

__all__ = ["GRID", "INK", "LINES", "colours_for", "grid_look", "muted", "new_figure"]

GRID = "0.8"  # grid lines and spines: light grey (80% of white)
INK = "0.15"  # tick labels, axis labels and titles: near black
LINES = "0.24"  # a box plot's outlines, medians, whiskers and fliers: dark grey


def colours_for(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A fixed qualitative colour per name, in order: matplotlib's ``tab10`` (its default colour cycle),
    starting again after 10 names."""
    tab10 = colormaps["tab10"]
    cycle = [to_rgb(rgba) for rgba in tab10(np.arange(tab10.N))]  # (10, 4) RGBA rows -> 10 RGB triples
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def muted(rgb: tuple[float, float, float], saturation: float = 0.75) -> tuple[float, float, float]:
    """``rgb`` with its HLS saturation scaled by ``saturation`` (hue and lightness kept): the box plot fills,
    a little softer than the lines and points of the same arm."""
    h, lightness, s = colorsys.rgb_to_hls(*rgb)
    return colorsys.hls_to_rgb(h, lightness, s * saturation)


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4),
               **kw: Any) -> tuple[Figure, np.ndarray]:
    """A figure on its own Agg canvas (no pyplot, no global state) and its (nrows, ncols) axes array, each
    axes with :func:`grid_look`; ``kw`` goes to :meth:`Figure.subplots`."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    for ax in axes.flat:
        grid_look(ax)
    return fig, axes


def grid_look(ax: Axes) -> None:
    """Give ``ax`` its look through the axes' own setters (no rcParams): white background, light grey grid
    lines behind the data, light grey spines, no tick marks, near-black labels and title."""
    ax.set_facecolor("white")
    ax.set_axisbelow(True)
    ax.grid(True, color=GRID, linestyle="-")
    for spine in ax.spines.values():
        spine.set_edgecolor(GRID)
    ax.tick_params(which="both", bottom=False, left=False, top=False, right=False, labelcolor=INK)
    for text in (ax.xaxis.label, ax.yaxis.label, ax.title):
        text.set_color(INK)
