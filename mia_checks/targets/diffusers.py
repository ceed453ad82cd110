"""diffusers targets: a pipeline folder (`save_pretrained`, safetensors), a single-file checkpoint in the
original Stable Diffusion layout (`from_single_file`, its configs from `--mia-target-config`), and either of
them with a LoRA adapter applied (`--mia-lora`, `load_lora_weights`)."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..access.base import DENOISER, MASKED_TOKEN, two_text_encoders
from ..errors import MiaUsageError, ModelLoadError
from ..store import hash_file, hash_folder
from ..weights import check_weights_file, check_weights_folder, pickle_refusal, pickles_in
from .base import DIFFUSERS, GenerationSettings, Target, TargetSpec, quiet_libraries, resolve_device, to_uint8

# Pipelines whose sampler takes one generator for the whole batch: they generate one prompt per call, so
# that each image depends only on its own seed.
SINGLE_GENERATOR_PIPELINES = {"AmusedPipeline"}
# What a single file without --mia-target-config holds: Stable Diffusion 1.x / 2.x (SDXL needs its configs).
SINGLE_FILE_CLASS = "StableDiffusionPipeline"
SINGLE_FILE_COMPONENTS = frozenset({"unet", "vae", "text_encoder", "tokenizer", "scheduler"})


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
    pickles = pickles_in(folder, recursive=True)
    for component in sorted({p.parent for p in pickles}):
        if not any(component.glob("*.safetensors")) and not allow_pickle:
            raise pickle_refusal(option, component, [p.name for p in pickles if p.parent == component])


def _index_folder(path: Path, config: str | None) -> Path | None:
    """The folder whose model_index.json describes the pipeline: the folder itself, or a single file's
    --mia-target-config when it is a local pipeline folder; None for a single file read by its layout."""
    if not path.is_file():
        return path
    if config and (Path(config) / "model_index.json").is_file():
        return Path(config)
    return None


def _access(pipeline_class: str, components: frozenset[str]) -> tuple[str | None, str | None]:
    """(white-box access kind, None), or (None, why the white-box attacks cannot query this pipeline)."""
    if "text_encoder_2" in components:
        return None, two_text_encoders(pipeline_class)
    if "unet" in components and components & {"vae", "vqvae"}:
        return DENOISER, None
    if pipeline_class == "AmusedPipeline" and {"transformer", "vqvae"} <= components:
        return MASKED_TOKEN, None
    return None, (f"{pipeline_class} has no latent denoiser (UNet and autoencoder) or aMUSEd token model to query: "
                  "the white-box attacks cover the Stable Diffusion, LDM and aMUSEd families")


def resolve(path: Path, spec: str, option: str, allow_pickle: bool, config: str | None = None,
            lora: str | None = None) -> TargetSpec:
    """Check a pipeline folder or single file (and its adapter) and say what it is; nothing is loaded."""
    if path.is_file():
        check_weights_file(path, allow_pickle, option, "checkpoint")
        if config and Path(config).exists():
            check_pipeline_folder(Path(config), allow_pickle, "--mia-target-config")
    else:
        check_pipeline_folder(path, allow_pickle, option)
    lora_path = _check_lora(Path(lora), allow_pickle) if lora else None
    folder = _index_folder(path, config)
    if folder is None:
        pipeline_class, components = SINGLE_FILE_CLASS, SINGLE_FILE_COMPONENTS
    else:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        pipeline_class = index["_class_name"]
        components = frozenset(k for k, v in index.items()
                               if not k.startswith("_") and isinstance(v, list) and v[0] is not None)
    access, no_access = _access(pipeline_class, components)
    kind = f"diffusers{'-single-file' if path.is_file() else ''}:{pipeline_class}" + ("+lora" if lora_path else "")
    return TargetSpec(spec, DIFFUSERS, kind, access, no_access, option, path, config, lora_path, pipeline_class,
                      scheduler_steps=_scheduler_steps(folder, option))


def _scheduler_steps(folder: Path | None, option: str) -> int | None:
    """num_train_timesteps of the pipeline's scheduler config (diffusers' default 1,000 when unset); for a
    single file read by its layout, Stable Diffusion's 1,000; None when the config is elsewhere (the hub)."""
    if folder is None:
        return 1000
    config = folder / "scheduler" / "scheduler_config.json"
    if not config.is_file():
        return None
    try:
        steps = json.loads(config.read_text(encoding="utf-8")).get("num_train_timesteps", 1000)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise MiaUsageError(f"{option}: {config} is not a valid scheduler config ({exc}); re-save the pipeline.") from None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise MiaUsageError(f"{option}: {config} gives num_train_timesteps {steps!r}; a diffusion scheduler has an "
                            "integer number of training steps ≥ 2. Re-save the pipeline.")
    return steps


def _check_lora(path: Path, allow_pickle: bool) -> Path:
    if not path.exists():
        raise MiaUsageError(f"--mia-lora: {path} does not exist. Give the folder save_lora_weights wrote, or "
                            "its .safetensors file.")
    if path.is_file():
        check_weights_file(path, allow_pickle, "--mia-lora", "LoRA adapter")
    else:
        check_weights_folder(path, allow_pickle, "--mia-lora", "LoRA weights")
    return path


