"""A usage error through pytest is exit code 4 with the message on stderr and no traceback. (Every check
itself is tested in-process: tests/unit/test_preflight.py, tests/testbed/test_target_checks.py.)"""

from __future__ import annotations

import json

import pytest

from helpers import make_set


@pytest.fixture
def project(pytester: pytest.Pytester):
    """A project with 20 + 20 reference images and a callable target; usage errors come before any model."""
    make_set(pytester.path / "members", 20, seed=1)
    make_set(pytester.path / "nonmembers", 20, seed=2)
    pytester.makepyfile(model="""
        import numpy as np
        def generate(prompts, seeds):
            return [np.random.default_rng(s).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds]
    """)
    pytester.syspathinsert()

    def run(*options: str) -> pytest.RunResult:
        base = {"--mia-target": "model:generate", "--mia-members": "members", "--mia-nonmembers": "nonmembers",
                "--mia-cache-dir": "cache"}
        base.update(o.split("=", 1) for o in options if "=" in o)
        return pytester.runpytest(*(f"{k}={v}" for k, v in base.items()), "-p", "no:cacheprovider",
                                  *(o for o in options if "=" not in o))

    return run


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_bad_option_is_exit_code_4_naming_the_option(project):
    assert_usage_error(project("--mia-threshold=nan"), "--mia-threshold (gate metric auc): 'nan' is not a finite number*")


def test_a_module_that_exits_at_import_is_a_usage_error_not_exit_0(project, pytester):
    pytester.makepyfile(exiting="import sys\nsys.exit(0)\ndef generate(p, s):\n    return []\n")
    assert_usage_error(project("--mia-target=exiting:generate"),
                       "--mia-target: cannot import exiting for exiting:generate (SystemExit: 0)*")


def test_a_baseline_that_is_not_a_saved_run_is_exit_code_4(project, pytester):
    (pytester.path / "bad.json").write_text(json.dumps({"foo": 1}))
    assert_usage_error(project("--mia-compare=bad.json"),
                       "--mia-compare: *bad.json is not a saved mia-checks run (the document has no 'results')*")


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_a_blank_target_is_a_usage_error_not_a_gate_switched_off(project, blank):
    """What the CI templates would pass with their variable unset: without the error, the plugin stayed
    inactive and the job ran the project's other tests, wrote no report and exited 0."""
    assert_usage_error(project(f"--mia-target={blank}"), "--mia-target is empty (an unset variable in CI?)*")


def test_a_blank_target_in_the_ini_is_a_usage_error_too(pytester):
    pytester.makeini("[pytest]\nmia_target =\nmia_members = members\n")
    assert_usage_error(pytester.runpytest("-p", "no:cacheprovider"), "--mia-target is empty*")


def test_gate_options_without_a_target_are_a_usage_error(pytester):
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    assert_usage_error(pytester.runpytest("--mia-members=members", "--mia-track", "-p", "no:cacheprovider"),
                       "--mia-members, --mia-track given without --mia-target: the gate runs only on a target*")
    pytester.makeini("[pytest]\nmia_members = members\n")  # ini defaults alone leave the project's tests be
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
