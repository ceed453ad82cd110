"""Flagging members against a null calibrated on the non-members.

A member's exposure score s (higher = more exposed: a memorisation magnitude, a negated copy distance) is
compared with the non-members' scores, which are what the model does with images it never saw. The rule:

    flag member i  ⇔  log s_i > μ + t_{n−1, 1−α/(c·m)} · σ · √(1 + 1/n)

with μ, σ the mean and standard deviation of the n non-members' log scores, m the number of members and c
the number of criteria a test applies (each member is flagged when any criterion flags it). That bound is
the one-sided (1 − α/(c·m)) prediction bound of one more draw from a normal sample of n (exact for a
normal null, whatever n), so on a model that exposes no member each member is flagged by a criterion with
probability α/(c·m), and the expected number of false flags over the member set is at most α.

Why parametric: the rule must hold at α/(c·m) ≈ 0.0004 with 128 members and 32–128 non-members, far below
the 1/(n+1) that an empirical (conformal) quantile of n non-members can reach. Log scores of norms and
distances are close to normal; the false-flag rate is measured on null targets over seeds
(benchmarks/exposure.py) rather than assumed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import UnmeasurableError

FLOOR = 1e-12  # a zero distance (a pixel-exact copy) is the most extreme score there is, not log(0)
MIN_NULL = 10  # distinct non-member scores needed to calibrate a bound


def upper_bound(null: np.ndarray, level: float) -> float:
    """The upper (1 − level) prediction bound of one more draw from the population of `null`, normal:
    μ + t_{n−1, 1−level} · σ · √(1 + 1/n)."""
    from scipy.stats import t as student_t

    null = np.asarray(null, dtype=float)
    n = len(null)
    return float(null.mean() + student_t.ppf(1 - level, n - 1) * null.std(ddof=1) * math.sqrt(1 + 1 / n))


def prediction_bound(null: np.ndarray, level: float) -> float:
    """upper_bound on the log scale of positive scores: the bound on log(score)."""
    return upper_bound(np.log(np.maximum(np.asarray(null, dtype=float), FLOOR)), level)


def check_null(null: np.ndarray, what: str) -> None:
    """A null that cannot calibrate a bound is an error, never a pass."""
    null = np.asarray(null, dtype=float)
    if not np.isfinite(null).all() or (null < 0).any():
        raise UnmeasurableError(f"{what}: non-finite or negative scores; the target produced invalid outputs.")
    distinct = len(np.unique(null))
    if distinct < MIN_NULL:
        raise UnmeasurableError(f"{what}: {distinct} distinct non-member scores, too few to calibrate the bound "
                                f"(needs {MIN_NULL}); add non-members with distinct captions.")


@dataclass(frozen=True)
class Finding:
    """A flagged member: its index among the members, the criterion that flagged it, its value and the bound, in
    the criterion's own units (a loss, a distance: exposed *below* the bound; a magnitude: above it)."""

    member: int
    criterion: str
    score: float
    threshold: float
    below: bool  # exposed when the value is below the bound (losses, distances)
    excess: float  # how far past the bound, on the log scale: the findings' order
    evidence: dict = field(default_factory=dict)  # e.g. the closest generation's index

    @property
    def comparison(self) -> str:
        return f"{self.score:.4g} {'<' if self.below else '>'} {self.threshold:.4g}"


@dataclass(frozen=True)
class ExposureResult:
    """One exposure test over a run's members."""

    test: str
    access: str  # "white-box" | "black-box"
    members: int
    null_size: int  # non-member scores the bound was calibrated on
    alpha: float
    level: float  # α / (criteria · members): each member's false-flag probability per criterion
    thresholds: dict[str, float]  # criterion → bound, on the criterion's scale
    member_scores: dict[str, list[float]]  # criterion → each member's score
    null_scores: dict[str, list[float]]  # criterion → the scores the bound was calibrated on
    findings: list[Finding]
    calls_per_image: int
    rule: str
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[int]:
        return sorted({f.member for f in self.findings})

    @property
    def fails(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["flagged"] = self.flagged
        for finding, row in zip(self.findings, out["findings"]):
            row["comparison"] = finding.comparison
        for key in ("member_scores", "null_scores"):
            out[key] = {k: [round(float(v), 6) for v in vs] for k, vs in getattr(self, key).items()}
        return out


def flag_members(test: str, access: str, criteria: dict[str, tuple], alpha: float,
                 calls_per_image: int, evidence=None, null_label: str = "non-members", notes=()) -> ExposureResult:
    """Flag the members that lie past the bound of any criterion.

    `criteria`: name → (member values (m,), null values (n,), below[, log]), positive numbers in the
    criterion's own units; `below`: lower is more exposed (a loss, a distance). The bound is computed on the
    log scale, or with `log=False` on the values themselves: the scale on which the null's tail towards
    exposure is no heavier than normal, measured per criterion (a log stretches the lower tail of values
    near 0: 1 − cosine's log had null members at z = −5.05 over 1,280, its raw values −1.53).
    `evidence(criterion, member)` → a dict shown with a finding."""
    m = len(next(iter(criteria.values()))[0])
    level = alpha / (len(criteria) * m)
    thresholds, member_out, null_out, findings = {}, {}, {}, []
    for name, (values, null, below, *log) in criteria.items():
        check_null(null, f"{test} ({name})")
        values, null = np.asarray(values, dtype=float), np.asarray(null, dtype=float)
        if not np.isfinite(values).all():
            raise UnmeasurableError(f"{test} ({name}): non-finite member scores; the target produced invalid outputs.")
        log_scale = log[0] if log else True
        sign = -1.0 if below else 1.0  # flagged where sign · scale(value) is high

        def scale(v, log_scale=log_scale):
            return np.log(np.maximum(v, FLOOR)) if log_scale else v

        bound = upper_bound(sign * scale(null), level)
        excess = sign * scale(values) - bound
        thresholds[name] = math.exp(sign * bound) if log_scale else sign * bound
        member_out[name], null_out[name] = values.tolist(), null.tolist()
        for i in np.flatnonzero(excess > 0):
            findings.append(Finding(int(i), name, float(values[i]), thresholds[name], below, float(excess[i]),
                                    evidence(name, int(i)) if evidence else {}))
    findings.sort(key=lambda f: -f.excess)
    rule = (f"a member is flagged when it lies past the one-sided {100 * (1 - level):.4g}% prediction bound of the "
            f"{null_label}' values (normal on each criterion's scale, t with n−1 df): expected false flags ≤ α = {alpha:.2g} over {m} "
            f"members and {len(criteria)} criteri{'on' if len(criteria) == 1 else 'a'}")
    null_size = max(len(criterion[1]) for criterion in criteria.values())
    return ExposureResult(test, access, m, null_size, alpha, level, thresholds, member_out, null_out, findings,
                          calls_per_image, rule, list(notes))
