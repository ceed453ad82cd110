"""The black-box attacks: the six of Wu et al. (2022), and GAN-Leaks' nearest generation; what each reads
from the features, and its attack model.

| id   | intuition      | input                                                        | model               |
| I-P  | quality        | generated pixels (thumbnails of ≤ 64 px)                     | small CNN           |
| I-S  | quality        | E_img(x̂)                                                     | MLP                 |
| II-P | reconstruction | MSE, L1 and SSIM between x and x̂                             | logistic regression |
| II-S | reconstruction | cos and L2 between E_img(x), E_img(x̂), and their difference  | MLP                 |
| III  | faithfulness   | cos(E_txt(c), E_img(x̂)) and E_txt(c) ⊙ E_img(x̂)               | MLP                 |
| IV   | all three      | E_img(x̂), E_img(x), E_txt(c) combined by selectable operations | MLP                 |
| NN   | reconstruction | pixel MSE of x to its nearest image among all of the run's x̂ | threshold           |

With K generations per query, scalar distances enter as their best and mean over K; embeddings as their
mean over K. Every model is an sklearn-style classifier built from a seed, so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np

from ..features import QueryFeatures
from .base import BLACK_BOX, Attack, ScoreThreshold, logistic, mlp

COMBINE_OPERATIONS = ("concat", "difference", "product", "cosine")


@contextmanager
def _reproducible_torch():
    """One CPU thread, and torch's global RNG restored afterwards: the CNN's float sums then run in one order
    whatever the machine's core count (with torch's default threads, `leaky`'s I-P accuracy read 0.500 on 2
    threads and 0.516 on 1: the same seed gave another report on another machine), and seeding it leaves the
    caller's random stream alone. The CNN is small: one thread costs little."""
    import torch

    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


