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


def test_a_folder_is_hashed_by_what_its_links_point_at(tmp_path, monkeypatch):
    """A pipeline folder whose unet/ is a link: repointing the link to another model's UNet is a new model."""
    from mia_checks.store import hash_folder

    monkeypatch.setenv("MIA_CHECKS_CACHE", str(tmp_path / "cache"))
    for name, weights in (("unet-a", b"A" * 64), ("unet-b", b"B" * 64)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(weights)
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text("{}")
    (pipeline / "unet").symlink_to(tmp_path / "unet-a", target_is_directory=True)
    first = hash_folder(pipeline)
    (pipeline / "unet").unlink()
    (pipeline / "unet").symlink_to(tmp_path / "unet-b", target_is_directory=True)
    assert hash_folder(pipeline) != first
    (pipeline / "unet").unlink()
    shutil.copytree(tmp_path / "unet-a", pipeline / "unet")  # a real folder with the same files: the same model
    assert hash_folder(pipeline) == first


def test_a_folder_linking_back_to_itself_is_an_error_not_a_hang(tmp_path):
    from mia_checks.store import hash_folder

    (tmp_path / "pipeline" / "unet").mkdir(parents=True)
    (tmp_path / "pipeline" / "unet" / "loop").symlink_to(tmp_path / "pipeline", target_is_directory=True)
    with pytest.raises(OSError, match="links back"):
        hash_folder(tmp_path / "pipeline")


def test_the_hash_memo_cannot_be_fooled_by_same_size_weights_with_the_old_mtime(tmp_path, monkeypatch):
    """The memo that spares re-reading big checkpoints is keyed by inode and ctime too: other bytes of the same
    size with the modification time restored (`touch -r`), in place or as a renamed-in copy, are read again."""
    import os
    import time

    import mia_checks.store as store

    monkeypatch.setenv("MIA_CHECKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store, "SETTLED_SECONDS", 0.2)
    weights = tmp_path / "unet.safetensors"
    weights.write_bytes(b"A" * 4096)
    time.sleep(0.3)
    original = os.stat(weights)
    assert hash_file(weights) == hashlib.sha256(b"A" * 4096).hexdigest()
    assert len(list((tmp_path / "cache" / "hashes").rglob("*"))) == 2  # the memo was written (folder + file)
    assert hash_file(weights) == hashlib.sha256(b"A" * 4096).hexdigest()  # and is read

    weights.write_bytes(b"B" * 4096)  # rewritten in place...
    os.utime(weights, ns=(original.st_atime_ns, original.st_mtime_ns))  # ...with the old mtime (touch -r)
    assert hash_file(weights) == hashlib.sha256(b"B" * 4096).hexdigest()

    other = tmp_path / "other"
    other.write_bytes(b"C" * 4096)
    os.utime(other, ns=(original.st_atime_ns, original.st_mtime_ns))
    other.replace(weights)  # a copy renamed over it
    assert hash_file(weights) == hashlib.sha256(b"C" * 4096).hexdigest()


def test_a_file_rewritten_within_the_clock_tick_of_its_hash_is_not_memoised(tmp_path, monkeypatch):
    monkeypatch.setenv("MIA_CHECKS_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "unet.safetensors"
    weights.write_bytes(b"A" * 4096)
    hash_file(weights)
    assert not (tmp_path / "cache" / "hashes").exists()


def test_a_full_cache_disk_is_one_error_naming_the_cache_folder(tmp_path):
    """A real write failure, not a mock: the file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes the
    kernel refuse the PNG writes as a full disk would, while settings.json and the claims fit."""
    import resource
    import signal

    from mia_checks.errors import MEASUREMENT_ERRORS, CacheWriteError

    def noise(prompts, seeds):
        return [np.random.default_rng(s).integers(0, 256, (64, 64, 3), dtype=np.uint8) for s in seeds]

    cache = GenerationCache(tmp_path / "cache", Target("noise:generate", "callable", "ab" * 32, noise), {"steps": 1})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(CacheWriteError) as info:
            cache.ensure(["a caption", "another"], seed=0, generations=2, batch_size=2, progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    message = str(info.value)
    assert message.startswith(f"cannot write to the cache folder {tmp_path / 'cache'} writing ")
    assert "File too large. Free space there, or point --mia-cache-dir" in message
    assert isinstance(info.value, MEASUREMENT_ERRORS) and info.value.__cause__ is None
    assert not list((tmp_path / "cache").rglob("*.tmp")) and not list((tmp_path / "cache").rglob("*.png"))
