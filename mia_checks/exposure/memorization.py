"""Wen et al. (ICLR 2024), "Detecting, Explaining, and Mitigating Memorization in Diffusion Models": a
prompt whose image the model memorised drives the denoiser hard towards that image from the very first
sampling step, whatever the starting noise. The score of a caption c is the magnitude of the text-conditional
part of the noise prediction,

    d(c) = mean over K generations and the first S sampling steps of ‖ε_θ(x_t, t, c) − ε_θ(x_t, t, ∅)‖₂,

x_T ~ N(0, I) seeded from (seed, caption, k), the trajectory continued by the pipeline's scheduler's own
timesteps for a 50-step DDIM schedule with classifier-free guidance 7.5 (Wen et al.'s setting). Cost: 2
denoiser calls per generation per step (2·S·K per prompt). Published: AUC 0.99 over 50 steps and 4
generations, about 0.96 at step 1 alone (Stable Diffusion v1, memorised LAION prompts).

It reads the caption alone: queries that share a caption share a score. The null is the non-members'
distinct captions.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..access.base import Probe, QueryBatch, WhiteBoxOptions

SCHEDULE_STEPS = 50  # the sampling schedule whose first steps are measured
GUIDANCE = 7.5  # how the trajectory continues past the first step (not used when S = 1)


def caption_key(caption: str) -> str:
    """What seeds a caption's starting noise: its text, hashed (queries sharing it share the noise)."""
    return hashlib.sha256(caption.encode("utf-8")).hexdigest()


def measure_memorization(den, batch: QueryBatch, o: WhiteBoxOptions):
    """(b, K): d(c) per generation, averaged over the first S steps."""
    import torch

    keys = [caption_key(c) for c in batch.captions]
    uncond = den.text([""] * len(keys))
    timesteps = den.sampling_timesteps(SCHEDULE_STEPS)[: o.memorization_steps]
    per_generation = []
    for k in range(o.memorization_generations):
        x = den.noise(keys, batch.seed, -1 - k, den.latent_shape)  # t = −1 − k: the k-th starting noise
        x = x * float(getattr(den.scheduler, "init_noise_sigma", 1.0))
        norms = []
        for i, t in enumerate(timesteps):
            cond, free = den.eps(x, t, batch.hidden), den.eps(x, t, uncond)
            norms.append((cond - free).flatten(1).norm(dim=1))
            if i + 1 < len(timesteps):
                x = den.ddim_step(x, t, timesteps[i + 1], None, eps=free + GUIDANCE * (cond - free))
        per_generation.append(torch.stack(norms, 1).mean(1))
    return torch.stack(per_generation, 1)


PROBE = Probe(measure_memorization,
              lambda o: {"steps": o.memorization_steps, "generations": o.memorization_generations,
                         "schedule": SCHEDULE_STEPS, "guidance": GUIDANCE},
              lambda o: 2 * o.memorization_steps * o.memorization_generations)


def caption_null(scores: np.ndarray, captions: list[str]) -> np.ndarray:
    """The non-members' scores, one per distinct caption (shared captions share a score: one draw, not many)."""
    first = {}
    for score, caption in zip(scores, captions):
        first.setdefault(caption, score)
    return np.array(list(first.values()), dtype=float)
