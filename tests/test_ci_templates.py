"""The CI templates' gate commands are real commands: run each on the test bed, as the template would."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).parents[1] / "ci"


def gate_command(template: str) -> str:
    """The template's `pytest --mia-target=…` command line."""
    document = yaml.safe_load((CI / template).read_text())
    if template == "github-actions.yml":
        lines = [step.get("run", "") for step in document["jobs"]["mia-checks"]["steps"]]
    else:
        lines = document["mia-checks"]["script"]
    (command,) = [line for line in lines if line.startswith("pytest --mia-target=")]
    return command


@pytest.mark.parametrize("template", ["github-actions.yml", "gitlab-ci.yml"])
def test_template_gate_command_runs_and_writes_every_artifact(pytester, demo_args, testbed, template):
    words = shlex.split(gate_command(template).replace("$MIA_MODE", "--mia-autosave"))
    paths = {"--mia-target": testbed / "sd-null", "--mia-members": testbed / "data" / "members",
             "--mia-nonmembers": testbed / "data" / "nonmembers"}
    args = [f"{w.split('=')[0]}={paths[w.split('=')[0]]}" if w.split("=")[0] in paths else w for w in words[1:]]
    extra = [a for a in demo_args("sd-null") if a.split("=")[0] not in paths]  # tiny CLIP, test cache
    result = pytester.runpytest(*args, *extra, "--mia-attacks=II-P,IV")
    result.assert_outcomes(passed=2)
    for artifact in ("mia-report.html", "mia-summary.md", "mia-report.json", "mia-junit.xml"):
        assert (pytester.path / artifact).stat().st_size > 0, artifact
    assert len(list((pytester.path / ".mia-checks").glob("0001_*.json"))) == 1
