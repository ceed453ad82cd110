"""Audit settings: parsed and checked from raw option strings, with errors that name the option."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .access.base import CLID_REDUCTIONS, WhiteBoxOptions
from .attacks import ATTACK_IDS, ATTACKS, COMBINE_OPERATIONS, GROUPS, WHITE_BOX
from .baselines import COMPARE_RULES, DEFAULT_STORAGE, Tolerance, parse_tolerances
from .data import MIN_IMAGES
from .embedders import DEFAULT_EMBEDDER
from .errors import MiaUsageError
from .exposure import EXPOSURE_TESTS, collected
from .gate import GATE_METRICS, RULES, GateRule
from .protocol import MAX_SEED
from .store import default_cache_root

SHIFT_CHECKS = ("warn", "error", "off")
PROGRESS_MODES = ("auto", "bar", "log", "off")


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
    gate_metric: str = "auc"  # rank-based: uses every score, not one cut (see gate.py)
    gate_rule: str = "bound"
    alpha: float = 0.05
    attacks: tuple[str, ...] = ATTACK_IDS
    attacks_chosen: bool = False  # attacks named: a white-box one the target cannot run is then an error
    whitebox: WhiteBoxOptions = field(default_factory=WhiteBoxOptions)
    exposure: tuple[str, ...] = EXPOSURE_TESTS  # per-member tests (exposure/): each fails on a flagged member
    exposure_chosen: bool = False  # named in --mia-exposure: run even when no attack of its access level runs
    exposed_csv: str | None = None
    exposed_top: int = 20
    combine: tuple[str, ...] = COMBINE_OPERATIONS
    seed: int = 0
    steps: int = 25
    guidance: float | None = None
    # Seq2seq (DALL·E-style) sampling; None: the model's own default.
    temperature: float | None = None
    top_k: int | None = None
    supercondition: float | None = None
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
    save_incomplete: bool = False  # save a run even when an attack errored (not a baseline to rely on)
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
        return self.gate_for(self.attacks)

    def gate_for(self, attacks: tuple[str, ...], exposure_tests: tuple[str, ...] = ()) -> GateRule:
        """The gate over the attacks and exposure tests that actually run (Bonferroni over them)."""
        return GateRule(self.gate_metric, self.threshold, self.per_attack_threshold, self.gate_rule, self.alpha,
                        len(attacks), len(exposure_tests))

    @property
    def exposure_tests(self) -> tuple[str, ...]:
        """The exposure tests the run holds: the named ones, else each one whose attacks run (it reuses their
        work: memorization the loaded weights, regurgitation the generations)."""
        return collected(self.exposure, self.attacks, self.exposure_chosen)

    @property
    def whitebox_attacks(self) -> tuple[str, ...]:
        return tuple(a for a in self.attacks if ATTACKS[a].access == WHITE_BOX)

    def cache_root(self) -> Path:
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


def parse_attacks(raw: str) -> tuple[str, ...]:
    """Ids and groups (blackbox, whitebox, all), comma-separated, any case; in the registry's order."""
    by_name = {name.lower(): (name,) for name in ATTACK_IDS} | {name: ids for name, ids in GROUPS.items()}
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in parts if p.lower() not in by_name]
    if unknown or not parts:
        raise MiaUsageError(f"--mia-attacks: unknown {', '.join(unknown) or 'empty value'}; choose from "
                            f"{', '.join(ATTACK_IDS)} or the groups {', '.join(GROUPS)}.")
    picked = {a for p in parts for a in by_name[p.lower()]}
    return tuple(a for a in ATTACK_IDS if a in picked)


def _timesteps(option: str, raw: str) -> tuple[int, ...]:
    values = tuple(_number(option, part, int, 0, 999) for part in raw.split(",") if part.strip())
    if not values:
        raise MiaUsageError(f"{option}: give one or more timesteps in 0–999, e.g. 100,200.")
    return values


