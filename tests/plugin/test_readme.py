"""The README tells the truth about today's output: its demo block is what `mia-checks demo` prints.

After a change that moves a number, regenerate the block from a real run:

    .venv/bin/python tests/plugin/test_readme.py --write
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"
BLOCK = re.compile(r"(<!-- demo-output: start.*?-->\n```\n)(.*?)(```\n<!-- demo-output: end -->)", re.S)
SHORT_ROOT = "~/.cache/mia-checks/testbed/v2"


def demo_block(lines: list[str], testbed: Path) -> str:
    """What the README shows of the demo's output: the collected tests and progress, the first failure's
    message (the others named), and the privacy report up to its outcome line; the test bed's path shortened."""
    start = next(i for i, line in enumerate(lines) if line.startswith("collected "))
    failures = next(i for i, line in enumerate(lines) if "FAILURES" in line)
    report = next(i for i, line in enumerate(lines) if "mia-checks privacy report" in line)
    end = next(i for i in range(report, len(lines)) if lines[i].startswith(("FAIL:", "PASS")))
    failed = [m[1] for line in lines if (m := re.match(r"FAILED mia-checks::test_attack\[(.+?)\]", line))]
    block = lines[start : failures + 3]  # the heading, the first test's name and its message
    if len(failed) > 1:
        block.append(f"…  ({', '.join(failed[1:])} likewise)")
    block += lines[report : end + 1]
    return "\n".join(block).replace(str(testbed), SHORT_ROOT) + "\n"


def readme_block() -> str:
    found = BLOCK.search(README.read_text(encoding="utf-8"))
    assert found, "README.md has no demo-output block"
    return found[2]


def test_the_readme_shows_what_the_demo_prints(demo_run, testbed):
    printed = demo_block(demo_run.stdout.lines, testbed)
    assert readme_block() == printed, ("the README's demo block is stale: regenerate it with "
                                       "`.venv/bin/python tests/plugin/test_readme.py --write`")


def write() -> None:
    from mia_checks.testbed import ensure_built

    testbed = ensure_built(["data", "clip", "sd-leaky"])
    with tempfile.TemporaryDirectory() as empty:
        run = subprocess.run([sys.executable, "-m", "mia_checks.cli", "demo"], cwd=empty, capture_output=True,
                             text=True, check=True)
    block = demo_block(run.stdout.splitlines(), testbed)
    text = README.read_text(encoding="utf-8")
    README.write_text(BLOCK.sub(lambda m: m[1] + block + m[3], text, count=1), encoding="utf-8")
    print(block)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write   (rewrites README.md's demo block from a run of mia-checks demo)")
    write()
