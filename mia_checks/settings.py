"""Audit settings: parsed and checked from raw option strings, with errors that name the option."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .attacks import ATTACK_IDS, COMBINE_OPERATIONS
from .baselines import COMPARE_RULES, DEFAULT_STORAGE, Tolerance, parse_tolerances
from .data import MIN_IMAGES
from .embedders import DEFAULT_EMBEDDER
from .errors import MiaUsageError
from .gate import GATE_METRICS, RULES, GateRule

SHIFT_CHECKS = ("warn", "error", "off")


@dataclass(frozen=True)
class AuditSettings:
    target: str
    members: str
    nonmembers: str
    target_config: str | None = None  # single-file target: pipeline folder or hub id of its configs
    target_identity: str | None = None  # callable target: what it is (version, weights hash); keys its cache
    lora: str | None = None  # LoRA adapter applied on the target pipeline
    threshold: float | None = None
    per_attack_threshold: dict[str, float] = field(default_factory=dict)
    gate_metric: str = "accuracy"
    gate_rule: str = "bound"
    alpha: float = 0.05
    attacks: tuple[str, ...] = ATTACK_IDS
    combine: tuple[str, ...] = COMBINE_OPERATIONS
    seed: int = 0
    steps: int = 25
    guidance: float | None = None
    generations: int = 2  # best of 2: one unlucky noise draw rarely hides a memorised image
    device: str = "auto"
    batch_size: int = 16
    embedder: str = DEFAULT_EMBEDDER
    captioner: str | None = None  # caption-less mode: this BLIP model captions every query
    folds: int = 5
    known_fraction: float | None = None  # attacker's known part, as a fraction of all queries (≤ (k−1)/k)
    cache_dir: str | None = None
    json_report: str | None = None
    max_samples: int | None = None
    allow_pickle: bool = False
    shift_check: str = "warn"  # warn | error | off
    # Shadow-model threat model: attack models fitted on this model's sets, applied frozen to the target.
    shadow_target: str | None = None
    shadow_members: str | None = None
    shadow_nonmembers: str | None = None
    # Baselines (saved runs) and what the run writes and fails on.
    storage: str = DEFAULT_STORAGE
    save: str | None = None
    autosave: bool = False
    compare: str | None = None  # latest, a run number, or a saved report's path
    compare_fail: tuple[Tolerance, ...] = ()
    compare_rule: str = "bound"  # bound: the rise's one-sided lower bound must exceed the allowance; point
    track: bool = False  # tracking mode: report leakage and regressions without failing
    html_report: str | None = None
    markdown_report: str | None = None

    @property
    def protocol(self) -> str:
        return "shadow-model" if self.shadow_target else "partial-knowledge"

    @property
    def compare_level(self) -> float:
        """One-sided error level of each regression bound: the gate's α/m, split again over the metrics."""
        return self.gate.level / max(len(self.compare_fail), 1)

    @property
    def gate(self) -> GateRule:
        return GateRule(self.gate_metric, self.threshold, self.per_attack_threshold, self.gate_rule, self.alpha,
                        len(self.attacks))

    def cache_root(self) -> Path:
        from .testbed.build import default_cache_root

        return Path(self.cache_dir) if self.cache_dir else default_cache_root()

    def to_dict(self) -> dict:
        return asdict(self)


def _number(option: str, raw: str, kind=float, low: float | None = None, high: float | None = None):
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        raise MiaUsageError(f"{option}: {raw!r} is not a valid {kind.__name__}.") from None
    if not math.isfinite(value):  # nan compares false with every bound: it would slip through the range check
        raise MiaUsageError(f"{option}: {raw!r} is not a finite number; give a number"
                            + (f" in [{low}, {high}]." if low is not None and high is not None else "."))
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise MiaUsageError(f"{option}: {value} is out of range: below its minimum {low}.")
        raise MiaUsageError(f"{option}: {value} is out of range [{low}, {high}].")
    return value


# The range a threshold of each gate metric can take: a threshold outside it makes the gate vacuous.
THRESHOLD_RANGES = {"accuracy": (0.0, 1.0), "auc": (0.0, 1.0), "tpr@1%fpr": (0.0, 1.0), "advantage": (-1.0, 1.0)}