def parse_whitebox(get) -> WhiteBoxOptions:
    """The white-box attacks' options (--mia-loss-timesteps, …); unset ones keep the pinned defaults."""
    kw: dict = {}
    for name in ("loss-timesteps", "sima-timesteps", "clid-timesteps"):
        if get(name):
            kw[name.replace("-", "_")] = _timesteps(f"--mia-{name}", get(name))
    for name, low, high in (("pia-timestep", 1, 999), ("secmi-timestep", 1, 989), ("secmi-interval", 1, 100)):
        if get(name):
            kw[name.replace("-", "_")] = _number(f"--mia-{name}", get(name), int, low, high)
    if get("clid-captions"):
        kw["clid_captions"] = _choices("--mia-clid-captions", get("clid-captions"), CLID_REDUCTIONS)
    for name, low, high in (("memorization-steps", 1, 50), ("memorization-generations", 1, 64), ("lowpass", 0, 512)):
        if get(name):
            kw[name.replace("-", "_")] = _number(f"--mia-{name}", get(name), int, low, high)
    if get("token-mask-ratios"):
        ratios = tuple(dict.fromkeys(_number("--mia-token-mask-ratios", part, float, 0.01, 1.0)
                                     for part in get("token-mask-ratios").split(",") if part.strip()))
        if not ratios:
            raise MiaUsageError("--mia-token-mask-ratios: give one or more ratios in (0, 1], e.g. 0.25,0.5.")
        kw["token_mask_ratios"] = ratios
    options = WhiteBoxOptions(**kw)
    if options.secmi_timestep % options.secmi_interval:
        raise MiaUsageError(f"--mia-secmi-timestep: {options.secmi_timestep} is not a multiple of --mia-secmi-interval "
                            f"{options.secmi_interval} (SecMI inverts on the grid 0, k, 2k, … up to t).")
    return options


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


SAMPLING_OPTIONS = (("temperature", float, 1e-6), ("top-k", int, 1), ("supercondition", float, 0))
# (option, AuditSettings field) of the options taken as given: paths, names and specs.
PLAIN_OPTIONS = (("device", "device"), ("embedder", "embedder"), ("cache-dir", "cache_dir"), ("json", "json_report"),
                 ("storage", "storage"), ("save", "save"), ("target-config", "target_config"), ("lora", "lora"),
                 ("captioner", "captioner"), ("compare", "compare"), ("html", "html_report"),
                 ("markdown", "markdown_report"), ("target-identity", "target_identity"),
                 ("exposed-csv", "exposed_csv"))
FLAGS = ("allow-pickle", "autosave", "save-incomplete", "track")


