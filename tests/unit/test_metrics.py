"""Metrics against scikit-learn, scipy and closed forms; properties with hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from mia_checks import metrics

labels_and_scores = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n),
    )
)


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@settings(max_examples=100, deadline=None)
def test_clopper_pearson_matches_scipy_exact_interval(kn):
    k, n = kn
    low, high = metrics.clopper_pearson(k, n, 0.95)
    ref = binomtest(k, n).proportion_ci(0.95, method="exact")
    assert low == pytest.approx(ref.low, abs=1e-9)
    assert high == pytest.approx(ref.high, abs=1e-9)
    assert low <= k / n <= high


def test_clopper_pearson_width_at_100_per_side_is_about_plus_minus_007():
    # ATTACKS.md: with 100 per side a 95% interval on accuracy is about ±0.07.
    low, high = metrics.clopper_pearson(100, 200)
    assert 0.13 < high - low < 0.15


def test_tpr_at_fpr_is_nan_when_non_member_count_cannot_measure_it():
    y = np.r_[np.ones(50), np.zeros(50)]
    s = np.linspace(1, 0, 100)  # every member scores above every non-member
    assert math.isnan(metrics.tpr_at_fpr(y, s, 0.01))  # 1/50 > 0.01
    assert metrics.tpr_at_fpr(y, s, 0.02) == 1.0


def test_tpr_at_fpr_on_a_hand_computed_curve():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # 10 non-members
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.85, 0.5, 0.4, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0])
    # At FPR 0.1 (one false positive: 0.85) the best threshold flags 0.9, 0.85 → TPR 1/4 … then 0.8 → 2/4.
    assert metrics.tpr_at_fpr(y, s, 0.1) == 0.5
    assert metrics.tpr_at_fpr(y, s, 0.2) == 0.5  # two false positives buy nothing more here
    assert math.isnan(metrics.tpr_at_fpr(y, s, 0.0999))  # below 1/10


@given(st.integers(0, 50), st.integers(0, 50))
@settings(max_examples=100, deadline=None)
def test_epsilon_lower_bound_closed_form(fp, fn):
    n = 50
    eps = metrics.epsilon_lower_bound(fp, n, fn, n, alpha=0.05)
    fpr_ub = metrics.clopper_pearson(fp, n, 0.95)[1]
    fnr_ub = metrics.clopper_pearson(fn, n, 0.95)[1]
    expected = max([0.0] + [math.log((1 - a) / b) for a, b in ((fnr_ub, fpr_ub), (fpr_ub, fnr_ub)) if 1 - a > 0])
    assert eps == pytest.approx(expected)
    assert eps >= 0


def test_epsilon_is_zero_for_a_guessing_attack_and_grows_with_a_perfect_one():
    assert metrics.epsilon_lower_bound(25, 50, 25, 50) == 0.0
    perfect = metrics.epsilon_lower_bound(0, 1000, 0, 1000)
    # Upper bound of FPR with 0/1000 at one-sided 2.5% is 1 - 0.025**(1/1000) ≈ 0.00368: ε ≈ ln(0.996/0.00368).
    assert perfect == pytest.approx(math.log((1 - 0.003682) / 0.003682), rel=1e-3)


def test_accuracy_and_advantage():
    assert metrics.accuracy([1, 0, 1, 0], [1, 0, 0, 0]) == 0.75
    assert metrics.advantage(0.75, 0.25) == 0.5


@given(labels_and_scores)
@settings(max_examples=50, deadline=None)
def test_delong_auc_matches_sklearn_and_its_interval_contains_it(pair):
    pos, neg = pair
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[pos, neg]
    estimate = metrics.auc_interval(y, s, 0.95)
    assert estimate.value == pytest.approx(roc_auc_score(y, s))
    assert 0 <= estimate.low <= estimate.value <= estimate.high <= 1


def test_delong_variance_by_hand():
    # Members 0.9, 0.4; non-members 0.5, 0.1: V10 = (1, 0.5), V01 = (0.5, 1); AUC 0.75,
    # Var = s²(V10)/2 + s²(V01)/2 = 0.125/2 + 0.125/2.
    auc, variance = metrics.auc_delong(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1]))
    assert auc == 0.75 and variance == pytest.approx(0.125)


def test_auc_lower_bound_false_alarm_rate_under_the_null_is_at_most_its_level():
    """32 vs 32 scores from one distribution, 2,000 seeded draws: the one-sided 5% bound exceeds 0.5 in
    about 5% of them (binomial 99.9% slack: at most 7%), the gate's Bonferroni level 0.05/11 in ≤ 1%."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(32), np.zeros(32)]
    draws = rng.normal(size=(2000, 64))
    at_5 = np.mean([metrics.auc_lower_bound(y, s, 0.05) > 0.5 for s in draws])
    at_gate = np.mean([metrics.auc_lower_bound(y, s, 0.05 / 11) > 0.5 for s in draws])
    assert at_5 <= 0.07 and at_gate <= 0.01, (at_5, at_gate)
    # and it has power: a shift of one standard deviation (AUC ≈ 0.76) clears the gate's 0.55 in most
    # draws (measured 77% of 200)
    shifted = np.mean([metrics.auc_lower_bound(y, s + y, 0.05 / 11) > 0.55 for s in draws[:200]])
    assert shifted > 0.6, shifted


def test_auc_within_strata_is_the_pair_weighted_mean_of_the_strata_and_one_stratum_is_plain_delong():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    s = rng.normal(size=60) + 0.5 * y
    strata = rng.integers(0, 3, 60)
    auc, variance = metrics.auc_delong(y, s, strata)
    pairs = [(y[strata == k].sum() * (strata == k).sum() - y[strata == k].sum() ** 2) for k in range(3)]
    per_stratum = [roc_auc_score(y[strata == k], s[strata == k]) for k in range(3)]
    assert auc == pytest.approx(np.dot(pairs, per_stratum) / sum(pairs))
    assert 0 < variance < 1
    assert metrics.auc_delong(y, s, np.zeros(60, int)) == metrics.auc_delong(y, s)
    # Scores shifted stratum by stratum leave the within-strata AUC alone (not the pooled one).
    shifted = s + 10 * strata
    assert metrics.auc_delong(y, shifted, strata) == pytest.approx((auc, variance))
    assert metrics.auc_delong(y, shifted)[0] != pytest.approx(auc)


def test_auc_interval_variance_factor_widens_both_ends_and_negative_skewness_only_the_upper_one():
    rng = np.random.default_rng(6)
    y = np.r_[np.ones(40, int), np.zeros(40, int)]
    s = rng.normal(size=80) + 0.3 * y
    plain = metrics.auc_interval(y, s)
    doubled = metrics.auc_interval(y, s, variance_factor=2.0)
    assert doubled.value - doubled.low == pytest.approx(math.sqrt(2) * (plain.value - plain.low))
    assert doubled.high - doubled.value == pytest.approx(math.sqrt(2) * (plain.high - plain.value))
    skewed = metrics.auc_interval(y, s, variance_factor=2.0, skewness=-0.4)
    sigma = (doubled.value - doubled.low) / 1.959964
    assert skewed.low == pytest.approx(doubled.low)
    assert skewed.high - doubled.high == pytest.approx(0.4 * (1.959964**2 - 1) / 6 * sigma)
    assert metrics.auc_lower_bound(y, s, 0.01, variance_factor=2.0) < metrics.auc_lower_bound(y, s, 0.01)
