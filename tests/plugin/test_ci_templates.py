"""The CI templates: their install step is one a user can run today, and their gate commands are real commands
(run each on the test bed, as the template would). ci/check_templates.sh (run by .ci/run) lints both and runs
the GitLab job itself under gitlab-ci-local."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).parents[2] / "ci"
TEMPLATES = ["github-actions.yml", "gitlab-ci.yml"]


def job(template: str) -> tuple[dict, list[str]]:
    """The template's mia-checks job: its variables (GitHub: env) and its shell lines, in order."""
    document = yaml.safe_load((CI / template).read_text())
    if template == "github-actions.yml":
        job = document["jobs"]["mia-checks"]
        scripts = [step["run"] for step in job["steps"] if "run" in step]
        variables = job["env"]
    else:
        job = document["mia-checks"]
        scripts, variables = job["script"], job["variables"]
    return variables, [line.strip() for script in scripts for line in script.splitlines() if line.strip()]


def gate_command(template: str) -> str:
    """The template's `pytest --mia-target=…` command line."""
    (command,) = [line for line in job(template)[1] if line.startswith("pytest --mia-target=")]
    return command


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_installs_mia_checks_from_its_repository_pinned(template):
    variables, lines = job(template)
    # mia-checks is not published: `pip install mia-checks` would fail (or install someone else's package).
    assert not [line for line in lines if re.fullmatch(r"""pip3? install (-\S+ )*["']?mia-checks["']?""", line)]
    (install,) = [line for line in lines if line.startswith("pip install")]
    assert install == 'pip install "$MIA_CHECKS_PIP_SPEC"'
    # A pinned git URL with placeholders the user replaces, and a guard that names the variable if they don't.
    spec = variables["MIA_CHECKS_PIP_SPEC"]
    assert re.fullmatch(r"mia-checks @ git\+https://github\.com/<org>/mia-checks@<tag-or-sha>", spec), spec
    assert lines.index(install) > min(i for i, line in enumerate(lines) if '"<"' in line and "MIA_CHECKS_PIP_SPEC" in line)
    # Every variable the job's commands use is declared in the template, where the user sets it.
    used = {name for line in lines for name in re.findall(r"\$\{?(MIA_\w+)", line)}
    assert used <= set(variables), used - set(variables)
    assert {"MIA_TARGET", "MIA_MEMBERS", "MIA_NONMEMBERS", "MIA_ARGS"} <= used


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_gate_command_runs_and_writes_every_artifact(gate, demo_args, testbed, template):
    paths = {"--mia-target": testbed / "sd-null", "--mia-members": testbed / "data" / "members",
             "--mia-nonmembers": testbed / "data" / "nonmembers"}
    extra = [a for a in demo_args("sd-null") if a.split("=")[0] not in paths]  # tiny CLIP, test cache
    values = {"MIA_TARGET": paths["--mia-target"], "MIA_MEMBERS": paths["--mia-members"],
              "MIA_NONMEMBERS": paths["--mia-nonmembers"], "MIA_MODE": "--mia-autosave",
              "MIA_ARGS": shlex.join([*extra, "--mia-attacks=II-P,IV"])}
    command = re.sub(r"\$(MIA_\w+)", lambda m: str(values[m.group(1)]), gate_command(template))
    words = shlex.split(command)  # the shell's word splitting of the unquoted $MIA_MODE $MIA_ARGS
    assert words[0] == "pytest"
    result = gate(*words[1:])  # the two templates' commands are one command: one run serves both
    result.assert_outcomes(passed=2)
    for artifact in ("mia-report.html", "mia-summary.md", "mia-report.json", "mia-junit.xml"):
        assert (result.path / artifact).stat().st_size > 0, artifact
    assert len(list((result.path / ".mia-checks").glob("0001_*.json"))) == 1
