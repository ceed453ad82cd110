"""White-box measurements, computed once: each probe's measurements per query, in batches on the target's
device (through its white-box access: a Denoiser, or a token model's, `access/`), cached on disk per
(checkpoint identity, image content, caption, attack settings, seed, device type) in the store
(whitebox/<identity>/<settings key>/). A warm rerun reads every score from the cache and never loads the
checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .access.base import Probe, WhiteBoxOptions
from .store import KeyedFolder

CACHE_VERSION = 1  # bump when a definition changes: old scores are then never read


class WhiteBoxScores:
    """The scores of one probe under one setting: a cache folder of one .npy row per query."""

    def __init__(self, root: Path, identity: str, attack_id: str, probe: Probe, options: WhiteBoxOptions, seed: int,
                 device_type: str):
        self.settings = {"attack": attack_id, **probe.settings(options), "seed": seed, "device": device_type,
                         "version": CACHE_VERSION}
        self.entries = KeyedFolder(root, "whitebox", identity, self.settings, ".npy")
        self.folder = self.entries.folder
        self.probe, self.options, self.seed = probe, options, seed

    def path(self, image_hash: str, caption: str) -> Path:
        return self.entries.path(image_hash, caption)

    def cached(self, hashes: list[str], captions: list[str]) -> np.ndarray | None:
        paths = [self.path(h, c) for h, c in zip(hashes, captions)]
        if not all(p.is_file() for p in paths):
            return None
        return np.stack([np.load(p) for p in paths])

    def compute(self, images: Sequence[np.ndarray], hashes: list[str], captions: list[str],
                access: Callable[[], object], batch_size: int) -> np.ndarray:
        """(n, d) float64 measurements; `access()` (which loads the model) is called only for a missing one.
        `images` is read a batch at a time (a data.LazyImages decodes them then)."""
        from filelock import FileLock

        scores = self.cached(hashes, captions)
        if scores is not None:
            return scores
        self.entries.write_settings()  # creates the folder
        # pytest-xdist workers that need the same scores wait for one of them instead of repeating it.
        with FileLock(str(self.folder / ".lock")):
            todo = [i for i, (h, c) in enumerate(zip(hashes, captions)) if not self.path(h, c).is_file()]
            if todo:
                self._measure(access(), images, hashes, captions, todo, batch_size)
        return self.cached(hashes, captions)

    def _measure(self, access, images: Sequence[np.ndarray], hashes: list[str], captions: list[str],
                 todo: list[int], batch_size: int) -> None:
        import torch

        with torch.no_grad():
            for start in range(0, len(todo), batch_size):
                part = todo[start : start + batch_size]
                batch_images = [images[i] for i in part]
                access.check_images(batch_images, "white-box attacks")
                batch = access.query_batch(np.stack(batch_images), [captions[i] for i in part],
                                           [hashes[i] for i in part], self.seed)
                rows = self.probe.measure(access, batch, self.options).double().cpu().numpy()
                if not np.isfinite(rows).all():
                    raise FloatingPointError("the target's model produced non-finite white-box scores")
                for i, row in zip(part, rows):
                    self.entries.write(self.path(hashes[i], captions[i]), lambda f, row=row: np.save(f, row))
