"""Every error and warning a user of mia-checks meets, in one place.

Errors the user can fix: a usage error (bad option or input; the plugin turns it into a pytest usage
error, exit code 4) and the errors of a run that cannot measure (a model that does not load, a target that
breaks its contract, generations or scores that cannot be measured): the gate tests error with their
message, never pass. Nothing else is caught. The warnings follow the user's warning filters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class MiaUsageError(ValueError):
    """Bad input: names the file or option at fault and says what to do."""


class ModelLoadError(RuntimeError):
    """A model (the target, the embedder, the captioner) could not be loaded: corrupt weights, missing
    configs, a missing library, an unreachable hub. The gate tests error with this message, never pass."""


class WhiteBoxError(RuntimeError):
    """The target cannot be queried the way a white-box attack needs (no denoiser, an unsupported
    prediction type, query images of another size than the model's). The attack errors, never passes."""


class TargetContractError(RuntimeError):
    """A callable target broke its contract: it raised, or returned something that is not one RGB image per
    prompt. The gate tests error with this message, never pass."""


class GenerationError(RuntimeError):
    """The target's output cannot be measured (NaN, blank or malformed images)."""


class CacheWriteError(RuntimeError):
    """The cache folder cannot take a write (full disk, quota, read-only): named, with what to do."""


class UnmeasurableError(RuntimeError):
    """The gate's metric cannot be measured on these sets."""


# What makes a gate test error with "cannot measure" (never pass); FloatingPointError: non-finite scores.
MEASUREMENT_ERRORS = (UnmeasurableError, GenerationError, ModelLoadError, WhiteBoxError, TargetContractError,
                      CacheWriteError, FloatingPointError)


class DistributionShiftWarning(UserWarning):
    """Members and non-members differ without any model: verdicts are unreliable."""


class LeakageWarning(UserWarning):
    """Tracking mode: an attack leaks beyond its threshold, or rose beyond the baseline; the run goes on."""


@contextmanager
def loading(what: str) -> Iterator[None]:
    """Turn whatever a library raises while loading a model into an error that names the model."""
    try:
        yield
    except (MiaUsageError, ModelLoadError):
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load {what}: {type(exc).__name__}: {exc}") from exc
