"""Saved runs and comparisons with them: "did leakage go up since the last model?"

Modelled on pytest-benchmark's `--benchmark-save` / `--benchmark-compare` / `--benchmark-compare-fail`:
runs are JSON reports numbered in a storage folder (`0001_<name>.json`, `0002_<name>.json`, …); a run is
compared with one of them attack by attack; a tolerance such as `auc:0.02` (absolute) or `accuracy:5%`
(relative to the baseline's value) turns a larger rise into a failure.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import MiaUsageError
from .record import SCHEMA_VERSION, document_problem

DEFAULT_STORAGE = ".mia-checks"
# metric name → how to read it from a record; higher is leakier for every one of them.
COMPARABLE_METRICS = {
    "accuracy": lambda r: r["accuracy"]["value"],
    "auc": lambda r: r["auc"]["value"],
    "advantage": lambda r: r["advantage"]["value"],
    "tpr@1%fpr": lambda r: r["tpr_at_1pct_fpr"],
    "epsilon": lambda r: r["epsilon_lower_bound"],
}
_RUN_FILE = re.compile(r"^(\d{4,})_(.+)\.json$")


@dataclass(frozen=True)
class SavedRun:
    number: int
    name: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.number:04d}_{self.name}"

    def load(self, option: str = "--mia-compare") -> dict:
        """The saved run's document, checked: its schema version (one saved by a newer mia-checks is refused;
        older ones are read), the schema, at least one result, and every number finite (a NaN baseline
        compares as "no rise" with anything, and an empty one compares nothing). `option`: whose error it is."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MiaUsageError(f"{option}: cannot read the saved run {self.path}: {exc}") from None
        version = document.get("schema_version", 1) if isinstance(document, dict) else 1
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise MiaUsageError(f"{option}: {self.path} has schema_version {json.dumps(version)}, not a positive "
                                "integer: it was not written by mia-checks.")
        if version > SCHEMA_VERSION:
            raise MiaUsageError(f"{option}: {self.path} was saved by a newer mia-checks (run schema {version}; this "
                                f"one reads schemas 1 to {SCHEMA_VERSION}): upgrade mia-checks, or move the run out "
                                f"of {self.path.parent}/.")
        problem = document_problem(document) or _vacuous(document)
        if problem:
            raise MiaUsageError(f"{option}: {self.path} is not a saved mia-checks run ({problem}); pass a report "
                                "written by --mia-save, --mia-autosave or --mia-json.")
        return document


def _vacuous(document: dict) -> str | None:
    """Why a schema-valid document compares nothing, or None."""
    if not document["results"]:
        return "it has no results: no attack measured in that run"
    return next((f"{where} is {value}: every value must be a finite number"
                 for where, value in _numbers(document["results"], "results") if not math.isfinite(value)), None)


def _numbers(value, where: str):
    """(path, number) for every number inside `value`."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{where}[{i}]")


class ResultsStore:
    """A folder of numbered JSON reports. Numbering is done under a file lock: parallel jobs saving into one
    folder get distinct numbers."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def runs(self) -> list[SavedRun]:
        if not self.root.is_dir():
            return []
        found = (_RUN_FILE.match(p.name) for p in self.root.iterdir())
        return sorted((SavedRun(int(m[1]), m[2], self.root / m[0]) for m in found if m), key=lambda r: r.number)

    def save(self, document: dict, name: str, incomplete: bool = False) -> SavedRun:
        """Save a run as the next baseline. A run in which an attack errored is refused unless `incomplete`
        (--mia-save-incomplete): as `latest` it would leave that attack uncompared in the next run."""
        from filelock import FileLock

        if document.get("errors") and not incomplete:
            raise MiaUsageError(f"not saved: {len(document['errors'])} attack(s) errored "
                                f"({', '.join(sorted(document['errors']))}), and a baseline must measure every attack "
                                "it gates. Fix the errors, or pass --mia-save-incomplete to save it anyway.")
        if not document.get("results"):
            raise MiaUsageError("not saved: no attack measured in this run, so it compares nothing.")

        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".lock")):
            runs = self.runs()
            number, name = (runs[-1].number + 1) if runs else 1, safe_name(name)
            run = SavedRun(number, name, self.root / f"{number:04d}_{name}.json")
            run.path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return run

    def find(self, which: str) -> SavedRun | None:
        """`latest`, a number (`3`, `0003`), a full label (`0003_mild`), or a path to a saved JSON report.
        None when `latest` is asked for and nothing is saved yet; a usage error when `which` names nothing."""
        path = Path(which)
        if which.endswith(".json") and path.is_file():
            m = _RUN_FILE.match(path.name)
            return SavedRun(int(m[1]) if m else 0, m[2] if m else path.stem, path)
        runs = self.runs()
        if which == "latest":
            return runs[-1] if runs else None
        for run in runs:
            if which in (run.label, str(run.number), f"{run.number:04d}"):
                return run
        available = ", ".join(r.label for r in runs) or "none"
        raise MiaUsageError(f"--mia-compare: no saved run {which!r} in {self.root}/ (saved runs: {available}); "
                            "pass latest, a run number, or a path to a saved .json report.")


