"""Features in streaming batches: the same numbers whatever the batch, the formulas by hand, bounded inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mia_checks.audit import Audit
from mia_checks.features import compute_features, compute_query_features, pixel_distances, thumbnails
from mia_checks.settings import build_settings


@pytest.fixture(scope="module")
def audit(testbed, tmp_path_factory) -> Audit:
    settings = build_settings({"target": str(testbed / "sd-leaky"), "members": str(testbed / "data" / "members"),
                               "nonmembers": str(testbed / "data" / "nonmembers"), "embedder": str(testbed / "clip"),
                               "guidance": "1", "generations": "2", "steps": "5",
                               "cache-dir": str(tmp_path_factory.mktemp("cache"))})
    return Audit(settings, progress=False)


def test_streaming_features_equal_one_batch_of_everything(audit):
    """One batch holding every query is the in-memory computation; batches of 7 must give the same numbers."""
    n = len(audit.captions)
    sizes = audit.members.sizes + audit.nonmembers.sizes
    whole_q = compute_query_features(audit.labels, audit.query_images, sizes, audit.embedder, batch_size=n)
    part_q = compute_query_features(audit.labels, audit.query_images, sizes, audit.embedder, batch_size=7)
    whole = compute_features(whole_q, audit.query_images, audit.captions, audit.read_generated, audit.embedder, n)
    part = compute_features(part_q, audit.query_images, audit.captions, audit.read_generated, audit.embedder, 7)
    for field in ("query_summary", "query_embeddings", "query_thumbnails", "generated_thumbnails", "pixel_distances",
                  "generated_embeddings", "text_embeddings"):
        a, b = getattr(whole, field), getattr(part, field)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-6, field
    assert whole.generated_thumbnails.shape == (n, 2, 32, 32, 3)  # 32-px test bed: thumbnails are the images


def test_pixel_distances_are_the_published_formulas(audit):
    generated = audit.read_generated([0, 40]).astype(np.float64) / 255
    query = np.stack([audit.query_images[0], audit.query_images[40]]).astype(np.float64) / 255
    d = pixel_distances(query, generated)
    for i in range(2):
        for k in range(2):
            x, y = query[i], generated[i, k]
            mse, l1 = ((x - y) ** 2).mean(), np.abs(x - y).mean()
            mx, my, vx, vy = x.mean(), y.mean(), x.var(), y.var()
            cov = ((x - mx) * (y - my)).mean()
            ssim = (2 * mx * my + 1e-4) * (2 * cov + 9e-4) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4))
            assert d[i, k] == pytest.approx([mse, l1, ssim], rel=1e-9)


def test_thumbnails_average_large_images_and_keep_small_ones():
    rng = np.random.default_rng(0)
    small = rng.random((2, 64, 48, 3), dtype=np.float32)
    assert thumbnails(small) is small
    large = rng.random((2, 512, 256, 3), dtype=np.float32)
    thumb = thumbnails(large)
    assert thumb.shape == (2, 64, 64, 3)
    assert thumb[1, 3, 5] == pytest.approx(large[1, 24:32, 20:24].mean((0, 1)), rel=1e-5)  # 8×4 blocks
