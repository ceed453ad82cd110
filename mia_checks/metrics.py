"""Membership-inference metrics: small pure functions over labels (1 = member) and attack scores.

Higher scores mean "more likely a member". Every function states its formula; intervals are exact
(Clopper–Pearson) for proportions and DeLong's for AUC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval [low, high]."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 3) -> str:
        if math.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(TP + TN) / n."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random member > score of a random non-member), ties ½."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, scores))


def tpr_at_fpr(y_true: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Largest TPR over thresholds whose FPR ≤ max_fpr; NaN when max_fpr < 1 / (number of non-members),
    where no threshold other than 'flag nobody' can be measured at that rate."""
    from sklearn.metrics import roc_curve

    y_true = np.asarray(y_true)
    if max_fpr < 1.0 / np.sum(y_true == 0):
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def advantage(tpr: float, fpr: float) -> float:
    """Membership advantage TPR − FPR (Yeom et al. 2018); 0 for a guess, 1 for a perfect attack."""
    return tpr - fpr


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion: Beta(α/2; k, n−k+1), Beta(1−α/2; k+1, n−k)."""
    from scipy.stats import beta

    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def clopper_pearson_lower(successes: int, trials: int, level: float) -> float:
    """One-sided exact lower confidence bound of a binomial proportion at error level `level`:
    Beta(level; k, n−k+1), 0 when k = 0."""
    from scipy.stats import beta

    return 0.0 if successes == 0 else float(beta.ppf(level, successes, trials - successes + 1))


def effective_counts(successes: float, trials: float, design_effect: float = 1.0) -> tuple[float, float]:
    """(k / f, n / f): n dependent outcomes whose count varies f times as much as a binomial's carry the
    information of n / f independent ones (Kish's effective sample size). The exact intervals and tests
    below take such fractional counts: their Beta forms are defined for any positive parameters."""
    return successes / design_effect, trials / design_effect


def proportion(successes: int, trials: int, confidence: float = 0.95, design_effect: float = 1.0) -> Estimate:
    """k / n with its Clopper–Pearson interval, on the effective counts (effective_counts)."""
    return Estimate(successes / trials, *clopper_pearson(*effective_counts(successes, trials, design_effect),
                                                         confidence))


def binomial_p_greater(successes: float, trials: float, p: float = 0.5) -> float:
    """One-sided p-value of k successes in n trials against a rate p: P(X ≥ k) = I_p(k, n − k + 1) (the
    regularized incomplete Beta), 1 when k = 0; for integer counts, the exact binomial test's."""
    from scipy.stats import beta

    return 1.0 if successes <= 0 else float(beta.cdf(p, successes, trials - successes + 1))


def _placements(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placements: V10_i = P̂(member i outscores a non-member), V01_j = P̂(a member outscores
    non-member j), ties ½, from mid-ranks in O(n log n)."""
    from scipy.stats import rankdata

    pos, neg = scores[y_true == 1], scores[y_true == 0]
    m, n = len(pos), len(neg)
    combined = rankdata(np.r_[pos, neg])
    return (combined[:m] - rankdata(pos)) / n, 1.0 - (combined[m:] - rankdata(neg)) / m


def auc_delong(y_true: np.ndarray, scores: np.ndarray, strata: np.ndarray | None = None) -> tuple[float, float]:
    """AUC and DeLong's estimate of its variance (DeLong et al. 1988), from mid-ranks in O(n log n).

    With V10_i = P̂(member i outscores a non-member) and V01_j = P̂(a member outscores non-member j),
    AUC = mean V10 = mean V01 and Var(AUC) = s²(V10)/m + s²(V01)/n (m members, n non-members).

    With `strata` (one label per query: the cross-validation fold that scored it), only pairs within a
    stratum are compared: AUC = Σ_s w_s·AUC_s, w_s = m_s·n_s / Σ m·n (the Mann–Whitney statistic over
    within-fold pairs), Var = Σ_s w_s²·(s²(V10)/m_s + s²(V01)/n_s), the placements' variances pooled over
    the strata (each about their own stratum's mean). One stratum is plain DeLong. Why: scores from
    different folds come from different models, and comparing them biases a null AUC below ½
    (protocol.cross_validate)."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=float)
    strata = np.zeros(len(y_true), dtype=int) if strata is None else np.asarray(strata)
    parts = []  # (m_s, n_s, AUC_s, squared deviations of V10, of V01)
    for stratum in np.unique(strata):
        y, x = y_true[strata == stratum], scores[strata == stratum]
        m, n = int((y == 1).sum()), int((y == 0).sum())
        if m and n:
            v10, v01 = _placements(y, x)
            parts.append((m, n, float(v10.mean()), ((v10 - v10.mean()) ** 2).sum(), ((v01 - v01.mean()) ** 2).sum()))
    if not parts:
        return float("nan"), float("nan")
    m, n, aucs, ss10, ss01 = map(np.array, zip(*parts))
    weights = m * n / (m * n).sum()
    auc = float((weights * aucs).sum())
    if (m - 1).sum() < 1 or (n - 1).sum() < 1:
        return auc, float("nan")
    var10, var01 = ss10.sum() / (m - 1).sum(), ss01.sum() / (n - 1).sum()
    return auc, float((weights**2 * (var10 / m + var01 / n)).sum())


def auc_interval(y_true: np.ndarray, scores: np.ndarray, confidence: float = 0.95, variance_factor: float = 1.0,
                 strata: np.ndarray | None = None, skewness: float = 0.0) -> Estimate:
    """AUC with DeLong's normal interval AUC ± z·σ, σ = √(factor·Var), clipped to [0, 1]: rank-based, so it
    uses every score rather than one decision cut, and it costs O(n log n) at any n.

    For cross-validated scores (protocol.cross_validate) `strata` are the folds, `variance_factor` > 1 —
    such scores are not independent given one model, as DeLong assumes — and `skewness` < 0: the AUC's
    distribution has a longer lower tail, so the upper end moves out by |skewness|·(z² − 1)/6·σ (the
    Cornish–Fisher term; a positive skewness moves the lower end). The other end stays at z·σ."""
    from scipy.stats import norm

    auc, variance = auc_delong(y_true, scores, strata)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    sigma = math.sqrt(variance_factor * max(variance, 0.0))
    extra = abs(skewness) * (z * z - 1) / 6 * sigma
    low, high = auc - z * sigma - (extra if skewness > 0 else 0.0), auc + z * sigma + (extra if skewness < 0 else 0.0)
    return Estimate(auc, max(0.0, low), min(1.0, high))


def auc_lower_bound(y_true: np.ndarray, scores: np.ndarray, level: float, variance_factor: float = 1.0,
                    strata: np.ndarray | None = None) -> float:
    """One-sided lower confidence bound of the AUC at error level `level`: AUC − z₁₋ₗₑᵥₑₗ·√(factor·Var)
    (DeLong; `variance_factor` and `strata` as in auc_interval)."""
    from scipy.stats import norm

    auc, variance = auc_delong(y_true, scores, strata)
    return max(0.0, auc - float(norm.ppf(1 - level)) * math.sqrt(variance_factor * max(variance, 0.0)))


BOOTSTRAP_METRICS = ("accuracy", "auc", "advantage")


def _resampled(metric: str, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """`metric` of each resample; pos (B, n₊) and neg (B, n₋) are members' and non-members' scores.
    accuracy = (#{pos ≥ ½} + #{neg < ½}) / n; advantage = TPR − FPR at ½; auc in Mann–Whitney form."""
    if metric == "accuracy":
        return ((pos >= 0.5).sum(1) + (neg < 0.5).sum(1)) / (pos.shape[1] + neg.shape[1])
    if metric == "advantage":
        return (pos >= 0.5).mean(1) - (neg >= 0.5).mean(1)
    return (pos[:, :, None] > neg[:, None, :]).mean(axis=(1, 2)) + 0.5 * (pos[:, :, None] == neg[:, None, :]).mean(axis=(1, 2))


def bootstrap_difference(y_new: np.ndarray, scores_new: np.ndarray, y_old: np.ndarray, scores_old: np.ndarray,
                         metric: str, confidence: float = 0.95, paired: bool = True, n_resamples: int = 2000,
                         seed: int = 0) -> Estimate:
    """metric(new) − metric(old) with a percentile bootstrap interval, members and non-members resampled
    separately. Paired (the same query images in the same order): one set of indices serves both runs, so
    the queries' own difficulty cancels out; unpaired: each run is resampled on its own."""
    y_new, y_old = np.asarray(y_new), np.asarray(y_old)
    s_new, s_old = np.asarray(scores_new, float), np.asarray(scores_old, float)
    if paired and not np.array_equal(y_new, y_old):
        raise ValueError("a paired comparison needs the same queries in the same order")
    rng = np.random.default_rng(seed)

    def draw(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        return (pos[rng.integers(0, len(pos), (n_resamples, len(pos)))],
                neg[rng.integers(0, len(neg), (n_resamples, len(neg)))])

    new_idx = draw(y_new)
    old_idx = new_idx if paired else draw(y_old)
    diffs = (_resampled(metric, s_new[new_idx[0]], s_new[new_idx[1]])
             - _resampled(metric, s_old[old_idx[0]], s_old[old_idx[1]]))
    point = (_resampled(metric, s_new[y_new == 1][None], s_new[y_new == 0][None])
             - _resampled(metric, s_old[y_old == 1][None], s_old[y_old == 0][None]))[0]
    alpha = 1.0 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(point), float(low), float(high))


def epsilon_lower_bound(
    false_positives: int, negatives: int, false_negatives: int, positives: int, alpha: float = 0.05, delta: float = 0.0
) -> float:
    """Empirical ε lower bound of an (ε, δ)-DP training run from one attack's errors (Nasr et al. 2021).

    With FPR_ub, FNR_ub the one-sided Clopper–Pearson upper bounds at level α/2,
    ε_lb = max(0, ln((1 − δ − FNR_ub) / FPR_ub), ln((1 − δ − FPR_ub) / FNR_ub)), valid with confidence 1 − α
    when the attack's decision rule was not chosen on the data it is evaluated on.
    """
    fpr_ub = clopper_pearson(false_positives, negatives, 1 - alpha)[1]
    fnr_ub = clopper_pearson(false_negatives, positives, 1 - alpha)[1]
    candidates = [0.0]
    for num, den in ((1 - delta - fnr_ub, fpr_ub), (1 - delta - fpr_ub, fnr_ub)):
        if num > 0 and den > 0:
            candidates.append(math.log(num / den))
    return max(candidates)


def epsilon_ceiling(positives: int, negatives: int, alpha: float = 0.05, delta: float = 0.0) -> float:
    """The largest ε lower bound `epsilon_lower_bound` can certify with these counts: that of a perfect attack
    (no false positive, no false negative). With 0 errors in n, the Clopper–Pearson bound is 1 − (α/2)^(1/n),
    so the ceiling grows like ln(n) — an audit of 128 + 128 queries cannot certify more than ε ≈ 3.5."""
    return epsilon_lower_bound(0, negatives, 0, positives, alpha, delta)
