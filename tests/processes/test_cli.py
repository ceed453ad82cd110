"""The README's first command: `mia-checks demo`, run as a user runs it (a subprocess in their directory)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_audits_a_builtin_target_and_writes_reports_where_the_user_asked(demo_run):
    """`mia-checks demo --mia-json=report.json --mia-html=out/report.html …`, run in the user's folder."""
    assert demo_run.ret == 0, demo_run.stdout.str()[-2000:] + demo_run.stderr.str()[-2000:]  # the audit ran; FAIL
    assert "mia-checks privacy report" in demo_run.stdout.str()
    assert "the gate failed the target: it leaks" in demo_run.stdout.str()
    assert (demo_run.path / "out" / "report.html").is_file() and (demo_run.path / "report.json").is_file()


def test_demo_with_a_bad_option_is_an_error(testbed, tmp_path):
    run = subprocess.run([sys.executable, "-m", "mia_checks.cli", "demo", "--target", "null", "--mia-folds=1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 4 and "--mia-folds: 1 is out of range" in run.stderr
