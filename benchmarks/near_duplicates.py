"""Does the near-duplicate check (mia_checks.data.check_disjoint) catch re-encoded members without refusing
distinct images that merely look alike? (run by hand; never in the test suite)

    python benchmarks/near_duplicates.py [--crops 150] [--timing 2000]

Thumbnails are mia_checks.data.thumbnail's (32×32 RGB); a pair is a near duplicate when their PSNR reaches
NEAR_DUPLICATE_PSNR. Printed:

- distinct images: every pair of scikit-learn's 1,797 8×8 digits upsampled as the test bed does (32 px) and
  to 64 px — many look alike — and of random 256-px crops of its two sample photos (crops of one photo may
  overlap): the highest PSNR and how many pairs reach the threshold (false matches);
- re-encodings of each digit and crop: JPEG q95, q75 and q50, resized by −3 and +4 px (bicubic), and JPEG q75
  of the resized image: the lowest PSNR to the original and how many fall below the threshold (misses);
- the time to compare two sets of `--timing` images.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from mia_checks.data import NEAR_DUPLICATE_PSNR, near_duplicates, thumbnail


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def resize(image: np.ndarray, delta: int) -> np.ndarray:
    height, width = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((width + delta, height + delta), Image.Resampling.BICUBIC))


EDITS = {
    "JPEG q95": lambda a: jpeg(a, 95),
    "JPEG q75": lambda a: jpeg(a, 75),
    "JPEG q50": lambda a: jpeg(a, 50),
    "resized -3 px": lambda a: resize(a, -3),
    "resized +4 px": lambda a: resize(a, 4),
    "resized -3 px, JPEG q75": lambda a: jpeg(resize(a, -3), 75),
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2)
    return float(10 * np.log10(1 / max(mse, 1e-12)))


def all_pair_psnrs(thumbnails: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, tuple[int, int]]:
    """PSNR of every unordered pair, and the closest pair."""
    x = thumbnails.reshape(len(thumbnails), -1).astype(np.float64) / 255
    norms = (x ** 2).sum(1)
    values, best, best_pair = [], -np.inf, (0, 0)
    for start in range(0, len(x), chunk):
        block = norms[start:start + chunk, None] + norms[None] - 2 * x[start:start + chunk] @ x.T
        mse = np.maximum(block, 0) / x.shape[1]
        p = 10 * np.log10(1 / np.maximum(mse, 1e-12))
        rows, cols = np.triu_indices(len(x), 1)
        keep = (rows >= start) & (rows < start + chunk)
        upper = p[rows[keep] - start, cols[keep]]
        values.append(upper)
        if upper.size and upper.max() > best:
            k = int(upper.argmax())
            best, best_pair = float(upper[k]), (int(rows[keep][k]), int(cols[keep][k]))
    return np.concatenate(values), best_pair


def report_distinct(name: str, images: np.ndarray) -> None:
    thumbs = np.stack([thumbnail(a) for a in images])
    values, pair = all_pair_psnrs(thumbs)
    hits = int((values >= NEAR_DUPLICATE_PSNR).sum())
    print(f"{name}: {len(values):,} distinct pairs; highest PSNR {values.max():.2f} dB (images {pair[0]} and "
          f"{pair[1]}); ≥ 30 dB: {int((values >= 30).sum())}; ≥ {NEAR_DUPLICATE_PSNR:g} dB (false matches): "
          f"{hits} ({hits / len(values):.2e})")


def report_edits(name: str, images: np.ndarray) -> None:
    for edit, apply in EDITS.items():
        scores = np.array([psnr(thumbnail(a), thumbnail(apply(a))) for a in images])
        misses = int((scores < NEAR_DUPLICATE_PSNR).sum())
        print(f"  {name}, {edit}: lowest PSNR {scores.min():.2f} dB, median {np.median(scores):.2f}; missed "
              f"{misses} of {len(scores)}")


def digits(size: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    from mia_checks.testbed.digits import upsample

    return upsample(load_digits().data, size)


def photo_crops(count: int, side: int = 256, seed: int = 0) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    photos, rng, crops = load_sample_images().images, np.random.default_rng(seed), []
    for k in range(count):
        photo = photos[k % len(photos)]
        y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        crops.append(photo[y:y + side, x:x + side])
    return np.stack(crops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=150)
    parser.add_argument("--timing", type=int, default=2000)
    args = parser.parse_args()
    print(f"threshold: PSNR ≥ {NEAR_DUPLICATE_PSNR:g} dB between 32x32 thumbnails")
    for size in (32, 64):
        images = digits(size)
        report_distinct(f"digits at {size} px", images)
        report_edits(f"digits at {size} px", images)
    crops = photo_crops(args.crops)
    report_distinct(f"{args.crops} photo crops, 256 px", crops)
    report_edits("photo crops", crops)
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (args.timing, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    start = time.perf_counter()
    near_duplicates(a, b)
    print(f"near_duplicates, {args.timing} vs {args.timing} thumbnails: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
