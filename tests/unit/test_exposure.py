"""The exposure tests' library: the calibrated flagging rule, the copy distances and the per-member findings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_checks.errors import UnmeasurableError
from mia_checks.exposure import flag_members, prediction_bound, upper_bound
from mia_checks.exposure.memorization import caption_null
from mia_checks.exposure.regurgitation import copy_distances, tiled_distance
from mia_checks.record import member_findings


@pytest.mark.parametrize("n_null, m", [(32, 32), (32, 128), (128, 128)])
def test_expected_false_flags_on_a_null_model_is_alpha(n_null, m):
    """Members and non-members scored alike (log-normal, as norms and distances are): the mean number of
    flagged members over 4,000 seeded draws is α = 0.05 (the rule's promise). Its standard error is
    √(0.05/4000) ≈ 0.0035; the band [0.035, 0.065] is ±4 standard errors: a false alarm about 1 run in 10⁴."""
    rng = np.random.default_rng(n_null * 1000 + m)
    flags = []
    for _ in range(4000):
        null = np.exp(rng.normal(0.3, 0.4, n_null))
        members = np.exp(rng.normal(0.3, 0.4, m))
        flags.append(int((np.log(members) > prediction_bound(null, 0.05 / m)).sum()))
    assert 0.035 <= np.mean(flags) <= 0.065


def test_the_bound_is_scale_free():
    """Multiplying every score by a constant moves the bound by the same factor: no unit creeps into a verdict."""
    null = np.exp(np.random.default_rng(0).normal(size=40))
    assert prediction_bound(null * 7.0, 0.001) == pytest.approx(prediction_bound(null, 0.001) + np.log(7.0))


def test_planted_members_are_flagged_with_their_evidence():
    rng = np.random.default_rng(1)
    null, members = np.exp(rng.normal(size=64)), np.exp(rng.normal(size=64))
    members[[3, 17]] /= 100.0  # distances: exposed below the bound
    result = flag_members("regurgitation", "black-box", {"pixel": (members, null, True)}, 0.05, 0,
                          evidence=lambda criterion, i: {"generation": i % 2})
    assert result.flagged == [3, 17] and result.fails
    assert {f.evidence["generation"] for f in result.findings} == {1}
    assert all(f.score < f.threshold and " < " in f.comparison and f.excess > 0 for f in result.findings)
    magnitudes = flag_members("memorization", "white-box", {"noise magnitude": (1 / members, 1 / null, False)}, 0.05, 8)
    assert magnitudes.flagged == [3, 17] and all(" > " in f.comparison for f in magnitudes.findings)
    assert magnitudes.thresholds["noise magnitude"] == pytest.approx(1 / result.thresholds["pixel"])
    assert result.level == pytest.approx(0.05 / 64)
    assert "expected false flags ≤ α = 0.05" in result.rule


def test_two_criteria_split_alpha_between_them():
    rng = np.random.default_rng(2)
    criteria = {c: (np.exp(rng.normal(size=20)), np.exp(rng.normal(size=30)), True) for c in ("pixel", "embedding")}
    assert flag_members("regurgitation", "black-box", criteria, 0.05, 0).level == pytest.approx(0.05 / 40)


@pytest.mark.parametrize("null, match", [
    (np.full(32, 1.5), "1 distinct non-member scores"),
    (np.r_[np.arange(1, 32.0), np.nan], "non-finite"),
    (np.r_[np.arange(1, 32.0), -1.0], "negative"),
])
def test_a_null_that_cannot_calibrate_is_an_error_not_a_pass(null, match):
    with pytest.raises(UnmeasurableError, match=match):
        flag_members("memorization", "white-box", {"noise magnitude": (np.ones(8), null, False)}, 0.05, 8)


def test_non_finite_member_scores_are_an_error():
    with pytest.raises(UnmeasurableError, match="non-finite member scores"):
        flag_members("memorization", "white-box", {"noise magnitude": (np.r_[1.0, np.inf], np.arange(1, 20.0), False)},
                     0.05, 8)


def test_shared_captions_count_once_in_the_null():
    assert caption_null(np.array([1.0, 1.0, 2.0, 3.0]), ["a", "a", "b", "c"]).tolist() == [1.0, 2.0, 3.0]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(8, 40), st.integers(8, 40))
def test_tiled_distance_is_a_symmetric_distance_with_the_worst_tile_above_the_global_rms(seed, h, w):
    rng = np.random.default_rng(seed)
    a, b = rng.random((h, w, 3)), rng.random((h, w, 3))
    assert tiled_distance(a, a) == 0.0
    assert tiled_distance(a, b) == pytest.approx(tiled_distance(b, a))
    assert tiled_distance(a, b) >= np.sqrt(((a - b) ** 2).mean()) - 1e-12


def test_one_changed_tile_is_enough_to_tell_images_apart():
    """Why tiled: a patch changed in one corner is a small global RMS but the whole RMS of its tile."""
    a = np.zeros((32, 32, 3))
    b = a.copy()
    b[:8, :8] = 1.0
    assert np.sqrt(((a - b) ** 2).mean()) == pytest.approx(0.25)
    assert tiled_distance(a, b) == pytest.approx(1.0)


def test_copy_distances_take_the_closest_generation_mirrored_or_not():
    rng = np.random.default_rng(3)
    query = rng.random((2, 16, 16, 3))
    generated = rng.random((2, 3, 16, 16, 3))
    generated[0, 2] = query[0][:, ::-1]  # a mirrored copy: training flipped images at random
    embeddings = np.eye(4)[:2]
    generated_embeddings = np.stack([np.eye(4)[[1, 2, 0]], np.eye(4)[[0, 2, 3]]])
    d = copy_distances(query, generated, embeddings, generated_embeddings)
    distance, closest = d["pixel"]
    assert distance[0] == 0.0 and closest[0] == 2 and distance[1] > 0.1
    distance, closest = d["embedding"]
    assert distance.tolist() == [0.0, 1.0] and closest[0] == 2


def test_member_findings_rank_members_and_put_the_flagged_first():
    results = [{"attack": "loss", "auc": {"value": 0.8}, "scores": [0.2, 0.9, 0.5, 0.1, 0.3]},
               {"attack": "II-P", "auc": {"value": 0.6}, "scores": [0.9, 0.1, 0.2, 0.4, 0.6]}]
    exposure = [{"test": "regurgitation", "findings": [{"member": 2, "criterion": "pixel", "comparison": "0.1 < 0.3",
                                                        "excess": 1.1, "evidence": {"generation": 1}}]}]
    rows = member_findings(results, exposure, ["a.png", "b.png", "c.png"], ["ca", "cb", "cc"])
    assert [r["file"] for r in rows] == ["c.png", "b.png", "a.png"]  # flagged, then by loss (the strongest)
    assert rows[1]["ranks"] == {"loss": 1, "II-P": 3} and rows[0]["flags"][0]["test"] == "regurgitation"
    assert rows[2]["scores"] == {"loss": 0.2, "II-P": 0.9}


def test_a_criterion_on_its_own_scale_bounds_the_values_themselves():
    rng = np.random.default_rng(4)
    null = 0.3 + 0.02 * rng.normal(size=64)
    members = np.r_[0.3 + 0.02 * rng.normal(size=31), 0.05]
    result = flag_members("regurgitation", "black-box", {"embedding": (members, null, True, False)}, 0.05, 0)
    assert result.flagged == [31]
    bound = result.thresholds["embedding"]
    assert 0.05 < bound < null.min() and bound == pytest.approx(-upper_bound(-null, 0.05 / 32))