def safe_name(name: str) -> str:
    """A file-name-safe run name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "run"


def autosave_name() -> str:
    """pytest-benchmark names autosaved runs after the commit; a CI checkout may have none, so: UTC time."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may rise above the baseline: an absolute amount, or a percentage of the baseline."""

    metric: str
    amount: float
    relative: bool = False

    def allowed(self, baseline: float) -> float:
        return self.amount * abs(baseline) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.metric}:{self.amount * 100:g}%" if self.relative else f"{self.metric}:{self.amount:g}"


def parse_tolerances(raw: str) -> tuple[Tolerance, ...]:
    """'auc:0.02,accuracy:5%' → (Tolerance('auc', 0.02), Tolerance('accuracy', 0.05, relative=True))."""
    out = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        metric, sep, amount = part.rpartition(":")
        metric = metric.strip().lower()
        if not sep or metric not in COMPARABLE_METRICS:
            raise MiaUsageError(f"--mia-compare-fail: {part!r} is not METRIC:AMOUNT with METRIC one of "
                                f"{', '.join(COMPARABLE_METRICS)} (e.g. auc:0.02 or accuracy:5%).")
        relative = amount.strip().endswith("%")
        try:
            value = float(amount.strip().rstrip("%"))
        except ValueError:
            raise MiaUsageError(f"--mia-compare-fail: {amount!r} in {part!r} is not a number or percentage.") from None
        if value < 0 or math.isnan(value):
            raise MiaUsageError(f"--mia-compare-fail: {part!r}: the allowed rise cannot be negative.")
        out.append(Tolerance(metric, value / 100 if relative else value, relative))
    if not out:
        raise MiaUsageError("--mia-compare-fail: empty; e.g. auc:0.02,accuracy:5%.")
    return tuple(out)


def metric_value(record: dict, metric: str) -> float | None:
    value = COMPARABLE_METRICS[metric](record)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


COMPARE_RULES = ("bound", "point")


@dataclass(frozen=True)
class Change:
    """One metric of one attack, now and in the baseline, with a bootstrap interval of the difference.

    regressed: under rule `bound` (default) when the interval's lower end (a one-sided bound) is above the
    allowed rise, so that noise alone rarely fails a run; under `point` when the point difference is.
    Metrics without a bootstrap (tpr@1%fpr, epsilon) always use the point difference."""

    attack: str
    metric: str
    baseline: float | None
    current: float | None
    tolerance: Tolerance | None = None
    interval: tuple[float, float] | None = None
    rule: str = "bound"

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.current is None else self.current - self.baseline

    def _exceeds(self, rise: float | None) -> bool:
        return (self.tolerance is not None and rise is not None
                and rise > self.tolerance.allowed(self.baseline) + 1e-12)

    @property
    def regressed(self) -> bool:
        """Under a tolerance, an attack that cannot be compared counts as regressed: the gate cannot say it
        did not rise."""
        if self.tolerance is not None and self.not_compared:
            return True
        if self.rule == "bound" and self.interval is not None:
            return self._exceeds(self.interval[0])
        return self._exceeds(self.delta)

    @property
    def within_noise(self) -> bool:
        """The point difference and its bound disagree about the allowance."""
        return self.interval is not None and self._exceeds(self.delta) != self._exceeds(self.interval[0])

    @property
    def not_compared(self) -> bool:
        return self.baseline is None or self.current is None

    def message(self, baseline_label: str) -> str:
        if self.not_compared:
            where = "the baseline" if self.baseline is None else "this run"
            return (f"{self.attack}: {self.metric} not compared: {where} has no {self.metric} value for "
                    f"{self.attack} (baseline {baseline_label}); --mia-compare-fail ({self.tolerance}) fails an "
                    "attack it cannot compare. Compare with a run that measured it.")
        bound = f", lower bound +{self.interval[0]:.3f}" if self.rule == "bound" and self.interval else ""
        return (f"{self.attack}: {self.metric} rose from {self.baseline:.3f} (baseline {baseline_label}) to "
                f"{self.current:.3f}, +{self.delta:.3f}{bound} > allowed {self.tolerance.allowed(self.baseline):.3f} "
                f"({self.tolerance})")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline, "current": self.current, "delta": self.delta,
                "low": None if self.interval is None else self.interval[0],
                "high": None if self.interval is None else self.interval[1],
                "tolerance": None if self.tolerance is None else str(self.tolerance), "rule": self.rule,
                "regressed": self.regressed, "within_noise": self.within_noise, "not_compared": self.not_compared}


