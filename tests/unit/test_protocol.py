"""The partial-knowledge protocol on null data: the cross-validated AUC centred on chance, with an interval
of the right width (benchmarks/cv_null_bias.py measures the same at scale, for every attack model)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_checks.attacks.base import ScoreThreshold, logistic, mlp
from mia_checks.metrics import auc_delong, roc_auc
from mia_checks.protocol import cross_validate, known_part, paired_folds, query_groups
from mia_checks.results import evaluate


def balanced(n: int) -> np.ndarray:
    return np.r_[np.ones(n, int), np.zeros(n, int)]


def test_paired_folds_hold_as_many_members_as_nonmembers_in_every_fold():
    labels = balanced(32)  # 32 + 32 in 5 folds: StratifiedKFold gives test folds of 7 + 6
    folds = paired_folds(labels, 5, seed=4)
    tests = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tests), np.arange(64))  # a partition
    for train, test in folds:
        assert labels[test].sum() * 2 == len(test) and labels[train].sum() * 2 == len(train)
        assert not set(train) & set(test)
    again = paired_folds(labels, 5, seed=4)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))  # seeded
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, paired_folds(labels, 5, seed=5)))


def test_a_model_that_learns_only_the_base_rate_scores_exactly_chance():
    """The pessimistic bias of pooled cross-validated AUC at no signal, in its purest form: a model that
    predicts its training folds' member rate. StratifiedKFold's 7 + 6 test folds leave 25 + 26 to train on,
    so the folds with fewer members score higher: pooled AUC 0.463 for every seed (the old protocol). Paired
    folds leave nothing to lean on."""
    from sklearn.dummy import DummyClassifier

    labels = balanced(32)
    for seed in range(3):
        oof = cross_validate(lambda s: DummyClassifier(strategy="prior"), np.zeros((64, 1)), labels, 5, seed)
        assert roc_auc(labels, oof.scores) == 0.5


def test_known_part_keeps_balanced_training_folds_balanced_and_sets_the_variance_factor():
    labels = balanced(32)
    for train, _ in paired_folds(labels, 5, seed=0):
        kept = known_part(train, labels, 0.3, seed=1)  # 19 of 64 asked: 10 + 10 or 9 + 9
        assert labels[kept].sum() * 2 == len(kept) and abs(len(kept) - 19) <= 1
    x = np.random.default_rng(0).normal(size=(64, 4))
    full = cross_validate(logistic, x, labels, 5, seed=0)
    part = cross_validate(logistic, x, labels, 5, seed=0, known_fraction=0.25)
    assert full.auc_variance_factor == 2.0 and full.auc_within_folds and full.auc_skewness < 0
    assert 1.3 < part.auc_variance_factor < 1.33  # 1 + 16/51 or 16/52: q, the share of the training folds kept
    assert cross_validate(mlp, x, labels, 5, seed=0).auc_variance_factor == 2.0
    # A model that ranks by a fixed score learns no ranking: all pairs, DeLong's variance as is.
    fixed = cross_validate(ScoreThreshold, x, labels, 5, seed=0)
    assert (fixed.auc_variance_factor, fixed.auc_within_folds, fixed.auc_skewness) == (1.0, False, 0.0)
    assert np.array_equal(np.sort(np.unique(fixed.folds)), np.arange(5))


class Centroid:
    """The simplest attack model that learns a ranking from labels: score = x · (mean of training members −
    mean of training non-members), centred between the two means; predict_proba = sigmoid(score)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> Centroid:
        members, nonmembers = x[y == 1].mean(0), x[y == 0].mean(0)
        self.w, self.c = members - nonmembers, (members + nonmembers) @ (members - nonmembers) / 2
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(x @ self.w - self.c)))
        return np.stack([1 - p, p], axis=1)


def null_runs(model, runs: int, d: int, n: int = 32):
    """(labels, OutOfFold) of `runs` seeded null runs: noise features, n + n queries, 5 folds."""
    labels = balanced(n)
    for seed in range(runs):
        x = np.random.default_rng(seed).normal(size=(2 * n, d))
        yield labels, cross_validate(model, x, labels, 5, seed=seed)


