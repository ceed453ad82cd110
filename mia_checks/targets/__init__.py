"""Targets: the model under audit, behind one narrow interface — prompts and seeds in, images out.

A target spec is resolved once (`resolve`): the one place that decides what kind of model a spec names and
checks its files, before anything heavy loads. `load` then builds the target from the resolved spec.

Families, one module each (`resolve(...) -> TargetSpec`, `load(spec, ...) -> Target`):
- `diffusers`: a diffusers text-to-image pipeline folder (`model_index.json`, safetensors weights), a
  single-file checkpoint in the original Stable Diffusion layout (`from_single_file`, its configs from
  `--mia-target-config`), either with a LoRA adapter (`--mia-lora`, `load_lora_weights`);
- `seq2seq`: a DALL·E-mini-style folder in this project's layout (BART over captions → VQ codes → VQ decoder);
- `min_dalle`: real DALL·E mini / mega weights in min-dalle's layout;
- `callable`: `package.module:function`, a black-box callable `function(prompts, seeds) -> images`, for
  hosted models or any wrapper.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import MiaUsageError
from . import callable as callable_kind
from . import diffusers, min_dalle, seq2seq
from .base import CALLABLE, DIFFUSERS, MIN_DALLE, SEQ2SEQ, GenerationSettings, Target, TargetSpec, resolve_device
from .callable import is_callable_spec
from .privacy import read_declared_privacy


def resolve(spec: str, option: str = "--mia-target", *, allow_pickle: bool = False, config: str | None = None,
            lora: str | None = None) -> TargetSpec:
    """What `spec` names, checked (files exist, weights are safetensors unless allowed, a callable imports):
    a usage error naming `option` otherwise. Nothing is loaded."""
    if is_callable_spec(spec):
        return callable_kind.resolve(spec, option, lora)
    path = Path(spec)
    if not path.exists():
        raise MiaUsageError(f"{option}: {spec} does not exist. Give a diffusers pipeline folder, a single-file "
                            "checkpoint (.safetensors) or package.module:function.")
    if seq2seq.is_seq2seq_folder(path):
        resolved = seq2seq.resolve(path, spec, option, allow_pickle, lora)
    elif min_dalle.is_min_dalle_folder(path):
        resolved = min_dalle.resolve(path, spec, option, allow_pickle, lora)
    else:
        resolved = diffusers.resolve(path, spec, option, allow_pickle, config, lora)
    return replace(resolved, privacy=read_declared_privacy(path, option)) if path.is_dir() else resolved


def load(spec: TargetSpec, settings: GenerationSettings, allow_pickle: bool = False, identity: str | None = None,
         run_id: str | None = None) -> Target:
    """The target of a resolved spec; checkpoints load lazily, when an image or a white-box score is missing.
    identity, run_id: a callable's declared identity (--mia-target-identity) and the run's id (the scope of
    an undeclared callable's generations)."""
    if spec.family == CALLABLE:
        return callable_kind.load(spec, identity, run_id)
    family = {DIFFUSERS: diffusers, SEQ2SEQ: seq2seq, MIN_DALLE: min_dalle}[spec.family]
    return family.load(spec, settings, allow_pickle)


def load_target(spec: str, settings: GenerationSettings, allow_pickle: bool = False, lora: str | None = None,
                config: str | None = None, identity: str | None = None, run_id: str | None = None) -> Target:
    """Resolve and load in one call (scripts and tests; a run resolves once, in its pre-run checks)."""
    resolved = resolve(spec, allow_pickle=allow_pickle, config=config, lora=lora)
    return load(resolved, settings, allow_pickle, identity, run_id)


__all__ = ["GenerationSettings", "Target", "TargetSpec", "load", "load_target", "resolve", "resolve_device"]
