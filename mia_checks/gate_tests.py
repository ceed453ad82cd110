"""The attack tests that `pytest --mia-target=...` runs with no test file of the user's: the black-box
test_attack[I-P] … [IV] and the white-box test_attack[loss], [SimA], [PIA], [SecMI], [CLiD]. Each fails
when its attack leaks beyond the threshold; one whose metric cannot be measured errors (in its fixture),
never passes; a white-box attack on a target without weights to query is skipped with the reason."""

from __future__ import annotations

import json
import warnings

import pytest

from mia_checks.attacks import ATTACKS
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
    from mia_checks.errors import ModelLoadError, WhiteBoxError
    from mia_checks.targets import TargetContractError

    reason = mia_audit.skip_reason(request.param)
    if reason:
        pytest.skip(f"{request.param} is a white-box attack: {reason}")
    try:
        result, verdict = mia_audit.result(request.param), mia_audit.verdict(request.param)
        shift = None if mia_audit.settings.shift_check == "off" else mia_audit.distribution_shift()
    except (UnmeasurableError, GenerationError, ModelLoadError, WhiteBoxError, TargetContractError,
            FloatingPointError) as exc:
        pytest.fail(f"{request.param}: cannot measure: {exc}", pytrace=False)
    if shift is not None and shift.shifted:
        if mia_audit.settings.shift_check == "error":
            pytest.fail(f"distribution shift: {shift.message}", pytrace=False)
        warnings.warn(DistributionShiftWarning(shift.message), stacklevel=1)
    return result, verdict, shift


class DistributionShiftWarning(UserWarning):
    """Members and non-members differ without any model: verdicts are unreliable."""


class LeakageWarning(UserWarning):
    """Tracking mode: an attack leaks beyond its threshold, or rose beyond the baseline; the run goes on."""


def _baseline(record: dict, mia_session) -> dict | None:
    """The record's comparison with the saved run it is compared with (None without one)."""
    from mia_checks.baselines import compare

    settings = mia_session.settings
    if mia_session.baseline is None:
        return None
    changes = compare(record, mia_session.baseline_record(record["attack"]), [settings.gate_metric],
                      settings.compare_fail, settings.compare_rule, settings.compare_level,
                      mia_session.paired_with_baseline(), settings.seed)
    return {"run": mia_session.baseline.label, "changes": [c.to_dict() for c in changes],
            "messages": [c.message(mia_session.baseline.label) for c in changes if c.regressed]}


def _junit_properties(request: pytest.FixtureRequest, record: dict) -> None:
    """Per-attack JUnit properties, where the JUnit family allows them: on the test case for xunit1/legacy
    (what record_property does, without its xunit2 warning); for xunit2, whose test cases have no properties,
    the controller writes them on the test suite as mia.<attack>.<name> (plugin.MiaSession)."""
    config = request.config
    if config.getoption("xmlpath", None) and config.getini("junit_family") in ("xunit1", "legacy"):
        request.node.user_properties.extend(junit_properties(record))


def junit_properties(record: dict) -> list[tuple[str, object]]:
    return [*((f"mia.{key}", record[key]["value"]) for key in ("accuracy", "auc", "advantage")),
            ("mia.epsilon_lower_bound", record["epsilon_lower_bound"]), ("mia.verdict", record["verdict"]["label"])]


@pytest.mark.mia
def test_attack(mia_verdict, mia_session, request: pytest.FixtureRequest) -> None:
    from mia_checks.plugin import RECORD_KEY

    result, verdict, shift = mia_verdict
    record = result.to_dict()
    record["access"] = ATTACKS[result.attack].access
    record["denoiser_calls"] = mia_session.get_audit().denoiser_calls(result.attack)
    record["distribution_shift"] = None if shift is None else {
        "shifted": shift.shifted, "p_value": shift.p_value, "baseline_accuracy": shift.baseline_accuracy,
        "message": shift.message}
    record["verdict"] = {"leaks": verdict.leaks, "label": verdict.label, "value": verdict.value,
                         "statistic": verdict.statistic, "threshold": verdict.threshold, "message": verdict.message}
    record["baseline"] = _baseline(record, mia_session)
    # The record reaches the controller on the test's report (plugin.pytest_runtest_makereport), under
    # pytest-xdist too; it stays out of the JUnit XML.
    request.node.stash[RECORD_KEY] = json.dumps(record, sort_keys=True)
    _junit_properties(request, record)
    problems = ([verdict.message] if verdict.leaks else []) + (record["baseline"] or {}).get("messages", [])
    if problems and mia_session.settings.track:
        warnings.warn(LeakageWarning("tracking mode, not failing: " + "; ".join(problems)), stacklevel=1)
    elif problems:
        pytest.fail("\n".join(problems), pytrace=False)
