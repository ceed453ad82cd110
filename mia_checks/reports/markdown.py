"""The Markdown summary, for pull-request comments: outcome, run header and the table (GitHub-flavoured)."""

from __future__ import annotations

from .terminal import error_line, format_header, format_shift, format_table, outcome


def format_markdown(document: dict) -> str:
    """A summary for pull-request comments: outcome, run header and the table (GitHub-flavoured)."""
    lines = [f"## mia-checks privacy report: {outcome(document)}", ""]
    lines += [f"- {line}" for line in format_header(document).splitlines()]
    shift = format_shift(document["results"])
    if shift:
        lines.append(f"- {'**' + shift + '**' if shift.startswith('WARNING') else shift}")
    lines += ["", format_table(document["results"], tablefmt="github"), ""]
    lines += [f"- {error_line(attack, error)}" for attack, error in sorted(document["errors"].items())]
    return "\n".join(lines).rstrip() + "\n"
