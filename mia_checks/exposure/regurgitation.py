"""Does the model hand a member back? Each query's own generations (the audit's K, from the generation cache)
compared with its image, two ways:

- `pixel`: Carlini et al. (2023)'s tiled L2. Both images at the features' thumbnail resolution (≤ 64 px), cut
  into a 4 × 4 grid of tiles; the distance is the largest tile's RMS difference on [0, 1] pixels, so one
  region that differs is enough to call two images different. The mirrored generation counts too (training
  with random flips memorises either orientation). Per query: the closest generation.
- `embedding`: 1 − the largest cosine similarity between the query's embedding and a generation's (the
  run's embedder): catches "template" copies whose layout is kept and details changed (Webster 2023).

A member is *reproduced* when either distance is below the bound set by the non-members' distances to
their own generations (calibration.py): what the model gives for a caption whose image it never saw. The
scores there are 1 / distance (higher = more exposed).
"""

from __future__ import annotations

import numpy as np

TILES = 4  # per side: Carlini et al. cut images into 16 tiles


def tiled_distance(a: np.ndarray, b: np.ndarray, tiles: int = TILES) -> np.ndarray:
    """Largest tile RMS difference of images (..., H, W, C) in [0, 1]: max over a tiles × tiles grid of
    √mean((a − b)²) over the tile. Tiles of unequal size when H or W is not a multiple of `tiles`."""
    diff2 = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2
    h, w = diff2.shape[-3:-1]
    rows, cols = np.array_split(np.arange(h), tiles), np.array_split(np.arange(w), tiles)
    per_tile = [diff2[..., r[0] : r[-1] + 1, c[0] : c[-1] + 1, :].mean(axis=(-3, -2, -1))
                for r in rows if len(r) for c in cols if len(c)]
    return np.sqrt(np.max(np.stack(per_tile, -1), -1))


def copy_distances(query_thumbnails: np.ndarray, generated_thumbnails: np.ndarray, query_embeddings: np.ndarray,
                   generated_embeddings: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """criterion → (distance of each query to its closest generation (n,), that generation's index (n,)).

    query_thumbnails (n, h, w, 3), generated_thumbnails (n, K, h, w, 3), embeddings L2-normalised (n, d) and
    (n, K, d)."""
    q = query_thumbnails[:, None]
    pixel = np.minimum(tiled_distance(q, generated_thumbnails), tiled_distance(q, generated_thumbnails[:, :, :, ::-1]))
    cosine = np.einsum("nd,nkd->nk", query_embeddings, generated_embeddings)
    embedding = np.clip(1.0 - cosine, 0.0, 2.0)
    return {"pixel": (pixel.min(1), pixel.argmin(1)), "embedding": (embedding.min(1), embedding.argmin(1))}
