"""The significance tests of the seed comparisons, on ``scipy.special`` alone.

``scipy.stats`` takes about 0.7 s to import (it builds its distributions' docstrings), more than a report
spends on every test it runs. These are the same tests, computed from Student's t distribution function
(``scipy.special.stdtr``, which ``scipy.stats.t`` itself evaluates) and, for Wilcoxon, from the exact null
distribution counted here; ``tests/test_analysis_significance.py`` checks each against ``scipy.stats``:

* :func:`paired_t`: the paired t-test, ``scipy.stats.ttest_rel(a, b)`` on ``d = a - b``;
* :func:`welch_t`: Welch's unequal-variance t-test, ``scipy.stats.ttest_ind(a, b, equal_var=False)``;
* :func:`wilcoxon_exact_p`: the exact Wilcoxon signed-rank test,
  ``scipy.stats.wilcoxon(d, zero_method="wilcox", method="exact")``.

All p-values are two-sided.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

__all__ = ["paired_t", "t_two_sided_p", "welch_t", "wilcoxon_exact_p", "wilcoxon_null"]


def t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for T ~ Student's t with ``dof`` degrees of freedom: ``2 F(-|t|)``."""
    from scipy.special import stdtr  # here, not at the top: see analysis.intervals.t_quantile

    return float(2.0 * stdtr(dof, -abs(t)))


def paired_t(d: np.ndarray) -> tuple[float, float, float]:
    """The paired t-test of the differences ``d`` (shape (n,)): ``(t, dof, p)`` with
    ``t = mean(d) / (sd(d) / sqrt(n))`` (sd with ddof 1) and ``dof = n - 1``; NaNs for n < 2 or sd = 0."""
    d = np.asarray(d, dtype=float)
    n = d.size
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if not n > 1 or not sd > 0:
        return math.nan, math.nan, math.nan
    t = float(d.mean()) / (sd / math.sqrt(n))
    return t, float(n - 1), t_two_sided_p(t, n - 1)


def welch_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Welch's t-test of ``mean(a) - mean(b)`` (shapes (n_a,), (n_b,)): ``(t, dof, p)``, with
    ``t = (mean(a) - mean(b)) / sqrt(v_a + v_b)``, ``v = var(ddof=1) / n``, and the Welch-Satterthwaite
    ``dof = (v_a + v_b)^2 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1))``; NaNs for fewer than 2 values on a
    side or no variance."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if not va + vb > 0:
        return math.nan, math.nan, math.nan
    t = float((a.mean() - b.mean()) / math.sqrt(va + vb))
    dof = float((va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)))
    return t, dof, t_two_sided_p(t, dof)


@functools.lru_cache(maxsize=64)
def wilcoxon_null(n: int) -> np.ndarray:
    """The exact null distribution of the signed-rank sum ``W+`` of ``n`` untied non-zero differences:
    ``P(W+ = w)`` for ``w = 0 .. n(n+1)/2`` (shape (n(n+1)/2 + 1,)). Each rank ``k`` joins ``W+`` with
    probability 1/2: ``P_k(w) = (P_{k-1}(w) + P_{k-1}(w - k)) / 2`` (halved at every step, not counted and
    divided by 2^n at the end, so no count overflows at large n)."""
    pmf = np.ones(1)
    for k in range(1, n + 1):
        grown = np.zeros(pmf.size + k)
        grown[:pmf.size] += pmf / 2
        grown[k:] += pmf / 2
        pmf = grown
    return pmf


def wilcoxon_exact_p(d: np.ndarray) -> float:
    """The two-sided exact Wilcoxon signed-rank p of the differences ``d`` (shape (n,)): zero differences
    dropped, ``|d|`` ranked (ties averaged), ``W+`` the rank sum of the positive ones, and
    ``p = min(1, 2 min(P(W+ >= floor(w)), P(W+ <= ceil(w))))`` under :func:`wilcoxon_null` of the non-zero
    count (rounding outwards: the null distribution is exact without ties, conservative with them, as in
    scipy). NaN when every difference is zero."""
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return math.nan
    ranks = pd.Series(np.abs(d)).rank(method="average").to_numpy()  # ties share their mean rank
    w = float(ranks[d > 0].sum())
    pmf = wilcoxon_null(int(d.size))
    upper = float(pmf[math.floor(w):].sum())
    lower = float(pmf[:math.ceil(w) + 1].sum())
    return min(1.0, 2.0 * min(upper, lower))
