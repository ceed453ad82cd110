"""Generation shared by many processes (issue 12, items 2, 4, 5): shards of one content-addressed cache, a
shard worker killed with SIGKILL, the progress bar without -s, pytest-xdist workers and `mia-checks generate`.
Real processes; the tiny test-bed pipeline or a slow callable."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mia_checks.generation import GenerationCache, Progress, Shard, shard_from_environment
from mia_checks.targets import Target

ROOT = Path(__file__).parents[2]
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def files(cache: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*.png"))}


# --- two shards give the cache one process gives ------------------------------------------------------------

FILL_SD = """
import sys, torch
torch.set_num_threads(1)
from mia_checks.generation import GenerationCache, Shard
from mia_checks.targets import GenerationSettings, load_target

testbed, cache, rank, world = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
target = load_target(testbed + "/sd-null", GenerationSettings(steps=5, guidance=1.0, device="cpu"))
captions = [f"a handwritten {w}, heavy ink, upright, wide, written high" for w in %r]
print(GenerationCache(cache, target, {"steps": 5}).ensure(captions, 0, 2, 4, progress=False, shard=Shard(rank, world)))
""" % (WORDS,)


def test_two_shard_processes_fill_a_cache_byte_identical_to_one_process(testbed, tmp_path):
    def fill(cache: Path, rank: int, world: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", FILL_SD, str(testbed), str(cache), str(rank), str(world)],
                                env=env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, text=True)

    shards = [fill(tmp_path / "two", rank, 2) for rank in (0, 1)]
    generated = [int(p.communicate(timeout=600)[0]) for p in shards]
    one = fill(tmp_path / "one", 0, 1)
    assert int(one.communicate(timeout=600)[0]) == 20 and one.returncode == 0
    assert sum(generated) == 20  # each image once, between the two
    two, single = files(tmp_path / "two"), files(tmp_path / "one")
    assert len(single) == 20 and two == single  # same names, same bytes


# --- a shard worker killed mid-run ---------------------------------------------------------------------------

N = 24  # captions, one generation each, batches of 2

SLOW_TARGET = """
import os, time
import numpy as np
from pathlib import Path

def gen(prompts, seeds):
    time.sleep(0.2)
    with open(Path(__file__).with_name("calls.txt"), "a") as f:
        f.writelines(f"{os.getpid()}\\t{p}\\n" for p in prompts)
    return [np.random.default_rng(s).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds]
gen.mia_identity = "slow-v1"
"""

FILL_SLOW = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from mia_checks.generation import GenerationCache, Shard
from mia_checks.targets import GenerationSettings, load_target

cache = GenerationCache(sys.argv[2], load_target("slow_target:gen", GenerationSettings()), {"steps": 1})
captions = [f"caption {i}" for i in range(%d)]
cache.ensure(captions, 0, 1, 2, progress=False, shard=Shard(int(sys.argv[4]), int(sys.argv[5])))
np.save(sys.argv[3], cache.read(captions, 0, 1, slice(None)))
""" % N


def start(folder: Path, cache: Path, out: Path, rank: int = 0, world: int = 1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FILL_SLOW, str(folder), str(cache), str(out), str(rank), str(world)],
                            env=env())


def calls(folder: Path) -> list[tuple[int, str]]:
    path = folder / "calls.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(pid), prompt) for pid, prompt in (line.split("\t") for line in lines)]


