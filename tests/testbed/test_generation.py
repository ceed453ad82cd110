"""The generation cache on a real tiny target: each image generated once, reused by later runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mia_checks.errors import GenerationError
from mia_checks.generation import GenerationCache, query_seed
from mia_checks.targets import GenerationSettings, Target, load_target


@pytest.fixture(scope="module")
def counted_target(testbed):
    target = load_target(str(testbed / "sd-null"), GenerationSettings(steps=5, guidance=1.0, device="cpu"))
    calls: list[int] = []

    def generate(prompts, seeds):
        calls.append(len(prompts))
        return target.generate(prompts, seeds)

    return replace(target, generate_fn=generate), calls


def test_second_run_regenerates_nothing(counted_target, tmp_path):
    target, calls = counted_target
    captions = [f"a handwritten {w}, heavy ink, upright, wide, written high" for w in ("one", "two", "three")]
    first = GenerationCache(tmp_path, target, {"steps": 5}).generate(captions, 4, 2, batch_size=4, progress=False)
    assert first.shape == (3, 2, 32, 32, 3) and sum(calls) == 6 and calls == [4, 2]
    second = GenerationCache(tmp_path, target, {"steps": 5}).generate(captions, 4, 2, batch_size=4, progress=False)
    assert sum(calls) == 6 and np.array_equal(first, second)
    # Other settings are another cache entry; a new caption generates only itself.
    GenerationCache(tmp_path, target, {"steps": 6}).generate(captions[:1], 4, 1, 4, progress=False)
    GenerationCache(tmp_path, target, {"steps": 5}).generate(captions + ["a handwritten zero, light ink, upright, "
                                                                         "narrow, written low"], 4, 2, 4, False)
    assert sum(calls) == 6 + 1 + 2


def test_each_query_and_generation_gets_its_own_seed(counted_target, tmp_path):
    target, _ = counted_target
    caption = "a handwritten five, light ink, upright, wide, written high"
    assert len({query_seed(0, k, c) for k in range(3) for c in (caption, "other")}) == 6
    assert query_seed(0, 1, caption) == query_seed(0, 1, caption) < 2**31
    images = GenerationCache(tmp_path, target, {}).generate([caption], 1, 2, 2, progress=False)
    assert not np.array_equal(images[0, 0], images[0, 1])


def test_blank_images_cannot_be_measured(tmp_path):
    blank = Target("blank", "callable", "0" * 64, lambda prompts, seeds: [np.zeros((8, 8, 3), np.uint8)] * len(prompts))
    with pytest.raises(GenerationError, match="blank"):
        GenerationCache(tmp_path, blank, {}).generate(["x"], 0, 1, 1, progress=False)
