"""The statistics module against closed forms and a peer package (scipy)."""

import math

import numpy as np
import pytest
from scipy import stats

from probes.statistics import (
    jackknife,
    paired_t,
    plus_minus,
    rank_correlation,
    spearman,
    spread,
    welch_t,
)


def test_spread_is_the_sample_sd_and_its_standard_error():
    s = spread([1.0, 2.0, 4.0, float("nan")])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3)
    assert s.sd == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert s.se == pytest.approx(s.sd / math.sqrt(3))
    one = spread([5.0])
    assert one.mean == 5.0 and math.isnan(one.sd) and math.isnan(one.se)


def test_jackknife_of_a_mean_over_equal_groups_is_the_sd_of_group_means_over_root_g():
    # For the mean of G equal-size groups, the delete-one-group jackknife SE equals
    # sd(group means) / sqrt(G) exactly.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(8, 25))
    parts = np.stack([values.sum(1), np.full(8, 25.0)], axis=1)
    estimate, se = jackknife(parts, lambda t: t[0] / t[1])
    assert estimate == pytest.approx(values.mean())
    assert se == pytest.approx(values.mean(1).std(ddof=1) / math.sqrt(8))


def test_jackknife_of_one_group_has_no_error():
    estimate, se = jackknife(np.array([[3.0, 1.0]]), lambda t: t[0] / t[1])
    assert estimate == 3.0 and math.isnan(se)


def test_spearman_matches_scipy_with_ties():
    x = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 7.0])
    y = np.array([2.0, 1.0, 4.0, 4.0, 6.0, 5.0, 3.0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman(x, np.ones_like(x)))


def test_rank_correlation_of_a_monotone_relation():
    x = np.arange(8.0)
    r = rank_correlation(x, x**2, resamples=500)
    assert r.rho == 1.0 and r.excludes_zero
    # Only the identity arrangement (and none other) reaches |rho| = 1 among 8! orders.
    assert r.p_value < 0.01
    assert r.low <= r.rho <= r.high


def test_rank_correlation_of_unrelated_values_includes_zero():
    rng = np.random.default_rng(3)
    r = rank_correlation(rng.normal(size=30), rng.normal(size=30), resamples=500)
    assert not r.excludes_zero and r.p_value > 0.05


def test_rank_correlation_leaves_out_nan_pairs():
    r = rank_correlation([1.0, 2.0, np.nan, 3.0, 4.0], [1.0, 2.0, 5.0, 3.0, 4.0], resamples=50)
    assert r.n == 4 and r.rho == 1.0


def test_plus_minus_shows_an_error_only_when_there_is_one():
    assert plus_minus(0.81234, 0.0123) == "0.812 ± 0.012"
    assert plus_minus(0.0456, 0.0012, "+.3g", ".2g") == "+0.0456 ± 0.0012"
    assert plus_minus(0.5, 0.0) == plus_minus(0.5, float("nan")) == "0.500"
    assert plus_minus(float("nan"), 0.1) == "nan"


@pytest.mark.parametrize("d", [[0.01, 0.03, 0.02], [0.5, -0.1, 0.2, 0.3], [-0.02, -0.01, 0.0]])
def test_paired_t_is_scipys_one_sided_test(d):
    test = paired_t(d, alpha=0.05)
    theirs = stats.ttest_1samp(d, 0.0, alternative="greater")
    assert test.t == pytest.approx(theirs.statistic) and test.n == len(d)
    assert test.beyond == (theirs.pvalue < 0.05)  # t above the bar exactly when p < alpha
    assert test.bar == pytest.approx(stats.t.ppf(0.95, len(d) - 1))


def test_paired_t_of_one_pair_is_never_beyond():
    test = paired_t([0.4])
    assert math.isnan(test.t) and not test.beyond


def test_welch_t_is_scipys_one_sided_test_with_the_units_given():
    a, b = [0.92, 0.95, 0.93, 0.90], [0.70, 0.85, 0.78, 0.80, 0.75]
    ours = welch_t(a, b, alpha=0.05)
    theirs = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert ours.t == pytest.approx(theirs.statistic) and ours.beyond == (theirs.pvalue < 0.05)
    # Fewer independent units than values: the standard errors over the units.
    fewer = welch_t(a, b, units=(2, 3))
    by_stats = stats.ttest_ind_from_stats(np.mean(a), np.std(a, ddof=1), 2, np.mean(b),
                                          np.std(b, ddof=1), 3, equal_var=False)  # fmt: skip
    assert fewer.t == pytest.approx(by_stats.statistic) and fewer.t < ours.t
    assert fewer.bar == pytest.approx(stats.t.ppf(0.95, fewer.df)) and fewer.df < ours.df