def test_a_shard_worker_killed_mid_run_leaves_no_image_to_redo_and_nothing_corrupt_to_read(tmp_path):
    (tmp_path / "slow_target.py").write_text(SLOW_TARGET)
    clean = start(tmp_path, tmp_path / "clean", tmp_path / "clean.npy")
    assert clean.wait(60) == 0
    (tmp_path / "calls.txt").unlink()

    cache = tmp_path / "cache"
    survivor = start(tmp_path, cache, tmp_path / "survivor.npy", 0, 2)
    victim = start(tmp_path, cache, tmp_path / "victim.npy", 1, 2)
    deadline = time.monotonic() + 60
    while sum(pid == victim.pid for pid, _ in calls(tmp_path)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # mid-run: it holds a batch's claim, maybe mid-write
    victim.wait()
    finished = {p.name for p in cache.rglob("*.png")}
    seen = len(calls(tmp_path))
    assert survivor.wait(60) == 0  # the dead worker's claim was released: the survivor took its batches over
    assert 2 <= len(finished) < N
    after = [prompt for _, prompt in calls(tmp_path)[seen:]]
    assert not [prompt for prompt in after if _name(prompt) in finished]  # nothing finished was generated again
    assert len(after) <= N - len(finished)
    assert np.array_equal(np.load(tmp_path / "survivor.npy"), np.load(tmp_path / "clean.npy"))

    # What a kill during a write leaves (a temporary file) and an entry damaged outside mia-checks: the rerun
    # of the killed shard regenerates the damaged entry alone, and reads no partial file.
    damaged = sorted(cache.rglob("*.png"))[0]
    damaged.with_suffix(".999.tmp").write_bytes(damaged.read_bytes()[:40])
    damaged.write_bytes(damaged.read_bytes()[:40])
    before = len(calls(tmp_path))
    rerun = start(tmp_path, cache, tmp_path / "rerun.npy", 1, 2)
    assert rerun.wait(60) == 0
    assert len(calls(tmp_path)) - before == 1
    assert np.array_equal(np.load(tmp_path / "rerun.npy"), np.load(tmp_path / "clean.npy"))
    assert files(cache) == files(tmp_path / "clean")


def _name(prompt: str) -> str:
    """The file name of a prompt's (only) generation (names do not depend on the target)."""
    from mia_checks.generation import query_seed

    cache = GenerationCache(Path("."), Target("any", "callable", "0" * 64, lambda p, s: []), {})
    return cache.path(prompt, query_seed(0, 0, prompt)).name


# --- the claim order, in one process ------------------------------------------------------------------------

def counting_target(log: list[list[str]]) -> Target:
    def generate(prompts, seeds):
        log.append(list(prompts))
        return [np.random.default_rng(s).integers(0, 256, (8, 8, 3), dtype=np.uint8) for s in seeds]

    return Target("counting", "callable", "c" * 64, generate)


def test_a_shard_takes_its_own_batches_first_then_the_rest_from_the_end(tmp_path):
    log: list[list[str]] = []
    cache = GenerationCache(tmp_path, counting_target(log), {})
    captions = [f"c{i}" for i in range(10)]
    assert cache.ensure(captions, 0, 1, 2, progress=False, shard=Shard(1, 3)) == 10  # alone: it does everything
    assert log == [["c2", "c3"], ["c8", "c9"], ["c6", "c7"], ["c4", "c5"], ["c0", "c1"]]
    assert cache.stats.generated == 10 and cache.stats.cached == 0
    # A later run with a second generation per query fills only what is missing, batch by canonical batch.
    log.clear()
    assert cache.ensure(captions[:3], 0, 2, 4, progress=False, shard=Shard()) == 3
    assert log == [["c0", "c1"], ["c2"]] and cache.stats.cached == 3


def test_read_returns_some_queries_from_the_cache_alone_and_ensure_repairs_what_does_not_decode(tmp_path):
    log: list[list[str]] = []
    cache = GenerationCache(tmp_path, counting_target(log), {})
    captions = [f"c{i}" for i in range(5)]
    everything = cache.generate(captions, 3, 2, 4, progress=False)
    assert everything.shape == (5, 2, 8, 8, 3)
    assert np.array_equal(cache.read(captions, 3, 2, slice(1, 3)), everything[1:3])
    assert np.array_equal(cache.read(captions, 3, 2, [4, 0]), everything[[4, 0]])
    # A whole-looking PNG that does not decode (damage from outside): read raises and never generates (a
    # report reads the cache alone); ensure, which decodes what it did not write, generates it again.
    path = cache.path(*GenerationCache._keys(captions, 3, 2)[4][1])
    intact = path.read_bytes()
    path.write_bytes(intact[:30] + bytes(len(intact) - 42) + intact[-12:])
    log.clear()
    with pytest.raises((OSError, SyntaxError, ValueError)):
        cache.read(captions, 3, 2, [4])
    assert log == [] and cache.ensure(captions, 3, 2, 4, progress=False, shard=Shard()) == 1 and log == [["c4"]]
    assert np.array_equal(cache.read(captions, 3, 2, [4]), everything[[4]])
    path.unlink()
    with pytest.raises(OSError):
        cache.read(captions, 3, 2, range(5))


def test_the_shard_comes_from_accelerate_or_xdist(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PYTEST_XDIST_WORKER",
                 "PYTEST_XDIST_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)

    def detect(**variables: str) -> Shard:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        shard_from_environment.cache_clear()
        try:
            return shard_from_environment()
        finally:
            shard_from_environment.cache_clear()

    assert detect() == Shard(0, 1)
    assert detect(PYTEST_XDIST_WORKER="gw1", PYTEST_XDIST_WORKER_COUNT="3") == Shard(1, 3, "gw1", "xdist")
    assert Shard(1, 3, "gw1").label == "gw1: shard 2 of 3"
    # Under a launcher accelerate is asked; where it sees no distributed setup, the launcher's variables rule.
    state = type("State", (), {"process_index": 1, "num_processes": 3})
    monkeypatch.setattr("accelerate.PartialState", lambda: state)
    assert detect(WORLD_SIZE="3", RANK="0") == Shard(1, 3, "rank 1", "accelerate")
    state.process_index, state.num_processes = 0, 1
    assert detect(WORLD_SIZE="2", RANK="1") == Shard(1, 2, "rank 1", "accelerate")
    monkeypatch.delenv("WORLD_SIZE")
    assert detect(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="1") == Shard(1, 2, "rank 1", "accelerate")


def test_progress_in_a_log_is_whole_lines_with_rate(tmp_path):
    out = tmp_path / "log.txt"
    with open(out, "w") as stream:
        cache = GenerationCache(tmp_path, counting_target([]), {})
        cache.ensure([f"c{i}" for i in range(6)], 0, 1, 2, progress=Progress("auto", stream), shard=Shard(0, 1, "gw0"))
    lines = out.read_text().splitlines()
    assert lines[0].startswith("mia-checks: generating [gw0]:   0%") and "\r" not in out.read_text()
    assert "100%" in lines[-1] and "6/6" in lines[-1] and "img/s" in lines[-1]


# --- the gate: progress without -s, xdist workers, `mia-checks generate` ----------------------------------------

def gate_args(demo_args, cache: Path, *extra: str) -> list[str]:
    """A quick gate (one black-box attack, 2 steps, one generation per query) on its own cache."""
    return demo_args("sd-null", f"--mia-cache-dir={cache}", "--mia-steps=2", "--mia-generations=1",
                     "--mia-device=cpu", *extra)


def test_the_progress_bar_is_on_stderr_without_s_or_v_and_off_on_request(pytester, demo_args, tmp_path):
    shown = pytester.runpytest_subprocess(*gate_args(demo_args, tmp_path / "a", "--mia-attacks=II-P"))
    shown.assert_outcomes(passed=1)
    shown.stderr.fnmatch_lines(["mia-checks: generating:   0%*0/60*", "mia-checks: generating: 100%*60/60*img/s*"])
    hidden = pytester.runpytest_subprocess(*gate_args(demo_args, tmp_path / "b", "--mia-attacks=II-P",
                                                      "--mia-progress=off"))
    hidden.assert_outcomes(passed=1)
    assert "generating" not in hidden.stderr.str() + hidden.stdout.str()
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_xdist_workers_generate_disjoint_shards_and_are_summarised(pytester, demo_args, tmp_path):
    result = pytester.runpytest_subprocess(*gate_args(demo_args, tmp_path / "cache", "--mia-attacks=II-P,III"),
                                           "-n", "2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["gw0 generated * in * s (shard 1 of 2; 0 already cached)",
                                 "gw1 generated * in * s (shard 2 of 2; 0 already cached)"])
    counts = [int(line.split()[2]) for line in result.stdout.lines if line.startswith(("gw0 generated", "gw1 generated"))]
    assert sum(counts) == len(files(tmp_path / "cache")) == 60  # every image once, between them
    result.stderr.fnmatch_lines(["mia-checks: generating [[]gw?: shard ? of 2[]]: 100%*"])


def test_mia_checks_generate_fills_the_cache_so_that_the_gate_generates_nothing(pytester, demo_args, tmp_path):
    cache = tmp_path / "cache"
    args = gate_args(demo_args, cache, "--mia-attacks=II-P")
    run = subprocess.run([sys.executable, "-m", "mia_checks.cli", "generate", *args], cwd=pytester.path,
                         capture_output=True, text=True, timeout=600, env=env())
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "sd-null: 60 image(s) generated, 0 already cached, 60 in all" in run.stdout
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*.png")}
    gate = pytester.runpytest_subprocess(*args)
    gate.assert_outcomes(passed=1)
    assert "generating" not in gate.stderr.str() and {p: p.stat().st_mtime_ns for p in cache.rglob("*.png")} == before
    again = subprocess.run([sys.executable, "-m", "mia_checks.cli", "generate", *args], cwd=pytester.path,
                           capture_output=True, text=True, timeout=600, env=env())
    assert again.returncode == 0 and "0 image(s) generated, 60 already cached" in again.stdout


def test_mia_checks_generate_under_accelerate_launch_splits_the_work_between_its_processes(demo_args, tmp_path):
    """Two processes from `accelerate launch` (its multi-GPU launcher, torchrun), GPUs hidden: accelerate then
    sees no distributed setup, and the shards come from the launcher's RANK and WORLD_SIZE."""
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("accelerate's launcher is not installed next to this Python")
    cache = tmp_path / "cache"
    run = subprocess.run([str(accelerate), "launch", "--num_processes", "2", "--num_machines", "1", "--multi_gpu",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mia_checks.cli", "generate",
                          *gate_args(demo_args, cache, "--mia-attacks=II-P", "--mia-device=auto")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=env(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))  # CPU processes, GPU or not
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("mia-checks generate [rank")]
    assert sorted(line.split("]")[0] for line in lines) == ["mia-checks generate [rank 0: shard 1 of 2",
                                                            "mia-checks generate [rank 1: shard 2 of 2"]
    assert sum(int(re.search(r"(\d+) image\(s\) generated", line)[1]) for line in lines) == len(files(cache)) == 60


def test_mia_checks_generate_takes_the_gates_options(testbed, tmp_path):
    helped = subprocess.run([sys.executable, "-m", "mia_checks.cli", "generate", "--help"], capture_output=True,
                            text=True, timeout=120, env=env())
    assert helped.returncode == 0 and "--mia-target=TARGET" in helped.stdout and "--mia-progress" in helped.stdout
    bad = subprocess.run([sys.executable, "-m", "mia_checks.cli", "generate", f"--mia-target={testbed / 'sd-null'}",
                          f"--mia-members={testbed / 'data' / 'members'}",
                          f"--mia-nonmembers={testbed / 'data' / 'nonmembers'}", "--mia-steps=0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env())
    assert bad.returncode == 4 and "ERROR: --mia-steps: 0 is out of range" in bad.stderr