class SmallCNN:
    """A two-layer CNN on generated images, with sklearn's fit / predict_proba.

    Input (n, K, H, W, 3), thumbnails of at most 64 px (quality shows at low resolution too, and it keeps
    the CNN cheap on 512-px models): each of the K generations is a training sample with its query's label;
    a query's probability is the mean over its K generations.
    """

    def __init__(self, seed: int, steps: int = 150, lr: float = 1e-2):
        self.seed, self.steps, self.lr = seed, steps, lr

    @staticmethod
    def _tensor(x: np.ndarray):
        import torch

        n, k, h, w, c = x.shape
        return torch.from_numpy(np.ascontiguousarray(x).reshape(n * k, h, w, c)).permute(0, 3, 1, 2).float()

    def fit(self, x: np.ndarray, y: np.ndarray) -> SmallCNN:
        import torch

        with _reproducible_torch():
            torch.manual_seed(self.seed)
            self._fit(x, y)
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        import torch
        from torch import nn

        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1),
        )
        inputs = self._tensor(x)
        self.mean, self.std = inputs.mean(), inputs.std() + 1e-6
        inputs = (inputs - self.mean) / self.std
        targets = torch.from_numpy(np.repeat(y, x.shape[1])).float()
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=1e-3)
        for _ in range(self.steps):
            loss = nn.functional.binary_cross_entropy_with_logits(self.net(inputs).squeeze(1), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad(), _reproducible_torch():
            p = torch.sigmoid(self.net((self._tensor(x) - self.mean) / self.std)).squeeze(1).numpy()
        p = p.reshape(x.shape[0], x.shape[1]).mean(1)
        return np.stack([1 - p, p], axis=1)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis."""
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def _best_and_mean(values: np.ndarray, best: str) -> np.ndarray:
    """(n, K) → (n, 2): best over K (min or max) and mean."""
    pick = values.min(1) if best == "min" else values.max(1)
    return np.stack([pick, values.mean(1)], axis=1)


def quality_pixels(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    return f.generated_thumbnails


def quality_semantic(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    return f.generated_embeddings.mean(1)


def reconstruction_pixels(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    """MSE, L1 and SSIM of (x, x̂_k) at the generated resolution (features.pixel_distances)."""
    d = f.pixel_distances
    return np.hstack([_best_and_mean(d[..., 0], "min"), _best_and_mean(d[..., 1], "min"),
                      _best_and_mean(d[..., 2], "max")])


def reconstruction_semantic(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    q = f.query_embeddings[:, None]
    cos = _cos(f.generated_embeddings, q)
    l2 = np.linalg.norm(f.generated_embeddings - q, axis=-1)
    diff = f.query_embeddings - f.generated_embeddings.mean(1)
    return np.hstack([_best_and_mean(cos, "max"), _best_and_mean(l2, "min"), diff])


def faithfulness(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    cos = _cos(f.generated_embeddings, f.text_embeddings[:, None])
    return np.hstack([_best_and_mean(cos, "max"), f.text_embeddings * f.generated_embeddings.mean(1)])


def combined(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    """Attack IV: the chosen operations over the pairs (x̂, x), (x̂, c), (x, c) of embeddings."""
    g, q, t = f.generated_embeddings.mean(1), f.query_embeddings, f.text_embeddings
    pairs = ((g, q), (g, t), (q, t))
    blocks = {
        "concat": lambda: [g, q, t],
        "difference": lambda: [a - b for a, b in pairs],
        "product": lambda: [a * b for a, b in pairs],
        "cosine": lambda: [np.stack([_cos(a, b) for a, b in pairs], axis=1)],
    }
    return np.hstack([block for op in ops for block in blocks[op]()])


def _thumbnails(pixels: np.ndarray, size: int = 32) -> np.ndarray:
    """(m, H, W, 3) → (m, d) at most size×size (area averaging): distances stay cheap on 512-px images."""
    m, h, w, c = pixels.shape
    f = max(1, max(h, w) // size)
    h2, w2 = h - h % f, w - w % f
    return pixels[:, :h2, :w2].reshape(m, h2 // f, f, w2 // f, f, c).mean((2, 4)).reshape(m, -1)


def nearest_generation(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    """GAN-Leaks (Chen et al. 2020), full black-box: the query's pixel MSE to its nearest image among all
    generations of the run, whatever caption produced them. Catches a model that reproduces its training
    images without following their captions, which II-P (the query's own generations only) misses.
    Measured on ≤ 32-px reductions of the features' thumbnails."""
    n, k = f.generated_thumbnails.shape[:2]
    q = _thumbnails(f.query_thumbnails).astype(np.float64)
    g = _thumbnails(f.generated_thumbnails.reshape(n * k, *f.generated_thumbnails.shape[2:])).astype(np.float64)
    squared = (q**2).sum(1)[:, None] + (g**2).sum(1)[None, :] - 2 * q @ g.T  # ‖q − g‖², all pairs at once
    return np.maximum(squared, 0).min(1, keepdims=True) / q.shape[1]


BLACK_BOX_ATTACKS: tuple[Attack, ...] = (
    Attack("I-P", "quality", BLACK_BOX, quality_pixels, SmallCNN),
    Attack("I-S", "quality", BLACK_BOX, quality_semantic, mlp),
    Attack("II-P", "reconstruction", BLACK_BOX, reconstruction_pixels, logistic),
    Attack("II-S", "reconstruction", BLACK_BOX, reconstruction_semantic, mlp),
    Attack("III", "faithfulness", BLACK_BOX, faithfulness, mlp),
    Attack("IV", "all three", BLACK_BOX, combined, mlp),
    Attack("NN", "nearest generation", BLACK_BOX, nearest_generation, ScoreThreshold),
)


def query_only(f: QueryFeatures, ops: Sequence[str]) -> np.ndarray:
    """What an attack sees without the model: E_img(x) and coarse pixels of x (8×8 grey, its mean and std)."""
    return np.hstack([f.query_embeddings, f.query_summary])


# The distribution-shift guard: if this beats chance, members and non-members differ without any model.
BASELINE = Attack("baseline", "no model", BLACK_BOX, query_only, mlp)
