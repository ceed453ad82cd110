"""The leakage gate: does an attack do better than the threshold?

The default metric is AUC: rank-based, its bound (DeLong) uses every score, where accuracy's uses one
cut. On `mild` (32 vs 32) the loss attack's AUC is 0.78 with a 99.5% bound above 0.6, while its accuracy
of 0.66 has a bound of 0.50. Accuracy, the paper's metric, stays available (--mia-gate-metric).

Two decision rules:
- `bound` (default): fail when the one-sided lower confidence bound of the metric exceeds the threshold,
  at level α / m with m the number of attacks in the run (Bonferroni). When no attack truly exceeds the
  threshold, the whole run fails with probability at most α: a gate that does not flake on noise.
- `point`: fail when the point estimate exceeds the threshold (the paper's reading). Flakier on small
  sets; a verdict whose interval straddles the threshold is marked "within noise".
A metric that cannot be measured (TPR at an FPR below 1/|non-members|) is an error, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import metrics
from .errors import UnmeasurableError
from .results import AttackResult

GATE_METRICS = ("accuracy", "auc", "tpr@1%fpr", "advantage")
DEFAULT_THRESHOLDS = {"accuracy": 0.55, "auc": 0.55, "tpr@1%fpr": 0.05, "advantage": 0.10}
RULES = ("bound", "point")


@dataclass(frozen=True)
class GateRule:
    metric: str = "auc"
    threshold: float | None = None  # None: DEFAULT_THRESHOLDS[metric]
    per_attack: dict[str, float] = field(default_factory=dict)
    rule: str = "bound"
    alpha: float = 0.05
    attacks_in_run: int = 6
    exposure_tests: int = 0  # the run's per-member tests (exposure/): α is split over them too

    def threshold_for(self, attack: str) -> float:
        if attack in self.per_attack:
            return self.per_attack[attack]
        return DEFAULT_THRESHOLDS[self.metric] if self.threshold is None else self.threshold

    @property
    def level(self) -> float:
        """One-sided error level of each attack's bound, and each exposure test's expected false flags
        (Bonferroni over every test of the run that can fail it)."""
        return self.alpha / max(self.attacks_in_run + self.exposure_tests, 1)

    def describe(self) -> str:
        if self.rule == "point":
            return f"point estimate of {self.metric} > threshold"
        over = f"{self.attacks_in_run} attacks" + (f" and {self.exposure_tests} exposure test"
                                                   f"{'s' * (self.exposure_tests != 1)}" if self.exposure_tests else "")
        return (f"{100 * (1 - self.level):.1f}% one-sided lower bound of {self.metric} > threshold "
                f"(α = {self.alpha} Bonferroni-split over {over})")


@dataclass(frozen=True)
class Verdict:
    attack: str
    leaks: bool
    value: float
    statistic: float  # what was compared: the point estimate or the lower bound
    threshold: float
    within_noise: bool
    message: str

    @property
    def label(self) -> str:
        word = "FAIL" if self.leaks else "pass"
        return f"{word} (within noise)" if self.within_noise else word


def point_value(result: AttackResult, metric: str) -> float:
    return {
        "accuracy": result.accuracy.value,
        "auc": result.auc.value,
        "tpr@1%fpr": result.tpr_at_1pct_fpr,
        "advantage": result.advantage.value,
    }[metric]


def lower_bound(result: AttackResult, metric: str, level: float, seed: int = 0) -> float:
    """One-sided lower confidence bound at error level `level`: exact (Clopper–Pearson) for accuracy and
    TPR, DeLong's (as the protocol says to read the AUC) for AUC, and for the advantage TPR's lower bound
    minus FPR's upper bound, each at level / 2."""
    f = result.oof.design_effect  # out-of-fold counts at their effective size

    def cp_low(successes: int, trials: int, at: float) -> float:
        return metrics.clopper_pearson_lower(*metrics.effective_counts(successes, trials, f), at)

    n = result.members + result.nonmembers
    if metric == "accuracy":
        return cp_low(round(result.accuracy.value * n), n, level)
    if metric == "auc":
        oof = result.oof
        return metrics.auc_lower_bound(oof.labels, oof.scores, level, oof.auc_variance_factor, oof.auc_strata)
    if metric == "tpr@1%fpr":
        return cp_low(round(result.tpr_at_1pct_fpr * result.members), result.members, level)
    fpr_high = 1.0 - cp_low(result.nonmembers - result.false_positives, result.nonmembers, level / 2)
    return cp_low(result.true_positives, result.members, level / 2) - fpr_high