def test_null_auc_is_centred_on_chance():
    """2,000 seeded null runs of a learnt linear model on 2 noise features, 32 + 32: the mean AUC's standard
    error is about 0.0024, so |mean − ½| < 0.0075 (3.2 SE) has a false-alarm rate of about 0.15%.

    Pooling out-of-fold scores biases a null AUC low even with balanced folds: i and j in different folds
    each train the other's model, so each score carries the other's label against it (j's as a non-member
    in i's score, i's as a member in j's), and the folds both models share separate them least when they
    are alike — when that pull is strongest. On these seeds the pooled AUC averages 0.4851 (−6 SE: this
    test fails on pooled scores); the protocol's within-fold AUC 0.4987."""
    aucs = [auc_delong(labels, oof.scores, oof.auc_strata)[0] for labels, oof in null_runs(Centroid, 2000, d=2)]
    assert abs(np.mean(aucs) - 0.5) < 0.0075, np.mean(aucs)


def test_null_auc_interval_has_the_width_of_the_auc_spread():
    """100 seeded null runs, logistic regression (II-P's model) on 16 noise features, 32 + 32, 5 folds.

    With z = (AUC − ½) / σ, σ the interval's own (its lower half-width / 1.96; the upper allows for skew),
    mean z² estimates (the AUC's variance) / σ²: 1 for an interval of the right width. Over 100 runs of a
    right width it exceeds 1.5 with probability 0.1% (mean of 100 χ²₁). At most 8 of 100 intervals may lie
    wholly below ½: 2.5% expected, a binomial tail of 0.1% (0.3% were the true share 3%). The old
    protocol (StratifiedKFold, pooled scores, DeLong's variance as is) gives mean z² 2.50 on these seeds —
    the AUC varies twice as much as its interval says — and 10 intervals wholly below ½ (7 above); this
    one 0.99 and 3 (0 above)."""
    from threadpoolctl import threadpool_limits

    z2, below = [], 0
    logistic(0).fit(np.eye(4), [0, 1, 0, 1])  # loads the BLAS libraries that threadpool_limits then holds
    with threadpool_limits(1):  # 500 small fits: more threads only contend (13× slower on 2 busy cores)
        for labels, oof in null_runs(logistic, 100, d=16):
            estimate = evaluate("sim", "null", "partial-knowledge", oof).auc  # the reported AUC and interval
            sd = (estimate.value - estimate.low) / 1.96  # the lower end: the upper allows for skew
            z2.append(((estimate.value - 0.5) / sd) ** 2)
            below += estimate.high < 0.5
    assert np.mean(z2) < 1.5, np.mean(z2)
    assert below <= 8, below


def test_every_seed_the_options_accept_trains_every_attack_model():
    """--mia-seed's range comes from the attack models' seeds (seed·100 + fold), which scikit-learn takes below
    2³²: above it the MLP attacks failed with a scikit-learn traceback."""
    from sklearn.linear_model import LogisticRegression  # noqa: F401 — imported by logistic()

    from mia_checks.settings import MAX_SEED

    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(40, 3)), np.r_[np.ones(20, int), np.zeros(20, int)]
    for model in (mlp, logistic):
        assert np.isfinite(cross_validate(model, x, labels, 5, seed=MAX_SEED).scores).all()


def test_queries_sharing_a_caption_or_linked_as_near_duplicates_form_one_group():
    groups = query_groups(["a", "b", "a", "c", "d", "e"], linked=[(3, 4)])
    assert groups.tolist() == [0, 1, 0, 2, 2, 3]
    assert query_groups(["x", "y"]).tolist() == [0, 1]


