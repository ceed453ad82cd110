"""The content-addressed store (store.py): a cache written before the package's layout changed is still read,
and every entry is written atomically.

tests/data/cache-be546d8/ was written by mia-checks at commit be546d8 (the flat layout): generations of a
callable target, white-box `loss` rows of a toy denoiser, and captions of a hub captioner, with what they
held in expected.json."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mia_checks.access.base import WhiteBoxOptions
from mia_checks.attacks.whitebox import PROBES
from mia_checks.captioning import caption_queries
from mia_checks.generation import GenerationCache
from mia_checks.measurements import WhiteBoxScores
from mia_checks.store import KeyedFolder, hash_file, sha256_of, write_atomic
from mia_checks.targets import Target

OLD_CACHE = Path(__file__).parents[1] / "data" / "cache-be546d8"


@pytest.fixture
def old_cache(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "cache"
    shutil.copytree(OLD_CACHE, root)
    return root, json.loads((root / "expected.json").read_text())


def never_called(*args):
    raise AssertionError("the cache was not read: the model was asked")


def test_generations_written_before_the_layout_change_are_read_without_the_model(old_cache):
    root, expected = old_cache
    target = Target("old_cache_model:generate", "callable", expected["identity"], never_called)
    cache = GenerationCache(root, target, expected["generation_settings"])
    images = cache.generate(expected["captions"], expected["seed"], expected["generations"], 4, progress=False)
    assert images.shape == (6, 2, 8, 8, 3) and cache.stats.generated == 0
    assert hashlib.sha256(images.tobytes()).hexdigest() == expected["generated_sha256"]


def test_white_box_scores_written_before_the_layout_change_are_read_without_the_model(old_cache):
    root, expected = old_cache
    w = expected["whitebox"]
    scores = WhiteBoxScores(root, expected["identity"], w["attack"], PROBES[w["attack"]], WhiteBoxOptions(), w["seed"],
                            w["device"])
    rows = scores.compute([], expected["query_hashes"], expected["captions"], never_called, batch_size=4)
    assert np.array_equal(rows, np.array(w["scores"]))


def test_captions_written_before_the_layout_change_are_read_without_the_captioner(old_cache):
    root, expected = old_cache
    captions = caption_queries(expected["captioner"], [], expected["query_hashes"], root)
    assert captions == expected["generated_captions"]


def test_an_entry_is_where_its_key_says():
    folder = KeyedFolder(Path("/c"), "generations", "ab" * 32, {"steps": 25}, ".png")
    digest = hashlib.sha256("7\0a caption".encode()).hexdigest()
    settings_key = hashlib.sha256(json.dumps({"steps": 25}, sort_keys=True).encode()).hexdigest()[:16]
    assert folder.path(7, "a caption") == Path("/c/generations") / ("ab" * 12) / settings_key / digest[:2] / f"{digest[:40]}.png"
    assert sha256_of("x", 1) == hashlib.sha256(b"x\x001").hexdigest()


def test_a_failed_write_leaves_neither_the_entry_nor_a_temporary_file(tmp_path):
    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "a" / "entry.png", broken)
    assert list((tmp_path / "a").iterdir()) == []
    write_atomic(tmp_path / "a" / "entry.png", lambda f: f.write(b"whole"), durable=True)
    assert (tmp_path / "a" / "entry.png").read_bytes() == b"whole" and len(list((tmp_path / "a").iterdir())) == 1


def test_file_hashes_are_remembered_by_path_size_and_mtime(tmp_path, monkeypatch):
    import os

    from mia_checks.store import hash_folder

    monkeypatch.setenv("MIA_CHECKS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    weights = folder / "w.safetensors"
    weights.write_bytes(b"a" * 1000)
    first = hash_folder(folder)
    assert first != hash_file(weights) and len(list((tmp_path / "cache" / "hashes").rglob("*"))) == 2
    weights.write_bytes(b"b" * 1000)  # new content, new mtime: hashed afresh
    second = hash_folder(folder)
    assert second != first
    stat = weights.stat()
    weights.write_bytes(b"a" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the memo answers
    assert hash_folder(folder) == second