def _choices(option: str, raw: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if raw.strip().lower() == "all":
        return allowed
    picked = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    unknown = [p for p in picked if p not in allowed]
    if unknown or not picked:
        raise MiaUsageError(f"{option}: unknown {', '.join(unknown) or 'empty value'}; choose from {', '.join(allowed)} or 'all'.")
    return picked


def parse_threshold(raw: str, metric: str = "accuracy") -> tuple[float | None, dict[str, float]]:
    """'0.6' or '0.6,II-P=0.7' or 'II-P=0.7': a default and per-attack thresholds, each finite and within
    the range of the gate metric."""
    low, high = THRESHOLD_RANGES.get(metric, (-1.0, 1.0))
    option = f"--mia-threshold (gate metric {metric})"
    default, per_attack = None, {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.rpartition("=")
        if sep:
            if name not in ATTACK_IDS:
                raise MiaUsageError(f"--mia-threshold: unknown attack {name!r}; choose from {', '.join(ATTACK_IDS)}.")
            per_attack[name] = _number(option, value, float, low, high)
        else:
            default = _number(option, value, float, low, high)
    if default is None and not per_attack:
        raise MiaUsageError("--mia-threshold: empty; give a number such as 0.6, or per attack 0.55,II-P=0.6.")
    return default, per_attack


def build_settings(raw: dict[str, str | None]) -> AuditSettings:
    """raw: option name (without --mia-) → string value or None for unset."""
    def get(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None or str(value).strip() == "" else str(value).strip()

    missing = [f"--mia-{n}" for n in ("members", "nonmembers") if get(n) is None]
    if missing:
        raise MiaUsageError(f"--mia-target needs {' and '.join(missing)}: image folders with metadata.jsonl.")
    kw: dict = {"target": get("target"), "members": get("members"), "nonmembers": get("nonmembers")}
    if get("gate-metric"):
        kw["gate_metric"] = _choices("--mia-gate-metric", get("gate-metric").lower(), GATE_METRICS)[0]
    if get("threshold"):
        kw["threshold"], kw["per_attack_threshold"] = parse_threshold(
            get("threshold"), kw.get("gate_metric", AuditSettings.gate_metric))
    if get("gate-rule"):
        kw["gate_rule"] = _choices("--mia-gate-rule", get("gate-rule").lower(), RULES)[0]
    if get("alpha"):
        kw["alpha"] = _number("--mia-alpha", get("alpha"), float, 1e-6, 0.5)
    if get("attacks"):
        kw["attacks"] = _choices("--mia-attacks", get("attacks"), ATTACK_IDS)
    if get("combine"):
        kw["combine"] = _choices("--mia-combine", get("combine"), COMBINE_OPERATIONS)
    for name, kind, low in (("seed", int, 0), ("steps", int, 1), ("generations", int, 1), ("batch-size", int, 1),
                            ("folds", int, 2), ("max-samples", int, MIN_IMAGES)):
        if get(name):
            option = f"--mia-{name}" + (f" (sets under {MIN_IMAGES} images are refused: too few to measure leakage)"
                                        if name == "max-samples" else "")
            kw[name.replace("-", "_")] = _number(option, get(name), kind, low)
    if get("known-fraction"):
        folds = kw.get("folds", AuditSettings.folds)
        kw["known_fraction"] = _number("--mia-known-fraction", get("known-fraction"), float, 0.01,
                                       round((folds - 1) / folds, 6))
    if get("guidance"):
        kw["guidance"] = _number("--mia-guidance", get("guidance"), float, 0)
    for name, key in (("device", "device"), ("embedder", "embedder"), ("cache-dir", "cache_dir"), ("json", "json_report"),
                      ("storage", "storage"), ("save", "save"), ("target-config", "target_config"), ("lora", "lora"),
                      ("captioner", "captioner"), ("compare", "compare"), ("html", "html_report"),
                      ("markdown", "markdown_report"), ("target-identity", "target_identity")):
        if get(name):
            kw[key] = get(name)
    shadow = {n: get(n) for n in ("shadow-target", "shadow-members", "shadow-nonmembers")}
    if any(shadow.values()):
        missing = [f"--mia-{n}" for n, v in shadow.items() if v is None]
        if missing:
            raise MiaUsageError(f"shadow-model mode needs {', '.join(missing)} too.")
        kw.update({n.replace("-", "_"): v for n, v in shadow.items()})
    if get("shift-check"):
        kw["shift_check"] = _choices("--mia-shift-check", get("shift-check").lower(), SHIFT_CHECKS)[0]
    if get("compare-rule"):
        kw["compare_rule"] = _choices("--mia-compare-rule", get("compare-rule").lower(), COMPARE_RULES)[0]
    if get("compare-fail"):
        kw["compare_fail"] = parse_tolerances(get("compare-fail"))
        kw.setdefault("compare", "latest")  # as documented: compare-fail compares with the latest run by default
    for flag in ("allow-pickle", "autosave", "track"):
        kw[flag.replace("-", "_")] = str(raw.get(flag) or "").lower() in ("1", "true", "yes")
    return AuditSettings(**kw)
