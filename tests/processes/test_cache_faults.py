"""The generation cache under faults (issue 11, item 6): a run killed with SIGKILL mid-generation, then rerun;
two runs at once on one cache. Real processes, a real (slow) callable target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N = 24  # captions, one generation each

SLOW_TARGET = """
import time
import numpy as np
from pathlib import Path

def gen(prompts, seeds):
    time.sleep(0.15)
    with open(Path(__file__).with_name("calls.txt"), "a") as f:
        f.write(f"{len(prompts)}\\n")
    return [np.random.default_rng(s).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds]
gen.mia_identity = "slow-v1"
"""

RUN = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from mia_checks.generation import GenerationCache
from mia_checks.targets import GenerationSettings, load_target

cache = GenerationCache(sys.argv[2], load_target("slow_target:gen", GenerationSettings()), {"steps": 1})
np.save(sys.argv[3], cache.generate([f"caption {i}" for i in range(%d)], 0, 1, batch_size=2, progress=False))
""" % N


def start(folder: Path, cache: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", RUN, str(folder), str(cache), str(out)], env=env)


def calls(folder: Path) -> int:
    path = folder / "calls.txt"
    return sum(int(n) for n in path.read_text().split()) if path.exists() else 0


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.png"))


def test_a_run_killed_mid_generation_resumes_and_reads_no_partial_image(tmp_path):
    (tmp_path / "slow_target.py").write_text(SLOW_TARGET)
    clean = start(tmp_path, tmp_path / "clean-cache", tmp_path / "clean.npy")
    assert clean.wait(60) == 0
    (tmp_path / "calls.txt").unlink()

    cache = tmp_path / "cache"
    victim = start(tmp_path, cache, tmp_path / "killed.npy")
    deadline = time.monotonic() + 60
    while len(entries(cache)) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    finished = len(entries(cache))
    assert 6 <= finished < N and not (tmp_path / "killed.npy").exists()
    # What a kill during a write leaves behind (a temporary file), and an entry damaged outside mia-checks.
    damaged = entries(cache)[0]
    (damaged.with_suffix(".999.tmp")).write_bytes(damaged.read_bytes()[:40])
    damaged.write_bytes(damaged.read_bytes()[:40])
    before = calls(tmp_path)

    rerun = start(tmp_path, cache, tmp_path / "rerun.npy")
    assert rerun.wait(60) == 0
    assert calls(tmp_path) - before == N - finished + 1  # every finished image reused; the damaged one redone
    assert np.array_equal(np.load(tmp_path / "rerun.npy"), np.load(tmp_path / "clean.npy"))


def test_two_runs_at_once_on_one_cache_generate_each_image_once_and_agree(tmp_path):
    (tmp_path / "slow_target.py").write_text(SLOW_TARGET)
    runs = [start(tmp_path, tmp_path / "cache", tmp_path / f"run{i}.npy") for i in (1, 2)]
    assert [run.wait(120) for run in runs] == [0, 0]
    assert calls(tmp_path) == N  # the second waited for the first's images instead of generating them again
    assert np.array_equal(np.load(tmp_path / "run1.npy"), np.load(tmp_path / "run2.npy"))
    assert len(entries(tmp_path / "cache")) == N and not list((tmp_path / "cache").rglob("*.tmp"))


def test_a_failed_write_raises_and_leaves_no_claim_held(tmp_path, monkeypatch):
    """Images are written in a background thread while the next batch generates; a write that fails (a full
    disk, simulated) must stop the run with its error, release every batch claim (another process must not
    wait forever) and leave no entry behind for the failed images; a rerun then completes."""
    from filelock import FileLock

    from mia_checks.generation import GenerationCache
    from mia_checks.targets import GenerationSettings, load_target

    (tmp_path / "fast_target.py").write_text(SLOW_TARGET.replace("time.sleep(0.15)", "pass"))
    monkeypatch.syspath_prepend(str(tmp_path))
    target = load_target("fast_target:gen", GenerationSettings())
    cache = GenerationCache(tmp_path / "cache", target, {"steps": 1})
    captions = [f"caption {i}" for i in range(N)]
    real_write, writes = GenerationCache._write, []

    def full_disk_on_third(self, batch, images):
        writes.append(len(batch))
        if len(writes) == 3:
            raise OSError(28, "No space left on device")
        real_write(self, batch, images)

    monkeypatch.setattr(GenerationCache, "_write", full_disk_on_third)
    try:
        cache.generate(captions, 0, 1, batch_size=2, progress=False)
    except OSError as error:
        assert error.errno == 28
    else:
        raise AssertionError("the failed write was swallowed")
    assert len(entries(tmp_path / "cache")) in (4, 6)  # batches 1–2 written, batch 3 failed; 4 may be in flight
    for claim in (tmp_path / "cache" / ".claims").glob("*.lock"):
        FileLock(str(claim)).acquire(timeout=0).release()  # raises Timeout if a claim were still held
    monkeypatch.setattr(GenerationCache, "_write", real_write)
    again = GenerationCache(tmp_path / "cache", target, {"steps": 1}).generate(captions, 0, 1, 2, progress=False)
    assert again.shape == (N, 1, 16, 16, 3) and len(entries(tmp_path / "cache")) == N
