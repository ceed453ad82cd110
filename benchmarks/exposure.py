"""The exposure tests on ground truth, over seeds (run by hand; issue 21):

    python benchmarks/exposure.py --seeds 20 [--targets finetune-dup,finetune,finetune-null] [--tests memorization]
    python benchmarks/exposure.py --seeds 20 --targets emoji-finetune-dup,emoji-finetune,emoji-finetune-null

`finetune-dup` is `sd-base` fine-tuned on the 128 members with 5 of them planted 20× each (build.json names
them); `finetune` the same recipe without duplicates; `finetune-null` never saw the members. Per target and
seed: how many planted members each test flags (recall), how many other members, and the seconds and
denoiser calls per prompt. Each seed changes the memorisation noise and the generations (regurgitation).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import audit_sets, ensure_built
from mia_checks.testbed.build import ALIASES, audit_artifacts, audit_options


def planted(root: Path, target: str) -> set[str]:
    info = json.loads((root / ALIASES.get(target, target) / "build.json").read_text())
    return set(info.get("planted", []))


def run(target: str, seed: int, root: Path, cache: str, tests: list[str], generations: int | None):
    raw = {**audit_options(root, target), "seed": str(seed), "cache-dir": cache,
           "attacks": "all", "generations": None if generations is None else str(generations)}
    audit = Audit(build_settings(raw), progress=False)
    files = [f.name for f in audit.members.files]
    out = {}
    for test in tests:
        start = time.perf_counter()
        result = audit.exposure(test)
        out[test] = ({files[i] for i in result.flagged}, time.perf_counter() - start, result)
    return out, len(files)


def template_copies(root: Path, cache: str) -> None:
    """Would a template copy (layout kept, details changed) count as reproduced? Each non-member image is made
    into a copy of itself — shifted by 2 px, its strokes thickened (max filter 3 × 3) and its contrast changed
    by 20% — and compared with the image as regurgitation compares a generation, against the bound that the
    non-members' real generations set (`finetune-null`: a model that never saw them)."""
    from PIL import Image, ImageFilter

    from mia_checks.exposure import prediction_bound
    from mia_checks.exposure.regurgitation import copy_distances

    members, nonmembers = (str(root / s) for s in audit_sets("finetune-null"))
    raw = {"target": str(root / "sd-finetune-null"), "members": members, "nonmembers": nonmembers,
           "embedder": str(root / "clip"), "guidance": "1", "cache-dir": cache, "attacks": "II-P"}
    audit = Audit(build_settings(raw), progress=False)
    f, m = audit.features, len(audit.members)
    real = copy_distances(f.query_thumbnails[m:], f.generated_thumbnails[m:], f.query_embeddings[m:],
                          f.generated_embeddings[m:])
    images = [audit.query_images[i] for i in range(m, 2 * m)]
    copies = []
    for image in images:
        picture = Image.fromarray(np.roll(image, 2, axis=1)).filter(ImageFilter.MaxFilter(3))
        copies.append(np.clip(np.asarray(picture, dtype=float) * 0.8 + 25, 0, 255).astype(np.uint8))
    pixels = np.stack(copies).astype(np.float32) / 255.0
    embeddings = audit.embedder.embed_images(copies)
    template = copy_distances(f.query_thumbnails[m:], pixels[:, None], f.query_embeddings[m:], embeddings[:, None])
    level = 0.05 / (2 * m)
    for name in ("pixel", "embedding"):
        bound = np.exp(-prediction_bound(1 / real[name][0], level))
        caught = np.mean(template[name][0] < bound)
        print(f"template copies, {name}: median distance {np.median(template[name][0]):.3f} (real generations "
              f"{np.median(real[name][0]):.3f}, bound {bound:.3f} at α = 0.05): {caught:.0%} of {m} counted as "
              "reproduced", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--targets", default="finetune-dup,finetune,finetune-null")
    parser.add_argument("--tests", default="memorization,regurgitation")
    parser.add_argument("--generations", type=int, default=None, help="regurgitation's K (default: the plugin's)")
    parser.add_argument("--templates", action="store_true", help="also measure whether template copies count")
    args = parser.parse_args()
    targets, tests = args.targets.split(","), args.tests.split(",")
    root = ensure_built(["data", "clip", *(a for t in targets for a in audit_artifacts(t))])  # clip: --templates
    with tempfile.TemporaryDirectory() as cache:
        if args.templates:
            template_copies(root, cache)
        for target in targets:
            truth = planted(root, target)
            rows = {t: [] for t in tests}
            for seed in range(args.seeds):
                found, m = run(target, seed, root, cache, tests, args.generations)
                for test, (flagged, seconds, result) in found.items():
                    hits, others = len(flagged & truth), len(flagged - truth)
                    rows[test].append((hits, others, seconds, result.calls_per_image))
                    print(f"{target} seed {seed:2d} {test}: planted {hits}/{len(truth)}, other members {others}"
                          f"  bounds {', '.join(f'{k} {v:.4g}' for k, v in result.thresholds.items())}"
                          f"  {seconds:.1f} s", flush=True)
            for test, r in rows.items():
                hits, others, seconds, calls = (np.array(c) for c in zip(*r))
                recall = f"recall ≥ 4 of {len(truth)} in {np.mean(hits >= 4):.0%} of seeds, " if truth else ""
                print(f"== {target} {test}: {recall}flags nothing in {np.mean(hits + others == 0):.0%} of seeds; "
                      f"other members flagged {others.mean():.2f} per seed on average (of {m - len(truth)}); "
                      f"{calls[0]} denoiser calls per prompt; {seconds.mean() / (2 * m):.3f} s per prompt "
                      "(first seed includes loading)", flush=True)


if __name__ == "__main__":
    main()
