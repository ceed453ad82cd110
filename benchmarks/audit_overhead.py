"""Audit wall time against the raw pipeline generating the same images (run by hand).

    python benchmarks/audit_overhead.py [--target sd-leaky] [--steps 25] [--generations 1]

Prints, measured side by side in one run:
- cold / raw:  a whole audit with an empty cache (load, generate, embed, six attacks) over the time the
  plain diffusers pipeline takes to generate the same images in the same batches (target ≤ 1.10);
- warm / cold: the same audit again, every image read from the cache (target ≤ 0.05).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    from diffusers import DiffusionPipeline

    from mia_checks.audit import Audit
    from mia_checks.generation import query_seed
    from mia_checks.settings import build_settings
    from mia_checks.testbed import ensure_built

    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="sd-leaky")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    root = ensure_built(["data", "clip", args.target])

    with tempfile.TemporaryDirectory() as cache:
        settings = build_settings({
            "target": str(root / args.target), "members": str(root / "data" / "members"),
            "nonmembers": str(root / "data" / "nonmembers"), "embedder": str(root / "clip"), "guidance": "1",
            "steps": str(args.steps), "generations": str(args.generations), "batch-size": str(args.batch_size),
            "cache-dir": cache, "device": "cpu",
        })

        def audit_all() -> Audit:
            audit = Audit(settings, progress=False)
            for attack in settings.attacks:
                audit.result(attack)
            return audit

        def raw() -> None:
            pipe = DiffusionPipeline.from_pretrained(root / args.target)
            pipe.set_progress_bar_config(disable=True)
            audit = Audit(settings, progress=False)
            jobs = [(c, query_seed(settings.seed, k, c)) for c in audit.captions for k in range(settings.generations)]
            for start in range(0, len(jobs), args.batch_size):
                batch = jobs[start : start + args.batch_size]
                pipe([c for c, _ in batch], num_inference_steps=args.steps, guidance_scale=1.0, output_type="np",
                     generator=[torch.Generator().manual_seed(s) for _, s in batch])

        _, raw_s = timed(raw)
        cold_audit, cold_s = timed(audit_all)
        _, warm_s = timed(audit_all)
    n = len(cold_audit.captions) * args.generations
    print(f"{args.target}: {n} images, {args.steps} steps, batch {args.batch_size}")
    print(f"raw pipeline generation   {raw_s:7.1f} s")
    print(f"cold audit (empty cache)  {cold_s:7.1f} s   cold / raw  = {cold_s / raw_s:.2f}  (target ≤ 1.10)")
    print(f"warm audit (cached)       {warm_s:7.1f} s   warm / cold = {warm_s / cold_s:.2f}  (target ≤ 0.05)")
    print(f"fixed cost of the audit beyond generation: {cold_s - raw_s:.1f} s")


if __name__ == "__main__":
    main()
