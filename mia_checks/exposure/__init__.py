"""Exposure tests: which members does the model reproduce? Per-member verdicts beside the attacks' average-case
AUCs (issue 21):

- `memorization` (white-box, denoiser targets): Wen et al. (ICLR 2024)'s text-conditional noise magnitude
  for each caption (`memorization.py`);
- `regurgitation` (black-box, any target): each member's own generations compared with it, by a tiled L2
  and by embedding similarity (`regurgitation.py`).

Both flag a member when its score lies beyond a bound calibrated on the non-members, so that on a model
that reproduces no member the expected number of flagged members is at most α (`calibration.py`). A gate
test fails when any member is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..access.base import DENOISER
from ..errors import MiaUsageError
from .calibration import (
    ExposureResult,
    Finding,
    flag_members,
    prediction_bound,
    upper_bound,
)

EXPOSURE_TESTS = ("memorization", "regurgitation")
# What each test reads, and so which attacks it rides along with by default: no test adds a kind of cost
# (loading the weights, generating) that the run's attacks do not already pay.
READS = {"memorization": "white-box", "regurgitation": "black-box"}


def collected(tests: Sequence[str], attacks: Sequence[str], chosen: bool) -> tuple[str, ...]:
    """The exposure tests a run holds: the named ones (`chosen`), else those whose attacks run."""
    from ..attacks import ATTACKS

    return tuple(t for t in tests if chosen or any(ATTACKS[a].access == READS[t] for a in attacks))


def exposure_skip_reason(test: str, target) -> str | None:
    """Why an exposure test cannot run on this target (None: it can). `target`: the run's TargetSpec."""
    if test == "memorization" and target.access != DENOISER:
        return (target.no_access if target.access is None else f"{target.spec} is a token model ({target.access}): "
                "the memorization test reads a diffusion denoiser's noise predictions")
    return None


def check_exposure_choice(tests: Sequence[str], chosen: bool, target) -> None:
    """A test named in --mia-exposure must be able to run: skipping it would pass a gate that never looked."""
    for test in tests if chosen else ():
        reason = exposure_skip_reason(test, target)
        if reason:
            raise MiaUsageError(f"--mia-exposure: {test} cannot run: {reason}. Drop it from --mia-exposure.")


__all__ = ["EXPOSURE_TESTS", "ExposureResult", "Finding", "check_exposure_choice", "collected", "exposure_skip_reason",
           "flag_members", "prediction_bound", "upper_bound"]
