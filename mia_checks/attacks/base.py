"""What every attack is, whatever its access level, and the attack models they share.

An attack turns each query into a feature row, and an attack model (an sklearn-style classifier built
from a seed) turns rows into membership probabilities under the run's protocol (k-fold or shadow).
Black-box attacks read the features computed from generations; white-box attacks read what their probe
measured with the target's own denoiser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLACK_BOX = "black-box"
WHITE_BOX = "white-box"


@dataclass(frozen=True)
class Attack:
    id: str
    intuition: str
    access: str  # BLACK_BOX or WHITE_BOX
    # (inputs, IV's combine operations) → (n, d): inputs are QueryFeatures (black-box) or the probe's
    # measurements (white-box, an (n, d) array).
    features: Callable[[Any, Sequence[str]], np.ndarray]
    model: Callable[[int], object]
    # White-box: a whitebox.Probe per access kind it supports (what to ask the model, at what cost).
    probes: Mapping[str, Any] = field(default_factory=dict)

    def probe_for(self, access_kind: str | None):
        """This attack's probe for a target's white-box access kind, or None when it has none."""
        return self.probes.get(access_kind)


def mlp(seed: int):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=500, random_state=seed),
    )


def logistic(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, random_state=seed))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The cut c maximising the accuracy of "member iff score ≥ c" on (scores, labels); midpoints between
    neighbouring distinct scores, the lowest such cut on ties."""
    values = np.unique(scores)
    cuts = np.r_[values[0] - 1.0, (values[:-1] + values[1:]) / 2, values[-1] + 1.0]
    correct = [((scores >= c) == (labels == 1)).sum() for c in cuts]
    return float(cuts[int(np.argmax(correct))])


class ScoreThreshold:
    """The classic threshold attack on a loss-like score: s = −mean of the row (lower loss = member). Its
    direction and cut are fitted on the training folds: the published direction unless the training folds
    rank clearly the other way (their AUC's 99% upper bound below ½: a model can overfit so that members'
    score rises, as PIA's does on `leaky`, and that is leakage too), then the most accurate cut. A weak
    signal keeps the published direction: flipping on noise would pull the pooled AUC below chance. predict_proba = sigmoid((s − cut) / σ), σ the training
    scores' spread, so that p ≥ ½ exactly when s ≥ cut and the ranking of queries is the score's own."""

    # Ranks by the fixed score s; only its direction and cut are learnt: the cross-validated AUC keeps
    # DeLong's variance (protocol.cross_validate).
    ranking_learnt = 0.0

    def __init__(self, seed: int = 0):
        self.seed, self.sign = seed, 1.0

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.sign * np.asarray(x, dtype=float).reshape(len(x), -1).mean(1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> ScoreThreshold:
        from ..metrics import auc_delong

        y = np.asarray(y)
        self.sign = 1.0
        auc, variance = auc_delong(y, self.score(x))
        if auc + 2.326 * np.sqrt(max(variance, 0.0)) < 0.5:
            self.sign = -1.0
        s = self.score(x)
        self.cut = best_threshold(s, y)
        self.scale = float(s.std()) or 1.0
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = _sigmoid((self.score(x) - self.cut) / self.scale)
        return np.stack([1 - p, p], axis=1)
