"""Joint image–text embedders for the semantic attacks, loaded through open_clip.

The spec is what a user would give open_clip: `MODEL:PRETRAINED_TAG` (e.g. `ViT-B-32:openai`),
`hf-hub:org/repo`, or a local folder in the hub layout (`open_clip_config.json` + weights) given as
`local-dir:PATH` or as a plain path. The test bed's tiny CLIP loads through that same local-dir path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MiaUsageError

DEFAULT_EMBEDDER = "ViT-B-32:openai"


@dataclass
class Embedder:
    """L2-normalised image and text embeddings from one CLIP-style model."""

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


def resolve_embedder_spec(spec: str, allow_pickle: bool = False) -> tuple[str, str | None]:
    """(open_clip model name, pretrained tag) for a spec; checks local folders before anything loads."""
    path = Path(spec[len("local-dir:") :] if spec.startswith("local-dir:") else spec)
    if spec.startswith("local-dir:") or path.exists():
        if not (path / "open_clip_config.json").is_file():
            raise MiaUsageError(
                f"--mia-embedder: {path} is not an open_clip model folder (no open_clip_config.json)."
            )
        if not list(path.glob("*.safetensors")) and not allow_pickle:
            raise MiaUsageError(
                f"--mia-embedder: {path} has no .safetensors weights. Pickle-based weights can run code when "
                "loaded; convert them, or pass --mia-allow-pickle if you trust the file."
            )
        return f"local-dir:{path.resolve()}", None
    if spec.startswith("hf-hub:"):
        return spec, None
    name, _, tag = spec.partition(":")
    return name, tag or None


def load_embedder(spec: str, device: str = "cpu", allow_pickle: bool = False) -> Embedder:
    import open_clip

    name, pretrained = resolve_embedder_spec(spec, allow_pickle)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
    model.eval()
    return Embedder(spec, model, preprocess, open_clip.get_tokenizer(name), device)
