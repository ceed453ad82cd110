"""Joint image–text embedders for the semantic attacks: open_clip, or CLIP / BLIP through transformers.

Specs:
- open_clip: `MODEL:PRETRAINED_TAG` (e.g. `ViT-B-32:openai`), `hf-hub:org/repo`, or a local folder in
  open_clip's hub layout (`open_clip_config.json` + weights), as `local-dir:PATH` or a plain path;
- transformers: `transformers:openai/clip-vit-base-patch32`, `transformers:Salesforce/blip-itm-base-coco`,
  or a local save_pretrained folder (`config.json`) of a CLIPModel or a BLIP image–text retrieval model
  (BLIP's embeddings are its image–text contrastive projections).
The test bed's tiny models load through these same paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MiaUsageError
from .weights import check_weights_folder

DEFAULT_EMBEDDER = "ViT-B-32:openai"


@dataclass
class OpenClipEmbedder:
    """L2-normalised image and text embeddings from one open_clip model."""

    spec: str
    model: Any
    preprocess: Any
    tokenizer: Any
    device: str = "cpu"
    batch_size: int = 64

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.stack(
                    [self.preprocess(Image.fromarray(im)) for im in images[start : start + self.batch_size]]
                )
                out.append(self.model.encode_image(batch.to(self.device), normalize=True).float().cpu())
        return torch.cat(out).numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
                out.append(self.model.encode_text(tokens, normalize=True).float().cpu())
        return torch.cat(out).numpy()


@dataclass
class TransformersEmbedder:
    """L2-normalised embeddings from a transformers CLIPModel or BlipForImageTextRetrieval."""

    spec: str
    model: Any
    processor: Any
    device: str = "cpu"
    batch_size: int = 64

    def _batches(self, items: list):
        for start in range(0, len(items), self.batch_size):
            yield items[start : start + self.batch_size]

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        out = []
        with torch.no_grad():
            for batch in self._batches(list(images)):
                pixels = self.processor(images=[Image.fromarray(im) for im in batch], return_tensors="pt").pixel_values
                pixels = pixels.to(self.device, self.model.dtype)
                if self.model.config.model_type == "clip":
                    features = projected(self.model.get_image_features(pixel_values=pixels))
                else:  # BLIP: the ITC projection of the vision [CLS] token
                    features = self.model.vision_proj(self.model.vision_model(pixel_values=pixels).last_hidden_state[:, 0])
                out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        return torch.cat(out).numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for batch in self._batches(list(texts)):
                tokens = self.processor.tokenizer(batch, padding=True, truncation=True, return_tensors="pt").to(self.device)
                if self.model.config.model_type == "clip":
                    features = projected(self.model.get_text_features(input_ids=tokens.input_ids,
                                                                      attention_mask=tokens.attention_mask))
                else:
                    hidden = self.model.text_encoder(input_ids=tokens.input_ids,
                                                     attention_mask=tokens.attention_mask).last_hidden_state
                    features = self.model.text_proj(hidden[:, 0])
                out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        return torch.cat(out).numpy()


def projected(output):
    """transformers ≥ 5 returns a model output from get_*_features: the projected embedding is its pooler_output."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


TRANSFORMERS_MODEL_TYPES = {"clip": "CLIPModel", "blip": "BlipForImageTextRetrieval"}


def transformers_source(spec: str, allow_pickle: bool = False) -> str | None:
    """The transformers model id or folder a spec names, or None when it names an open_clip model."""
    if spec.startswith("transformers:"):
        source = spec[len("transformers:") :]
    elif Path(spec).is_dir() and (Path(spec) / "config.json").is_file() and not (Path(spec) / "open_clip_config.json").is_file():
        source = spec
    else:
        return None
    if Path(source).is_dir():
        import json

        model_type = json.loads((Path(source) / "config.json").read_text()).get("model_type")
        if model_type not in TRANSFORMERS_MODEL_TYPES:
            raise MiaUsageError(f"--mia-embedder: {source} is a {model_type!r} model; transformers embedders are "
                                f"{' and '.join(TRANSFORMERS_MODEL_TYPES.values())}.")
        check_weights_folder(Path(source), allow_pickle, "--mia-embedder")
    return source


def resolve_embedder_spec(spec: str, allow_pickle: bool = False) -> tuple[str, str | None]:
    """(open_clip model name, pretrained tag) for an open_clip spec; checks local folders before anything loads."""
    path = Path(spec[len("local-dir:") :] if spec.startswith("local-dir:") else spec)
    if spec.startswith("local-dir:") or path.exists():
        if not (path / "open_clip_config.json").is_file():
            raise MiaUsageError(
                f"--mia-embedder: {path} is neither an open_clip model folder (open_clip_config.json) nor a "
                "transformers CLIP/BLIP folder (config.json)."
            )
        check_weights_folder(path, allow_pickle, "--mia-embedder")
        return f"local-dir:{path.resolve()}", None
    if spec.startswith("hf-hub:"):
        return spec, None
    name, _, tag = spec.partition(":")
    return name, tag or None


def _looks_local(source: str) -> bool:
    """A path on disk rather than a model name or hub id."""
    return source.startswith(("/", "./", "../", "~", "local-dir:")) or source in (".", "..")


def check_embedder_spec(spec: str, allow_pickle: bool = False) -> None:
    """Cheap checks, before anything loads: a local folder that does not exist is named here, not by the
    loader later."""
    source = spec[len("transformers:"):] if spec.startswith("transformers:") else spec
    path = Path(source[len("local-dir:"):] if source.startswith("local-dir:") else source).expanduser()
    local = _looks_local(source) or (not spec.startswith(("transformers:", "hf-hub:")) and "/" in source)
    if local and not path.exists():
        raise MiaUsageError(f"--mia-embedder: {path} does not exist. Give a local embedder folder (open_clip_config.json "
                            "or a transformers config.json), an open_clip MODEL:TAG such as ViT-B-32:openai, "
                            "hf-hub:org/repo or transformers:org/model.")
    if transformers_source(spec, allow_pickle) is None:
        resolve_embedder_spec(spec, allow_pickle)


def load_embedder(spec: str, device: str = "cpu", allow_pickle: bool = False):
    source = transformers_source(spec, allow_pickle)
    if source is not None:
        import transformers
        from transformers import AutoConfig, AutoProcessor

        model_type = AutoConfig.from_pretrained(source).model_type
        if model_type not in TRANSFORMERS_MODEL_TYPES:
            raise MiaUsageError(f"--mia-embedder: {source} is a {model_type!r} model; transformers embedders are "
                                f"{' and '.join(TRANSFORMERS_MODEL_TYPES.values())}.")
        model_class = getattr(transformers, TRANSFORMERS_MODEL_TYPES[model_type])
        model = model_class.from_pretrained(source, use_safetensors=None if allow_pickle else True).to(device).eval()
        return TransformersEmbedder(spec, model, AutoProcessor.from_pretrained(source), device)

    import open_clip

    name, pretrained = resolve_embedder_spec(spec, allow_pickle)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
    model.eval()
    return OpenClipEmbedder(spec, model, preprocess, open_clip.get_tokenizer(name), device)
