"""Helpers shared by the test folders (tests/ is on sys.path through its conftest)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_set(folder: Path, n: int, seed: int = 0, size: int = 16, write: Callable | None = None,
             captions: list[str] | None = None) -> Path:
    """n random images with a metadata.jsonl (captions "image i" unless given); `write(array, path)` saves each
    image (default: an 8-bit RGB PNG)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(n):
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            (write or (lambda a, p: Image.fromarray(a).save(p)))(array, folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": captions[i] if captions else f"image {i}"}) + "\n")
    return folder


def rewrite_manifest(folder: Path, edit: Callable[[list[dict]], None]) -> None:
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    edit(rows)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def without(args: list[str], *options: str) -> list[str]:
    """Command-line args less those that set any of `options` (e.g. "--mia-target")."""
    return [a for a in args if not any(a.startswith(o + "=") for o in options)]


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str:
    """Headless Chromium's path: skipped when missing, failed where .ci/run requires it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        # .ci/run installs Debian's chromium and sets this: there, a missing browser is a failure, not a skip.
        if os.environ.get("MIA_CHECKS_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    return found