def build_settings(raw: dict[str, str | None]) -> AuditSettings:
    """raw: option name (without --mia-) → string value or None for unset. Each group of options is parsed
    by its own function; every error names its option."""
    def get(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None or str(value).strip() == "" else str(value).strip()

    missing = [f"--mia-{n}" for n in ("members", "nonmembers") if get(n) is None]
    if missing:
        raise MiaUsageError(f"--mia-target needs {' and '.join(missing)}: image folders with metadata.jsonl.")
    kw: dict = {"target": get("target"), "members": get("members"), "nonmembers": get("nonmembers")}
    for group in (_gate_options, _attack_options, _sampling_options, _protocol_options, _baseline_options):
        kw.update(group(get, kw))
    kw.update({key: get(name) for name, key in PLAIN_OPTIONS if get(name)})
    kw.update({flag.replace("-", "_"): str(raw.get(flag) or "").lower() in ("1", "true", "yes") for flag in FLAGS})
    if get("compare-fail"):
        kw.setdefault("compare", "latest")  # as documented: compare-fail compares with the latest run by default
    return AuditSettings(**kw)


def _gate_options(get, kw: dict) -> dict:
    out: dict = {}
    if get("gate-metric"):
        out["gate_metric"] = _choices("--mia-gate-metric", get("gate-metric").lower(), GATE_METRICS)[0]
    if get("threshold"):
        out["threshold"], out["per_attack_threshold"] = parse_threshold(
            get("threshold"), out.get("gate_metric", AuditSettings.gate_metric))
    if get("gate-rule"):
        out["gate_rule"] = _choices("--mia-gate-rule", get("gate-rule").lower(), RULES)[0]
    if get("alpha"):
        out["alpha"] = _number("--mia-alpha", get("alpha"), float, 1e-6, 0.5)
    if get("shift-check"):
        out["shift_check"] = _choices("--mia-shift-check", get("shift-check").lower(), SHIFT_CHECKS)[0]
    return out


def _attack_options(get, kw: dict) -> dict:
    out: dict = {"whitebox": parse_whitebox(get)}
    if get("attacks"):
        out["attacks"] = parse_attacks(get("attacks"))
        # Naming white-box attacks (not "all") asks for them: on a target without weights that is an error.
        out["attacks_chosen"] = get("attacks").strip().lower() != "all"
    if get("combine"):
        out["combine"] = _choices("--mia-combine", get("combine"), COMBINE_OPERATIONS)
    if get("exposure"):
        none = get("exposure").lower() == "none"
        out["exposure"] = () if none else _choices("--mia-exposure", get("exposure").lower(), EXPOSURE_TESTS)
        out["exposure_chosen"] = get("exposure").lower() not in ("all", "none")
    if get("exposed-top"):
        out["exposed_top"] = _number("--mia-exposed-top", get("exposed-top"), int, 1)
    return out


def _sampling_options(get, kw: dict) -> dict:
    """Generation: steps, guidance, K, batches; and the seq2seq targets' sampling (--mia-temperature, …),
    which preflight refuses on other targets (an option that silently does nothing would mislead)."""
    out: dict = {}
    for name, kind, low in (("steps", int, 1), ("generations", int, 1), ("batch-size", int, 1)):
        if get(name):
            out[name.replace("-", "_")] = _number(f"--mia-{name}", get(name), kind, low)
    if get("seed"):
        out["seed"] = _number("--mia-seed", get("seed"), int, 0, MAX_SEED)
    if get("guidance"):
        out["guidance"] = _number("--mia-guidance", get("guidance"), float, 0)
    for name, kind, low in SAMPLING_OPTIONS:
        if get(name):
            out[name.replace("-", "_")] = _number(f"--mia-{name}", get(name), kind, low)
    return out


def _protocol_options(get, kw: dict) -> dict:
    out: dict = {}
    for name, low in (("folds", 2), ("max-samples", MIN_IMAGES)):
        if get(name):
            option = f"--mia-{name}" + (f" (sets under {MIN_IMAGES} images are refused: too few to measure leakage)"
                                        if name == "max-samples" else "")
            out[name.replace("-", "_")] = _number(option, get(name), int, low)
    if get("known-fraction"):
        folds = out.get("folds", AuditSettings.folds)
        out["known_fraction"] = _number("--mia-known-fraction", get("known-fraction"), float, 0.01,
                                        round((folds - 1) / folds, 6))
    shadow = {n: get(n) for n in ("shadow-target", "shadow-members", "shadow-nonmembers")}
    if any(shadow.values()):
        missing = [f"--mia-{n}" for n, v in shadow.items() if v is None]
        if missing:
            raise MiaUsageError(f"shadow-model mode needs {', '.join(missing)} too.")
        out.update({n.replace("-", "_"): v for n, v in shadow.items()})
    return out


def _baseline_options(get, kw: dict) -> dict:
    out: dict = {}
    if get("compare-rule"):
        out["compare_rule"] = _choices("--mia-compare-rule", get("compare-rule").lower(), COMPARE_RULES)[0]
    if get("compare-fail"):
        out["compare_fail"] = parse_tolerances(get("compare-fail"))
    return out


def parse_progress(raw: str | None) -> str:
    """--mia-progress: auto (the default; "on" too), bar, log or off. A display option: not in AuditSettings
    (it changes no result, and a report's settings stay what they were)."""
    value = str(raw).strip().lower() if raw is not None and str(raw).strip() else "auto"
    value = "auto" if value == "on" else value
    if value not in PROGRESS_MODES:
        raise MiaUsageError(f"--mia-progress: unknown {raw!r}; choose from {', '.join(PROGRESS_MODES)}.")
    return value
