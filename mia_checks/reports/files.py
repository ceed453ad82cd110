"""Write every report a run asked for (JSON, saved run, Markdown, HTML) from its document. A report that
cannot be written is named, with why, and the others are still written: the run's verdict must show."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..baselines import ResultsStore, SavedRun, autosave_name
from ..errors import MiaUsageError
from .html import flagged_members, strongest, top_members, write_html
from .markdown import format_markdown
from .text import terminal_text

# The order the terminal summary names them in.
LABELS = ("JSON report", "saved run", "HTML report", "Markdown summary", "exposed members CSV")


@dataclass
class Written:
    paths: dict[str, str] = field(default_factory=dict)  # label → where it was written
    errors: dict[str, str] = field(default_factory=dict)  # label → why it could not be
    saved: SavedRun | None = None

    def lines(self) -> list[tuple[str, bool]]:
        """(line, is an error) for the terminal summary: where each report went, then what failed."""
        done = [(f"{label}: {terminal_text(self.paths[label])}", False) for label in LABELS if label in self.paths]
        return done + [(f"ERROR: {terminal_text(error)}", True) for error in self.errors.values()]


def write_json(path: str | Path, document: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_markdown(path: str | Path, document: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(format_markdown(document), encoding="utf-8")


CSV_COLUMNS = ("rank", "file", "caption", "flags", "attack scores", "attack ranks")


def write_exposed_csv(path: str | Path, document: dict, top: int) -> None:
    """The `top` most exposed members (record.member_findings' order), one row each, for whoever curates the
    data: what flagged it (test, criterion, score > bound) and each attack's score and rank among members."""
    import csv

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for rank, row in enumerate(document["member_findings"][:top], 1):
            flags = "; ".join(f"{g['test']} {g['criterion']} {g['comparison']}" for g in row["flags"])
            writer.writerow([rank, row["file"], row["caption"], flags,
                             "; ".join(f"{a} {v:.4g}" for a, v in row["scores"].items()),
                             "; ".join(f"{a} {v}" for a, v in row["ranks"].items())])


def write_reports(document: dict, settings, image_pairs: Callable[[list[int]], list | None]) -> Written:
    """The reports `settings` (AuditSettings) ask for. `image_pairs(rows)`: the query / generated pairs of
    those queries, from the generation cache (audit.Audit.image_pairs), for the HTML report."""
    written = Written()

    def save_run() -> str:
        written.saved = ResultsStore(settings.storage).save(document, settings.save or autosave_name(),
                                                            incomplete=settings.save_incomplete)
        return str(written.saved.path)

    def html() -> str:
        top = strongest(document["results"])
        rows = [] if top is None else top_members(top)
        pairs = image_pairs(rows) if rows else None
        flagged = flagged_members(document, settings.exposed_top)
        exposed = image_pairs(flagged) if flagged else None
        write_html(settings.html_report, document, pairs and list(zip((top["scores"][i] for i in rows), pairs)),
                   top and top["attack"], exposed and dict(zip(flagged, exposed)))
        return settings.html_report

    for label, asked, write in (
            ("JSON report", settings.json_report, lambda: write_json(settings.json_report, document)),
            ("saved run", settings.save or settings.autosave, save_run),
            ("Markdown summary", settings.markdown_report, lambda: write_markdown(settings.markdown_report, document)),
            ("HTML report", settings.html_report, html),
            ("exposed members CSV", settings.exposed_csv,
             lambda: write_exposed_csv(settings.exposed_csv, document, settings.exposed_top))):
        if not asked:
            continue
        try:
            where = write()
        except MiaUsageError as exc:  # refused, not failed: the reason is the message
            written.errors[label] = f"{label}: {exc}"
        except Exception as exc:  # noqa: BLE001 — whatever failed, the run's verdict must still be shown
            target = settings.storage if label == "saved run" else asked
            written.errors[label] = f"could not write the {label} to {target}: {type(exc).__name__}: {exc}"
        else:
            written.paths[label] = where or asked
    return written
