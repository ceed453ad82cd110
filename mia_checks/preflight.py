"""Every check that runs before anything heavy loads, in one function: `preflight(raw options)` parses the
options, resolves the target specs once, checks the embedder, captioner, attacks, device, folds and every
path, loads the reference sets and the baseline, and returns what it established. Each failure is a
MiaUsageError naming the option or file and what to do (the plugin turns it into a pytest usage error, exit
code 4); the checks know nothing of pytest, so tests call them directly."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .access.base import DENOISER
from .attacks import ATTACKS
from .attacks.compatibility import check_attack_choice, runnable
from .baselines import ResultsStore, SavedRun
from .captioning import check_captioner_spec
from .exposure import check_exposure_choice
from .data import ReferenceSet, balance, check_disjoint, load_reference_set
from .embedders import check_embedder_spec
from .errors import MiaUsageError
from .settings import SAMPLING_OPTIONS, AuditSettings, build_settings, parse_progress
from .targets import TargetSpec, resolve
from .targets.base import CALLABLE, MIN_DALLE, SEQ2SEQ


@dataclass(frozen=True)
class Preflight:
    """What the checks established: settings, the checked and balanced reference sets, the resolved targets
    and the baseline compared with (its document loaded and checked)."""

    settings: AuditSettings
    progress: str  # --mia-progress: a display option, not a setting of the audit
    members: ReferenceSet
    nonmembers: ReferenceSet
    target: TargetSpec
    shadow: TargetSpec | None = None
    baseline: SavedRun | None = None
    baseline_document: dict | None = None


def preflight(raw: dict[str, str | None]) -> Preflight:
    """raw: option name (without --mia-) → string value or None, as the command line and ini give them."""
    settings = build_settings(raw)
    progress = parse_progress(raw.get("progress"))
    check_embedder_spec(settings.embedder, settings.allow_pickle)
    if settings.captioner:
        check_captioner_spec(settings.captioner, settings.allow_pickle)
    target = resolve(settings.target, "--mia-target", allow_pickle=settings.allow_pickle,
                     config=settings.target_config, lora=settings.lora)
    shadow = None
    if settings.shadow_target:
        shadow = resolve(settings.shadow_target, "--mia-shadow-target", allow_pickle=settings.allow_pickle,
                         config=settings.target_config)
    check_attack_choice(settings.attacks, settings.attacks_chosen, [t for t in (target, shadow) if t])
    check_exposure_choice(settings.exposure, settings.exposure_chosen, target)
    for spec in (t for t in (target, shadow) if t):
        check_timesteps(settings, spec)
    check_target_options(settings, target)
    check_run_environment(settings)
    members, nonmembers = load_reference_sets(settings)
    check_folds(settings.folds, len(members))
    if shadow:
        check_folds(settings.folds, len(load_reference_sets(settings, shadow=True)[0]),
                    "--mia-shadow-members/--mia-shadow-nonmembers")
    baseline = ResultsStore(settings.storage).find(settings.compare) if settings.compare else None
    return Preflight(settings, progress, members, nonmembers, target, shadow, baseline,
                     baseline.load() if baseline else None)


def load_reference_sets(settings: AuditSettings, shadow: bool = False) -> tuple[ReferenceSet, ReferenceSet]:
    """Both sets (the target's, or the shadow model's), checked (existence, captions, readability, size,
    disjointness) and balanced."""
    prefix = "shadow-" if shadow else ""
    paths = (settings.shadow_members, settings.shadow_nonmembers) if shadow else (settings.members, settings.nonmembers)
    required = settings.captioner is None  # caption-less mode: captions are written by the captioner
    members = load_reference_set(paths[0], "members", f"--mia-{prefix}members", captions_required=required)
    nonmembers = load_reference_set(paths[1], "nonmembers", f"--mia-{prefix}nonmembers", captions_required=required)
    check_disjoint(members, nonmembers)
    return balance(members, nonmembers, settings.seed, settings.max_samples)


def check_target_options(settings: AuditSettings, target: TargetSpec) -> None:
    """Options that apply to some kinds of target only: an option that silently does nothing would mislead."""
    given = [f"--mia-{name}" for name, _, _ in SAMPLING_OPTIONS if getattr(settings, name.replace("-", "_")) is not None]
    if given and target.family not in (SEQ2SEQ, MIN_DALLE):
        raise MiaUsageError(f"{', '.join(given)}: sampling options apply to seq2seq (DALL·E-style) targets only, and "
                            "--mia-target is not one; drop them.")
    if settings.target_identity and target.family != CALLABLE:
        raise MiaUsageError("--mia-target-identity: only a callable target needs one; a checkpoint's identity is "
                            "the hash of its files.")


def check_timesteps(settings: AuditSettings, target: TargetSpec) -> None:
    """Every timestep a white-box attack will probe exists in the target's own scheduler (a scheduler of 500
    training steps has no timestep 500, and SecMI steps past its --mia-secmi-timestep to t + k)."""
    if target.access != DENOISER or target.scheduler_steps is None:
        return
    last = target.scheduler_steps - 1
    for attack in runnable(settings.attacks, [target]):
        probe = ATTACKS[attack].probe_for(DENOISER)
        if probe is None or probe.last_timestep is None or probe.last_timestep(settings.whitebox) <= last:
            continue
        steps = target.scheduler_steps
        hint = f" (e.g. the default grid scaled by {steps}/1000)" if steps < 1000 else ""
        raise MiaUsageError(
            f"{probe.timestep_options}: {attack} probes timestep {probe.last_timestep(settings.whitebox)}, past the last "
            f"step ({last}) of {target.spec}'s scheduler ({target.scheduler_steps} training steps). Give timesteps "
            f"of 0–{last}{hint}, or leave {attack} out with --mia-attacks.")


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(device: str) -> None:
    """auto, cpu, mps, cuda or cuda:N, and only a device this machine has."""
    if not _DEVICE.match(device):
        raise MiaUsageError(f"--mia-device: {device!r} is not a device mia-checks can use; choose auto, cpu, cuda, "
                            "cuda:N or mps.")
    if device in ("auto", "cpu"):
        return
    import torch

    if device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise MiaUsageError("--mia-device: mps is not available on this machine; use --mia-device=auto or cpu.")
        return
    if not torch.cuda.is_available():
        raise MiaUsageError(f"--mia-device: {device} asked for, but torch sees no CUDA GPU on this machine; use "
                            "--mia-device=auto (GPU when there is one) or cpu.")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise MiaUsageError(f"--mia-device: {device} asked for, but this machine has {torch.cuda.device_count()} "
                            f"CUDA device(s) (cuda:0 … cuda:{torch.cuda.device_count() - 1}).")


def check_folds(folds: int, per_class: int, option: str = "--mia-members/--mia-nonmembers") -> None:
    """k-fold needs at least k members and k non-members (stratified folds)."""
    if folds > per_class:
        raise MiaUsageError(f"--mia-folds: {folds} folds need at least {folds} members and {folds} non-members, "
                            f"but {option} give {per_class} each (after balancing); lower --mia-folds (default 5).")


def _probe_folder(folder: Path, option: str, what: str) -> None:
    """Create `folder` if needed and prove a file can be written in it."""
    if folder.exists() and not folder.is_dir():
        raise MiaUsageError(f"{option}: {folder} is a file, not a folder; give a folder for {what}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mia-probe-"):
            pass
    except OSError as exc:
        raise MiaUsageError(f"{option}: cannot write {what} in {folder} ({exc.strerror or exc}); give a writable "
                            "folder.") from None


def check_cache_dir(folder: Path, option: str) -> None:
    """The generation cache must be a writable folder (an error, never a run that silently re-generates)."""
    _probe_folder(folder, option, "the generation cache")


def check_output_file(path: str, option: str) -> None:
    """A report path: a regular file (or none yet) in a folder that can be written."""
    target = Path(path)
    if target.exists() and not target.is_file():
        raise MiaUsageError(f"{option}: {path} exists and is not a regular file; give a file path for the report.")
    if target.exists() and not os.access(target, os.W_OK):
        raise MiaUsageError(f"{option}: {path} is not writable; give another path.")
    _probe_folder(target.parent if str(target.parent) else Path("."), option, "the report")


def check_run_environment(settings: AuditSettings) -> None:
    """Everything about the run's surroundings that can be checked before the audit: the device exists, the
    cache and every report path can be written."""
    check_device(settings.device)
    check_cache_dir(settings.cache_root(), "--mia-cache-dir" if settings.cache_dir else
                    "the cache folder ($MIA_CHECKS_CACHE or ~/.cache/mia-checks; set --mia-cache-dir)")
    for option, path in (("--mia-json", settings.json_report), ("--mia-html", settings.html_report),
                         ("--mia-markdown", settings.markdown_report), ("--mia-exposed-csv", settings.exposed_csv)):
        if path:
            check_output_file(path, option)
    if settings.save or settings.autosave:
        _probe_folder(Path(settings.storage), "--mia-storage", "saved runs")
