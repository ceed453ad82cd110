"""The gate under strict warning filters (issue 11, item 1): `-W error` with and without --junitxml (xunit2,
pytest's default, and xunit1); our own warnings follow the user's filters; an error that is not a
measurement failure is never reported as "could not measure"."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from helpers import without


def _testcases(path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {case.get("name"): case for case in root.iter("testcase")}


@pytest.mark.parametrize("run", ["demo_run", "leaky_parallel_run"], ids=["serial", "xdist"])
def test_leak_fails_under_w_error_with_xunit2_junit_and_no_pytest_warning(request, run):
    """`leaky`'s twelve attacks under -W error with a JUnit report (xunit2): serially (the demo) and on two
    pytest-xdist workers."""
    result = request.getfixturevalue(run)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and "errors" not in outcomes  # failures, not errors of the fixture
    output = result.stdout.str()
    assert "PytestWarning" not in output and "could not measure" not in output and "errored" not in output
    result.stdout.fnmatch_lines(["II-P *FAIL", "FAIL: * of 12 attacks leak beyond the threshold (II-P, *); memorization flags *"])
    # What GitLab's JUnit view shows: the failing test case with the gate's message.
    case = _testcases(result.path / "junit.xml")["test_attack[II-P]"]
    failure = case.find("failure")
    assert failure is not None and "II-P (reconstruction): auc = 0.9" in failure.get("message")
    assert case.find("properties") is None  # xunit2 test cases have no properties ...
    suite = ET.parse(result.path / "junit.xml").getroot().find("testsuite")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["mia.II-P.verdict"] == "FAIL" and float(properties["mia.II-P.accuracy"]) > 0.9  # ... the suite has
    assert "mia_record" not in (result.path / "junit.xml").read_text()


def test_xunit1_junit_gets_test_case_properties_under_w_error(null_run):
    null_run.assert_outcomes(passed=14)
    case = _testcases(null_run.path / "junit.xml")["test_attack[II-P]"]
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["mia.verdict"] == "pass" and set(properties) == {
        "mia.accuracy", "mia.auc", "mia.advantage", "mia.epsilon_lower_bound", "mia.verdict"}


def test_null_target_passes_under_w_error_without_junit(pytester, demo_args):
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest(*demo_args("sd-null"), "--mia-attacks=II-P")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PASS: 0 of 1 attacks leak beyond the threshold"])


def test_our_warnings_follow_the_users_filters_and_are_not_called_unmeasurable(pytester, demo_args,
                                                                               dimmed_nonmembers):
    args = without(demo_args("sd-null"), "--mia-nonmembers")
    args += [f"--mia-nonmembers={dimmed_nonmembers}", "--mia-attacks=II-P"]
    # The warnings' earlier home, named in users' filters, still works; their home is mia_checks.errors.
    as_error = pytester.runpytest(*args, "-W", "error::mia_checks.gate_tests.DistributionShiftWarning")
    as_error.assert_outcomes(errors=1)
    as_error.stdout.fnmatch_lines(["II-P: error: *DistributionShiftWarning: no-model baseline*",
                                   "FAIL: II-P errored; 0 of 0 attacks leak beyond the threshold"])
    assert "could not measure" not in as_error.stdout.str()
    ignored = pytester.runpytest(*args, "-W", "error", "-W", "ignore::mia_checks.errors.DistributionShiftWarning")
    ignored.assert_outcomes(failed=1)  # the run goes on to its verdict: the shifted sets make sd-null look leaky
    assert "DistributionShiftWarning" not in ignored.stdout.str() and "could not measure" not in ignored.stdout.str()
