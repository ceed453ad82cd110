"""Reference sets: the member and non-member images with their captions.

Accepted layouts (paths in manifests are relative to the manifest's folder):
- an image folder with `metadata.jsonl` (diffusers' train_text_to_image format: one
  `{"file_name": ..., "text": ...}` per line) or `metadata.csv` with the same columns;
- a `.jsonl` or `.csv` manifest file with those columns (`image` and `caption` are accepted too).
In caption-less mode (`captions_required=False`) captions may be missing (they are then ""), and a plain
folder of images with no manifest is accepted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MiaUsageError

FILE_KEYS = ("file_name", "image", "path")
TEXT_KEYS = ("text", "caption", "prompt")
MIN_IMAGES = 20  # per set: below this, a 5-fold attack has too few images to say anything
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MIN_SIDE = 8  # pixels: smaller images carry nothing an attack could compare


class LazyImages(Sequence):
    """A reference set's images, decoded when read (one at a time or a slice): memory stays bounded by the
    batch being read, not by the set. A file whose bytes changed since the set was checked is an error."""

    def __init__(self, files: tuple[Path, ...], hashes: tuple[str, ...], option: str):
        self.files, self.hashes, self.option = files, hashes, option

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        image, digest = load_image(self.files[index], self.option)
        if digest != self.hashes[index]:
            raise MiaUsageError(f"{self.option}: {self.files[index]} changed while the audit ran; rerun on a set "
                                "that stays put.")
        return image

    def take(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self[int(i)] for i in indices]

    def subset(self, indices: Sequence[int]) -> LazyImages:
        return LazyImages(tuple(self.files[i] for i in indices), tuple(self.hashes[i] for i in indices), self.option)


@dataclass(frozen=True)
class ReferenceSet:
    """A checked set, in manifest order: files, captions, content hashes (of the file's bytes: the cache key;
    of its decoded pixels: the overlap check), each image's size, and the images, decoded when read."""

    name: str
    source: Path
    files: tuple[Path, ...]
    captions: tuple[str, ...]
    hashes: tuple[str, ...]
    pixel_hashes: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]  # (height, width)
    option: str = "the reference set"

    def __len__(self) -> int:
        return len(self.files)

    @property
    def images(self) -> LazyImages:
        return LazyImages(self.files, self.hashes, self.option)

    @property
    def digest(self) -> str:
        """One hash of the whole set: image contents and captions, in order."""
        h = hashlib.sha256()
        for image_hash, caption in zip(self.hashes, self.captions):
            h.update(image_hash.encode())
            h.update(caption.encode())
        return h.hexdigest()

    def subset(self, indices: Sequence[int]) -> ReferenceSet:
        pick = lambda seq: tuple(seq[i] for i in indices)  # noqa: E731
        return ReferenceSet(self.name, self.source, pick(self.files), pick(self.captions), pick(self.hashes),
                            pick(self.pixel_hashes), pick(self.sizes), self.option)


