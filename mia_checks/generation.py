"""Generate each image once: an on-disk cache of x̂ = T(c; seed), shared by every attack, run and process.

An entry is keyed by (checkpoint content, caption, seed, generation settings) and stored as a PNG, so a
cold run and a warm run read the very same uint8 pixels. The cache is content-addressed, so any set of
processes can fill it together (pytest-xdist workers, `accelerate launch` ranks, separate runs): the
missing images are split into canonical batches, each claimed under its own file lock, and every process
takes its own shard's batches first, then helps with the rest (see `GenerationCache.ensure`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .targets import Target

Key = tuple[str, int]  # (caption, per-image seed)
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every complete PNG
LOG_INTERVAL = 30.0  # progress in a log (not a terminal): seconds between lines


class GenerationError(RuntimeError):
    """The target's output cannot be measured (NaN, blank or malformed images)."""


def query_seed(seed: int, k: int, caption: str) -> int:
    """Seed of the k-th generation for a caption: independent across queries, so that one unlucky noise
    draw cannot degrade every query of a run at once; a 31-bit int from sha256(seed, k, caption)."""
    digest = hashlib.sha256(f"{seed}\0{k}\0{caption}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Shard:
    """This process's share of the work: rank `rank` of `world` processes takes the canonical batches
    rank, rank + world, … first. `name` says who it is in progress output (gw0, rank 1)."""

    rank: int = 0
    world: int = 1
    name: str = ""
    source: str = ""  # "accelerate" (torch.distributed launchers), "xdist", or "" (one process)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"shard rank {self.rank} is not in [0, {self.world})")

    @property
    def label(self) -> str:
        """'gw1: shard 2 of 2' ('' for a lone process)."""
        if self.world == 1:
            return self.name
        return f"{self.name + ': ' if self.name else ''}shard {self.rank + 1} of {self.world}"


# A launcher's process count and rank: torchrun / `accelerate launch` (multi-GPU), MPI (accelerate's multi-CPU).
LAUNCHER_VARIABLES = (("WORLD_SIZE", "RANK"), ("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                      ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"))


@lru_cache(maxsize=1)
def shard_from_environment() -> Shard:
    """The shard of this process: under `accelerate launch` (or any torch.distributed or MPI launcher: a
    process count > 1), accelerate's process index and count (the launcher's own variables where accelerate
    sees no distributed setup, e.g. a multi-GPU launch on a machine without GPUs); under pytest-xdist, the
    worker's number and the worker count; else the whole job. accelerate is imported only under a launcher."""
    env = os.environ
    launched = next(((_int(env.get(rank)), _int(env.get(size))) for size, rank in LAUNCHER_VARIABLES
                     if _int(env.get(size)) > 1), None)
    if launched is not None:
        rank, world = launched
        try:
            from accelerate import PartialState

            state = PartialState()
            if state.num_processes > 1:
                rank, world = state.process_index, state.num_processes
        except ImportError:
            pass
        if 0 <= rank < world:
            return Shard(rank, world, f"rank {rank}", "accelerate")
    worker, count = env.get("PYTEST_XDIST_WORKER", ""), _int(env.get("PYTEST_XDIST_WORKER_COUNT"))
    if worker.startswith("gw") and worker[2:].isdigit() and 0 <= int(worker[2:]) < count and count > 1:
        return Shard(int(worker[2:]), count, worker, "xdist")
    return Shard(name=worker)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class Progress:
    """How generation reports progress: auto (a bar on a terminal, a line every `interval` seconds in a log
    such as CI's), bar, log or off; on `stream` (default: the process's real stderr, sys.__stderr__)."""

    mode: str = "auto"
    stream: Any = field(default=None, compare=False)
    interval: float = LOG_INTERVAL

    @staticmethod
    def of(progress: "bool | str | Progress | None") -> "Progress":
        if isinstance(progress, Progress):
            return progress
        if progress is True:
            return Progress()
        if progress is False or progress is None:
            return Progress("off")
        return Progress(str(progress))

    def bar(self, total: int, shard: Shard):
        from tqdm.auto import tqdm

        stream = self.stream if self.stream is not None else sys.__stderr__
        mode = self.mode
        if mode == "auto":
            mode = "bar" if _isatty(stream) else "log"
        desc = "mia-checks: generating" + (f" [{shard.label}]" if shard.label else "")
        if mode == "off" or stream is None or total == 0:
            return tqdm(total=total, disable=True)
        if mode == "bar":  # a terminal that reports no width (some CI pseudo-terminals) gets 100 columns
            width = {"dynamic_ncols": True} if _columns(stream) > 0 else {"ncols": 100}
            return tqdm(total=total, desc=desc, unit="img", file=stream, leave=True,
                        position=shard.rank if shard.world > 1 else None, **width)
        # A log keeps every write: one plain line per update, at most one every `interval` seconds.
        return tqdm(total=total, desc=desc, unit="img", file=_Lines(stream), ascii=True, ncols=100,
                    mininterval=self.interval, maxinterval=max(self.interval, 10.0), leave=True)


def _isatty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole lines (for CI logs)."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""
        self.encoding = getattr(stream, "encoding", "utf-8")

    def write(self, text: str) -> None:
        for line in text.replace("\r", "\n").split("\n"):
            line = line.strip()
            if line and line != self.last:
                self.stream.write(line + "\n")
                self.last = line

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


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
    def __init__(self, root: Path, target: Target, settings: dict):
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / "generations" / target.identity[:24] / key
        self.target = target
        self.settings = settings
        self.stats = GenerationStats()

    def path(self, caption: str, seed: int) -> Path:
        digest = hashlib.sha256(f"{seed}\0{caption}".encode()).hexdigest()[:40]
        return self.folder / digest[:2] / f"{digest}.png"

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
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_settings()
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
        """Each image to a temporary file, flushed to disk and renamed into place: readers see the whole image
        or none. Fast zlib (level 1), lossless like any level: at the default level 6, encoding one smooth
        1024-px image took 0.20 s here (0.05 s at level 1), longer than a fast GPU takes to generate it."""
        from PIL import Image

        for (caption, seed), image in zip(batch, images):
            path = self.path(caption, seed)
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            with open(tmp, "wb") as f:
                Image.fromarray(image).save(f, format="PNG", compress_level=1)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)

    def _claim_path(self, batch: list[Key]) -> Path:
        digest = hashlib.sha256("\0".join(f"{seed}\0{caption}" for caption, seed in batch).encode()).hexdigest()
        path = self.folder / ".claims" / f"{digest[:32]}.lock"
        path.parent.mkdir(exist_ok=True)
        return path

    def _write_settings(self) -> None:
        path, text = self.folder / "settings.json", json.dumps(self.settings, sort_keys=True, indent=2)
        try:
            if path.read_text() == text:
                return
        except OSError:
            pass
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)

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
