"""The release gate as CI meets it (pytester): saved runs, comparisons that fail, tracking mode, and the
HTML / Markdown reports."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from helpers import CHROMIUM_FLAGS, find_chromium


def test_save_then_compare_passes_on_the_same_model_and_fails_when_a_leakier_one_replaces_it(pytester, demo_args):
    # The test bed's `mild` target (early-stopped) is saved as the baseline of a cleaner release.
    # (black-box attacks: the white-box ones catch `mild`, see test_whitebox_gate.py)
    saved = pytester.runpytest(*demo_args("sd-mild"), "--mia-attacks=blackbox", "--mia-save=mild")
    saved.assert_outcomes(passed=7)
    saved.stdout.fnmatch_lines(["saved run: .mia-checks/0001_mild.json"])

    # The same model again: every delta is exactly 0, nothing regresses; this run is saved as 0002.
    same = pytester.runpytest(*demo_args("sd-mild"), "--mia-attacks=blackbox", "--mia-compare-fail=auc:0.02,accuracy:5%",
                              "--mia-autosave")
    same.assert_outcomes(passed=7)
    same.stdout.fnmatch_lines(["baseline: 0001_mild (.mia-checks/0001_mild.json); fails on a rise beyond "
                               "auc:0.02,accuracy:5% (rule: 99.6% one-sided lower bound of the rise, paired bootstrap)",
                               "*baseline auc*Δ auc*baseline accuracy*Δ accuracy*",
                               "II-P *+0.000 [[]+0.000, +0.000[]] *+0.000 [[]+0.000, +0.000[]]", "PASS: 0 of 7 attacks leak*; 0 regressed against 0001_mild",
                               "saved run: .mia-checks/0002_*.json"])

    # The leakier `leaky` model replaces it: II-P's AUC rises from ~0.6 to ~0.98 and the run fails. The
    # baseline lost its IV record (hand-edited): IV cannot be compared, which under --mia-compare-fail fails too.
    baseline = pytester.path / ".mia-checks" / "0001_mild.json"
    document = json.loads(baseline.read_text())
    document["results"] = [r for r in document["results"] if r["attack"] != "IV"]
    baseline.write_text(json.dumps(document))
    leaky = pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=II-P,IV", "--mia-compare=1",
                               "--mia-compare-fail=auc:0.02", "--mia-json=leaky.json")
    assert leaky.ret == pytest.ExitCode.TESTS_FAILED
    leaky.stdout.fnmatch_lines(["*II-P: auc rose from 0.* (baseline 0001_mild) to 0.9*, +0.* > allowed 0.020 (auc:0.02)*",
                                "II-P *FAIL * REGRESSED",
                                "IV *n/a *not compared REGRESSED",
                                "FAIL: *regressed against 0001_mild (II-P*"])
    record = json.loads((pytester.path / "leaky.json").read_text())["results"][0]
    auc = next(c for c in record["baseline"]["changes"] if c["metric"] == "auc")
    assert auc["regressed"] and auc["delta"] > 0.3 and record["baseline"]["run"] == "0001_mild"
    assert sorted(p.name for p in (pytester.path / ".mia-checks").glob("*.json"))[0] == "0001_mild.json"


def test_tracking_mode_reports_leakage_without_failing_but_errors_stay_errors(pytester, demo_args):
    tracked = pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=II-P", "--mia-track")
    tracked.assert_outcomes(passed=1, warnings=1)
    tracked.stdout.fnmatch_lines(["*LeakageWarning: tracking mode, not failing: II-P (reconstruction): auc*",
                                  "gate: *; tracking mode: leakage and regressions are reported, not failed",
                                  "II-P *FAIL", "PASS (tracking mode): 1 of 1 attacks leak beyond the threshold (II-P)"])
    assert tracked.ret == pytest.ExitCode.OK
    # TPR at 1% FPR cannot be measured with 32 non-members: an error even in tracking mode.
    # Such a run is not saved as the next baseline: it would leave II-P uncompared.
    errored = pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=II-P", "--mia-track",
                                 "--mia-gate-metric=tpr@1%fpr", "--mia-autosave")
    errored.assert_outcomes(errors=1)
    assert errored.ret == pytest.ExitCode.TESTS_FAILED
    errored.stdout.fnmatch_lines(["ERROR: saved run: not saved: 1 attack(s) errored (II-P), and a baseline must "
                                  "measure every attack it gates. *--mia-save-incomplete*"])
    assert not list((pytester.path / ".mia-checks").glob("*.json"))


def test_compare_with_nothing_saved_says_so(null_run):
    null_run.assert_outcomes(passed=14)  # `--mia-compare` in a project with no saved run
    null_run.stdout.fnmatch_lines(["baseline: no saved run in .mia-checks/ yet: nothing to compare*"])


def test_html_report_renders_in_headless_chromium_with_its_plots(demo_run, tmp_path):
    import numpy as np
    from PIL import Image

    chromium = find_chromium()
    demo_run.stdout.fnmatch_lines(["HTML report: */out/report.html", "Markdown summary: */out/summary.md"])
    html = demo_run.path / "out" / "report.html"
    # Self-contained: every image and link is inline (data: URIs, #anchors), nothing is fetched.
    assert re.findall(r'(?:src|href)="(?!data:|#)[^"]*"', html.read_text()) == []

    browser = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    # Parsed by the browser: every attack, each with a two-panel ROC (linear and log FPR) and a histogram.
    for attack in ("I-P", "I-S", "II-P", "II-S", "III", "IV", "NN", "loss", "SimA", "PIA", "SecMI", "CLiD"):
        assert f'<figure class="roc" data-attack="{attack}"><svg' in dom
        assert f'<figure class="histogram" data-attack="{attack}"><svg' in dom
        assert f"{attack}: ROC, log FPR" in dom
    assert dom.count('<figure class="pair">') == 6 and dom.count('alt="generated image"') == 12
    assert "FAIL: 7 of 12 attacks leak beyond the threshold (II-P, NN, loss, SimA, PIA, SecMI, CLiD)" in dom

    shot = tmp_path / "report.png"
    subprocess.run([*browser, "--window-size=1200,1600", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    # Something is drawn: the red of the member curves and failing verdict, not just a blank page.
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 500 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200

    summary = (demo_run.path / "out" / "summary.md").read_text()
    assert summary.startswith("## mia-checks privacy report: FAIL: 7 of 12 attacks leak")
    assert "| II-P " in summary and "| FAIL " in summary
