"""Targets: the model under audit, behind one narrow interface — prompts and seeds in, images out.

`Target.generate(prompts, seeds)` returns one RGB uint8 image per (prompt, seed) pair; image i must depend
only on prompts[i] and seeds[i] (not on the batch it came in), so that generations can be cached.
`identity` is a content hash of the checkpoint: the cache key of everything generated from it.

Kinds:
- a diffusers text-to-image pipeline folder (`model_index.json`, safetensors weights);
- a single-file checkpoint (`model.safetensors` in the original Stable Diffusion layout), loaded with
  diffusers' `from_single_file`, its configs from `--mia-target-config` (a pipeline folder or hub id);
- either of those with a LoRA adapter applied (`--mia-lora`, diffusers' `load_lora_weights`);
- a seq2seq (DALL·E-mini-style) folder: BART over captions → VQ codes → VQ decoder, or real DALL·E mini /
  mega weights in min-dalle's layout (`seq2seq.py`, `min_dalle.py`);
- `package.module:function`, a black-box callable `function(prompts: list[str], seeds: list[int]) ->
  list of HxWx3 uint8 arrays (or PIL images)`, for hosted models or any wrapper.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import MiaUsageError, ModelLoadError

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
# Pipelines whose sampler takes one generator for the whole batch: they generate one prompt per call, so
# that each image depends only on its own seed.
SINGLE_GENERATOR_PIPELINES = {"AmusedPipeline"}


def hash_folder(folder: Path) -> str:
    """sha256 over every file's relative path and content hash, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + hash_file(path).encode())
    return h.hexdigest()


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, remembered by (absolute path, size, modification time) under the cache
    folder: a checkpoint of several GB is read once, not on every run and by every xdist worker."""
    from .cache import default_cache_root

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
    memo = default_cache_root() / "hashes" / key[:2] / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(h.hexdigest())
        tmp.replace(memo)
    except OSError:
        pass  # a read-only cache only costs speed
    return h.hexdigest()


def check_pipeline_folder(folder: Path, allow_pickle: bool, option: str = "--mia-target") -> None:
    """A diffusers pipeline folder whose weights are safetensors (or pickles the user opted into)."""
    if not (folder / "model_index.json").is_file():
        raise MiaUsageError(
            f"{option}: {folder} is not a diffusers pipeline folder (no model_index.json). "
            "Save your pipeline with pipeline.save_pretrained(folder, safe_serialization=True)."
        )
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MiaUsageError(f"{option}: {folder / 'model_index.json'} is not valid JSON ({exc}); re-save the pipeline "
                            "with pipeline.save_pretrained(folder, safe_serialization=True).") from None
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise MiaUsageError(f"{option}: {folder / 'model_index.json'} names no pipeline class (\"_class_name\"); "
                            "re-save the pipeline with pipeline.save_pretrained(folder, safe_serialization=True).")
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
    # White-box access: a function that loads and returns the model (a pipeline, or a seq2seq model), and
    # its kind (attacks.whitebox.DENOISER, NEXT_TOKEN, MASKED_TOKEN); or None with the reason why not.
    pipeline_fn: Callable[[], Any] | None = field(default=None, repr=False)
    whitebox_unsupported: str | None = None
    whitebox_kind: str | None = None
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


@dataclass(frozen=True)
class PipelineSource:
    """Where a diffusers pipeline comes from: a folder, or a single file (with the configs to read it by),
    and optionally a LoRA adapter applied on top."""

    path: Path
    config: str | None = None  # single file: a pipeline folder or hub id holding the component configs
    lora: Path | None = None

    @property
    def single_file(self) -> bool:
        return self.path.is_file()

    @property
    def class_name(self) -> str:
        folder = None if self.single_file else self.path
        if self.single_file and self.config and (Path(self.config) / "model_index.json").is_file():
            folder = Path(self.config)
        if folder is not None:
            return json.loads((folder / "model_index.json").read_text())["_class_name"]
        return "StableDiffusionPipeline"  # the single-file layout of SD 1.x / 2.x; SDXL: give --mia-target-config

    @property
    def kind(self) -> str:
        return (f"diffusers{'-single-file' if self.single_file else ''}:{self.class_name}"
                + ("+lora" if self.lora else ""))

    @property
    def components(self) -> set[str]:
        folder = None if self.single_file else self.path
        if self.single_file and self.config and (Path(self.config) / "model_index.json").is_file():
            folder = Path(self.config)
        if folder is None:
            return {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}  # SD 1.x / 2.x single file
        return {k for k, v in json.loads((folder / "model_index.json").read_text()).items()
                if not k.startswith("_") and isinstance(v, list) and v[0] is not None}

    @property
    def whitebox_kind(self) -> str | None:
        """What the white-box attacks can query: a latent denoiser (SD, LDM), aMUSEd's masked token model, or
        nothing (None: whitebox_unsupported says why)."""
        from .attacks.whitebox import DENOISER, MASKED_TOKEN

        parts = self.components
        if "text_encoder_2" in parts:
            return None
        if "unet" in parts and parts & {"vae", "vqvae"}:
            return DENOISER
        if self.class_name == "AmusedPipeline" and {"transformer", "vqvae"} <= parts:
            return MASKED_TOKEN
        return None

    @property
    def whitebox_unsupported(self) -> str | None:
        """Why the white-box attacks cannot query this pipeline (None: they can)."""
        if self.whitebox_kind is not None:
            return None
        if "text_encoder_2" in self.components:
            return (f"{self.class_name} has two text encoders (SDXL): white-box attacks do not support its added "
                    "conditioning yet")
        return (f"{self.class_name} has no latent denoiser (UNet and autoencoder) or aMUSEd token model to query: the "
                "white-box attacks cover the Stable Diffusion, LDM and aMUSEd families")

    @property
    def identity(self) -> str:
        """Content hash of everything loaded: weights, configs, adapter."""
        parts = [hash_folder(self.path) if not self.single_file else hash_file(self.path)]
        if self.single_file and self.config and Path(self.config).is_dir():
            parts.append(hash_folder(Path(self.config)))
        elif self.single_file:
            parts.append(f"config:{self.config}")
        if self.lora:
            parts.append(hash_folder(self.lora) if self.lora.is_dir() else hash_file(self.lora))
        return parts[0] if len(parts) == 1 else hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def load(self, dtype, allow_pickle: bool):
        import diffusers

        if self.single_file:
            pipeline_class = getattr(diffusers, self.class_name)
            pipeline = pipeline_class.from_single_file(str(self.path), config=self.config, torch_dtype=dtype,
                                                       local_files_only=bool(self.config and Path(self.config).is_dir()))
        else:
            pipeline = diffusers.DiffusionPipeline.from_pretrained(
                self.path, dtype=dtype, use_safetensors=None if allow_pickle else True)
        if self.lora:
            folder, weight = (self.lora, None) if self.lora.is_dir() else (self.lora.parent, self.lora.name)
            pipeline.load_lora_weights(str(folder), weight_name=weight or _lora_weight_name(folder))
        return pipeline


def _lora_weight_name(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    return "pytorch_lora_weights.safetensors" if "pytorch_lora_weights.safetensors" in files or not files else files[0]


class DiffusersRunner:
    """Calls a diffusers pipeline with per-image seeds; loads it on the first call only, so a run whose
    images are all cached never loads the checkpoint."""

    def __init__(self, source: PipelineSource, settings: GenerationSettings, allow_pickle: bool):
        self.source, self.settings, self.allow_pickle = source, settings, allow_pickle
        self.class_name = source.class_name
        self._pipeline = None

    @property
    def pipeline(self):
        """The loaded pipeline (loaded now if it was not): what the white-box attacks query."""
        if self._pipeline is None:
            self._load()
        return self._pipeline

    def _load(self):
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        # Loading bars would interleave with pytest's output; the generation bar is ours.
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        device = resolve_device(self.settings.device)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            pipeline = self.source.load(dtype, self.allow_pickle)
        except Exception as exc:  # whatever diffusers raises, the user needs to know which file and why
            raise ModelLoadError(f"cannot load {self.source.kind} from {self.source.path}"
                                  + (f" with LoRA {self.source.lora}" if self.source.lora else "")
                                  + f": {type(exc).__name__}: {exc}") from exc
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


def load_diffusers_target(source: PipelineSource, settings: GenerationSettings, allow_pickle: bool = False) -> Target:
    runner = DiffusersRunner(source, settings, allow_pickle)
    unsupported = source.whitebox_unsupported
    return Target(str(source.path), source.kind, source.identity, runner,
                  None if unsupported else (lambda: runner.pipeline), unsupported, source.whitebox_kind)


CALLABLE_CONTRACT = ("the callable contract: fn(prompts: list[str], seeds: list[int]) returns one image per prompt, "
                     "each an HxWx3 uint8 array, an HxWx3 float array in [0, 1], or a PIL image")


class TargetContractError(RuntimeError):
    """A callable target broke its contract: it raised, or returned something that is not one RGB image per
    prompt. The gate tests error with this message, never pass."""


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


def _contract_image(spec: str, index: int, image: Any) -> np.ndarray:
    """One returned image as HxWx3 uint8, checked against the contract (never silently clipped)."""
    from .data import MIN_SIDE

    def broken(what: str) -> TargetContractError:
        return TargetContractError(f"--mia-target {spec} broke {CALLABLE_CONTRACT}: image {index} {what}.")

    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        from .data import to_rgb8

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
    except Exception as exc:
        raise TargetContractError(f"--mia-target {spec} raised {type(exc).__name__}: {exc} (expected "
                                  f"{CALLABLE_CONTRACT})") from exc
    if out is None or isinstance(out, (str, bytes)) or not hasattr(out, "__len__"):
        raise TargetContractError(f"--mia-target {spec} broke {CALLABLE_CONTRACT}: it returned "
                                  f"{type(out).__name__}, not a list of images.")
    if len(out) != len(prompts):
        raise TargetContractError(f"--mia-target {spec} broke {CALLABLE_CONTRACT}: it returned {len(out)} images "
                                  f"for {len(prompts)} prompts.")
    return [_contract_image(spec, i, image) for i, image in enumerate(out)]


IDENTITY_ATTRIBUTES = ("mia_identity", "__version__")


def declared_identity(fn: Callable, spec: str) -> tuple[str | None, str | None]:
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
                raise MiaUsageError(f"--mia-target: {spec}.{name}() raised {type(exc).__name__}: {exc}.") from None
        if not isinstance(value, str) or not value.strip():
            raise MiaUsageError(f"--mia-target: {spec}.{name} must be a non-empty string (a model version, weights "
                                f"hash or endpoint revision), not {value!r}.")
        return value.strip(), f"{spec}.{name}"
    return None, None


def load_callable_target(spec: str, declared: str | None = None, run_id: str | None = None) -> Target:
    """A black-box callable. Its cache identity is its name plus what it declares about itself (attribute)
    and what the user declares (--mia-target-identity); with neither, the identity is valid for this run
    only (`run_id`), so a changed model behind the same name can never be served another model's images."""
    import uuid

    fn = resolve_callable(spec)
    attribute, source = declared_identity(fn, spec)
    parts = [p for p in (attribute and f"attribute:{attribute}", declared and f"option:{declared}") if p]
    if parts:
        said = " and ".join(x for x in (attribute and f"{attribute!r} ({source})",
                                         declared and f"{declared!r} (--mia-target-identity)") if x)
        note = f"callable identity {said}: generations are reused across runs while it stays the same"
        key = "\0".join([f"callable:{spec}", *parts])
    else:
        note = (f"{spec} declares no identity (set {spec.partition(':')[2]}.mia_identity or "
                "--mia-target-identity): its generations are not reused across runs")
        key = f"callable:{spec}\0run:{run_id or uuid.uuid4().hex}"
    identity = hashlib.sha256(key.encode()).hexdigest()
    return Target(spec, "callable", identity, lambda prompts, seeds: callable_images(spec, fn, prompts, seeds),
                  whitebox_unsupported=CALLABLE_HAS_NO_WEIGHTS, identity_note=note, run_scoped=not parts)


