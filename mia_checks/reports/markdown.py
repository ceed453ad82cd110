"""The Markdown summary, for pull-request comments: outcome, run header and the table (GitHub-flavoured)."""

from __future__ import annotations

from .terminal import error_line, exposure_lines, format_header, format_shift, format_table, outcome
from .text import markdown_line, markdown_text


def format_markdown(document: dict) -> str:
    """A summary for pull-request comments: outcome, run header and the table (GitHub-flavoured). Every
    string of the document in it is escaped (text.markdown_text): it renders as itself, on its own line or
    in its own cell, and adds no heading, link, image, HTML or row."""
    esc = markdown_text
    lines = [f"## mia-checks privacy report: {outcome(document, esc)}", ""]
    lines += [f"- {markdown_line(line)}" for line in format_header(document, esc).splitlines()]
    shift = format_shift(document["results"], esc)
    if shift:
        lines.append(f"- {'**' + shift + '**' if shift.startswith('WARNING') else shift}")
    lines += ["", format_table(document["results"], tablefmt="github", escape=esc), ""]
    lines += [f"- {markdown_line(error_line(attack, error, esc))}"
              for attack, error in sorted(document["errors"].items())]
    exposure = exposure_lines(document, escape=esc)
    if exposure:  # the members to deduplicate or remove, with the evidence: a nested list under each test
        lines += ["", "### Exposed members", ""]
        lines += [f"{'  ' if line.startswith('  ') else ''}- {markdown_line(line.strip())}" for line in exposure]
    return "\n".join(lines).rstrip() + "\n"
