"""Caption-less mode: when the queries come without captions, a captioning model writes them.

The paper's attacker may hold only images; BLIP (`Salesforce/blip-image-captioning-base` through
transformers, or a local save_pretrained folder of a BlipForConditionalGeneration) captions every query —
members and non-members alike, so that neither set carries caption-style cues the other lacks. Decoding is
greedy (deterministic); captions are cached per captioner and image content.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MiaUsageError
from .store import hash_folder, write_atomic, writing_cache
from .weights import check_weights_folder

MAX_NEW_TOKENS = 40


def check_captioner_spec(spec: str, allow_pickle: bool = False) -> None:
    """A local folder must be a BLIP captioner with safetensors weights; a hub id is checked when it loads."""
    path = Path(spec)
    if not path.exists():
        if spec.count("/") == 1 and not spec.startswith((".", "/")):
            return  # a hub id, e.g. Salesforce/blip-image-captioning-base
        raise MiaUsageError(f"--mia-captioner: {spec} does not exist. Give a hub id such as "
                            "Salesforce/blip-image-captioning-base or a local save_pretrained folder.")
    config = path / "config.json"
    if not config.is_file() or json.loads(config.read_text()).get("model_type") != "blip":
        raise MiaUsageError(f"--mia-captioner: {spec} is not a BLIP captioning model folder (config.json with "
                            "model_type 'blip').")
    check_weights_folder(path, allow_pickle, "--mia-captioner")


@dataclass
class Captioner:
    spec: str
    model: Any
    processor: Any
    device: str = "cpu"
    batch_size: int = 32

    def caption(self, images: list[np.ndarray]) -> list[str]:
        import torch
        from PIL import Image

        out: list[str] = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = [Image.fromarray(im) for im in images[start : start + self.batch_size]]
                pixels = self.processor(images=batch, return_tensors="pt").pixel_values.to(self.device, self.model.dtype)
                tokens = self.model.generate(pixel_values=pixels, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                             num_beams=1)
                out += [_clean(text) for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]
        return out


def _clean(text: str) -> str:
    """BERT-style decoding puts spaces before punctuation."""
    return re.sub(r"\s+([,.!?;:])", r"\1", text).strip()


def load_captioner(spec: str, device: str = "cpu", allow_pickle: bool = False) -> Captioner:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    check_captioner_spec(spec, allow_pickle)
    model = BlipForConditionalGeneration.from_pretrained(spec, use_safetensors=None if allow_pickle else True)
    return Captioner(spec, model.to(device).eval(), BlipProcessor.from_pretrained(spec), device)


def captioner_identity(spec: str) -> str:
    return hashlib.sha256((hash_folder(Path(spec)) if Path(spec).is_dir() else f"hub:{spec}").encode()).hexdigest()


def caption_queries(spec: str, images: Sequence[np.ndarray], hashes: list[str], cache_root: Path, device: str = "cpu",
                    allow_pickle: bool = False) -> list[str]:
    """Captions for every image, from the cache where present (store.py: captions/<captioner identity>.json,
    image sha256 → caption); the captioner loads only when an image is missing."""
    from filelock import FileLock

    path = Path(cache_root) / "captions" / f"{captioner_identity(spec)[:24]}.json"
    with writing_cache(Path(cache_root)):
        path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cached = json.loads(path.read_text()) if path.is_file() else {}
        todo = [i for i, h in enumerate(hashes) if h not in cached]
        if todo:
            captioner = load_captioner(spec, device, allow_pickle)
            for start in range(0, len(todo), captioner.batch_size):  # images decoded a batch at a time
                part = todo[start : start + captioner.batch_size]
                for i, text in zip(part, captioner.caption([images[i] for i in part])):
                    cached[hashes[i]] = text
            with writing_cache(Path(cache_root)):
                write_atomic(path, lambda f: f.write(json.dumps(cached, indent=1, sort_keys=True).encode()))
    return [cached[h] for h in hashes]
