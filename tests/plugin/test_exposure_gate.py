"""The exposure tests through the plugin, as users meet them: which members a leaky model exposes, in every
report, and nothing flagged on the model that never saw them."""

from __future__ import annotations

import csv
import json

import pytest


def test_the_leaky_target_names_its_exposed_members_in_every_report(gate, demo_args):
    """`sd-leaky` memorised its 32 members: its generations copy them (II-P AUC ≈ 0.98)."""
    result = gate(*demo_args("sd-leaky", exposure=True), "--mia-attacks=II-P,loss", "--mia-json=report.json",
                  "--mia-markdown=summary.md", "--mia-html=report.html", "--mia-exposed-csv=exposed.csv",
                  "--mia-exposed-top=5")
    result.stdout.fnmatch_lines(["FAIL regurgitation (black-box): * of 32 members flagged; embedding bound *, pixel "
                                 "bound *; calibrated on 32 non-members, expected false flags ≤ 0.01*",
                                 "  *.png: * < * (generation ?)  caption: a handwritten*",
                                 "FAIL: *regurgitation flags * of 32 members*",
                                 "FAILED mia-checks::test_exposure[[]regurgitation[]] - Failed: regurgitation: *"])
    report = json.loads((result.path / "report.json").read_text())
    tests = {e["test"]: e for e in report["exposure"]}
    assert set(tests) == {"memorization", "regurgitation"}
    regurgitation = tests["regurgitation"]
    assert len(regurgitation["flagged"]) >= 5 and regurgitation["calls_per_image"] == 0
    assert all(f["score"] < f["threshold"] and f["file"].endswith(".png") and f["caption"]
               for f in regurgitation["findings"])
    assert tests["memorization"]["calls_per_image"] == 13  # 8 for the noise magnitude, 5 the loss attack's
    assert len(tests["memorization"]["member_scores"]["noise magnitude"]) == 32
    members = report["member_findings"]
    assert len(members) == 32 and members[0]["flags"] and set(members[0]["ranks"]) == {"II-P", "loss"}
    assert sorted(m["ranks"]["loss"] for m in members) == list(range(1, 33))
    rows = list(csv.DictReader((result.path / "exposed.csv").open(encoding="utf-8")))
    assert len(rows) == 5 and rows[0]["file"] == members[0]["file"] and "memorization" in rows[0]["flags"]
    summary = (result.path / "summary.md").read_text(encoding="utf-8")
    assert "### Exposed members" in summary and "- FAIL regurgitation" in summary
    html = (result.path / "report.html").read_text(encoding="utf-8")
    # The 5 most exposed members (--mia-exposed-top), with every finding about them.
    assert html.count('class="pair exposed" data-test="memorization"') == 5
    assert 'class="pair exposed" data-test="regurgitation"' in html and "generation" in html


def test_exposure_tests_pass_the_model_that_never_saw_the_members(null_run):
    null_run.stdout.fnmatch_lines(["pass memorization (white-box): 0 of 32 members flagged*",
                                   "pass regurgitation (black-box): 0 of 32 members flagged*"])
    assert "FAIL" not in "\n".join(line for line in null_run.outlines if line.startswith(("pass ", "FAIL ")))


def test_each_test_rides_along_with_its_attacks_and_runs_alone_when_named(pytester, demo_args):
    def collected(*args: str) -> list[str]:
        result = pytester.runpytest(*demo_args("sd-null", exposure=True), *args, "--collect-only", "-q")
        return [line for line in result.outlines if line.startswith("mia-checks::")]

    assert collected("--mia-attacks=II-P") == ["mia-checks::test_attack[II-P]", "mia-checks::test_exposure[regurgitation]"]
    assert collected("--mia-attacks=loss") == ["mia-checks::test_attack[loss]", "mia-checks::test_exposure[memorization]"]
    assert collected("--mia-attacks=loss", "--mia-exposure=regurgitation") == [
        "mia-checks::test_attack[loss]", "mia-checks::test_exposure[regurgitation]"]
    assert collected("--mia-exposure=none") == [f"mia-checks::test_attack[{a}]" for a in (
        "I-P", "I-S", "II-P", "II-S", "III", "IV", "NN", "loss", "SimA", "PIA", "SecMI", "CLiD")]


def test_memorization_is_skipped_with_the_reason_on_a_callable(pytester, demo_args, leaky_callable):
    args = [a for a in demo_args("sd-null", exposure=True) if not a.startswith("--mia-target=")]
    result = pytester.runpytest(*args, f"--mia-target={leaky_callable}", "-rs",
                                "-k", "memorization")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*memorization: *"])


def test_memorization_named_on_a_black_box_target_is_a_usage_error(pytester, demo_args, leaky_callable):
    args = [a for a in demo_args("sd-null") if not a.startswith("--mia-target=")]
    result = pytester.runpytest(*args, f"--mia-target={leaky_callable}", "--mia-exposure=memorization")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mia-exposure: memorization cannot run: *Drop it from --mia-exposure.*"])


@pytest.mark.parametrize("option, message", [
    ("--mia-exposure=copies", "--mia-exposure: unknown copies; choose from memorization, regurgitation or 'all'."),
    ("--mia-memorization-steps=0", "--mia-memorization-steps: 0 is out of range [1, 50]."),
    ("--mia-exposed-top=-1", "--mia-exposed-top: -1 is out of range: below its minimum 1."),
])
def test_bad_exposure_options_are_usage_errors(pytester, demo_args, option, message):
    result = pytester.runpytest(*demo_args("sd-null", exposure=True), option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and message in result.stderr.str()