def compare(record: dict, baseline_record: dict | None, metrics: list[str], tolerances: tuple[Tolerance, ...] = (),
            rule: str = "bound", level: float = 0.05, paired: bool = False, seed: int = 0) -> list[Change]:
    """The changes of `metrics` (and of every tolerance's metric) of one attack against its baseline record.
    Intervals are two-sided at 1 − 2·level, so their lower end is a one-sided bound at `level`; paired when
    both runs scored the same queries in the same order."""
    from .metrics import BOOTSTRAP_METRICS, bootstrap_difference

    by_metric = {t.metric: t for t in tolerances}
    changes = []
    for metric in dict.fromkeys([*metrics, *by_metric]):
        baseline = None if baseline_record is None else metric_value(baseline_record, metric)
        current = metric_value(record, metric)
        interval = None
        if (baseline is not None and current is not None and metric in BOOTSTRAP_METRICS
                and "scores" in record and "scores" in baseline_record):
            same = paired and baseline_record["labels"] == record["labels"]
            estimate = bootstrap_difference(record["labels"], record["scores"], baseline_record["labels"],
                                            baseline_record["scores"], metric, 1 - 2 * level, same, seed=seed)
            # The bootstrap resamples scores as independent; out-of-fold scores are not (protocol.OutOfFold):
            # its deviations are widened by √f, f the runs' variance factor for this metric.
            widen = math.sqrt(_variance_factor(metric, record, baseline_record))
            interval = (estimate.value - widen * (estimate.value - estimate.low),
                        estimate.value + widen * (estimate.high - estimate.value))
        changes.append(Change(record["attack"], metric, baseline, current, by_metric.get(metric), interval, rule))
    return changes


def _variance_factor(metric: str, *records: dict) -> float:
    """How much out-of-fold dependence inflates the variance of a difference of `metric` between these runs:
    the larger of their AUC variance factors (protocol.OutOfFold), for every metric. Measured on 400 pairs
    of null runs of a learnt model (logistic, 32 + 32; tolerance 0, bound rule at level 0.05): with i.i.d.
    resampling 13.5% (AUC) and 13% (accuracy) of the pairs regressed; widened by √f, 5.75% and 5.5%
    (the design effect 1 + (f − 1)/2 that suits a single run's counts left accuracy at 8.5%)."""
    return max(float(r.get("auc_variance_factor") or 1.0) for r in records)


def compare_with_baseline(record: dict, run: SavedRun, document: dict, settings, paired: bool) -> dict:
    """A record's comparison with the saved run `run` (its loaded `document`): the changes of the gate metric
    and of every --mia-compare-fail metric, and a message for each regression. `settings`: AuditSettings."""
    changes = compare(record, baseline_records(document).get(record["attack"]), [settings.gate_metric],
                      settings.compare_fail, settings.compare_rule, settings.compare_level, paired, settings.seed)
    return {"run": run.label, "changes": [c.to_dict() for c in changes],
            "messages": [c.message(run.label) for c in changes if c.regressed]}


def baseline_records(document: dict) -> dict[str, dict]:
    """attack → record of a saved run."""
    return {r["attack"]: r for r in document.get("results", [])}


def same_queries(baseline: dict | None, members_digest: str, nonmembers_digest: str) -> bool:
    """Did the saved run score the same query images (so that differences can be bootstrapped pairwise)?"""
    base = baseline or {}
    return (base.get("members", {}).get("sha256") == members_digest
            and base.get("nonmembers", {}).get("sha256") == nonmembers_digest)


def baseline_header(settings, run: SavedRun | None, baseline: dict | None, header: dict) -> dict:
    """The report header's entries about the comparison: which run, the rule, and what differs."""
    if run is None:
        missing = (f"no saved run in {settings.storage}/ yet: nothing to compare (save one with --mia-save=NAME "
                   "or --mia-autosave)") if settings.compare else None
        return {"baseline": None, **({"baseline_missing": missing} if missing else {})}
    paired = same_queries(baseline, header["members"]["sha256"], header["nonmembers"]["sha256"])
    rule = (f"{100 * (1 - settings.compare_level):.1f}% one-sided lower bound of the rise, "
            f"{'paired' if paired else 'unpaired'} bootstrap") if settings.compare_rule == "bound" else "point difference"
    return {"baseline": {"run": run.label, "path": str(run.path), "compare_fail": ",".join(map(str, settings.compare_fail)),
                         "compare_rule": rule, "notes": comparability_notes(header, baseline)}}


def comparability_notes(current_header: dict, baseline: dict) -> list[str]:
    """What differs between the runs beyond the model: differences that make deltas harder to read."""
    notes = []
    for key, what in (("members", "member set"), ("nonmembers", "non-member set")):
        if current_header[key]["sha256"] != baseline.get(key, {}).get("sha256"):
            notes.append(f"the {what} differs from the baseline's")
    for key in ("seed", "generations_per_query", "protocol", "folds"):
        if current_header.get(key) != baseline.get(key):
            notes.append(f"{key} differs ({baseline.get(key)} in the baseline, {current_header.get(key)} now)")
    return notes
