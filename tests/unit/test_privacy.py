"""Declared DP budgets (targets/privacy.py) and the soundness of the empirical ε lower bound against them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mia_checks import metrics
from mia_checks.errors import MiaUsageError
from mia_checks.gate import privacy_contradiction
from mia_checks.targets.privacy import PRIVACY_FILE, read_declared_privacy


def test_a_folder_without_privacy_json_declares_nothing(tmp_path):
    assert read_declared_privacy(tmp_path) is None


def test_privacy_json_is_read_with_its_details(tmp_path):
    (tmp_path / PRIVACY_FILE).write_text(json.dumps({"epsilon": 8, "delta": 1e-5, "noise_multiplier": 1.2}))
    declared = read_declared_privacy(tmp_path)
    assert (declared.epsilon, declared.delta, declared.details) == (8.0, 1e-5, {"noise_multiplier": 1.2})
    assert declared.to_dict()["source"].endswith(PRIVACY_FILE)


@pytest.mark.parametrize("content", [
    {"delta": 1e-5}, {"epsilon": 0, "delta": 1e-5}, {"epsilon": -1, "delta": 1e-5}, {"epsilon": "8", "delta": 0},
    {"epsilon": True, "delta": 0}, {"epsilon": 8}, {"epsilon": 8, "delta": 1}, {"epsilon": 8, "delta": -0.1},
    {"epsilon": float("inf"), "delta": 0}, {"epsilon": float("nan"), "delta": 0}, [8, 1e-5]])
def test_a_privacy_json_that_declares_no_valid_budget_is_a_usage_error_naming_the_file(tmp_path, content):
    (tmp_path / PRIVACY_FILE).write_text(json.dumps(content))  # Python's json writes NaN and Infinity tokens
    with pytest.raises(MiaUsageError, match=r"--mia-target: .*privacy\.json"):
        read_declared_privacy(tmp_path)


def test_unreadable_privacy_json_is_a_usage_error(tmp_path):
    (tmp_path / PRIVACY_FILE).write_text("{epsilon: 1")
    with pytest.raises(MiaUsageError, match="cannot read .*privacy.json"):
        read_declared_privacy(tmp_path)


def randomized_response(epsilon: float, n: int, rng: np.random.Generator) -> tuple[int, int]:
    """The tightest ε-DP membership oracle: it says "member" with probability e^ε/(1+e^ε) for a member and
    1/(1+e^ε) for a non-member. Returns (false positives among n non-members, false negatives among n members)."""
    p = math.exp(epsilon) / (1 + math.exp(epsilon))
    return int(rng.binomial(n, 1 - p)), int(rng.binomial(n, 1 - p))


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0, 3.0])
def test_the_epsilon_lower_bound_exceeds_the_true_epsilon_of_the_tightest_mechanism_at_most_at_its_level(epsilon):
    """Soundness (Nasr et al. 2021): against randomized response, which meets ε-DP with equality, the 95% bound
    exceeds ε in at most 5% of 2,000 seeded runs of 128 + 128 queries (its two Clopper–Pearson bounds at 2.5%
    each; measured 0.35%, 1%, 1.75% and 3.25% at ε = 0.5, 1, 2, 3). A bound that were too high would fail here."""
    rng = np.random.default_rng(0)
    runs = [metrics.epsilon_lower_bound(fp, 128, fn, 128, alpha=0.05) for fp, fn in
            (randomized_response(epsilon, 128, rng) for _ in range(2000))]
    assert np.mean(np.array(runs) > epsilon) <= 0.05
    assert np.median(runs) > 0.25 * epsilon  # and it is no vacuous zero: it does see the mechanism


def test_the_ceiling_is_the_perfect_attacks_bound_and_grows_with_the_sets():
    assert metrics.epsilon_ceiling(128, 128) == metrics.epsilon_lower_bound(0, 128, 0, 128)
    assert 3.4 < metrics.epsilon_ceiling(128, 128) < 3.6
    assert metrics.epsilon_ceiling(32, 32) < metrics.epsilon_ceiling(128, 128) < metrics.epsilon_ceiling(1000, 1000)
    assert metrics.epsilon_ceiling(128, 128, delta=0.1) < metrics.epsilon_ceiling(128, 128)


def test_a_bound_above_the_declared_epsilon_contradicts_it_and_one_at_or_below_does_not():
    privacy = {"epsilon": 1.0, "delta": 0.004, "source": "ckpt/privacy.json"}
    assert privacy_contradiction({"attack": "loss", "epsilon_lower_bound": 1.0}, privacy) is None
    assert privacy_contradiction({"attack": "loss", "epsilon_lower_bound": 2.5}, None) is None
    message = privacy_contradiction({"attack": "loss", "epsilon_lower_bound": 1.2}, privacy)
    assert "loss: ε lower bound 1.20 > the declared ε = 1" in message and "ckpt/privacy.json" in message
