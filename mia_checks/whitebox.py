"""White-box scores, computed once: each probe's measurements per query, in batches on the target's
device, cached on disk per (checkpoint identity, image content, caption, attack settings, seed, device
type). A warm rerun reads every score from the cache and never loads the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .attacks.whitebox import Probe, QueryBatch, WhiteBoxOptions

CACHE_VERSION = 1  # bump when a definition changes: old scores are then never read


class WhiteBoxScores:
    """The scores of one probe under one setting: a cache folder of one .npy row per query."""

    def __init__(self, root: Path, identity: str, attack_id: str, probe: Probe, options: WhiteBoxOptions, seed: int,
                 device_type: str):
        self.settings = {"attack": attack_id, **probe.settings(options), "seed": seed, "device": device_type,
                         "version": CACHE_VERSION}
        key = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / "whitebox" / identity[:24] / key
        self.probe, self.options, self.seed = probe, options, seed

    def path(self, image_hash: str, caption: str) -> Path:
        digest = hashlib.sha256(f"{image_hash}\0{caption}".encode()).hexdigest()[:40]
        return self.folder / digest[:2] / f"{digest}.npy"

    def cached(self, hashes: list[str], captions: list[str]) -> np.ndarray | None:
        paths = [self.path(h, c) for h, c in zip(hashes, captions)]
        if not all(p.is_file() for p in paths):
            return None
        return np.stack([np.load(p) for p in paths])

    def compute(self, images: list[np.ndarray], hashes: list[str], captions: list[str],
                denoiser: Callable[[], object], batch_size: int) -> np.ndarray:
        """(n, d) float64 measurements; `denoiser()` (which loads the model) is called only for a missing one."""
        from filelock import FileLock

        scores = self.cached(hashes, captions)
        if scores is not None:
            return scores
        self.folder.mkdir(parents=True, exist_ok=True)
        # pytest-xdist workers that need the same scores wait for one of them instead of repeating it.
        with FileLock(str(self.folder / ".lock")):
            todo = [i for i, (h, c) in enumerate(zip(hashes, captions)) if not self.path(h, c).is_file()]
            if todo:
                self._measure(denoiser(), [images[i] for i in todo], [hashes[i] for i in todo],
                              [captions[i] for i in todo], batch_size)
        return self.cached(hashes, captions)

    def _measure(self, den, images: list[np.ndarray], hashes: list[str], captions: list[str], batch_size: int) -> None:
        import torch

        den.check_images(images, "white-box attacks")
        (self.folder / "settings.json").write_text(json.dumps(self.settings, sort_keys=True, indent=2))
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                part = slice(start, start + batch_size)
                batch = QueryBatch(den.latents(np.stack(images[part])), den.text(captions[part]), captions[part],
                                   hashes[part], self.seed)
                rows = self.probe.measure(den, batch, self.options).double().cpu().numpy()
                if not np.isfinite(rows).all():
                    raise FloatingPointError("the denoiser produced non-finite scores")
                for h, c, row in zip(hashes[part], captions[part], rows):
                    self._write(self.path(h, c), row)

    @staticmethod
    def _write(path: Path, row: np.ndarray) -> None:
        """Atomically: a reader sees a whole row or none."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, row)
        os.replace(tmp, path)