def decide(result: AttackResult, gate: GateRule, seed: int = 0) -> Verdict:
    threshold = gate.threshold_for(result.attack)
    value = point_value(result, gate.metric)
    if math.isnan(value):
        raise UnmeasurableError(
            f"{result.attack}: {gate.metric} cannot be measured with {result.nonmembers} non-members "
            f"(needs at least {math.ceil(1 / 0.01)}); use more non-members or another --mia-gate-metric."
        )
    bound = lower_bound(result, gate.metric, gate.level, seed)
    statistic = value if gate.rule == "point" else bound
    leaks = statistic > threshold
    within_noise = (value > threshold) != (bound > threshold)
    verb = "exceeds" if leaks else "does not exceed"
    message = (
        f"{result.attack} ({result.intuition}): {gate.metric} = {value:.3f}, lower bound {bound:.3f}; "
        f"{'the point estimate' if gate.rule == 'point' else 'the bound'} {verb} the threshold {threshold:.3f} "
        f"[rule: {gate.describe()}; {result.members} members vs {result.nonmembers} non-members, {result.protocol}]"
    )
    if within_noise:
        message += ". The interval straddles the threshold: the verdict is within the noise; add images to decide."
    return Verdict(result.attack, leaks, value, statistic, threshold, within_noise, message)


@dataclass(frozen=True)
class DistributionShift:
    shifted: bool
    p_value: float
    baseline_accuracy: float
    message: str


def distribution_shift(baseline: AttackResult, alpha: float) -> DistributionShift:
    """Does the no-model baseline (an attack on the query images alone) separate members from non-members?
    One-sided binomial test of its accuracy > ½ at level alpha, on the effective counts of its out-of-fold
    decisions (OutOfFold.design_effect): a false-alarm rate of alpha on sets drawn from one distribution."""
    n = baseline.members + baseline.nonmembers
    correct = round(baseline.accuracy.value * n)
    p_value = metrics.binomial_p_greater(*metrics.effective_counts(correct, n, baseline.oof.design_effect))
    shifted = bool(p_value < alpha)
    message = (
        f"no-model baseline (query images alone, no generation) accuracy {baseline.accuracy.format()}, "
        f"p = {p_value:.3g}: "
        + ("members and non-members differ in distribution; every verdict of this run is unreliable. "
           "Draw non-members from the same distribution as the training data."
           if shifted else "no evidence of a distribution shift")
    )
    return DistributionShift(shifted, p_value, baseline.accuracy.value, message)


def privacy_contradiction(record: dict, privacy: dict | None) -> str | None:
    """Why an attack's record contradicts the DP budget its target declares (targets.privacy), or None.

    A sound ε lower bound (metrics.epsilon_lower_bound, at the declared δ) above the ε an accountant proved
    means the training or its accounting is broken: at the bound's confidence, no (ε, δ)-DP mechanism
    lets this attack do so well. It fails the attack's test like leakage does."""
    bound = record.get("epsilon_lower_bound")
    if not privacy or bound is None or bound <= privacy["epsilon"]:
        return None
    return (f"{record['attack']}: ε lower bound {bound:.2f} > the declared ε = {privacy['epsilon']:.3g} "
            f"(δ = {privacy['delta']:.2g}, {privacy['source']}): the DP claim is contradicted; the training "
            "or its accounting is broken")