CALLABLE_HAS_NO_WEIGHTS = "a black-box callable exposes no weights to query"


def whitebox_access(spec: str, config: str | None = None) -> tuple[str | None, str | None]:
    """(kind, None) when the white-box attacks can query this target, (None, why not) otherwise; cheap, nothing
    is loaded."""
    from .seq2seq import seq2seq_whitebox, seq2seq_kind

    if is_callable_spec(spec):
        return None, CALLABLE_HAS_NO_WEIGHTS
    if seq2seq_kind(Path(spec)):
        return seq2seq_whitebox(Path(spec))
    source = PipelineSource(Path(spec), config)
    return source.whitebox_kind, source.whitebox_unsupported


def whitebox_skip_reason(attack_id: str, specs: list[str], config: str | None = None) -> str | None:
    """Why a white-box attack cannot run on these targets (the target, and the shadow model if any), or None."""
    from .attacks import ATTACKS

    for spec in specs:
        kind, reason = whitebox_access(spec, config)
        if reason:
            return reason
        if ATTACKS[attack_id].probe_for(kind) is None:
            return (f"{spec} is a token model ({kind}): of the white-box attacks only loss, on its own tokens, "
                    "applies; the others need a diffusion denoiser")
    return None


def check_whitebox_choice(settings) -> None:
    """White-box attacks named in --mia-attacks must be able to run: skipping them would pass a gate that
    never measured. (Under the default, all, they are skipped with the reason instead.)"""
    if not settings.attacks_chosen or not settings.whitebox_attacks:
        return
    specs = [spec for spec in (settings.target, settings.shadow_target) if spec]
    blocked = {a: r for a in settings.whitebox_attacks if (r := whitebox_skip_reason(a, specs, settings.target_config))}
    if blocked:
        reason = next(iter(blocked.values()))
        raise MiaUsageError(f"--mia-attacks: {', '.join(blocked)} are white-box attacks, but {reason}. Run the "
                            "black-box attacks (--mia-attacks=blackbox) or the white-box attacks this target supports, "
                            "or give the pipeline folder, single file or LoRA with its base.")


