"""Peak memory of a black-box audit against the number of queries, at 512 and 1024 px (run by hand).

    python benchmarks/audit_memory.py [--sizes 512,1024] [--queries 200,1000,2000] [--generations 2]

Each configuration runs in a fresh process (its peak RSS is the process's maximum resident set), on a fast
synthetic target (smooth random images from the seed: no model) and synthetic reference sets written to a
temporary folder, with the test bed's tiny CLIP as embedder. The audit is the whole black-box family plus
the distribution-shift guard: generation into the cache, streaming features, every attack model.

Prints the peak per configuration and the growth per query against the smallest n at the same size
(target: ≤ 1 MB per query beyond the model's own; 2,000 queries at 1024 px complete).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def smooth_image(seed: int, size: int) -> np.ndarray:
    """A size×size RGB image upsampled from 8×8 random colours: cheap to make, compresses well as PNG."""
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR))


def synthetic_target(size: int):
    def generate(prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        return [smooth_image(seed, size) for seed in seeds]

    generate.mia_identity = f"benchmark-smooth-{size}"
    return generate


def write_set(folder: Path, n: int, size: int, offset: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(n):
            Image.fromarray(smooth_image(10_000_000 + offset + i, size)).save(folder / f"{i:05d}.png", compress_level=1)
            f.write(json.dumps({"file_name": f"{i:05d}.png", "text": f"a smooth picture number {offset + i}"}) + "\n")


def run_one(size: int, n: int, generations: int, work: Path) -> dict:
    """In this process: write the sets, audit them, report peak RSS."""
    sys.path.insert(0, str(Path(__file__).parent))
    from mia_checks.attacks import GROUPS
    from mia_checks.audit import Audit
    from mia_checks.settings import build_settings
    from mia_checks.testbed import ensure_built

    root = ensure_built(["clip"])
    write_set(work / "members", n // 2, size, 0)
    write_set(work / "nonmembers", n // 2, size, n)
    start = time.perf_counter()
    settings = build_settings({"target": f"audit_memory:target_{size}", "members": str(work / "members"),
                               "nonmembers": str(work / "nonmembers"), "embedder": str(root / "clip"),
                               "generations": str(generations), "cache-dir": str(work / "cache"),
                               "attacks": "blackbox"})
    audit = Audit(settings, progress=False)
    aucs = {a: audit.result(a).auc.value for a in GROUPS["blackbox"]}
    audit.distribution_shift()
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "queries": n, "peak_mb": round(peak_mb, 1), "seconds": round(seconds, 1),
            "max_auc": round(max(aucs.values()), 3)}


def __getattr__(name: str):
    """audit_memory:target_<size>, the callable spec the audit imports."""
    if name.startswith("target_") and name[7:].isdigit():
        return synthetic_target(int(name[7:]))
    raise AttributeError(name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--queries", default="200,1000,2000", help="members + non-members")
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # size,n: run one configuration in this process
    args = parser.parse_args()
    if args.one:
        size, n = map(int, args.one.split(","))
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(run_one(size, n, args.generations, Path(work))))
        return
    rows = []
    for size in map(int, args.sizes.split(",")):
        for n in map(int, args.queries.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", f"{size},{n}", "--generations",
                                  str(args.generations)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            first = next(r for r in rows if r["size"] == size)
            growth = ((rows[-1]["peak_mb"] - first["peak_mb"]) / (n - first["queries"])) if n > first["queries"] else None
            print(f"{size:>5} px  n={n:>5}  K={args.generations}  peak {rows[-1]['peak_mb']:>8.1f} MB  "
                  f"{rows[-1]['seconds']:>7.1f} s  growth "
                  + (f"{growth:.3f} MB/query" if growth is not None else "(reference)"), flush=True)


if __name__ == "__main__":
    main()
