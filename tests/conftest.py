"""Shared fixtures: the built test bed (built once into the cache, reused across runs) and helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_checks.testbed import ensure_built


@pytest.fixture(scope="session")
def testbed() -> Path:
    """Root of the built test bed; the first run builds it (about 7 minutes on 2 cores)."""
    return ensure_built()


@pytest.fixture(scope="session")
def demo_args(testbed: Path, tmp_path_factory):
    """Command-line args auditing a test-bed target on its members / non-members with the tiny CLIP."""
    cache = tmp_path_factory.mktemp("generations")

    def make(target: str = "sd-null", *extra: str) -> list[str]:
        return [
            f"--mia-target={testbed / target}",
            f"--mia-members={testbed / 'data' / 'members'}",
            f"--mia-nonmembers={testbed / 'data' / 'nonmembers'}",
            f"--mia-embedder={testbed / 'clip'}",
            "--mia-guidance=1",
            f"--mia-cache-dir={cache}",
            "-p", "no:cacheprovider",
            *extra,
        ]

    return make


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


@pytest.fixture
def dimmed_nonmembers(testbed: Path, tmp_path: Path) -> Path:
    """Non-members from another distribution: the same digits with ink at 60% brightness."""
    import shutil

    import numpy as np
    from PIL import Image

    source, folder = testbed / "data" / "nonmembers", tmp_path / "dimmed"
    folder.mkdir()
    shutil.copy(source / "metadata.jsonl", folder)
    for png in source.glob("*.png"):
        Image.fromarray((np.asarray(Image.open(png)) * 0.6).astype(np.uint8)).save(folder / png.name)
    return folder
