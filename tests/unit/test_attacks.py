"""Attack features and the partial-knowledge protocol on synthetic features."""

from __future__ import annotations

import numpy as np
import pytest

from mia_checks.attacks import ATTACKS, COMBINE_OPERATIONS, GROUPS
from mia_checks.features import QueryFeatures, global_ssim, pixel_distances, summarise_queries
from mia_checks.metrics import roc_auc
from mia_checks.protocol import cross_validate


def from_pixels(labels, query, generated, query_embeddings, generated_embeddings, text_embeddings) -> QueryFeatures:
    """Features of small images (≤ 64 px: their own thumbnails)."""
    return QueryFeatures(labels=labels, query_summary=summarise_queries(query), query_embeddings=query_embeddings,
                         query_thumbnails=query, generated_thumbnails=generated,
                         pixel_distances=pixel_distances(query, generated), generated_embeddings=generated_embeddings,
                         text_embeddings=text_embeddings)


def synthetic(n: int = 40, k: int = 2, d: int = 16, seed: int = 0) -> QueryFeatures:
    rng = np.random.default_rng(seed)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    return from_pixels(np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)], rng.random((n, 8, 8, 3), dtype=np.float32),
                       rng.random((n, k, 8, 8, 3), dtype=np.float32), unit(rng.normal(size=(n, d))),
                       unit(rng.normal(size=(n, k, d))), unit(rng.normal(size=(n, d))))


@pytest.mark.parametrize("attack", GROUPS["blackbox"])
def test_every_attack_builds_one_feature_row_per_query(attack):
    f = synthetic()
    x = ATTACKS[attack].features(f, COMBINE_OPERATIONS)
    assert x.shape[0] == 40 and np.isfinite(x).all()


def test_attack_iv_width_follows_the_chosen_operations():
    f = synthetic(d=16)
    widths = {op: ATTACKS["IV"].features(f, (op,)).shape[1] for op in COMBINE_OPERATIONS}
    assert widths == {"concat": 48, "difference": 48, "product": 48, "cosine": 3}
    assert ATTACKS["IV"].features(f, COMBINE_OPERATIONS).shape[1] == 147


def test_global_ssim_is_one_for_identical_images_and_lower_otherwise():
    rng = np.random.default_rng(1)
    x = rng.random((4, 8, 8, 3))
    assert np.allclose(global_ssim(x, x), 1.0)
    assert (global_ssim(x, rng.random((4, 8, 8, 3))) < 0.5).all()


def test_reconstruction_attack_detects_members_whose_generations_copy_them():
    f = synthetic(n=40)
    copied = f.generated_thumbnails.copy()
    copied[:20] = f.query_thumbnails[:20, None] + 0.01  # members: the model reproduces the training image
    leaky = from_pixels(f.labels, f.query_thumbnails, copied, f.query_embeddings, f.generated_embeddings,
                        f.text_embeddings)
    attack = ATTACKS["II-P"]
    oof = cross_validate(attack.model, attack.features(leaky, ()), leaky.labels, folds=5, seed=0)
    assert roc_auc(oof.labels, oof.scores) > 0.95


def test_protocol_never_scores_data_it_was_fitted_on():
    """A 1-nearest-neighbour model memorises its training rows: scored on them it is perfect, so any
    leak of a row into its own training fold would show. On random labels the out-of-fold AUC must stay
    near chance (|AUC − 0.5| < 0.2 has probability > 99% for 200 random points)."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(3)
    x, labels = rng.normal(size=(200, 5)), np.r_[np.ones(100, int), np.zeros(100, int)]
    model = lambda seed: KNeighborsClassifier(n_neighbors=1)  # noqa: E731
    in_sample = model(0).fit(x, labels).predict_proba(x)[:, 1]
    assert roc_auc(labels, in_sample) == 1.0
    oof = cross_validate(model, x, labels, folds=5, seed=0)
    assert abs(roc_auc(labels, oof.scores) - 0.5) < 0.2


def test_cross_validation_is_deterministic_for_a_seed():
    f = synthetic()
    attack = ATTACKS["IV"]
    x = attack.features(f, COMBINE_OPERATIONS)
    a, b = (cross_validate(attack.model, x, f.labels, 5, seed=7).scores for _ in range(2))
    assert np.array_equal(a, b)


def test_known_fraction_shrinks_what_each_attack_model_learns_from():
    import numpy as np

    from mia_checks.protocol import known_part

    labels = np.r_[np.ones(32, int), np.zeros(32, int)]
    train = np.arange(51)  # 4 of 5 folds of 64
    kept = known_part(train, labels, 0.25, seed=3)
    assert len(kept) == 16 and set(kept) <= set(train) and labels[kept].sum() == round(16 * 32 / 51)  # stratified
    assert np.array_equal(kept, known_part(train, labels, 0.25, seed=3))  # seeded
    assert np.array_equal(known_part(train, labels, None, seed=3), train)


def test_the_pixel_cnn_gives_the_same_scores_on_any_thread_count_and_leaves_torchs_rng_alone():
    """The same seed must give the same report on another machine: with torch's default threads, `leaky`'s
    I-P accuracy read 0.500 on 2 threads and 0.516 on 1."""
    import torch

    from mia_checks.attacks.blackbox import SmallCNN

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (24, 2, 16, 16, 3)).astype(np.uint8), np.r_[np.ones(12, int), np.zeros(12, int)]
    threads = torch.get_num_threads()
    scores = []
    try:
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            scores.append(SmallCNN(seed=5, steps=30).fit(x, y).predict_proba(x)[:, 1])
            assert torch.get_num_threads() == n  # restored after the fit
    finally:
        torch.set_num_threads(threads)
    assert all(np.array_equal(scores[0], s) for s in scores[1:])
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    SmallCNN(seed=5, steps=2).fit(x, y)
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is untouched
