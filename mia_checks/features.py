"""Per-query features, computed once in streaming batches and read by every attack.

For query (x, c) with generations x̂_1..x̂_K, only what the attacks read is kept, so memory grows with the
number of queries by a few hundred kB each, whatever the resolution:
- pixel distances between x (resized to the generated resolution) and each x̂_k: MSE, L1 and global SSIM
  on [0, 1] pixels, at full resolution;
- thumbnails (at most THUMBNAIL px a side) of x at the generated resolution and of each x̂_k;
- L2-normalised embeddings E_img(x), E_img(x̂_k), E_txt(c);
- a summary of x alone (coarse grey 8×8, mean and std of grey) for the distribution-shift guard.
Images are read batch by batch: reference images decoded when needed, generations from the cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

THUMBNAIL = 64  # px: the largest side kept of any image (I-P's CNN and NN's distances read these)


@dataclass(frozen=True)
class QueryFeatures:
    labels: np.ndarray  # (n,) 1 = member
    query_summary: np.ndarray  # (n, 66): coarse 8×8 grey, grey mean, grey std of x at the sets' common size
    query_embeddings: np.ndarray  # (n, d)
    # None below: queries only (no model).
    query_thumbnails: np.ndarray | None = None  # (n, h, w, 3) float32: x at the generated resolution, thumbnailed
    generated_thumbnails: np.ndarray | None = None  # (n, K, h, w, 3) float32 in [0, 1]
    pixel_distances: np.ndarray | None = None  # (n, K, 3): MSE, L1, SSIM of (x, x̂_k)
    generated_embeddings: np.ndarray | None = None  # (n, K, d)
    text_embeddings: np.ndarray | None = None  # (n, d)


def resize_to(images: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """RGB uint8 images → (n, height, width, 3) float32 in [0, 1], bilinear."""
    from PIL import Image

    out = [
        np.asarray(Image.fromarray(im).resize((width, height), Image.BILINEAR)) if im.shape[:2] != (height, width) else im
        for im in images
    ]
    return np.stack(out).astype(np.float32) / 255.0


def thumbnails(pixels: np.ndarray, size: int = THUMBNAIL) -> np.ndarray:
    """(m, H, W, 3) float32 → (m, h, w, 3), h, w ≤ size: adaptive average pooling (torch's), identity when the
    images are small enough already."""
    m, h, w, c = pixels.shape
    if max(h, w) <= size:
        return pixels
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
    return F.adaptive_avg_pool2d(t, (min(h, size), min(w, size))).permute(0, 2, 3, 1).contiguous().numpy()


def global_ssim(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM over the whole image (one window), on [0, 1] pixels, for arrays (..., H, W, C):
    (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = 0.01², C2 = 0.03²."""
    axes = (-3, -2, -1)
    mx, my = x.mean(axes), y.mean(axes)
    vx, vy = x.var(axes), y.var(axes)
    cov = ((x - np.expand_dims(mx, axes)) * (y - np.expand_dims(my, axes))).mean(axes)
    c1, c2 = 0.01**2, 0.03**2
    return (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def pixel_distances(query: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """query (b, H, W, 3), generated (b, K, H, W, 3), both [0, 1] → (b, K, 3): MSE, L1, SSIM."""
    x = query[:, None]
    diff = generated - x
    mse = (diff**2).mean(axis=(2, 3, 4))
    l1 = np.abs(diff).mean(axis=(2, 3, 4))
    ssim = global_ssim(generated, np.broadcast_to(x, generated.shape))
    return np.stack([mse, l1, ssim], axis=-1)


def summarise_queries(pixels: np.ndarray) -> np.ndarray:
    """(b, H, W, 3) [0, 1] → (b, 66): grey averaged over an 8×8 grid, its mean and its std."""
    n, h, w, _ = pixels.shape
    grey = pixels.mean(-1)
    coarse = grey[:, : h - h % 8, : w - w % 8].reshape(n, 8, h // 8, 8, w // 8).mean((2, 4)).reshape(n, 64)
    return np.hstack([coarse, grey.mean((1, 2))[:, None], grey.std((1, 2))[:, None]])


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield list(range(start, min(start + batch_size, n)))


def compute_query_features(labels, query_images: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], embedder,
                           batch_size: int = 64) -> QueryFeatures:
    """What can be computed without the model, batch by batch: each query's summary (at the sets' most
    common size) and embedding. The distribution-shift guard reads only these, so a white-box run generates
    nothing."""
    (h, w), _ = Counter(tuple(s) for s in sizes).most_common(1)[0]
    summaries, embeddings = [], []
    for rows in _batches(len(query_images), batch_size):
        images = [query_images[i] for i in rows]
        summaries.append(summarise_queries(resize_to(images, h, w)))
        embeddings.append(embedder.embed_images(images))
    return QueryFeatures(np.asarray(labels), np.concatenate(summaries), np.concatenate(embeddings))


def compute_features(queries: QueryFeatures, query_images: Sequence[np.ndarray], captions: list[str],
                     read_generated: Callable[[list[int]], np.ndarray], embedder, batch_size: int = 64) -> QueryFeatures:
    """Everything the black-box attacks read, batch by batch: read_generated(rows) gives those queries'
    generations, (b, K, H, W, 3) uint8, from the generation cache."""
    parts: dict[str, list[np.ndarray]] = {"query": [], "generated": [], "distances": [], "embeddings": []}
    for rows in _batches(len(query_images), batch_size):
        generated = read_generated(rows)
        b, k, h, w, _ = generated.shape
        pixels = generated.astype(np.float32) / 255.0
        query = resize_to([query_images[i] for i in rows], h, w)
        parts["distances"].append(pixel_distances(query, pixels))
        parts["query"].append(thumbnails(query))
        small = thumbnails(pixels.reshape(b * k, h, w, 3))
        parts["generated"].append(small.reshape(b, k, *small.shape[1:]))
        parts["embeddings"].append(embedder.embed_images(list(generated.reshape(b * k, h, w, 3))).reshape(b, k, -1))
    return QueryFeatures(
        labels=queries.labels,
        query_summary=queries.query_summary,
        query_embeddings=queries.query_embeddings,
        query_thumbnails=np.concatenate(parts["query"]),
        generated_thumbnails=np.concatenate(parts["generated"]),
        pixel_distances=np.concatenate(parts["distances"]),
        generated_embeddings=np.concatenate(parts["embeddings"]),
        text_embeddings=embedder.embed_texts(list(captions)),
    )