def _read_rows(manifest: Path, option: str) -> list[dict]:
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MiaUsageError(f"{option}: cannot read {manifest}: {exc}") from None
    if manifest.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MiaUsageError(f"{option}: {manifest} line {number} is not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict):
            raise MiaUsageError(f"{option}: {manifest} line {number} must be a JSON object.")
        rows.append(row)
    return rows


def _find_manifest(path: Path, option: str, captions_required: bool = True) -> Path | None:
    if not path.exists():
        raise MiaUsageError(
            f"{option}: {path} does not exist. Give an image folder with metadata.jsonl, or a .jsonl/.csv manifest."
        )
    if path.is_file():
        if path.suffix not in (".jsonl", ".csv"):
            raise MiaUsageError(f"{option}: {path} is not a .jsonl or .csv manifest.")
        return path
    for name in ("metadata.jsonl", "metadata.csv"):
        if (path / name).is_file():
            return path / name
    if not captions_required:
        return None  # a plain image folder
    raise MiaUsageError(
        f"{option}: {path} has no metadata.jsonl. Add one line per image, "
        '{"file_name": "0001.png", "text": "its caption"} (the format of diffusers\' train_text_to_image.py), '
        "or run caption-less with --mia-captioner=Salesforce/blip-image-captioning-base."
    )


def _pick(row: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _open_regular(path: Path, option: str) -> bytes:
    """The bytes of a regular file; a FIFO, device or folder is refused before it is opened (no hang)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MiaUsageError(f"{option}: image {path} listed in the manifest does not exist.") from None
    except OSError as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None
    if not stat.S_ISREG(mode):
        raise MiaUsageError(f"{option}: {path} is not a regular file (a folder, pipe or device); list image files only.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None


def to_rgb8(image, path: Path, option: str) -> np.ndarray:
    """RGB uint8 pixels of a PIL image, by mode: 16-bit grayscale is scaled to 8 bits (never clipped);
    modes whose range cannot be known (32-bit integer or float) are refused."""
    if image.mode.startswith("I;16"):
        wide = np.asarray(image).astype(np.float64)
        gray = np.round(wide * (255 / 65535)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("I", "F"):
        raise MiaUsageError(f"{option}: image {path} has 32-bit {'float' if image.mode == 'F' else 'integer'} pixels "
                            f"(mode {image.mode}) whose range cannot be known; save it as an 8- or 16-bit PNG or JPEG.")
    try:
        return np.asarray(image.convert("RGB"))
    except (ValueError, OSError) as exc:
        raise MiaUsageError(f"{option}: cannot convert image {path} (mode {image.mode}) to RGB ({exc}); save it as "
                            "an 8-bit RGB or grayscale PNG or JPEG.") from None


def load_image(path: Path, option: str) -> tuple[np.ndarray, str]:
    """RGB uint8 array and sha256 of the file's bytes; a clear error if it is missing, not a regular file,
    not an image, of an unknown bit depth, tiny, or larger than PIL's decompression-bomb limit."""
    from PIL import Image, UnidentifiedImageError

    raw = _open_regular(path, option)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
                if min(width, height) < MIN_SIDE:
                    raise MiaUsageError(f"{option}: image {path} is {width}x{height} pixels; images must be at least "
                                        f"{MIN_SIDE}x{MIN_SIDE} to compare with what the model generates.")
                array = to_rgb8(image, path, option)
    except MiaUsageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MiaUsageError(f"{option}: image {path} is too large to load safely ({exc}); resize it to the "
                            "model's resolution.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None
    return array, hashlib.sha256(raw).hexdigest()


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of decoded pixels (and shape): the same for any lossless re-encoding of one image."""
    return hashlib.sha256(f"{image.shape}".encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


def _inside(folder: Path, file_name: str, option: str, manifest: Path, number: int) -> Path:
    """A manifest's path, kept inside the set folder (checked on the path as written: symlinks inside the
    folder are followed, as in Hugging Face's cache layout)."""
    relative = os.path.normpath(file_name)
    if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
        raise MiaUsageError(f"{option}: {manifest} entry {number} ({file_name}) points outside the set folder "
                            f"{folder}; file names are relative to the manifest's folder and stay inside it.")
    return folder / relative


def load_reference_set(path: str | Path, name: str, option: str, min_images: int = MIN_IMAGES,
                       captions_required: bool = True) -> ReferenceSet:
    """Load and check one reference set; `option` names the command-line option in error messages."""
    manifest = _find_manifest(Path(path), option, captions_required)
    if manifest is None:
        manifest = Path(path) / "(image files)"
        rows = [{"file_name": p.name} for p in sorted(Path(path).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        rows = _read_rows(manifest, option)
    files, captions, seen = [], [], {}
    for number, row in enumerate(rows, 1):
        file_name, caption = _pick(row, FILE_KEYS), _pick(row, TEXT_KEYS)
        if file_name is None:
            raise MiaUsageError(f"{option}: {manifest} entry {number} has no file_name.")
        if caption is None and captions_required:
            raise MiaUsageError(
                f"{option}: {manifest} entry {number} ({file_name}) has no caption; every image needs a 'text', "
                "or run caption-less with --mia-captioner=Salesforce/blip-image-captioning-base."
            )
        file = _inside(manifest.parent, file_name, option, manifest, number)
        if file in seen:
            raise MiaUsageError(f"{option}: {manifest} entries {seen[file]} and {number} both list {file_name}; "
                                "each image may appear once: remove the duplicate row.")
        seen[file] = number
        files.append(file)
        captions.append(caption or "")
    if len(files) < min_images:
        raise MiaUsageError(
            f"{option}: {manifest} lists {len(files)} images; at least {min_images} are needed to measure leakage."
        )
    hashes, pixel_hashes, sizes, first = [], [], [], {}
    for file in files:  # each image is decoded to check it, hashed, and dropped: memory stays bounded
        image, digest = load_image(file, option)
        pixels = pixel_hash(image)
        other = first.setdefault(pixels, file)
        if other != file:
            raise MiaUsageError(f"{option}: {other} and {file} hold the same pixels; each image may appear once: "
                                "remove one of them.")
        hashes.append(digest)
        pixel_hashes.append(pixels)
        sizes.append(image.shape[:2])
    return ReferenceSet(name, Path(path), tuple(files), tuple(captions), tuple(hashes), tuple(pixel_hashes),
                        tuple(sizes), option)


def check_disjoint(members: ReferenceSet, nonmembers: ReferenceSet) -> None:
    """Members and non-members must not share an image (by decoded pixels, so that a re-encoding of a member
    is caught too): the verdict would be meaningless."""
    member_pixels = members.pixel_hashes
    shared = set(member_pixels) & set(nonmembers.pixel_hashes)
    if shared:
        examples = [str(f) for f, h in zip(members.files, member_pixels) if h in shared][:3]
        raise MiaUsageError(
            f"--mia-members and --mia-nonmembers share {len(shared)} image(s), e.g. {', '.join(examples)}. "
            "Non-members must be images the model never saw: remove them from one set."
        )


def balance(members: ReferenceSet, nonmembers: ReferenceSet, seed: int, cap: int | None = None):
    """Equal-sized sets (at most `cap` each), by seeded sampling without replacement; order is kept."""
    size = min(len(members), len(nonmembers), cap or len(members))
    if cap is not None and cap < MIN_IMAGES:  # the minimum applies after the cap
        raise MiaUsageError(f"--mia-max-samples: {cap} is below {MIN_IMAGES}; sets under {MIN_IMAGES} images are "
                            "refused (too few to measure leakage). Raise it or leave it unset.")
    rng = np.random.default_rng(seed)

    def sample(s: ReferenceSet) -> ReferenceSet:
        return s if len(s) == size else s.subset(np.sort(rng.choice(len(s), size, replace=False)))

    return sample(members), sample(nonmembers)
