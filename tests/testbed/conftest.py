"""Fixtures of the test bed's tests (both tiers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_checks import metrics
from mia_checks.attacks import ATTACKS


@pytest.fixture(scope="module")
def whitebox_auc(testbed: Path, tmp_path_factory):
    """`whitebox_auc(target)`: the raw AUC of the gate's own loss attack on the target's audit sets."""
    cache = tmp_path_factory.mktemp("scores")
    return lambda target: _whitebox_auc(testbed, target, cache)


def _whitebox_auc(testbed: Path, target: str, cache: Path) -> metrics.Estimate:
    """The raw AUC of the gate's own loss attack (lower denoising error = member), 90% interval."""
    from mia_checks.audit import Audit
    from mia_checks.settings import build_settings
    from mia_checks.testbed import audit_sets

    members, nonmembers = audit_sets(target)
    settings = build_settings({"target": str(testbed / target), "members": str(testbed / members),
                               "nonmembers": str(testbed / nonmembers), "attacks": "loss",
                               "cache-dir": str(cache)})
    audit = Audit(settings, progress=False)
    errors = audit.measurements(ATTACKS["loss"]).mean(1)
    return metrics.auc_interval(audit.labels, -errors, confidence=0.9)
