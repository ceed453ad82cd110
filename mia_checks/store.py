"""Where mia-checks keeps what it computes once, and how: one content-addressed store.

Under the cache root ($MIA_CHECKS_CACHE, else ~/.cache/mia-checks):

    generations/<identity[:24]>/<settings key>/<h[:2]>/<h[:40]>.png   h = sha256(seed, caption)
    whitebox/<identity[:24]>/<settings key>/<h[:2]>/<h[:40]>.npy      h = sha256(image sha256, caption)
    captions/<captioner identity[:24]>.json                            image sha256 → caption
    hashes/<k[:2]>/<k>                                                 a file's sha256, k = sha256(path, inode, size, times)
    testbed/v<N>/                                                      the test bed's artifacts

`identity` is the content hash of the model (targets), the settings key the first 16 hex digits of the
sha256 of the settings' sorted JSON, and every keyed folder holds its `settings.json`. Entries are written to
a temporary file and renamed into place (`write_atomic`), so a reader sees a whole entry or none. This layout
is what caches written by earlier versions hold: change it and they are no longer read.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import CacheWriteError


def default_cache_root() -> Path:
    """$MIA_CHECKS_CACHE, else ~/.cache/mia-checks (XDG_CACHE_HOME honoured)."""
    if os.environ.get("MIA_CHECKS_CACHE"):
        return Path(os.environ["MIA_CHECKS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mia-checks"


def sha256_of(*parts: object) -> str:
    """sha256 of the parts' text joined by NUL bytes: the key of an entry."""
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@contextmanager
def writing_cache(root: Path, entry: Path | None = None):
    """An OSError while writing under the cache folder `root` (a full disk, a quota, a read-only mount) becomes
    one CacheWriteError naming the folder and what to do, not a traceback per attack."""
    try:
        yield
    except OSError as exc:
        target = exc.filename or entry
        where = f" writing {target}" if target else ""
        raise CacheWriteError(
            f"cannot write to the cache folder {root}{where}: {exc.strerror or exc}. Free space there, or point "
            "--mia-cache-dir (or MIA_CHECKS_CACHE) at a folder with room; what it holds can be recomputed, so "
            "it may be deleted.") from None


class KeyedFolder:
    """The entries computed from one model under one setting: <root>/<namespace>/<identity[:24]>/<settings key>/,
    one file per key, at <h[:2]>/<h[:40]><suffix> with h = sha256 of the key's parts. Its writes name the
    cache folder when they fail (`writing_cache`)."""

    def __init__(self, root: Path, namespace: str, identity: str, settings: dict, suffix: str):
        self.root, self.settings, self.suffix = Path(root), settings, suffix
        self.folder = self.root / namespace / identity[:24] / settings_key(settings)

    def write(self, path: Path, write: Callable[[IO[bytes]], object], durable: bool = False) -> None:
        with writing_cache(self.root, path):
            write_atomic(path, write, durable)

    def path(self, *key: object) -> Path:
        digest = sha256_of(*key)[:40]
        return self.folder / digest[:2] / f"{digest}{self.suffix}"

    def write_settings(self) -> None:
        """settings.json, so that a folder says what it holds (rewritten only when it differs)."""
        path, text = self.folder / "settings.json", json.dumps(self.settings, sort_keys=True, indent=2)
        try:
            if path.read_text() == text:
                return
        except OSError:
            pass
        with writing_cache(self.root):
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda f: f.write(text.encode()))


def write_atomic(path: Path, write: Callable[[IO[bytes]], object], durable: bool = False) -> None:
    """Write `path` through a temporary file renamed into place: readers see the whole file or none. With
    `durable`, the bytes are flushed to disk before the rename (a crash cannot leave a renamed empty file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def folder_files(folder: Path) -> list[tuple[str, Path]]:
    """Every file under `folder` as (relative path, path), in sorted order, following symbolic links — to
    folders too — as a loader does: a `unet/` that links elsewhere is hashed by what it points at. A link
    that loops back to a folder above it is an error (a loader would loop too)."""
    files, seen = [], set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        here = os.stat(root)
        if (here.st_dev, here.st_ino) in seen:
            raise OSError(f"{root} links back to a folder above it; remove the looping link")
        seen.add((here.st_dev, here.st_ino))
        dirs.sort()
        for name in names:
            path = Path(root) / name
            if path.is_file():  # a dangling link or a pipe is nothing a loader reads
                files.append((str(path.relative_to(folder)), path))
    return sorted(files, key=lambda item: Path(item[0]))  # the order of earlier versions: their caches are read


def hash_folder(folder: Path) -> str:
    """sha256 over every file's relative path and content hash, in sorted order (links followed)."""
    h = hashlib.sha256()
    for relative, path in folder_files(folder):
        h.update(relative.encode() + b"\0" + hash_file(path).encode())
    return h.hexdigest()


# A memo is written only for a file unchanged this long: file systems stamp ctime with a coarse clock, so a
# file rewritten within one tick of being hashed could keep its ctime (git's "racy clean" problem).
SETTLED_SECONDS = 2.0


def _memo_key(path: Path, stat: os.stat_result) -> str:
    # ctime cannot be set by users (`touch -r` and `os.utime` set mtime, and themselves move ctime), and the
    # inode changes when a file is replaced by another: same-size weights with an old mtime restored miss.
    return sha256_of(path.resolve(), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes (through links), remembered under the cache folder by the file's identity —
    resolved path, device, inode, size, modification and change times — so a checkpoint of several GB is read
    once, not on every run and by every xdist worker, and any rewrite of it is read again."""
    before = path.stat()
    key = _memo_key(path, before)
    memo = default_cache_root() / "hashes" / key[:2] / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    after = path.stat()
    settled = time.time() - after.st_ctime > SETTLED_SECONDS
    if settled and _memo_key(path, after) == key:  # not rewritten while it was read
        try:
            write_atomic(memo, lambda f: f.write(h.hexdigest().encode()))
        except OSError:
            pass  # a read-only cache only costs speed
    return h.hexdigest()
