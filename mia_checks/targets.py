"""Targets: the model under audit, behind one narrow interface — prompts and seeds in, images out.

`Target.generate(prompts, seeds)` returns one RGB uint8 image per (prompt, seed) pair; image i must depend
only on prompts[i] and seeds[i] (not on the batch it came in), so that generations can be cached.
`identity` is a content hash of the checkpoint: the cache key of everything generated from it.

Kinds:
- a diffusers text-to-image pipeline folder (`model_index.json`, safetensors weights);
- `package.module:function`, a black-box callable `function(prompts: list[str], seeds: list[int]) ->
  list of HxWx3 uint8 arrays (or PIL images)`, for hosted models or any wrapper.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import MiaUsageError

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
# Pipelines whose sampler takes one generator for the whole batch: they generate one prompt per call, so
# that each image depends only on its own seed.
SINGLE_GENERATOR_PIPELINES = {"AmusedPipeline"}


def hash_folder(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def check_pipeline_folder(folder: Path, allow_pickle: bool, option: str = "--mia-target") -> None:
    """A diffusers pipeline folder whose weights are safetensors (or pickles the user opted into)."""
    if not (folder / "model_index.json").is_file():
        raise MiaUsageError(
            f"{option}: {folder} is not a diffusers pipeline folder (no model_index.json). "
            "Save your pipeline with pipeline.save_pretrained(folder, safe_serialization=True)."
        )
    pickles = [p for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    safe = list(folder.rglob("*.safetensors"))
    for component in {p.parent for p in pickles}:
        if not any(s.parent == component for s in safe) and not allow_pickle:
            raise MiaUsageError(
                f"{option}: {component} holds only pickle-based weights ({', '.join(sorted(p.name for p in pickles if p.parent == component))}). "
                "Loading a pickle can run arbitrary code: convert it to safetensors, or pass --mia-allow-pickle "
                "if you trust this checkpoint."
            )


@dataclass
class Target:
    spec: str
    kind: str
    identity: str
    generate_fn: Callable[[list[str], list[int]], list[np.ndarray]] = field(repr=False)

    def generate(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        return self.generate_fn(prompts, seeds)


@dataclass
class GenerationSettings:
    steps: int = 25
    guidance: float | None = None  # None: the pipeline's own default
    device: str = "cpu"


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _to_uint8(images: Any) -> list[np.ndarray]:
    arrays = [np.asarray(im) for im in images]
    out = []
    for a in arrays:
        if a.dtype != np.uint8:
            a = a.astype(np.float32)
            if np.isnan(a).any():
                raise FloatingPointError("the target generated an image with NaN pixels")
            a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        out.append(a[..., :3])
    return out


class DiffusersRunner:
    """Calls a diffusers pipeline with per-image seeds; loads it on the first call only, so a run whose
    images are all cached never loads the checkpoint."""

    def __init__(self, folder: Path, settings: GenerationSettings, allow_pickle: bool):
        self.folder, self.settings, self.allow_pickle = folder, settings, allow_pickle
        self.class_name = json.loads((folder / "model_index.json").read_text())["_class_name"]
        self._pipeline = None

    def _load(self):
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        # Loading bars would interleave with pytest's output; the generation bar is ours.
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        device = resolve_device(self.settings.device)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        pipeline = DiffusionPipeline.from_pretrained(
            self.folder, dtype=dtype, use_safetensors=None if self.allow_pickle else True
        )
        pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        extra: dict[str, Any] = {}
        if self.settings.guidance is not None:
            extra["guidance_scale"] = self.settings.guidance
        if self.class_name == "LDMTextToImagePipeline":
            # LDM computes the latent size as height // 8 whatever its autoencoder's factor.
            size = pipeline.unet.config.sample_size * 8
            extra.update(height=size, width=size)
        if "output_type" in inspect.signature(pipeline.__call__).parameters:
            extra["output_type"] = "np"
        self._pipeline, self._extra = pipeline, extra

    def _call(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        import torch

        generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        with torch.no_grad():
            out = self._pipeline(prompt=list(prompts), num_inference_steps=self.settings.steps,
                                 generator=generators if len(generators) > 1 else generators[0], **self._extra)
        return _to_uint8(out.images)

    def __call__(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        if self._pipeline is None:
            self._load()
        if self.class_name in SINGLE_GENERATOR_PIPELINES:
            return [image for p, s in zip(prompts, seeds) for image in self._call([p], [s])]
        return self._call(prompts, seeds)


def load_diffusers_target(folder: Path, settings: GenerationSettings, allow_pickle: bool = False) -> Target:
    check_pipeline_folder(folder, allow_pickle)
    runner = DiffusersRunner(folder, settings, allow_pickle)
    return Target(str(folder), f"diffusers:{runner.class_name}", hash_folder(folder), runner)


def load_callable_target(spec: str) -> Target:
    module_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise MiaUsageError(f"--mia-target: cannot import {spec} ({exc}).") from None
    if not callable(fn):
        raise MiaUsageError(f"--mia-target: {spec} is not callable.")
    identity = hashlib.sha256(f"callable:{spec}".encode()).hexdigest()
    return Target(spec, "callable", identity, lambda prompts, seeds: _to_uint8(fn(prompts, seeds)))


def is_callable_spec(spec: str) -> bool:
    module, sep, attr = spec.partition(":")
    return bool(sep) and attr.isidentifier() and all(p.isidentifier() for p in module.split(".")) and not Path(spec).exists()


def check_target_spec(spec: str, allow_pickle: bool, option: str = "--mia-target") -> None:
    """Cheap checks that run before anything heavy loads."""
    if is_callable_spec(spec):
        return
    path = Path(spec)
    if not path.exists():
        raise MiaUsageError(
            f"{option}: {spec} does not exist. Give a diffusers pipeline folder or package.module:function."
        )
    if path.is_file():
        hint = " It is pickle-based: convert it to safetensors." if path.suffix in PICKLE_SUFFIXES else ""
        raise MiaUsageError(
            f"{option}: {spec} is a single file; give a diffusers pipeline folder (save_pretrained).{hint}"
        )
    check_pipeline_folder(path, allow_pickle, option)


def load_target(spec: str, settings: GenerationSettings, allow_pickle: bool = False) -> Target:
    check_target_spec(spec, allow_pickle)
    if is_callable_spec(spec):
        return load_callable_target(spec)
    return load_diffusers_target(Path(spec), settings, allow_pickle)
