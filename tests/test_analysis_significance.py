"""The seed comparisons' tests (analysis.significance) against hand-computed values and scipy.stats."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from analysis.significance import paired_t, welch_t, wilcoxon_exact_p, wilcoxon_null


def test_wilcoxon_null_by_enumeration() -> None:
    # n = 3: the 8 sign patterns give W+ = 0, 1, 2, 3, 3, 4, 5, 6
    assert wilcoxon_null(3).tolist() == [1 / 8, 1 / 8, 1 / 8, 2 / 8, 1 / 8, 1 / 8, 1 / 8]
    for n in (1, 4, 7):
        sums = [sum(k for k, s in zip(range(1, n + 1), signs) if s) for signs in product((0, 1), repeat=n)]
        want = np.bincount(sums, minlength=n * (n + 1) // 2 + 1) / 2**n
        np.testing.assert_array_equal(wilcoxon_null(n), want)
    big = wilcoxon_null(1200)  # 2^1200 would overflow a count
    assert big.size == 1200 * 1201 // 2 + 1 and np.isfinite(big).all() and abs(big.sum() - 1) < 1e-9


def test_wilcoxon_hand_values() -> None:
    # five differences of one sign: the floor 2 / 2^5
    assert wilcoxon_exact_p(np.array([1.0, 1.5, 0.5, 1.5, 1.5])) == 2 / 32
    # ranks of |d| = 1, 2, 3, 4: W+ = 1 + 4 = 5 = the mean, so p = min(1, 2 P(W+ <= 5)) = 1
    assert wilcoxon_exact_p(np.array([0.1, -0.2, -0.3, 0.4])) == 1.0
    # W+ = 1 of n = 4: P(W+ <= 1) = 2/16, p = 4/16; a zero difference is dropped first
    assert wilcoxon_exact_p(np.array([-0.4, 0.1, -0.2, -0.3, 0.0])) == 0.25
    assert math.isnan(wilcoxon_exact_p(np.zeros(3)))


def test_t_tests_hand_values() -> None:
    d = np.array([1.0, 1.5, 0.5, 1.5, 1.5])  # mean 1.2, sd sqrt(0.2)
    t, dof, p = paired_t(d)
    assert t == pytest.approx(1.2 / (math.sqrt(0.2) / math.sqrt(5)), rel=1e-14) and dof == 4.0
    assert 0.001 < p < 0.01
    assert all(math.isnan(x) for x in paired_t(np.array([1.0, 1.0, 1.0])))
    assert all(math.isnan(x) for x in paired_t(np.array([1.0])))
    # equal sizes and variances: Welch's dof is 2(n - 1)
    t, dof, _ = welch_t(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0]))
    assert t == pytest.approx(-1 / math.sqrt(2 / 3), rel=1e-14) and dof == pytest.approx(4.0, rel=1e-14)


@pytest.mark.parametrize("trial", range(40))
def test_same_as_scipy_stats(trial: int) -> None:
    rng = np.random.default_rng(trial)
    n = int(rng.integers(2, 16))
    a = rng.normal(80, 2, n).round(int(rng.integers(0, 3)))  # rounding makes ties and zero differences
    b = a - rng.normal(0.5, 1, n).round(int(rng.integers(0, 2)))
    d = a - b
    if d.std() > 0:
        ref = stats.ttest_rel(a, b)
        t, dof, p = paired_t(d)
        assert (t, p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12) and dof == n - 1
    if np.any(d != 0):
        ref_w = stats.wilcoxon(d, zero_method="wilcox", method="exact").pvalue
        assert wilcoxon_exact_p(d) == pytest.approx(ref_w, rel=1e-12, abs=1e-15)
    c = rng.normal(79, 3, int(rng.integers(2, 9)))
    ref_u = stats.ttest_ind(a, c, equal_var=False)
    t, _, p = welch_t(a, c)
    assert (t, p) == pytest.approx((ref_u.statistic, ref_u.pvalue), rel=1e-12)