def test_paired_folds_keep_each_group_whole_and_the_folds_balanced():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(50, int), np.zeros(50, int)]
    captions = [f"c{rng.integers(0, 40)}" for _ in range(100)]  # 40 captions for 100 queries, across the classes
    groups = query_groups(captions)
    folds = paired_folds(labels, 5, seed=3, groups=groups)
    fold_of = np.empty(100, int)
    for f, (train, test) in enumerate(folds):
        fold_of[test] = f
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 100
    assert all(len(set(fold_of[groups == g])) == 1 for g in np.unique(groups))
    per_fold = np.array([[np.sum(labels[test] == c) for c in (0, 1)] for _, test in folds])
    assert per_fold.min() >= 7 and per_fold.max() <= 13  # 10 of each per fold, give or take the groups


def test_without_shared_groups_the_folds_are_the_ungrouped_ones():
    labels = np.r_[np.ones(32, int), np.zeros(32, int)]
    plain = paired_folds(labels, 5, seed=7)
    singletons = paired_folds(labels, 5, seed=7, groups=np.arange(64))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plain, singletons))
    assert [sorted(labels[test]) for _, test in plain] == [sorted(labels[test]) for _, test in singletons]


def test_one_caption_for_everything_is_an_error_not_a_silent_bias():
    import pytest

    from mia_checks.errors import UnmeasurableError

    labels = np.r_[np.ones(20, int), np.zeros(20, int)]
    with pytest.raises(UnmeasurableError, match=r"cannot be split into 5 folds .* the largest such group holds 40 "
                                                r"of 40\. Give the sets more distinct captions, or use fewer folds"):
        paired_folds(labels, 5, seed=0, groups=query_groups(["a photo"] * 40))


def shared_caption_run(seed: int, grouped: bool):
    """A null target whose generations depend on the caption alone, 60% of the non-members sharing a member's
    caption (as on the real fine-tune of issue 19): twins get identical generation features, different labels."""
    rng = np.random.default_rng(seed)
    captions = [f"m{i}" for i in range(64)] + [f"n{i}" for i in range(64)]
    for k, j in enumerate(rng.choice(64, 38, replace=False)):
        captions[64 + k] = captions[j]
    generation = {c: rng.normal(size=8) for c in set(captions)}
    x = np.array([np.r_[generation[c], rng.normal(size=2)] for c in captions])
    labels = np.r_[np.ones(64, int), np.zeros(64, int)]
    oof = cross_validate(logistic, x, labels, 5, seed, groups=query_groups(captions) if grouped else None)
    return evaluate("I-P", "", "partial-knowledge", oof, seed=seed).auc


def test_grouped_folds_end_the_anti_learning_of_shared_captions():
    """Ungrouped, each twin teaches the model the opposite label of the other: measured over 200 seeds, AUC
    0.422 ± 0.005 with 15.5% of the intervals wholly below ½; grouped 0.499 ± 0.004, none. Over these 40
    seeds the grouped mean's standard error is ≈ 0.0125, so ±0.03 is a 2.4-SE band (a 1.6% chance of a
    false failure were the seeds drawn afresh; they are fixed)."""
    ungrouped = [shared_caption_run(seed, grouped=False) for seed in range(40)]
    grouped = [shared_caption_run(seed, grouped=True) for seed in range(40)]
    assert np.mean([a.value for a in ungrouped]) < 0.45  # the defect this guards against
    assert abs(np.mean([a.value for a in grouped]) - 0.5) < 0.03
    assert np.mean([a.high < 0.5 for a in grouped]) <= 0.05


@given(st.lists(st.sampled_from("abcdefg"), min_size=2, max_size=60), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_twin_labels_give_each_shared_caption_a_member_and_a_non_member(captions, seed):
    """The reproduction of issue 19's sets (testbed.shared_captions.twin_labels): within every caption, members and
    non-members differ by at most one, and so do the sets; labels are 0 and 1 only."""
    from mia_checks.testbed.shared_captions import twin_labels

    labels = twin_labels(captions, np.random.default_rng(seed))
    assert set(labels) <= {0, 1} and abs(2 * labels.sum() - len(labels)) <= 1
    for caption in set(captions):
        mine = labels[np.array(captions) == caption]
        assert abs(2 * mine.sum() - len(mine)) <= 1
