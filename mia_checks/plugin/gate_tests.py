"""The attack tests that `pytest --mia-target=...` runs with no test file of the user's: the black-box
test_attack[I-P] … [IV], [NN] and the white-box test_attack[loss], [SimA], [PIA], [SecMI], [CLiD]. Each fails
when its attack leaks beyond the threshold; one whose metric cannot be measured errors (in its fixture),
never passes; a white-box attack on a target without weights to query is skipped with the reason. The
exposure tests test_exposure[memorization] and [regurgitation] fail when any member is flagged (exposure/)."""

from __future__ import annotations

import json
import warnings

import pytest

from mia_checks.errors import MEASUREMENT_ERRORS, DistributionShiftWarning, LeakageWarning
from mia_checks.gate import privacy_contradiction
from mia_checks.plugin.session import RECORD_KEY, SESSION_KEY
from mia_checks.reports.junit import junit_properties


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = metafunc.config.stash[SESSION_KEY].settings
    if "mia_verdict" in metafunc.fixturenames:
        metafunc.parametrize("mia_verdict", settings.attacks, ids=settings.attacks, indirect=True)
    if "mia_exposure" in metafunc.fixturenames:
        metafunc.parametrize("mia_exposure", settings.exposure_tests, ids=settings.exposure_tests, indirect=True)


@pytest.fixture
def mia_verdict(request: pytest.FixtureRequest, mia_audit):
    """(result, verdict, shift) of one attack; a run that cannot measure is an error of this fixture."""
    reason = mia_audit.skip_reason(request.param)
    if reason:
        pytest.skip(f"{request.param} is a white-box attack: {reason}")
    try:
        result, verdict = mia_audit.result(request.param), mia_audit.verdict(request.param)
        shift = None if mia_audit.settings.shift_check == "off" else mia_audit.distribution_shift()
    except MEASUREMENT_ERRORS as exc:
        pytest.fail(f"{request.param}: cannot measure: {exc}", pytrace=False)
    if shift is not None and shift.shifted:
        if mia_audit.settings.shift_check == "error":
            pytest.fail(f"distribution shift: {shift.message}", pytrace=False)
        warnings.warn(DistributionShiftWarning(shift.message), stacklevel=1)
    return result, verdict, shift


@pytest.mark.mia
def test_attack(mia_verdict, mia_session, request: pytest.FixtureRequest) -> None:
    result, verdict, shift = mia_verdict
    record = mia_session.record(result.attack, result, verdict, shift)
    # The record reaches the controller on the test's report (hooks.pytest_runtest_makereport), under
    # pytest-xdist too; it stays out of the JUnit XML.
    request.node.stash[RECORD_KEY] = json.dumps(record, sort_keys=True)
    config = request.config
    if config.getoption("xmlpath", None) and config.getini("junit_family") in ("xunit1", "legacy"):
        # On the test case (what record_property does, without its xunit2 warning); for xunit2 the
        # controller writes them on the test suite (session.MiaSession).
        request.node.user_properties.extend(junit_properties(record))
    declared = mia_session.get_audit().spec.privacy
    contradiction = privacy_contradiction(record, declared and declared.to_dict())
    problems = (([verdict.message] if verdict.leaks else []) + ([contradiction] if contradiction else [])
                + (record["baseline"] or {}).get("messages", []))
    if problems and mia_session.settings.track:
        warnings.warn(LeakageWarning("tracking mode, not failing: " + "; ".join(problems)), stacklevel=1)
    elif problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mia_exposure(request: pytest.FixtureRequest, mia_audit):
    """One exposure test's result; one that cannot measure is an error of this fixture."""
    reason = mia_audit.exposure_skip_reason(request.param)
    if reason:
        pytest.skip(f"{request.param}: {reason}")
    try:
        return mia_audit.exposure(request.param)
    except MEASUREMENT_ERRORS as exc:
        pytest.fail(f"{request.param}: cannot measure: {exc}", pytrace=False)


@pytest.mark.mia
def test_exposure(mia_exposure, mia_session, request: pytest.FixtureRequest) -> None:
    record = mia_session.exposure_record(mia_exposure)
    request.node.stash[RECORD_KEY] = json.dumps(record, sort_keys=True)
    if not mia_exposure.fails:
        return
    message = record["message"]
    if mia_session.settings.track:
        warnings.warn(LeakageWarning("tracking mode, not failing: " + message), stacklevel=1)
    else:
        pytest.fail(message, pytrace=False)
