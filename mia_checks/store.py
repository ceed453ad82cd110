"""Where mia-checks keeps what it computes once, and how: one content-addressed store.

Under the cache root ($MIA_CHECKS_CACHE, else ~/.cache/mia-checks):

    generations/<identity[:24]>/<settings key>/<h[:2]>/<h[:40]>.png   h = sha256(seed, caption)
    whitebox/<identity[:24]>/<settings key>/<h[:2]>/<h[:40]>.npy      h = sha256(image sha256, caption)
    captions/<captioner identity[:24]>.json                            image sha256 → caption
    hashes/<k[:2]>/<k>                                                 a file's sha256, k = sha256(path, size, mtime)
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
from collections.abc import Callable
from pathlib import Path
from typing import IO


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


class KeyedFolder:
    """The entries computed from one model under one setting: <root>/<namespace>/<identity[:24]>/<settings key>/,
    one file per key, at <h[:2]>/<h[:40]><suffix> with h = sha256 of the key's parts."""

    def __init__(self, root: Path, namespace: str, identity: str, settings: dict, suffix: str):
        self.settings, self.suffix = settings, suffix
        self.folder = Path(root) / namespace / identity[:24] / settings_key(settings)

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


def hash_folder(folder: Path) -> str:
    """sha256 over every file's relative path and content hash, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + hash_file(path).encode())
    return h.hexdigest()


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, remembered by (absolute path, size, modification time) under the cache
    folder: a checkpoint of several GB is read once, not on every run and by every xdist worker."""
    stat = path.stat()
    key = sha256_of(path.resolve(), stat.st_size, stat.st_mtime_ns)
    memo = default_cache_root() / "hashes" / key[:2] / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    try:
        write_atomic(memo, lambda f: f.write(h.hexdigest().encode()))
    except OSError:
        pass  # a read-only cache only costs speed
    return h.hexdigest()
