"""Generate each image once: an on-disk cache of x̂ = T(c; seed), shared by every attack, run and process.

An entry is keyed by (checkpoint content, caption, seed, generation settings) and stored as a PNG, so a
cold run and a warm run read the very same uint8 pixels. The cache is content-addressed, so any set of
processes can fill it together (pytest-xdist workers, `accelerate launch` ranks, separate runs): the
missing images are split into canonical batches, each claimed under its own file lock, and every process
takes its own shard's batches first, then helps with the rest (see `GenerationCache.ensure`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenerationError
from ..store import KeyedFolder, sha256_of, writing_cache
from ..targets.base import Target
from .progress import Progress
from .shards import Shard, shard_from_environment

Key = tuple[str, int]  # (caption, per-image seed)
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every complete PNG


def query_seed(seed: int, k: int, caption: str) -> int:
    """Seed of the k-th generation for a caption: independent across queries, so that one unlucky noise
    draw cannot degrade every query of a run at once; a 31-bit int from sha256(seed, k, caption)."""
    digest = hashlib.sha256(f"{seed}\0{k}\0{caption}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class GenerationStats:
    """What this process did for the cache (summed over `ensure` calls): reported per xdist worker."""

    shard: Shard = field(default_factory=Shard)
    wanted: int = 0  # images asked for
    generated: int = 0  # images this process generated
    cached: int = 0  # images already complete when it looked
    seconds: float = 0.0  # wall time in `ensure`, waits on other processes included

    def to_dict(self) -> dict:
        return {"name": self.shard.name, "rank": self.shard.rank, "world": self.shard.world,
                "generated": self.generated, "cached": self.cached, "seconds": round(self.seconds, 3)}


class GenerationCache:
    """The generations of one target under one setting (store.py: generations/<identity>/<settings key>/)."""

    def __init__(self, root: Path, target: Target, settings: dict):
        self.entries = KeyedFolder(root, "generations", target.identity, settings, ".png")
        self.folder = self.entries.folder
        self.target = target
        self.settings = settings
        self.stats = GenerationStats()

    def path(self, caption: str, seed: int) -> Path:
        return self.entries.path(seed, caption)

    def generate(self, captions: list[str], seed: int, generations: int, batch_size: int,
                 progress: bool | str | Progress = True, shard: Shard | None = None) -> np.ndarray:
        """`generations` images per caption, shape (n_captions, generations, H, W, 3) uint8 (all in memory:
        for large audits, `ensure` then `read` a batch of rows at a time)."""
        self.ensure(captions, seed, generations, batch_size, progress, shard)
        return self.read(captions, seed, generations, slice(None))

    def ensure(self, captions: list[str], seed: int, generations: int, batch_size: int,
               progress: bool | str | Progress = True, shard: Shard | None = None) -> int:
        """Fill the cache with every missing image of these queries; returns how many this process generated.

        The wanted images, in their canonical order (query by query, generation by generation), are cut into
        batches of `batch_size`: the same batches whatever the number of processes, so the images are
        bit-identical however the work is split. Each batch is claimed under its own file lock: a process
        takes its shard's batches first (rank r of w: r, r + w, …), then the others' from the end, skipping
        any another process holds; last, it waits for each skipped batch and generates what is still
        missing (its holder died: the OS releases a dead process's lock). No lock is held across batches.

        Crash-safe: each image is written to a temporary file, flushed to disk and renamed into place, so a
        process killed mid-write leaves no partial entry. An entry that is not a whole PNG is generated again
        with the missing ones; then every entry this process did not write itself is decoded, and one that
        does not (damage from outside mia-checks: a partial copy of the cache, a full disk) generated again:
        after `ensure`, `read` finds every image."""
        start = time.perf_counter()
        shard = shard if shard is not None else shard_from_environment()
        self.stats.shard = shard
        self.entries.write_settings()  # creates the folder
        wanted = self._wanted(self._keys(captions, seed, generations))
        batches = [wanted[i : i + batch_size] for i in range(0, len(wanted), batch_size)]
        missing = lambda key: not _complete(self.path(*key))  # noqa: E731
        written, needed = self._fill(batches, missing, Progress.of(progress), shard)
        unreadable = lambda key: _read_or_none(self.path(*key)) is None  # noqa: E731
        broken = [key for key in wanted if key not in written and unreadable(key)]
        if broken:
            repaired, _ = self._fill([broken[i : i + batch_size] for i in range(0, len(broken), batch_size)],
                                     unreadable, Progress("off"), Shard())
            written |= repaired
        self.stats.wanted += len(wanted)
        self.stats.generated += len(written)
        self.stats.cached += len(wanted) - needed - len(broken)
        self.stats.seconds += time.perf_counter() - start
        return len(written)

    def read(self, captions: list[str], seed: int, generations: int,
             rows: slice | Sequence[int] = slice(None)) -> np.ndarray:
        """The generations of the queries `rows` (a slice or indices into `captions`), shape (len(rows),
        generations, H, W, 3) uint8, from the cache alone (filled by `ensure`; the target is never called): an
        image missing or that does not decode raises (OSError, SyntaxError or ValueError)."""
        picked = list(captions[rows]) if isinstance(rows, slice) else [captions[i] for i in rows]
        keys = self._keys(picked, seed, generations)
        if not keys:
            return np.zeros((0, generations, 0, 0, 3), np.uint8)
        images = {key: _read(self.path(*key)) for key in self._wanted(keys)}
        return np.stack([[images[key] for key in row] for row in keys])

    def _fill(self, batches: list[list[Key]], needed: Callable[[Key], bool], progress: Progress,
              shard: Shard) -> tuple[set[Key], int]:
        """Generate the `needed` images of `batches`, cooperating with any other process doing the same;
        returns (the images this process generated, how many were needed when it started)."""
        from filelock import FileLock, Timeout

        own = range(shard.rank, len(batches), shard.world)
        order = list(own) + [i for i in reversed(range(len(batches))) if i % shard.world != shard.rank]
        todo = [sum(map(needed, batch)) for batch in batches]
        expected = {i: todo[i] for i in own if todo[i]}  # the bar counts this shard's images, plus what it takes over
        bar = progress.bar(sum(expected.values()), shard)
        generated: set[Key] = set()
        deferred = []

        with _BackgroundWrites(self._write) as writes:

            def claimed(i: int, lock: Any) -> None:  # `lock` is held until handed to `writes`, or released here
                try:
                    batch = [key for key in batches[i] if needed(key)]  # again: another process may have done it
                    images = self.target.generate([c for c, _ in batch], [s for _, s in batch]) if batch else []
                    _check_batch(images, len(batch))
                except BaseException:
                    lock.release()
                    raise
                generated.update(batch)
                bar.total += len(batch) - expected.pop(i, 0)
                bar.update(len(batch))
                writes.submit(batch, images, lock)  # the claim is released once the files are in place

            for i in order:
                if not todo[i] or not any(map(needed, batches[i])):
                    bar.total -= expected.pop(i, 0)
                    continue
                lock = FileLock(str(self._claim_path(batches[i])))
                try:
                    lock.acquire(blocking=False)
                except Timeout:
                    deferred.append((i, lock))  # another process is on it
                    continue
                claimed(i, lock)
            for i, lock in deferred:
                writes.wait()  # never wait for a claim while holding one: two processes could wait on each other
                lock.acquire()  # waits for its holder; generates what a holder that died left undone
                claimed(i, lock)
        bar.close()
        return generated, sum(todo)

    def _write(self, batch: list[Key], images: list[np.ndarray]) -> None:
        """Each image flushed to disk and renamed into place (store.write_atomic): readers see the whole image
        or none. Fast zlib (level 1), lossless like any level: at the default level 6, encoding one smooth
        1024-px image took 0.20 s here (0.05 s at level 1), longer than a fast GPU takes to generate it."""
        from PIL import Image

        for (caption, seed), image in zip(batch, images):
            self.entries.write(self.path(caption, seed),
                               lambda f, image=image: Image.fromarray(image).save(f, format="PNG", compress_level=1),
                               durable=True)

    def _claim_path(self, batch: list[Key]) -> Path:
        digest = sha256_of(*(part for caption, seed in batch for part in (seed, caption)))
        path = self.folder / ".claims" / f"{digest[:32]}.lock"
        with writing_cache(self.entries.root):
            path.parent.mkdir(exist_ok=True)
        return path

    @staticmethod
    def _keys(captions: list[str], seed: int, generations: int) -> list[list[Key]]:
        return [[(c, query_seed(seed, k, c)) for k in range(generations)] for c in captions]

    @staticmethod
    def _wanted(keys: list[list[Key]]) -> list[Key]:
        return list(dict.fromkeys(key for row in keys for key in row))  # unique, in the canonical order


class _BackgroundWrites:
    """Writes a batch's images in a thread while the next batch generates (Pillow's zlib and the disk release
    the GIL), so encoding and fsync do not add to a GPU's generation time. At most one batch in flight: its
    images are the only ones held beyond the batch being generated. Its claim (file lock) is released once
    its files are in place, so no other process regenerates it or finds it half written."""

    def __init__(self, write: Callable[[list[Key], list[np.ndarray]], None]):
        self._write = write
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mia-checks-png")
        self._pending: tuple[Future, Any] | None = None

    def submit(self, batch: list[Key], images: list[np.ndarray], lock: Any) -> None:
        """Take over the held claim `lock` and write `batch` in the background (an empty batch: release it)."""
        try:
            self.wait()  # the batch in flight was written while this one generated
        except BaseException:
            lock.release()
            raise
        if batch:
            self._pending = (self._pool.submit(self._write, batch, images), lock)
        else:
            lock.release()

    def wait(self) -> None:
        """Until the batch in flight is on disk; then release its claim (also when its write failed)."""
        if self._pending is not None:
            (future, lock), self._pending = self._pending, None
            try:
                future.result()
            finally:
                lock.release()

    def __enter__(self) -> _BackgroundWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def _complete(path: Path) -> bool:
    """A whole PNG is there (cheap: its last 12 bytes, not a decode)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


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
