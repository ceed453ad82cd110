"""How attack models are trained: the threat models. Nothing is ever fitted on the data it scores.

- partial-knowledge (`cross_validate`): stratified k-fold over members ∪ non-members. The attack model is
  fitted on k−1 folds (the part whose membership the attacker knows; `known_fraction` shrinks it) and
  scores the held-out fold; out-of-fold scores are pooled. The decision rule (the classifier's own boundary, probability ≥ ½) is
  learnt on the training folds only.
- shadow-model (`apply_frozen`): fitted on a shadow model's features and labels, then applied, frozen,
  to the target's — decision rule included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutOfFold:
    """Pooled out-of-fold membership probabilities and decisions, aligned with the labels."""

    labels: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray


def _fit(model, x: np.ndarray, labels: np.ndarray):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # Small training sets: an MLP that stops at max_iter is still a valid attack model.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, labels)


def _checked(labels: np.ndarray, scores: np.ndarray) -> OutOfFold:
    if not np.isfinite(scores).all():
        raise FloatingPointError("the attack model produced non-finite scores")
    return OutOfFold(labels, scores, (scores >= 0.5).astype(int))


def apply_frozen(make_model: Callable[[int], object], shadow_x: np.ndarray, shadow_labels: np.ndarray,
                 x: np.ndarray, labels: np.ndarray, seed: int) -> OutOfFold:
    model = _fit(make_model(seed), shadow_x, np.asarray(shadow_labels))
    return _checked(np.asarray(labels), model.predict_proba(x)[:, 1])


def known_part(train: np.ndarray, labels: np.ndarray, known_fraction: float | None, seed: int) -> np.ndarray:
    """The training folds cut down to `known_fraction` of all queries (stratified, seeded): the ablation of
    the attacker's knowledge. None keeps all k−1 folds."""
    from sklearn.model_selection import train_test_split

    size = None if known_fraction is None else max(round(known_fraction * len(labels)), 4)
    if size is None or size >= len(train):
        return train
    kept, _ = train_test_split(train, train_size=size, stratify=labels[train], random_state=seed)
    return np.sort(kept)


def cross_validate(make_model: Callable[[int], object], x: np.ndarray, labels: np.ndarray, folds: int, seed: int,
                   known_fraction: float | None = None) -> OutOfFold:
    """Out-of-fold scores; with `known_fraction`, each attack model learns from only that fraction of all
    queries (drawn from its training folds), so the held-out folds are scored exactly as before."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    scores = np.full(len(labels), np.nan)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        train = known_part(train, labels, known_fraction, seed * 100 + fold)
        model = _fit(make_model(seed * 100 + fold), x[train], labels[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return _checked(labels, scores)
