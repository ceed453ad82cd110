"""The README's first command: `mia-checks demo`, run as a user runs it (a subprocess in their directory)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_audits_a_builtin_target_and_writes_reports_where_the_user_asked(testbed, tmp_path):
    run = subprocess.run([sys.executable, "-m", "mia_checks.cli", "demo", "--target", "leaky", "--mia-attacks=II-P",
                          "--mia-html=out/report.html", "--mia-json=report.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]  # the audit ran; its verdict is FAIL
    assert "mia-checks privacy report" in run.stdout and "the gate failed the target: it leaks" in run.stdout
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "report.json").is_file()


def test_demo_with_a_bad_option_is_an_error(testbed, tmp_path):
    run = subprocess.run([sys.executable, "-m", "mia_checks.cli", "demo", "--target", "null", "--mia-folds=1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 4 and "--mia-folds: 1 is out of range" in run.stderr