def is_callable_spec(spec: str) -> bool:
    module, sep, attr = spec.partition(":")
    return bool(sep) and attr.isidentifier() and all(p.isidentifier() for p in module.split(".")) and not Path(spec).exists()


def _check_weights_file(path: Path, allow_pickle: bool, option: str, what: str) -> None:
    if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise MiaUsageError(f"{option}: {path} is a pickle-based {what}. Loading a pickle can run arbitrary code: "
                            "convert it to safetensors, or pass --mia-allow-pickle if you trust this file.")
    if path.suffix not in PICKLE_SUFFIXES + (".safetensors",):
        raise MiaUsageError(f"{option}: {path} is a single file but not a checkpoint (.safetensors, or with "
                            "--mia-allow-pickle .ckpt/.pt/.bin); give a diffusers pipeline folder or a checkpoint.")


def check_target_spec(spec: str, allow_pickle: bool, option: str = "--mia-target", lora: str | None = None,
                      config: str | None = None) -> None:
    """Cheap checks that run before anything heavy loads."""
    if is_callable_spec(spec):
        if lora:
            raise MiaUsageError("--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a callable target.")
        return
    path = Path(spec)
    if not path.exists():
        raise MiaUsageError(
            f"{option}: {spec} does not exist. Give a diffusers pipeline folder, a single-file checkpoint "
            "(.safetensors) or package.module:function."
        )
    from .seq2seq import check_seq2seq_target, seq2seq_kind

    if seq2seq_kind(path):
        if lora:
            raise MiaUsageError("--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a seq2seq target.")
        check_seq2seq_target(path, allow_pickle, option)
        return
    if path.is_file():
        _check_weights_file(path, allow_pickle, option, "checkpoint")
        if config and Path(config).exists():
            check_pipeline_folder(Path(config), allow_pickle, "--mia-target-config")
    else:
        check_pipeline_folder(path, allow_pickle, option)
    if lora:
        lora_path = Path(lora)
        if not lora_path.exists():
            raise MiaUsageError(f"--mia-lora: {lora} does not exist. Give the folder save_lora_weights wrote, or "
                                "its .safetensors file.")
        if lora_path.is_file():
            _check_weights_file(lora_path, allow_pickle, "--mia-lora", "LoRA adapter")
        elif not list(lora_path.glob("*.safetensors")):
            pickles = [p.name for p in lora_path.iterdir() if p.suffix in PICKLE_SUFFIXES]
            if not pickles:
                raise MiaUsageError(f"--mia-lora: {lora} holds no LoRA weights (*.safetensors).")
            if not allow_pickle:
                raise MiaUsageError(f"--mia-lora: {lora} holds only pickle-based weights ({', '.join(pickles)}); "
                                    "convert them to safetensors, or pass --mia-allow-pickle if you trust them.")


def load_target(spec: str, settings: GenerationSettings, allow_pickle: bool = False, lora: str | None = None,
                config: str | None = None, identity: str | None = None, run_id: str | None = None) -> Target:
    """identity, run_id: a callable's declared identity (--mia-target-identity) and the run's id (the scope
    of an undeclared callable's generations)."""
    check_target_spec(spec, allow_pickle, lora=lora, config=config)
    if is_callable_spec(spec):
        return load_callable_target(spec, identity, run_id)
    from .seq2seq import load_seq2seq_target, seq2seq_kind

    if seq2seq_kind(Path(spec)):
        return load_seq2seq_target(Path(spec), settings, allow_pickle)
    source = PipelineSource(Path(spec), config, Path(lora) if lora else None)
    return load_diffusers_target(source, settings, allow_pickle)
