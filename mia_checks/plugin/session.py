"""One run's state, kept in config.stash: what preflight established, the lazily created audit, the
per-attack records collected from the gate tests' reports (pytest-xdist workers' too), and the end of the
run: the reports written and the terminal summary."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..baselines import compare_with_baseline, baseline_header, same_queries
from ..preflight import Preflight
from ..record import attack_record, exposure_record, member_findings, run_document, run_header
from ..reports.files import Written, write_reports
from ..reports.junit import suite_properties
from ..reports.terminal import error_line, exposure_lines, format_header, format_shift, format_table, generation_line, outcome

GATE_TEST_PREFIX = "mia-checks::test_attack["
EXPOSURE_TEST_PREFIX = "mia-checks::test_exposure["


@dataclass(eq=False)  # registered as a plugin: pluggy hashes plugins (a conftest.py in the project needs it)
class MiaSession:
    checked: Preflight
    progress: Any = True  # a generation.Progress (mode and stream), or a bool
    config: Any = None
    run_id: str = ""  # this run's id, shared with pytest-xdist workers: the scope of run-only generations
    audit: Any = None
    records: dict[str, dict] = field(default_factory=dict)
    exposure: dict[str, dict] = field(default_factory=dict)  # exposure test → its record
    errors: dict[str, str] = field(default_factory=dict)  # attack → why its gate test errored without a record
    written: Written = field(default_factory=Written)
    worker_generation: dict[str, dict] = field(default_factory=dict)  # xdist worker id → its generation stats
    _header: dict | None = None

    @property
    def settings(self):
        return self.checked.settings

    @property
    def members(self):
        return self.checked.members

    @property
    def nonmembers(self):
        return self.checked.nonmembers

    def get_audit(self):
        if self.audit is None:
            from ..audit import Audit

            c = self.checked
            self.audit = Audit(c.settings, c.members, c.nonmembers, progress=self.progress, run_id=self.run_id,
                               spec=c.target, shadow_spec=c.shadow)
        return self.audit

    # -- the records -------------------------------------------------------------------------------------

    def record(self, attack: str, result, verdict, shift) -> dict:
        """The attack's record, compared with the baseline when there is one."""
        audit, c = self.get_audit(), self.checked
        record = attack_record(result, verdict, shift, audit.calls_per_image(attack))
        if c.baseline is not None:
            paired = same_queries(c.baseline_document, self.members.digest, self.nonmembers.digest)
            record["baseline"] = compare_with_baseline(record, c.baseline, c.baseline_document, self.settings, paired)
        return record

    def member_files(self) -> list[str]:
        """The members' files as the reports name them: relative to the members folder where they lie in it."""
        root = Path(self.settings.members)
        return [str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in self.members.files]

    def exposure_record(self, result) -> dict:
        return exposure_record(result, self.member_files(), self.get_audit().captions[: len(self.members)])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect per-attack records (reports from pytest-xdist workers arrive on the controller too), and
        errors: a gate test that failed without a record (in its fixture, or by a warning turned error)."""
        raw = getattr(report, "mia_record", None)
        if report.nodeid.startswith(EXPOSURE_TEST_PREFIX):
            test = report.nodeid.rsplit("[", 1)[1].rstrip("]")
            if raw is not None and report.when == "call":
                self.exposure[test] = json.loads(raw)
            elif report.failed and report.when in ("setup", "call") and test not in self.exposure:
                self.errors[test] = _error_message(report)
            return
        if not report.nodeid.startswith(GATE_TEST_PREFIX):
            return
        attack = report.nodeid.rsplit("[", 1)[1].rstrip("]")
        if raw is not None and report.when == "call":
            record = json.loads(raw)
            self.records[record["attack"]] = record
            self._junit_suite_properties(record)
        elif report.failed and report.when in ("setup", "call") and attack not in self.records:
            self.errors[attack] = _error_message(report)

    def _junit_suite_properties(self, record: dict) -> None:
        """xunit2 (pytest's default) has no test-case properties: the per-attack ones go on the test suite."""
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pragma: no cover — a pytest without it writes no suite properties
            return
        xml = self.config.stash.get(xml_key, None) if self.config is not None else None
        if xml is not None and xml.family not in ("xunit1", "legacy"):
            for name, value in suite_properties(record):
                xml.add_global_property(name, value)

    def document(self) -> dict:
        """The run document (record.py): the header with the baseline's part, and the records so far."""
        if self._header is None:
            c = self.checked
            header = run_header(self.get_audit(), "track" if self.settings.track else "gate")
            self._header = {**header, **baseline_header(self.settings, c.baseline, c.baseline_document, header)}
        results = [self.records[a] for a in self.settings.attacks if a in self.records]
        exposure = [self.exposure[t] for t in sorted(self.exposure)]
        members = member_findings(results, exposure, self.member_files(), self.get_audit().captions[: len(self.members)])
        return run_document(self._header, self.records, self.settings.attacks, self.errors, self.exposure, members)

    # -- the end of the run ------------------------------------------------------------------------------

    def generation_stats(self) -> dict | None:
        """What this process generated for the run's audits (target and shadow), None if it never looked."""
        audits = (self.audit, self.audit and self.audit.__dict__.get("shadow"))
        caches = [a.__dict__.get("generation_cache") for a in audits if a is not None]
        stats = [c.stats for c in caches if c is not None and c.stats.seconds > 0]
        if not stats:
            return None
        return {**stats[0].to_dict(), **{k: sum(getattr(s, k) for s in stats) for k in ("generated", "cached")},
                "seconds": round(sum(s.seconds for s in stats), 3)}

    def finish(self, session: pytest.Session) -> None:
        """Controller only: write the reports asked for; one that cannot be written fails the run."""
        if not (self.records or self.errors or self.exposure):
            return
        self.written = write_reports(self.document(), self.settings, self.get_audit().image_pairs)
        if self.written.errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._drop_run_only_generations()

    def _drop_run_only_generations(self) -> None:
        """An undeclared callable's generations served this run only (and its report): remove them."""
        for audit in (self.audit, self.audit and self.audit.__dict__.get("shadow")):
            target = audit and audit.__dict__.get("target")  # only a target this process loaded
            if target is not None and target.run_scoped:
                shutil.rmtree(self.settings.cache_root() / "generations" / target.identity[:24], ignore_errors=True)

    def summary(self, tr) -> None:
        """The privacy report at the end of the terminal output."""
        if not (self.records or self.errors or self.exposure):
            return
        document = self.document()
        tr.write_sep("=", "mia-checks privacy report")
        tr.write_line(format_header(document))
        shift = format_shift(document["results"])
        if shift:
            tr.write_line(shift, red=shift.startswith("WARNING"), bold=shift.startswith("WARNING"))
        if document["results"]:
            tr.write_line("")
            tr.write_line(format_table(document["results"]))
        for line in exposure_lines(document, TERMINAL_FINDINGS):
            tr.write_line(line, red=line.startswith("FAIL"))
        for attack, error in sorted(document["errors"].items()):
            tr.write_line(error_line(attack, error), red=True)
        line = outcome(document)
        tr.write_line(line, red=line.startswith("FAIL"), green=line.startswith("PASS"), bold=True)
        for worker, stats in sorted(self.worker_generation.items(), key=lambda item: item[1]["rank"]):
            tr.write_line(generation_line(worker, stats))
        for line, is_error in self.written.lines():
            tr.write_line(line, red=is_error, bold=is_error)


def _error_message(report: pytest.TestReport) -> str:
    """The exception's own message (a traceback's last line is only where it was raised)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None or not crash.message:
        return report.longreprtext.strip().splitlines()[-1]
    message = crash.message.strip().removeprefix("Failed: ")  # pytest.fail's own prefix
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


TERMINAL_FINDINGS = 5  # flagged members listed per exposure test at the end of the run (all: JSON, CSV, HTML)
SESSION_KEY = pytest.StashKey[MiaSession]()
RECORD_KEY = pytest.StashKey[str]()  # a gate test's record (JSON), set by the test, copied onto its report


def active_session(config: pytest.Config) -> MiaSession | None:
    return config.stash.get(SESSION_KEY, None)
