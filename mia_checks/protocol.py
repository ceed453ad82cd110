"""The partial-knowledge threat model: stratified k-fold cross-validation over members ∪ non-members.

The attack model is fitted on k−1 folds (the part whose membership the attacker knows) and scores the
held-out fold; out-of-fold scores are pooled. Nothing is ever fitted on the data it scores: the decision
rule (the classifier's own boundary, probability ≥ ½) is learnt on the training folds only.
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


def cross_validate(make_model: Callable[[int], object], x: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> OutOfFold:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    scores = np.full(len(labels), np.nan)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        model = make_model(seed * 100 + fold)
        with warnings.catch_warnings():
            # Small training folds: an MLP that stops at max_iter is still a valid attack model.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x[train], labels[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    if not np.isfinite(scores).all():
        raise FloatingPointError("the attack model produced non-finite scores")
    return OutOfFold(labels, scores, (scores >= 0.5).astype(int))
