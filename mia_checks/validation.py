"""Checks of the run's environment that need more than the option strings: the device, folds against the
sets' size, and that the cache and report paths can be written. Each raises MiaUsageError naming the option
and what to do; the plugin runs them before anything heavy loads."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import MiaUsageError

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


def check_run_environment(settings) -> None:
    """Everything about the run's surroundings that can be checked before the audit: a callable target
    imports, the device exists, the cache and every report path can be written."""
    from .targets import declared_identity, is_callable_spec, resolve_callable

    for option, spec in (("--mia-target", settings.target), ("--mia-shadow-target", settings.shadow_target)):
        if spec and is_callable_spec(spec):
            declared_identity(resolve_callable(spec, option), spec)
    if settings.target_identity and not is_callable_spec(settings.target):
        raise MiaUsageError("--mia-target-identity: only a callable target needs one; a checkpoint's identity is "
                            "the hash of its files.")
    check_device(settings.device)
    check_cache_dir(settings.cache_root(), "--mia-cache-dir" if settings.cache_dir else
                    "the cache folder ($MIA_CHECKS_CACHE or ~/.cache/mia-checks; set --mia-cache-dir)")
    for option, path in (("--mia-json", settings.json_report), ("--mia-html", settings.html_report),
                         ("--mia-markdown", settings.markdown_report)):
        if path:
            check_output_file(path, option)
    if settings.save or settings.autosave:
        _probe_folder(Path(settings.storage), "--mia-storage", "saved runs")
