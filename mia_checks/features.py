"""Per-query features, computed once and read by every attack.

For query (x, c) with generations x̂_1..x̂_K: pixels of x and x̂_k at the generated resolution in [0, 1],
and L2-normalised embeddings E_img(x), E_img(x̂_k), E_txt(c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QueryFeatures:
    labels: np.ndarray  # (n,) 1 = member
    query_pixels: np.ndarray  # (n, H, W, 3) float32 in [0, 1]
    generated_pixels: np.ndarray | None  # (n, K, H, W, 3) float32 in [0, 1]; None: queries only
    query_embeddings: np.ndarray  # (n, d)
    generated_embeddings: np.ndarray | None  # (n, K, d)
    text_embeddings: np.ndarray | None  # (n, d)


def resize_to(images: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """RGB uint8 images → (n, height, width, 3) float32 in [0, 1], bilinear."""
    from PIL import Image

    out = [
        np.asarray(Image.fromarray(im).resize((width, height), Image.BILINEAR)) if im.shape[:2] != (height, width) else im
        for im in images
    ]
    return np.stack(out).astype(np.float32) / 255.0


def compute_query_features(labels, query_images, embedder) -> QueryFeatures:
    """What can be computed without the model: the queries' pixels (at the sets' most common size) and
    embeddings. The distribution-shift guard reads only these, so a white-box run generates nothing."""
    from collections import Counter

    (h, w), _ = Counter(im.shape[:2] for im in query_images).most_common(1)[0]
    return QueryFeatures(np.asarray(labels), resize_to(list(query_images), h, w), None,
                         embedder.embed_images(list(query_images)), None, None)


def compute_features(queries: QueryFeatures, query_images, captions, generated: np.ndarray, embedder) -> QueryFeatures:
    """Everything the black-box attacks read; generated: (n, K, H, W, 3) uint8 from the generation cache."""
    n, k, h, w, _ = generated.shape
    flat_generated = list(generated.reshape(n * k, h, w, 3))
    return QueryFeatures(
        labels=queries.labels,
        query_pixels=resize_to(list(query_images), h, w),
        generated_pixels=generated.astype(np.float32) / 255.0,
        query_embeddings=queries.query_embeddings,
        generated_embeddings=embedder.embed_images(flat_generated).reshape(n, k, -1),
        text_embeddings=embedder.embed_texts(list(captions)),
    )
