"""The attack tests that `pytest --mia-target=...` runs with no test file of the user's:
test_attack[I-P], [I-S], [II-P], [II-S], [III], [IV]. Each fails when its attack leaks beyond the threshold;
one whose metric cannot be measured errors (in its fixture), never passes."""

from __future__ import annotations

import json
import warnings

import pytest

from mia_checks.plugin import SESSION_KEY


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "mia_verdict" in metafunc.fixturenames:
        attacks = metafunc.config.stash[SESSION_KEY].settings.attacks
        metafunc.parametrize("mia_verdict", attacks, ids=attacks, indirect=True)


@pytest.fixture
def mia_verdict(request: pytest.FixtureRequest, mia_audit):
    """(result, verdict) of one attack; a run that cannot measure is an error of this fixture."""
    from mia_checks.gate import UnmeasurableError
    from mia_checks.generation import GenerationError

    try:
        result, verdict = mia_audit.result(request.param), mia_audit.verdict(request.param)
        shift = None if mia_audit.settings.shift_check == "off" else mia_audit.distribution_shift()
    except (UnmeasurableError, GenerationError, FloatingPointError) as exc:
        pytest.fail(f"{request.param}: cannot measure: {exc}", pytrace=False)
    if shift is not None and shift.shifted:
        if mia_audit.settings.shift_check == "error":
            pytest.fail(f"distribution shift: {shift.message}", pytrace=False)
        warnings.warn(DistributionShiftWarning(shift.message), stacklevel=1)
    return result, verdict, shift


class DistributionShiftWarning(UserWarning):
    """Members and non-members differ without any model: verdicts are unreliable."""


@pytest.mark.mia
def test_attack(mia_verdict, record_property) -> None:
    result, verdict, shift = mia_verdict
    record = result.to_dict()
    record["distribution_shift"] = None if shift is None else {
        "shifted": shift.shifted, "p_value": shift.p_value, "baseline_accuracy": shift.baseline_accuracy,
        "message": shift.message}
    record["verdict"] = {"leaks": verdict.leaks, "label": verdict.label, "value": verdict.value,
                         "statistic": verdict.statistic, "threshold": verdict.threshold, "message": verdict.message}
    for key in ("accuracy", "auc", "advantage"):
        record_property(f"mia.{key}", record[key]["value"])
    record_property("mia.epsilon_lower_bound", record["epsilon_lower_bound"])
    record_property("mia.verdict", verdict.label)
    record_property("mia_record", json.dumps(record, sort_keys=True))
    if verdict.leaks:
        pytest.fail(verdict.message, pytrace=False)