def identity(spec: TargetSpec) -> str:
    """Content hash of everything loaded: weights, configs, adapter."""
    path = spec.path
    parts = [hash_file(path) if path.is_file() else hash_folder(path)]
    if path.is_file() and spec.config and Path(spec.config).is_dir():
        parts.append(hash_folder(Path(spec.config)))
    elif path.is_file():
        parts.append(f"config:{spec.config}")
    if spec.lora:
        parts.append(hash_folder(spec.lora) if spec.lora.is_dir() else hash_file(spec.lora))
    return parts[0] if len(parts) == 1 else hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _load_pipeline(spec: TargetSpec, dtype, allow_pickle: bool):
    import diffusers

    if spec.path.is_file():
        pipeline_class = getattr(diffusers, spec.pipeline_class)
        pipeline = pipeline_class.from_single_file(str(spec.path), config=spec.config, torch_dtype=dtype,
                                                   local_files_only=bool(spec.config and Path(spec.config).is_dir()))
    else:
        pipeline = diffusers.DiffusionPipeline.from_pretrained(
            spec.path, dtype=dtype, use_safetensors=None if allow_pickle else True)
    if spec.lora:
        folder, weight = (spec.lora, None) if spec.lora.is_dir() else (spec.lora.parent, spec.lora.name)
        weight = weight or _lora_weight_name(folder)
        pipeline.load_lora_weights(str(folder), weight_name=weight)
        check_adapter_changes_weights(pipeline, folder / weight, spec.pipeline_class)
    return pipeline


def check_adapter_changes_weights(pipeline, adapter: Path, pipeline_class: str) -> None:
    """A LoRA must change the pipeline: one whose keys no component took (another architecture's prefix,
    `transformer.` from SD3 or Flux on a UNet) or whose up-projections are all zero loads without error and
    audits the base model under the adapter's name. After loading, some lora_B weight must be non-zero."""
    import torch

    modules = [c for c in pipeline.components.values() if isinstance(c, torch.nn.Module)]
    if any(torch.count_nonzero(p).item() for m in modules for n, p in m.named_parameters() if "lora_B" in n):
        return
    from safetensors import safe_open

    with safe_open(str(adapter), "pt") as f:
        keys = list(f.keys())
    prefixes = sorted({k.split(".")[0] for k in keys})
    takers = sorted(name for name, c in pipeline.components.items() if isinstance(c, torch.nn.Module))
    raise ModelLoadError(
        f"--mia-lora: {adapter} changes no weight of the {pipeline_class}: its {len(keys)} keys start with "
        f"{', '.join(p + '.' for p in prefixes[:6]) or 'nothing'}, and no component of the pipeline "
        f"({', '.join(takers)}) took a non-zero weight from it. Was it trained for another architecture, or "
        "saved before training? Give the adapter trained on this base.")


def _lora_weight_name(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    return "pytorch_lora_weights.safetensors" if "pytorch_lora_weights.safetensors" in files or not files else files[0]


class DiffusersRunner:
    """Calls a diffusers pipeline with per-image seeds; loads it on the first call only, so a run whose
    images are all cached never loads the checkpoint."""

    def __init__(self, spec: TargetSpec, settings: GenerationSettings, allow_pickle: bool):
        self.spec, self.settings, self.allow_pickle = spec, settings, allow_pickle
        self._pipeline = None

    @property
    def pipeline(self):
        """The loaded pipeline (loaded now if it was not): what the white-box attacks query."""
        if self._pipeline is None:
            self._load()
        return self._pipeline

    def _load(self):
        import torch

        quiet_libraries()
        device = resolve_device(self.settings.device)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            pipeline = _load_pipeline(self.spec, dtype, self.allow_pickle)
        except ModelLoadError:
            raise
        except Exception as exc:  # whatever diffusers raises, the user needs to know which file and why
            raise ModelLoadError(f"cannot load {self.spec.kind} from {self.spec.path}"
                                 + (f" with LoRA {self.spec.lora}" if self.spec.lora else "")
                                 + f": {type(exc).__name__}: {exc}") from exc
        pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        extra: dict[str, Any] = {}
        if self.settings.guidance is not None:
            extra["guidance_scale"] = self.settings.guidance
        if self.spec.pipeline_class == "LDMTextToImagePipeline":
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
        return to_uint8(out.images)

    def __call__(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        if self._pipeline is None:
            self._load()
        if self.spec.pipeline_class in SINGLE_GENERATOR_PIPELINES:
            return [image for p, s in zip(prompts, seeds) for image in self._call([p], [s])]
        return self._call(prompts, seeds)


def load(spec: TargetSpec, settings: GenerationSettings, allow_pickle: bool = False) -> Target:
    runner = DiffusersRunner(spec, settings, allow_pickle)
    return Target(str(spec.path), spec.kind, identity(spec), runner,
                  (lambda: runner.pipeline) if spec.access else None)
