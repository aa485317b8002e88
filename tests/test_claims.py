"""What a comparison's sentence may say (analysis.claims): never more than the interval supports, and nothing
where every seed gave the same difference (accuracy on a small dev half ties: 138 examples, steps of 0.72)."""

from __future__ import annotations

import math

from analysis.claims import NO_SPREAD, claim, verdict
from analysis.comparison import paired_stats


def test_a_difference_the_same_on_every_seed_concludes_nothing() -> None:
    # two seeds, r3f 3 of 138 examples ahead on each: d = 100 * 3/138 = +2.17 twice, equal up to float rounding
    # (2.173913043478265 and 2.173913043478258): no spread, so no interval and no t-test, not a p of ~1e-13
    r3f, vanilla = [100 * 76 / 138, 100 * 79 / 138], [100 * 73 / 138, 100 * 76 / 138]
    assert r3f[0] - vanilla[0] != r3f[1] - vanilla[1]
    s = paired_stats(r3f, vanilla)
    assert s.n_pairs == 2 and math.isclose(s.mean_diff, 300 / 138) and s.ci_low == s.ci_high and math.isnan(s.p_value)
    assert verdict(s.mean_diff, s.ci_low, s.ci_high, s.n_pairs) == NO_SPREAD
    text = claim("RTE, r3f − vanilla", "vanilla", s.mean_diff, s.ci_low, s.ci_high, s.n_pairs, s.p_value, s.wilcoxon_p,
                 math.nan, 8)
    assert text == ("RTE, r3f − vanilla: +2.17 on each of the 2 seeds, with no spread, so no interval and no t-test "
                    "(Wilcoxon p=0.5): nothing concluded.")
    assert "excludes" not in text and "Holm" not in text


def test_verdicts_of_an_interval() -> None:
    assert verdict(2.0, 1.0, 3.0, 5) == "excludes"
    assert verdict(-2.0, -3.0, -1.0, 5) == "excludes"
    assert verdict(1.0, -1.0, 3.0, 5) == "holds"
    assert verdict(0.0, 0.0, 0.0, 3) == "holds"  # identical scores on every seed: no difference
    assert verdict(2.0, 2.0, 2.0, 3) == NO_SPREAD
    assert verdict(2.0, math.nan, math.nan, 1) is None


def test_a_difference_with_spread_still_gets_its_interval_and_holm() -> None:
    s = paired_stats([31.0, 33.0, 30.0, 35.0, 28.0], [24.0, 27.0, 25.0, 28.0, 20.0])
    text = claim("CoLA, vanilla_steps − vanilla", "vanilla", s.mean_diff, s.ci_low, s.ci_high, s.n_pairs, s.p_value,
                 s.wilcoxon_p, 0.01, 4)
    assert "excludes 0" in text and "Holm over the table's 4 comparisons: p=0.01, holds at 5%" in text
