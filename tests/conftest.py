"""Shared fixtures: the built test bed (built once into the cache, reused across runs), the gate as users run
it, and helpers.

The suite mirrors the package: tests/unit/ needs no test bed and runs in-process (`pytest tests/unit`, or
`pytest -m "not slow"`, about a minute); tests/testbed/ uses the test bed's models in-process;
tests/plugin/ runs the gate as users meet it, in subprocesses on generated projects (pytester);
tests/processes/ starts real processes (sharded generation, killed runs, the CLI). Everything outside
tests/unit/ is marked `slow`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Before torch starts its OpenMP threads, here and in every process the tests start: two workers' torch
# threads spinning for one core each made two concurrent gate runs take 273 s instead of 14 s (measured on
# this 2-core machine). The wait policy changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from filelock import FileLock

from mia_checks.store import default_cache_root
from mia_checks.testbed import SUITE_ARTIFACTS, audit_sets, embedder_for, ensure_built

TESTS = Path(__file__).parent
# The suite runs on pytest-xdist workers (pyproject's addopts). The gate runs that tests start are runs of
# their own: they must not take themselves for this worker's shard of a generation (generation/shards.py).
XDIST_WORKER = os.environ.pop("PYTEST_XDIST_WORKER", None)
os.environ.pop("PYTEST_XDIST_WORKER_COUNT", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TESTS / "unit" not in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
    # The slow tests first, so that the many quick unit tests fill the xdist workers' tails at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that every xdist worker of this session shares (each worker's basetemp is inside it)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if XDIST_WORKER else root


@pytest.fixture(scope="session")
def testbed() -> Path:
    """Root of the built test bed; the first run builds it (about 37 minutes on 2 cores, both tiers)."""
    return ensure_built(SUITE_ARTIFACTS)


@pytest.fixture(scope="session")
def demo_args(testbed: Path, tmp_path_factory):
    """Command-line args auditing a test-bed target on its members / non-members (audit_sets: the fine-tunes
    audit data-ft/, the emoji tier its 128 + 128 slice) with the tiny CLIP of its images; the
    generations and white-box scores are cached for the whole session, shared by the xdist workers (the
    cache is content-addressed and safe for many processes)."""
    cache = session_root(tmp_path_factory) / "generations"
    cache.mkdir(exist_ok=True)

    def make(target: str = "sd-null", *extra: str, exposure: bool = False) -> list[str]:
        """`exposure`: keep the exposure tests at their default (tests/plugin/test_exposure_gate.py, and the
        shared full runs); off, the run holds the attack tests alone, which the other tests count."""
        return [
            f"--mia-target={testbed / target}",
            *(f"--mia-{name}={testbed / folder}"
              for name, folder in zip(("members", "nonmembers"), audit_sets(target, small=True))),
            f"--mia-embedder={testbed / embedder_for(target)}",
            "--mia-guidance=1",
            f"--mia-cache-dir={cache}",
            "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest",  # the test environment's plugin: 1 s of import per run, unused there
            *([] if exposure else ["--mia-exposure=none"]),
            *extra,
        ]

    return make


class Runs:
    """Commands run as a user runs them: a subprocess in a fresh, empty project folder (HOME there too, as
    pytester does; the test bed and its cache stay where they are), each distinct command once per session,
    whichever xdist worker asks first (the others wait for it, then read its result). Tests that read the
    same run share it instead of repeating an audit of minutes; tests that need files of their own in the
    project use pytester."""

    def __init__(self, root: Path):
        self.root = root / "runs"
        self.root.mkdir(exist_ok=True)

    def python(self, *argv: str) -> pytest.RunResult:
        """`python *argv` in a fresh folder: pytester's RunResult, with `.path` the folder."""
        folder = self.root / hashlib.sha256("\0".join(argv).encode()).hexdigest()[:16]
        saved = folder.with_suffix(".json")
        with FileLock(folder.with_suffix(".lock")):
            if not saved.exists():
                folder.mkdir()
                saved.write_text(json.dumps(self._run(argv, folder)))
        done = json.loads(saved.read_text())
        result = pytest.RunResult(done["ret"], done["stdout"], done["stderr"], done["duration"])
        result.path = folder
        return result

    @staticmethod
    def _run(argv: tuple[str, ...], folder: Path) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "TOX_ENV_DIR")}
        env.update(HOME=str(folder), USERPROFILE=str(folder), PY_COLORS="0",
                   MIA_CHECKS_CACHE=str(default_cache_root()),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")])))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *argv], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=1800)
        return {"ret": done.returncode, "stdout": done.stdout.splitlines(), "stderr": done.stderr.splitlines(),
                "duration": time.perf_counter() - started}


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    return Runs(session_root(tmp_path_factory))


@pytest.fixture(scope="session")
def gate(runs: Runs, testbed: Path):
    """`gate(*args)`: `pytest *args` as a user runs it, once per session for each distinct command."""
    return lambda *args: runs.python("-m", "pytest", *args)


@pytest.fixture(scope="session")
def demo_run(runs: Runs, testbed: Path) -> pytest.RunResult:
    """`mia-checks demo` as the README's first line runs it (the test bed's `leaky` target, all twelve
    attacks), under `-W error`, writing every report: the one serial full audit of a leaky model, which
    several tests read."""
    return runs.python("-m", "mia_checks.cli", "demo", "-W", "error", "--junitxml=junit.xml",
                       "--mia-json=report.json", "--mia-html=out/report.html", "--mia-markdown=out/summary.md")


@pytest.fixture(scope="session")
def leaky_parallel_run(gate, demo_args) -> pytest.RunResult:
    """The demo's audit on two pytest-xdist workers, under `-W error`, with a JUnit report."""
    return gate(*demo_args("sd-leaky", exposure=True), "-n", "2", "-W", "error", "--junitxml=junit.xml",
                "--mia-json=parallel.json")


@pytest.fixture(scope="session")
def null_run(gate, demo_args) -> pytest.RunResult:
    """All twelve attacks and both exposure tests on the model that never saw either set, under `-W error`, compared with a saved run
    where none is saved yet, with an xunit1 JUnit report: the one full passing audit, which several tests read."""
    return gate(*demo_args("sd-null", exposure=True), "--mia-compare", "-W", "error", "--junitxml=junit.xml",
                "-o", "junit_family=xunit1")


@pytest.fixture
def leaky_callable(pytester, testbed: Path) -> str:
    """A black-box callable wrapping the leaky pipeline, written into the pytester project: its spec."""
    pytester.makepyfile(hosted_model=f"""
        import torch
        from diffusers import DiffusionPipeline

        _pipe = DiffusionPipeline.from_pretrained({str(testbed / "sd-leaky")!r})
        _pipe.set_progress_bar_config(disable=True)

        def generate(prompts, seeds):
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            return _pipe(prompts, num_inference_steps=25, guidance_scale=1.0, generator=gens, output_type="np").images
    """)
    return "hosted_model:generate"


@pytest.fixture(scope="session")
def dimmed_nonmembers(testbed: Path, tmp_path_factory) -> Path:
    """Non-members from another distribution: the same digits with ink at 60% brightness."""
    import shutil

    import numpy as np
    from PIL import Image

    source, folder = testbed / "data" / "nonmembers", tmp_path_factory.mktemp("dimmed") / "dimmed"
    folder.mkdir()
    shutil.copy(source / "metadata.jsonl", folder)
    for png in source.glob("*.png"):
        Image.fromarray((np.asarray(Image.open(png)) * 0.6).astype(np.uint8)).save(folder / png.name)
    return folder
