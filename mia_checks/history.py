"""A series of saved runs, read for the trend report: "is leakage falling as the defense tightens?"

The runs are the storage folder's (baselines.ResultsStore: `0001_<name>.json`, …, in number order), each
checked as a comparison checks its baseline. From each run the series keeps, per attack, the gate metric
with its interval and the threshold it was judged against, and, where the run has them, the declared DP
budget and the ε lower bounds (schema 2). reports/trend.py draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .baselines import ResultsStore, SavedRun, metric_value
from .errors import MiaUsageError

DEFAULT_METRIC = "auc"  # the gate metric of runs whose settings do not say (settings.gate_metric's default)


@dataclass(frozen=True)
class Point:
    """One attack's gate metric in one run."""

    value: float | None  # None where the run could not measure it (TPR@1%FPR below 100 non-members)
    low: float | None
    high: float | None
    threshold: float
    leaks: bool
    epsilon_lower_bound: float | None


@dataclass(frozen=True)
class RunSummary:
    label: str  # the saved run's label, 0003_dp8
    target: str
    checkpoint: str | None  # its sha256, for a folder or file target
    metric: str  # the series' metric (the latest run's gate metric)
    mode: str  # gate or track
    members: int
    nonmembers: int
    points: dict[str, Point]  # attack → its point, in the run's attack order
    declared_epsilon: float | None = None
    epsilon_ceiling: float | None = None
    schema_version: int = 1
    exposure_flags: dict[str, int] = field(default_factory=dict)  # exposure test → members flagged

    @property
    def best_epsilon_lower_bound(self) -> tuple[str, float] | None:
        """(attack, bound) of the largest ε lower bound in the run."""
        bounds = [(a, p.epsilon_lower_bound) for a, p in self.points.items() if p.epsilon_lower_bound is not None]
        return max(bounds, key=lambda ab: ab[1]) if bounds else None


def gate_metric(document: dict) -> str:
    return (document.get("settings") or {}).get("gate_metric") or DEFAULT_METRIC


def summarize(run: SavedRun, document: dict, metric: str) -> RunSummary:
    """What the trend report reads of one saved run's document (already checked by SavedRun.load), in `metric`.
    The threshold is the run's own where it was gated on `metric`, NaN (not drawn) where it was gated on another."""
    own_threshold = gate_metric(document) == metric
    points = {}
    for record in document["results"]:
        estimate = record.get(metric)  # accuracy, auc, advantage: {value, low, high}; tpr@1%fpr a bare number
        low, high = (estimate.get("low"), estimate.get("high")) if isinstance(estimate, dict) else (None, None)
        verdict = record.get("verdict") or {}
        points[record["attack"]] = Point(metric_value(record, metric), low, high,
                                         verdict.get("threshold", float("nan")) if own_threshold else float("nan"),
                                         bool(verdict.get("leaks")),
                                         record.get("epsilon_lower_bound"))
    privacy = document.get("privacy") or {}
    return RunSummary(
        label=run.label, target=str(document.get("target", "?")), checkpoint=document.get("checkpoint_sha256"),
        metric=metric, mode=str(document.get("mode", "gate")),
        members=int((document.get("members") or {}).get("n", 0)),
        nonmembers=int((document.get("nonmembers") or {}).get("n", 0)),
        points=points, declared_epsilon=privacy.get("epsilon"),
        epsilon_ceiling=(document.get("epsilon_bound") or {}).get("ceiling"),
        schema_version=int(document.get("schema_version", 1)),
        exposure_flags={e["test"]: len(e.get("flagged", [])) for e in document.get("exposure", [])})


def load_series(storage: str, option: str = "--mia-storage") -> list[RunSummary]:
    """Every saved run in `storage`, oldest first; a usage error when there is none, or when one cannot be read
    (its file and the reason named: a trend that silently skips a run would misstate the series)."""
    store = ResultsStore(storage)
    runs = store.runs()
    if not runs:
        raise MiaUsageError(f"{option}: no saved runs in {storage}/ (runs are saved there by --mia-save or "
                            "--mia-autosave; --mia-storage names another folder).")
    documents = [run.load(option) for run in runs]
    metric = gate_metric(documents[-1])  # one metric for the whole series: the latest run's gate metric
    return [summarize(run, document, metric) for run, document in zip(runs, documents)]


def attacks_of(series: list[RunSummary]) -> list[str]:
    """Every attack of the series, in the order they first appear."""
    seen: dict[str, None] = {}
    for run in series:
        seen.update(dict.fromkeys(run.points))
    return list(seen)
