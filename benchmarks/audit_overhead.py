"""Audit wall time against the raw pipeline generating the same images (run by hand).

    python benchmarks/audit_overhead.py [--target sd-leaky] [--steps 25] [--generations 1]
    python benchmarks/audit_overhead.py --architecture sd15 --resolution 512 --queries 200 --device cuda
    python benchmarks/audit_overhead.py --architecture sd15 --resolution 128 --queries 40 --steps 4   # CPU

`--architecture sd15`: a pipeline with Stable Diffusion 1.5's architecture (UNet 860M, VAE 84M, CLIP ViT-L/14
text encoder 123M, from its published configs) and random weights, built offline into --model-dir (kept for
the next run), audited on synthetic smooth images at --resolution; fp16 on CUDA, as the plugin does.

Prints, measured side by side in one run:
- cold / raw:  a whole audit with an empty cache (load, generate, embed, six attacks) over the time the
  plain diffusers pipeline takes to generate the same images in the same batches (target ≤ 1.10);
- warm / cold: the same audit again, every image read from the cache (target ≤ 0.05).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # audit_memory's synthetic reference sets


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# Stable Diffusion 1.5's published component configs (runwayml/stable-diffusion-v1-5), sizes aside.
SD15_UNET = dict(
    in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SD15_SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                      skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)


def build_sd15(folder, resolution: int, tokenizer_folder) -> None:
    """SD 1.5's architecture with random weights (seeded), saved as a diffusers folder in safetensors."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        unet=UNet2DConditionModel(sample_size=resolution // 8, **SD15_UNET),
        vae=AutoencoderKL(sample_size=resolution, **SD15_VAE),
        text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT)),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_folder)),  # the test bed's (offline); ids < 49408
        scheduler=PNDMScheduler(**SD15_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)


def main() -> None:
    from diffusers import DiffusionPipeline

    from mia_checks.audit import Audit
    from mia_checks.generation import query_seed
    from mia_checks.settings import build_settings
    from mia_checks.testbed import ensure_built

    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="sd-leaky")
    parser.add_argument("--architecture", default="testbed", choices=["testbed", "sd15"])
    parser.add_argument("--resolution", type=int, default=512, help="sd15: image size")
    parser.add_argument("--queries", type=int, default=40, help="sd15: members + non-members (≥ 40)")
    parser.add_argument("--model-dir", default=None, help="sd15: where the random-weight pipeline is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", default=None, help="default: 1 on the test bed, SD's 7.5 for sd15")
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    root = ensure_built(["data", "clip", "tokenizer"] + ([args.target] if args.architecture == "testbed" else []))
    guidance = args.guidance or ("1" if args.architecture == "testbed" else "7.5")
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32

    with tempfile.TemporaryDirectory() as cache:
        if args.architecture == "sd15":
            from audit_memory import write_set

            target = Path(args.model_dir or Path(cache) / "sd15")
            if not (target / "model_index.json").is_file():
                _, build_s = timed(lambda: build_sd15(target, args.resolution, root / "tokenizer"))
                print(f"built SD 1.5 architecture with random weights in {build_s:.0f} s: {target}")
            members, nonmembers = Path(cache) / "members", Path(cache) / "nonmembers"
            write_set(members, args.queries // 2, args.resolution, 0)
            write_set(nonmembers, args.queries // 2, args.resolution, args.queries)
        else:
            target, members, nonmembers = root / args.target, root / "data" / "members", root / "data" / "nonmembers"
        settings = build_settings({
            "target": str(target), "members": str(members), "nonmembers": str(nonmembers),
            "embedder": str(root / "clip"), "guidance": guidance, "steps": str(args.steps),
            "generations": str(args.generations), "batch-size": str(args.batch_size),
            "cache-dir": str(Path(cache) / "cache"), "device": args.device, "attacks": "blackbox",
        })

        def audit_all() -> Audit:
            audit = Audit(settings, progress=False)
            for attack in settings.attacks:
                audit.result(attack)
            return audit

        def raw() -> None:
            pipe = DiffusionPipeline.from_pretrained(target, dtype=dtype).to(args.device)
            pipe.set_progress_bar_config(disable=True)
            audit = Audit(settings, progress=False)
            jobs = [(c, query_seed(settings.seed, k, c)) for c in audit.captions for k in range(settings.generations)]
            for start in range(0, len(jobs), args.batch_size):
                batch = jobs[start : start + args.batch_size]
                pipe([c for c, _ in batch], num_inference_steps=args.steps, guidance_scale=float(guidance),
                     output_type="np", generator=[torch.Generator().manual_seed(s) for _, s in batch])

        _, raw_s = timed(raw)
        cold_audit, cold_s = timed(audit_all)
        _, warm_s = timed(audit_all)
    n = len(cold_audit.captions) * args.generations
    name = f"sd15 architecture (random weights) at {args.resolution} px" if args.architecture == "sd15" else args.target
    print(f"{name}: {n} images, {args.steps} steps, guidance {guidance}, batch {args.batch_size}, {args.device} "
          f"{str(dtype).removeprefix('torch.')}")
    print(f"raw pipeline generation   {raw_s:7.1f} s   {n / raw_s:.2f} images/s")
    print(f"cold audit (empty cache)  {cold_s:7.1f} s   cold / raw  = {cold_s / raw_s:.2f}  (target ≤ 1.10)")
    print(f"warm audit (cached)       {warm_s:7.1f} s   warm / cold = {warm_s / cold_s:.2f}  (target ≤ 0.05)")
    print(f"fixed cost of the audit beyond generation: {cold_s - raw_s:.1f} s")


if __name__ == "__main__":
    main()
