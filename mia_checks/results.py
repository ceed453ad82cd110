"""One attack's result: every metric of docs/attacks.md computed from its pooled out-of-fold scores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from . import metrics
from .metrics import Estimate
from .protocol import OutOfFold


@dataclass(frozen=True)
class AttackResult:
    attack: str
    intuition: str
    protocol: str
    members: int
    nonmembers: int
    accuracy: Estimate
    auc: Estimate
    tpr_at_1pct_fpr: float  # NaN where the non-member count cannot measure it
    tpr_at_01pct_fpr: float
    advantage: Estimate
    epsilon_lower_bound: float
    true_positives: int
    false_positives: int
    oof: OutOfFold

    def to_dict(self) -> dict:
        """JSON-ready: estimates as {value, low, high}, NaN as None; the raw scores included."""
        out = {k: v for k, v in asdict(self).items() if k != "oof"}
        out["labels"] = self.oof.labels.astype(int).tolist()
        out["scores"] = [round(float(s), 6) for s in self.oof.scores]
        # How the AUC and its interval were read from the scores (protocol.OutOfFold).
        if self.oof.folds is not None:
            out["folds"] = self.oof.folds.astype(int).tolist()
        out["auc_within_folds"] = bool(self.oof.auc_within_folds)
        out["auc_variance_factor"] = float(self.oof.auc_variance_factor)
        out["auc_skewness"] = float(self.oof.auc_skewness)
        return _nan_to_none(out)


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


CONFIDENCE = 0.95  # the confidence of every interval and of the ε lower bound in a run's report


def evaluate(attack: str, intuition: str, protocol: str, oof: OutOfFold, confidence: float = CONFIDENCE,
             seed: int = 0, delta: float = 0.0) -> AttackResult:
    y, decisions = oof.labels, oof.decisions
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    tp = int(((decisions == 1) & (y == 1)).sum())
    fp = int(((decisions == 1) & (y == 0)).sum())
    correct = int((decisions == y).sum())
    # Counts of out-of-fold outcomes are read at their effective size (protocol.OutOfFold.design_effect).
    f = oof.design_effect
    # Bonferroni over the two rates keeps the advantage interval at the stated confidence.
    half = 1 - (1 - confidence) / 2
    tpr_low, tpr_high = metrics.clopper_pearson(*metrics.effective_counts(tp, pos, f), half)
    fpr_low, fpr_high = metrics.clopper_pearson(*metrics.effective_counts(fp, neg, f), half)
    adv = Estimate(metrics.advantage(tp / pos, fp / neg), tpr_low - fpr_high, tpr_high - fpr_low)
    return AttackResult(
        attack=attack,
        intuition=intuition,
        protocol=protocol,
        members=pos,
        nonmembers=neg,
        accuracy=metrics.proportion(correct, len(y), confidence, f),
        auc=metrics.auc_interval(y, oof.scores, confidence, oof.auc_variance_factor, oof.auc_strata,
                                 oof.auc_skewness),
        tpr_at_1pct_fpr=metrics.tpr_at_fpr(y, oof.scores, 0.01),
        tpr_at_01pct_fpr=metrics.tpr_at_fpr(y, oof.scores, 0.001),
        advantage=adv,
        epsilon_lower_bound=metrics.epsilon_lower_bound(*metrics.effective_counts(fp, neg, f),
                                                        *metrics.effective_counts(pos - tp, pos, f),
                                                        alpha=1 - confidence, delta=delta),
        true_positives=tp,
        false_positives=fp,
        oof=replace(oof, labels=np.asarray(y), scores=np.asarray(oof.scores), decisions=np.asarray(decisions)),
    )
