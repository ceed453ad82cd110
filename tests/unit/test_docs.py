"""The README documents what the code does: every option, in tables that render as tables."""

from __future__ import annotations

import re
from pathlib import Path

from mia_checks.plugin.options import FLAGS, OPTIONS

README = Path(__file__).parents[2] / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_every_option_is_documented_in_the_readme():
    text = README.read_text(encoding="utf-8")
    missing = [f"--mia-{name}" for name, _ in OPTIONS + FLAGS if not re.search(rf"--mia-{name}(?![\w-])", text)]
    assert not missing, missing


def test_the_options_table_is_one_table():
    """A paragraph in the middle of a Markdown table ends it: the rows after it render as text."""
    lines = section("Options").splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("| `--mia-")]
    assert rows and all(lines[i].startswith("|") for i in range(rows[0] - 2, rows[-1] + 1))
    documented = {m for i in rows for m in re.findall(r"`(--mia-[\w-]+)", lines[i].split("|")[1])}
    assert "--mia-allow-pickle" in documented and "--mia-cache-dir" in documented
