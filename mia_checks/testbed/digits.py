"""Real reference data for the test bed: scikit-learn's handwritten digits with per-image captions.

The 1,797 8×8 digits ship inside scikit-learn, so membership is real and needs no download. Each image is
upsampled to 32×32 RGB and captioned from its class and four measured attributes (ink, slant, width,
height on the page), each cut at its per-class terciles, so that most captions in a split are unique —
as in real fine-tuning data. Splits are disjoint, stratified by class, and fixed by a seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SIZE = 32
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ATTRIBUTE_WORDS = {
    "ink": ("light", "medium", "heavy"),
    "slant": ("leaning left", "upright", "leaning right"),
    "width": ("narrow", "regular", "wide"),
    "height": ("high", "centred", "low"),
}
# Sizes of the disjoint splits; whatever is left over is the public pool (autoencoder, embedder).
SPLIT_SIZES = {
    "members": 32,
    "nonmembers": 32,
    "shadow_members": 32,
    "shadow_nonmembers": 32,
    "null_train": 32,
}
SPLIT_SEED = 2022


@dataclass(frozen=True)
class Digits:
    """All digits as 32×32 RGB uint8 images, with labels and captions."""

    images: np.ndarray  # (n, 32, 32, 3) uint8
    labels: np.ndarray  # (n,) int
    captions: list[str]


def measure_attributes(raw: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image ink, slant, width and vertical position of 8×8 digits in 0–16.

    slant = cov(x, y) / var(y) of the ink (sheared strokes), width = std of x, height = mean of y.
    """
    weights = raw.reshape(-1, 8, 8).astype(float)
    total = weights.sum(axis=(1, 2))
    ys, xs = np.mgrid[0:8, 0:8].astype(float)
    mean_x = (weights * xs).sum(axis=(1, 2)) / total
    mean_y = (weights * ys).sum(axis=(1, 2)) / total
    dx = xs[None] - mean_x[:, None, None]
    dy = ys[None] - mean_y[:, None, None]
    var_x = (weights * dx**2).sum(axis=(1, 2)) / total
    var_y = (weights * dy**2).sum(axis=(1, 2)) / total
    cov = (weights * dx * dy).sum(axis=(1, 2)) / total
    return {"ink": total, "slant": -cov / var_y, "width": np.sqrt(var_x), "height": mean_y}


def _terciles_within_class(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0, 1 or 2 for each value: its tercile among images of the same class."""
    out = np.zeros(len(values), dtype=int)
    for label in np.unique(labels):
        idx = labels == label
        cuts = np.quantile(values[idx], [1 / 3, 2 / 3])
        out[idx] = np.searchsorted(cuts, values[idx], side="right")
    return out


def caption_digits(raw: np.ndarray, labels: np.ndarray) -> list[str]:
    """Captions such as 'a handwritten three, heavy ink, leaning right, wide, written high'."""
    bins = {name: _terciles_within_class(v, labels) for name, v in measure_attributes(raw).items()}
    captions = []
    for i, label in enumerate(labels):
        words = {name: ATTRIBUTE_WORDS[name][bins[name][i]] for name in ATTRIBUTE_WORDS}
        captions.append(
            f"a handwritten {NUMBER_WORDS[label]}, {words['ink']} ink, {words['slant']}, "
            f"{words['width']}, written {words['height']}"
        )
    return captions


def upsample(raw: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """8×8 digits in 0–16 → size×size RGB uint8 (bilinear, grey copied to the three channels)."""
    import torch
    import torch.nn.functional as F

    grey = torch.from_numpy(raw.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0)
    big = F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False)
    big = (big.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return np.repeat(big.transpose(0, 2, 3, 1), 3, axis=3)


def load_digit_dataset() -> Digits:
    from sklearn.datasets import load_digits

    data = load_digits()
    return Digits(upsample(data.data), data.target.astype(int), caption_digits(data.data, data.target))


def split_indices(labels: np.ndarray, sizes: dict[str, int] = SPLIT_SIZES, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Disjoint class-stratified splits of the given sizes; 'public' gets the rest."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    # Round-robin over classes keeps every split balanced across digits.
    order = np.array([idx[i] for i in range(max(map(len, by_class))) for idx in by_class if i < len(idx)])
    splits, start = {}, 0
    for name, size in sizes.items():
        splits[name] = np.sort(order[start : start + size])
        start += size
    splits["public"] = np.sort(order[start:])
    return splits


def write_image_folder(folder: Path, images: np.ndarray, captions: list[str], names: list[str]) -> None:
    """An image folder in the format of diffusers' train_text_to_image.py: PNGs + metadata.jsonl."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as f:
        for image, caption, name in zip(images, captions, names):
            Image.fromarray(image).save(folder / name)
            f.write(json.dumps({"file_name": name, "text": caption}) + "\n")


def read_image_folder(folder: Path) -> tuple[np.ndarray, list[str]]:
    """Images (uint8 RGB) and captions of an image folder written by write_image_folder, in manifest order."""
    from PIL import Image

    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    images = np.stack([np.asarray(Image.open(folder / r["file_name"]).convert("RGB")) for r in rows])
    return images, [r["text"] for r in rows]


def write_splits(root: Path, digits: Digits | None = None) -> dict[str, Path]:
    """Write every split as an image folder under root; returns split name → folder."""
    digits = digits or load_digit_dataset()
    folders = {}
    for name, idx in split_indices(digits.labels).items():
        folders[name] = root / name
        write_image_folder(
            folders[name],
            digits.images[idx],
            [digits.captions[i] for i in idx],
            [f"digit_{i:04d}.png" for i in idx],
        )
    return folders
