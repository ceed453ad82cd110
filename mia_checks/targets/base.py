"""What every target is: a resolved spec (what the user named, and what kind of model it is), the loaded
target behind one narrow interface, and the settings generation runs with.

`Target.generate(prompts, seeds)` returns one RGB uint8 image per (prompt, seed) pair; image i must depend
only on prompts[i] and seeds[i] (not on the batch it came in), so that generations can be cached.
`identity` is a content hash of the checkpoint: the cache key of everything generated from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..access.base import TOKEN_KINDS
from .privacy import DeclaredPrivacy

# The families of targets, each a module of this package that resolves and loads its kind.
DIFFUSERS, SEQ2SEQ, MIN_DALLE, CALLABLE = "diffusers", "seq2seq", "min-dalle", "callable"


@dataclass(frozen=True)
class TargetSpec:
    """A target as the user named it, resolved once (`targets.resolve`): its family and kind are decided
    and its files checked before anything loads, and every later question (can a white-box attack query it,
    how is it loaded, what does the report call it) reads the answer from here."""

    spec: str  # as given on the command line
    family: str  # DIFFUSERS, SEQ2SEQ, MIN_DALLE or CALLABLE: the module that loads it
    kind: str  # what the report names, e.g. "diffusers:StableDiffusionPipeline+lora", "callable"
    access: str | None  # the white-box access kind (access.base), None when its weights cannot be queried
    no_access: str | None  # why the white-box attacks cannot query it (None when `access` is set)
    option: str = "--mia-target"  # the option that named it, for errors
    path: Path | None = None
    config: str | None = None  # single file: a pipeline folder or hub id with the component configs
    lora: Path | None = None
    pipeline_class: str | None = None  # diffusers: the pipeline class from model_index.json
    fn: Callable | None = field(default=None, compare=False, repr=False)  # a callable target, imported
    # Token-sampled targets (seq2seq, min-dalle): image tokens per generation, read from their files — one
    # decoder call each (denoising steps do not apply) — and the model's default supercondition (≠ 1: each
    # call also runs the empty caption).
    image_tokens: int | None = None
    supercondition: float | None = None
    # Denoiser targets: the noise scheduler's training timesteps (its config's num_train_timesteps), which
    # bound the timesteps a white-box attack may probe; None when its config cannot be read before loading.
    scheduler_steps: int | None = None
    # The (ε, δ) its folder declares (privacy.json), None when it declares none.
    privacy: DeclaredPrivacy | None = None

    @property
    def is_token_model(self) -> bool:
        return self.access in TOKEN_KINDS


@dataclass
class Target:
    spec: str
    kind: str
    identity: str
    generate_fn: Callable[[list[str], list[int]], list[np.ndarray]] = field(repr=False)
    # White-box access: a function that loads and returns the model (a pipeline, or a seq2seq model); None
    # when the target's weights cannot be queried (its TargetSpec says why).
    model_fn: Callable[[], Any] | None = field(default=None, repr=False)
    sampling: dict | None = None  # seq2seq targets: the sampling settings in effect (echoed in the report)
    identity_note: str | None = None  # how the identity was found, and what that means for the cache
    run_scoped: bool = False  # identity valid for this run only: its generations are never reused later

    def generate(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        return self.generate_fn(prompts, seeds)


@dataclass
class GenerationSettings:
    steps: int = 25
    guidance: float | None = None  # None: the pipeline's own default
    device: str = "cpu"
    # Seq2seq (DALL·E-style) sampling; None: the model's own default.
    temperature: float | None = None
    top_k: int | None = None
    supercondition: float | None = None


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_libraries() -> None:
    """Loading bars of diffusers and transformers would interleave with pytest's output; the generation
    progress bar is ours."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def to_uint8(images: Any) -> list[np.ndarray]:
    """A pipeline's images (floats in [0, 1], or uint8) as RGB uint8; NaN pixels are an error, not black."""
    out = []
    for a in (np.asarray(im) for im in images):
        if a.dtype != np.uint8:
            a = a.astype(np.float32)
            if np.isnan(a).any():
                raise FloatingPointError("the target generated an image with NaN pixels")
            a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        out.append(a[..., :3])
    return out
