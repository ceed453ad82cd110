"""The gate's decision rules on synthetic out-of-fold scores."""

from __future__ import annotations

import numpy as np
import pytest

from mia_checks import metrics
from mia_checks.gate import GateRule, UnmeasurableError, decide
from mia_checks.protocol import OutOfFold
from mia_checks.results import evaluate


def result_from(scores: np.ndarray, labels: np.ndarray, attack: str = "II-P"):
    oof = OutOfFold(labels, scores, (scores >= 0.5).astype(int))
    return evaluate(attack, "reconstruction", "partial-knowledge", oof)


def separable(n: int = 32):
    labels = np.r_[np.ones(n, int), np.zeros(n, int)]
    return result_from(np.r_[np.full(n, 0.9), np.full(n, 0.1)], labels)


@pytest.mark.parametrize("rule", ["bound", "point"])
@pytest.mark.parametrize("metric", ["accuracy", "auc", "advantage"])
def test_a_perfect_attack_fails_the_gate(rule, metric):
    verdict = decide(separable(), GateRule(metric=metric, rule=rule))
    assert verdict.leaks and verdict.label == "FAIL"
    assert f"{metric} = 1.000" in verdict.message and "threshold" in verdict.message


def test_threshold_per_attack_overrides_the_default():
    gate = GateRule(threshold=0.6, per_attack={"II-P": 1.0})
    assert gate.threshold_for("II-P") == 1.0 and gate.threshold_for("IV") == 0.6
    assert not decide(separable(), gate).leaks


def test_tpr_at_low_fpr_with_too_few_nonmembers_is_unmeasurable_not_a_pass():
    with pytest.raises(UnmeasurableError, match="cannot be measured with 32 non-members"):
        decide(separable(), GateRule(metric="tpr@1%fpr"))
    assert decide(separable(100), GateRule(metric="tpr@1%fpr")).leaks


def test_point_estimate_above_threshold_with_wide_interval_is_within_noise():
    labels = np.r_[np.ones(10, int), np.zeros(10, int)]
    scores = np.r_[np.full(7, 0.8), np.full(3, 0.2), np.full(3, 0.8), np.full(7, 0.2)]  # accuracy 0.7
    point = decide(result_from(scores, labels), GateRule(rule="point"))
    bound = decide(result_from(scores, labels), GateRule(rule="bound"))
    assert point.leaks and point.within_noise and point.label == "FAIL (within noise)"
    assert not bound.leaks and bound.within_noise and "add images" in bound.message


def test_bound_rule_false_alarm_rate_under_the_null_is_at_most_alpha():
    """Six independent guessing attacks on 32 vs 32, 400 seeded runs: the whole run should fail at most
    α = 5% of the time. Binomial tolerance: we fail this test if more than 9% of runs fail (a false alarm
    of this test itself has probability < 0.1% if the true rate is 5%)."""
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(32, int), np.zeros(32, int)]
    gate = GateRule(rule="bound", attacks_in_run=6)
    failures = 0
    for _ in range(400):
        results = [result_from(rng.random(64), labels, a) for a in ("I-P", "I-S", "II-P", "II-S", "III", "IV")]
        failures += any(decide(r, gate).leaks for r in results)
    assert failures / 400 <= 0.09


def test_the_auc_bound_reads_the_protocol_s_variance_factor_and_folds():
    """Cross-validated scores carry how their AUC is read (protocol.OutOfFold): the gate's bound widens
    with the variance factor and compares within folds when told to."""
    from dataclasses import replace

    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(32, int), np.zeros(32, int)]
    scores = 1 / (1 + np.exp(-(rng.normal(size=64) + 1.5 * labels)))
    plain = OutOfFold(labels, scores, (scores >= 0.5).astype(int), folds=np.arange(64) % 4)
    doubled = replace(plain, auc_variance_factor=2.0)
    gate = GateRule(rule="bound")
    lows = [decide(evaluate("II-P", "r", "partial-knowledge", oof), gate).statistic for oof in (plain, doubled)]
    value = evaluate("II-P", "r", "partial-knowledge", plain).auc.value
    assert value - lows[1] == pytest.approx(np.sqrt(2) * (value - lows[0]))
    within = evaluate("II-P", "r", "partial-knowledge", replace(plain, auc_within_folds=True))
    assert within.auc.value == pytest.approx(metrics.auc_delong(labels, scores, np.arange(64) % 4)[0])
