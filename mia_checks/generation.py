"""Generate each image once: an on-disk cache of x̂ = T(c; seed), shared by every attack and every run.

An entry is keyed by (checkpoint content, caption, seed, generation settings) and stored as a PNG, so a
cold run and a warm run read the very same uint8 pixels. Missing entries are generated in batches under a
file lock: pytest-xdist workers that need the same images wait for one generator instead of repeating it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from .targets import Target


class GenerationError(RuntimeError):
    """The target's output cannot be measured (NaN, blank or malformed images)."""


def query_seed(seed: int, k: int, caption: str) -> int:
    """Seed of the k-th generation for a caption: independent across queries, so that one unlucky noise
    draw cannot degrade every query of a run at once; a 31-bit int from sha256(seed, k, caption)."""
    digest = hashlib.sha256(f"{seed}\0{k}\0{caption}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class GenerationCache:
    def __init__(self, root: Path, target: Target, settings: dict):
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / "generations" / target.identity[:24] / key
        self.target = target
        self.settings = settings

    def path(self, caption: str, seed: int) -> Path:
        digest = hashlib.sha256(f"{seed}\0{caption}".encode()).hexdigest()[:40]
        return self.folder / digest[:2] / f"{digest}.png"

    def generate(self, captions: list[str], seed: int, generations: int, batch_size: int,
                 progress: bool = True) -> np.ndarray:
        """`generations` images per caption, shape (n_captions, generations, H, W, 3) uint8 (all in memory:
        for large audits, `ensure` then `read` a batch of rows at a time)."""
        self.ensure(captions, seed, generations, batch_size, progress)
        return self.read(captions, seed, generations, range(len(captions)))

    def ensure(self, captions: list[str], seed: int, generations: int, batch_size: int, progress: bool = True) -> int:
        """Fill the cache with every missing image; returns how many were generated.

        Crash-safe: each image is written to a temporary file, flushed to disk and renamed into place, so a
        run killed mid-write leaves no partial entry; an entry that does not decode is generated again."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        keys = self._keys(captions, seed, generations)
        with FileLock(str(self.folder / ".lock")):
            (self.folder / "settings.json").write_text(json.dumps(self.settings, sort_keys=True, indent=2))
            wanted = list(dict.fromkeys(key for row in keys for key in row))  # unique, in order
            todo = [key for key in wanted if not self.path(*key).is_file()]
            todo += [key for key in wanted if key not in set(todo) and not _decodes(self.path(*key))]
            self._generate(todo, batch_size, progress)
        return len(todo)

    def read(self, captions: list[str], seed: int, generations: int, rows) -> np.ndarray:
        """The generations of the queries `rows` (indices into captions), (len(rows), K, H, W, 3) uint8, from
        the cache (filled by `ensure`)."""
        keys = self._keys([captions[i] for i in rows], seed, generations)
        return np.stack([[_read(self.path(*key)) for key in row] for row in keys])

    def _generate(self, todo: list[tuple[str, int]], batch_size: int, progress: bool) -> None:
        from PIL import Image
        from tqdm.auto import tqdm

        # Straight to the terminal: pytest captures sys.stderr while fixtures run.
        bar = tqdm(total=len(todo), desc="mia-checks: generating", unit="img", file=sys.__stderr__,
                   disable=not progress or not todo)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images = self.target.generate([c for c, _ in batch], [s for _, s in batch])
            _check_batch(images, len(batch))
            for (caption, seed), image in zip(batch, images):
                path = self.path(caption, seed)
                path.parent.mkdir(exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                with open(tmp, "wb") as f:
                    Image.fromarray(image).save(f, format="PNG")
                    f.flush()
                    os.fsync(f.fileno())
                tmp.replace(path)  # atomic: readers see the whole image or none
            bar.update(len(batch))
        bar.close()

    def cached(self, captions: list[str], seed: int, generations: int) -> np.ndarray | None:
        """The same array as `generate`, from the cache alone (the target is never called); None when any
        image is missing."""
        keys = self._keys(captions, seed, generations)
        images = [[_read_or_none(self.path(*key)) for key in row] for row in keys]
        if any(image is None for row in images for image in row):
            return None
        return np.stack(images)

    @staticmethod
    def _keys(captions: list[str], seed: int, generations: int) -> list[list[tuple[str, int]]]:
        return [[(c, query_seed(seed, k, c)) for k in range(generations)] for c in captions]


def _decodes(path: Path) -> bool:
    return _read_or_none(path) is not None


def _read_or_none(path: Path) -> np.ndarray | None:
    try:
        return _read(path)
    except (OSError, SyntaxError, ValueError):
        return None


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _check_batch(images: list[np.ndarray], expected: int) -> None:
    if len(images) != expected:
        raise GenerationError(f"the target returned {len(images)} images for {expected} prompts")
    for image in images:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise GenerationError(f"the target returned an image of shape {image.shape} and dtype {image.dtype}")
        if image.max() == image.min():
            raise GenerationError("the target generated a blank (constant) image: nothing can be measured")
