"""Black-box callable targets: `package.module:function`, for hosted models or any wrapper.

The contract: `function(prompts: list[str], seeds: list[int])` returns one RGB image per prompt (an HxWx3
uint8 array, an HxWx3 float array in [0, 1], or a PIL image), and image i depends only on prompts[i] and
seeds[i]. Anything else is an error naming the contract, never a silently converted image.
"""

from __future__ import annotations

import hashlib
import importlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data import MIN_SIDE, to_rgb8
from ..errors import MiaUsageError, TargetContractError
from .base import CALLABLE, Target, TargetSpec

CALLABLE_CONTRACT = ("the callable contract: fn(prompts: list[str], seeds: list[int]) returns one image per prompt, "
                     "each an HxWx3 uint8 array, an HxWx3 float array in [0, 1], or a PIL image")
HAS_NO_WEIGHTS = "a black-box callable exposes no weights to query"
IDENTITY_ATTRIBUTES = ("mia_identity", "__version__")


def is_callable_spec(spec: str) -> bool:
    module, sep, attr = spec.partition(":")
    return bool(sep) and attr.isidentifier() and all(p.isidentifier() for p in module.split(".")) and not Path(spec).exists()


def resolve_callable(spec: str, option: str = "--mia-target") -> Callable:
    """Import `package.module:function`; whatever the import does (raise, even sys.exit) is a usage error."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit at import too: it must not end the run with exit code 0
        raise MiaUsageError(f"{option}: cannot import {module_name} for {spec} ({type(exc).__name__}: {exc}); "
                            "give package.module:function, importable from the current directory or sys.path, "
                            "whose module does not exit or fail at import.") from None
    if not hasattr(module, attr):
        raise MiaUsageError(f"{option}: cannot import {spec} (module {module_name} has no attribute {attr!r}).")
    fn = getattr(module, attr)
    if not callable(fn):
        raise MiaUsageError(f"{option}: {spec} is not callable (it is a {type(fn).__name__}); give a function "
                            "fn(prompts, seeds).")
    return fn


def declared_identity(fn: Callable, spec: str, option: str = "--mia-target") -> tuple[str | None, str | None]:
    """(identity, where it came from) from the function's own attributes: `fn.mia_identity` (a string, or a
    function returning one, e.g. a weights hash or an endpoint with its revision) or `fn.__version__`."""
    for name in IDENTITY_ATTRIBUTES:
        value = getattr(fn, name, None)
        if value is None:
            continue
        if callable(value):
            try:
                value = value()
            except Exception as exc:
                raise MiaUsageError(f"{option}: {spec}.{name}() raised {type(exc).__name__}: {exc}.") from None
        if not isinstance(value, str) or not value.strip():
            raise MiaUsageError(f"{option}: {spec}.{name} must be a non-empty string (a model version, weights "
                                f"hash or endpoint revision), not {value!r}.")
        return value.strip(), f"{spec}.{name}"
    return None, None


def resolve(spec: str, option: str, lora: str | None = None) -> TargetSpec:
    """Import the callable and check what it declares about itself (at pytest start, not mid-run)."""
    if lora:
        raise MiaUsageError("--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a callable target.")
    fn = resolve_callable(spec, option)
    declared_identity(fn, spec, option)
    return TargetSpec(spec, CALLABLE, "callable", None, HAS_NO_WEIGHTS, option, fn=fn)


def _contract_image(spec: str, index: int, image: Any) -> np.ndarray:
    """One returned image as HxWx3 uint8, checked against the contract (never silently clipped)."""

    def broken(what: str) -> TargetContractError:
        return TargetContractError(f"--mia-target {spec} broke {CALLABLE_CONTRACT}: image {index} {what}.")

    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        try:
            image = to_rgb8(image, Path(f"{spec}[{index}]"), "--mia-target")
        except MiaUsageError as exc:
            raise broken(f"cannot be read as RGB ({exc})") from None
    if image is None or isinstance(image, (str, bytes)):
        raise broken(f"is a {type(image).__name__}, not an image")
    array = np.asarray(image)
    if array.dtype.kind not in "uif" or array.dtype == np.bool_:
        raise broken(f"is an array of {array.dtype}, not of pixels")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        hint = " (channels first? return HxWx3)" if array.ndim == 3 and array.shape[0] in (1, 3, 4) else ""
        raise broken(f"has shape {array.shape}{hint}")
    if min(array.shape[:2]) < MIN_SIDE:
        raise broken(f"is {array.shape[1]}x{array.shape[0]} pixels (at least {MIN_SIDE}x{MIN_SIDE} needed)")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "ui":
        raise broken(f"is an array of {array.dtype}; return uint8 (0–255) or floats in [0, 1]")
    values = array.astype(np.float64)
    if np.isnan(values).any():
        raise broken("has NaN pixels")
    low, high = values.min(), values.max()
    if low < -1e-6 or high > 1 + 1e-6:
        raise broken(f"has float pixels in [{low:.3g}, {high:.3g}], outside [0, 1]; "
                     "divide 0–255 floats by 255 or return uint8")
    return (np.clip(values, 0, 1) * 255).round().astype(np.uint8)


def callable_images(spec: str, fn: Callable, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
    """Call a callable target and hold its output to the contract."""
    try:
        out = fn(list(prompts), list(seeds))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a user's sys.exit() must fail the attacks, not end pytest
        raise TargetContractError(f"--mia-target {spec} raised {type(exc).__name__}: {exc} (expected "
                                  f"{CALLABLE_CONTRACT})") from exc
    if out is None or isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        raise TargetContractError(f"--mia-target {spec} broke {CALLABLE_CONTRACT}: it returned "
                                  f"{type(out).__name__}, not a list of images.")
    if len(out) != len(prompts):
        raise TargetContractError(f"--mia-target {spec} broke {CALLABLE_CONTRACT}: it returned {len(out)} images "
                                  f"for {len(prompts)} prompts.")
    return [_contract_image(spec, i, image) for i, image in enumerate(out)]


def load(spec: TargetSpec, declared: str | None = None, run_id: str | None = None) -> Target:
    """A black-box callable. Its cache identity is its name plus what it declares about itself (attribute)
    and what the user declares (--mia-target-identity); with neither, the identity is valid for this run
    only (`run_id`), so a changed model behind the same name can never be served another model's images."""
    name, fn = spec.spec, spec.fn
    attribute, source = declared_identity(fn, name, spec.option)
    parts = [p for p in (attribute and f"attribute:{attribute}", declared and f"option:{declared}") if p]
    if parts:
        said = " and ".join(x for x in (attribute and f"{attribute!r} ({source})",
                                         declared and f"{declared!r} (--mia-target-identity)") if x)
        note = f"callable identity {said}: generations are reused across runs while it stays the same"
        key = "\0".join([f"callable:{name}", *parts])
    else:
        note = (f"{name} declares no identity (set {name.partition(':')[2]}.mia_identity or "
                "--mia-target-identity): its generations are not reused across runs")
        key = f"callable:{name}\0run:{run_id or uuid.uuid4().hex}"
    identity = hashlib.sha256(key.encode()).hexdigest()
    return Target(name, spec.kind, identity, lambda prompts, seeds: callable_images(name, fn, prompts, seeds),
                  identity_note=note, run_scoped=not parts)
