"""What a page may say of a paired comparison: never more than its interval supports.

A comparison is the mean of per-seed differences with its interval, the paired t-test p, the exact Wilcoxon
p and the number of pairs (:func:`analysis.comparison.paired_stats`). :func:`verdict` reads the interval;
:func:`claim` writes the sentence: "no difference detectable with n seeds" where the interval holds 0;
"nothing concluded" where every seed gave the same non-zero difference (a point interval, no t-test: a
coarse metric on few seeds, such as accuracy on a small dev half, ties); else the difference with both
p-values and whether it holds once a table's comparisons are taken together
(Holm's adjusted p, :func:`holm_within`). Used by the component ladder (:func:`analysis.ladder.findings`)
and the benchmark page (:mod:`analysis.benchmark`).
"""

from __future__ import annotations

import math
from typing import Hashable, Sequence

import pandas as pd

from analysis.intervals import holm
from analysis.tables import fmt_signed, p_clause

NO_SPREAD = "no spread"


def verdict(d: float, lo: float, hi: float, n: int) -> str | None:
    """``"excludes"``, ``"holds"`` (the interval and 0), ``"no spread"`` (a non-zero difference that is the
    same on every seed: the interval is the point (d, d), which excludes 0 by no evidence, and there is no
    t-test), or None where nothing can be said (< 2 pairs)."""
    if n < 2 or pd.isna(d):
        return None
    if pd.isna(lo) or lo <= 0 <= hi:
        return "holds"
    return NO_SPREAD if lo == hi else "excludes"


def holm_within(groups: Sequence[Hashable], p_values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Holm's adjusted p of each comparison within its group (:func:`analysis.intervals.holm`), and the number
    of comparisons with a p in that group (the family each adjusted p is over).

    Args:
        groups: the group of each comparison (a table: e.g. its (model, task)).
        p_values: the raw p of each comparison, NaN where it has none (it then counts in no family).
    """
    adjusted, family = [math.nan] * len(p_values), [0] * len(p_values)
    for key in dict.fromkeys(groups):
        idx = [j for j, k in enumerate(groups) if k == key]
        for j, a in zip(idx, holm([p_values[j] for j in idx])):
            adjusted[j] = float(a)
        size = sum(not pd.isna(p_values[j]) for j in idx)
        for j in idx:
            family[j] = size
    return adjusted, family


def claim(what: str, label: str, d: float, lo: float, hi: float, n: int, t_p: float, w_p: float,
          holm_p: float, family: int, alpha: float = 0.05, tail: str = "") -> str:
    """The sentence for one comparison (module docstring).

    Args:
        what: the comparison's name (``STS-B, mat − vanilla``); ``label``: the reference arm's name.
        d, lo, hi, n: the mean per-seed difference, its interval and the number of pairs.
        t_p, w_p: the paired t-test p and the exact Wilcoxon signed-rank p.
        holm_p, family: Holm's adjusted p and the number of comparisons it is adjusted over.
        alpha: the level of Holm's correction.
        tail: text appended to a sentence that reaches a conclusion (what another selection gives).
    """
    found = verdict(d, lo, hi, int(n))
    if n == 0:
        return f"{what}: no seeds in common ({label} has no results here, or ran other seeds)."
    if found is None:
        return f"{what}: one paired seed only: nothing to conclude."
    if found == "holds":
        return (f"{what}: no difference detectable with {int(n)} seeds ({fmt_signed(d)}, interval "
                f"[{fmt_signed(lo)}, {fmt_signed(hi)}] holds 0).{tail}")
    if found == NO_SPREAD:
        return (f"{what}: {fmt_signed(d)} on each of the {int(n)} seeds, with no spread, so no interval and "
                f"no t-test (Wilcoxon {p_clause(w_p)}): nothing concluded.{tail}")
    held = "holds" if holm_p < alpha else "does not hold"
    return (f"{what}: {fmt_signed(d)} points, interval [{fmt_signed(lo)}, {fmt_signed(hi)}] excludes 0 "
            f"(paired t {p_clause(t_p)}, Wilcoxon {p_clause(w_p)}, {int(n)} seeds); Holm over the table's "
            f"{family} comparisons: {p_clause(holm_p)}, {held} at {alpha:.0%}.{tail}")
