"""The attack tests that `pytest --mia-target=...` runs with no test file of the user's:
test_attack[I-P], [I-S], [II-P], [II-S], [III], [IV]. Each fails when its attack leaks beyond the threshold;
one whose metric cannot be measured errors (in its fixture), never passes."""

from __future__ import annotations

import json

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
        return mia_audit.result(request.param), mia_audit.verdict(request.param)
    except (UnmeasurableError, GenerationError, FloatingPointError) as exc:
        pytest.fail(f"{request.param}: cannot measure: {exc}", pytrace=False)


@pytest.mark.mia
def test_attack(mia_verdict, record_property) -> None:
    result, verdict = mia_verdict
    record = result.to_dict()
    record["verdict"] = {"leaks": verdict.leaks, "label": verdict.label, "value": verdict.value,
                         "statistic": verdict.statistic, "threshold": verdict.threshold, "message": verdict.message}
    for key in ("accuracy", "auc", "advantage"):
        record_property(f"mia.{key}", record[key]["value"])
    record_property("mia.epsilon_lower_bound", record["epsilon_lower_bound"])
    record_property("mia.verdict", verdict.label)
    record_property("mia_record", json.dumps(record, sort_keys=True))
    if verdict.leaks:
        pytest.fail(verdict.message, pytrace=False)
