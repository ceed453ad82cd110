"""White-box membership signal: the denoising error of a latent diffusion pipeline (the loss attack).

For image x with caption c, the error at timestep t is ||ε − ε_θ(√ᾱ_t·z + √(1−ᾱ_t)·ε, t, c)||² with
z the scaled VAE latent of x. Members were trained on, so their error is lower. Noise and timesteps are
fixed by the seed, so every image meets the same draws and the score is deterministic.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TIMESTEPS = (100, 200, 300, 400, 500)


def denoising_errors(
    pipeline,
    images: np.ndarray,
    captions: list[str],
    timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS,
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """Mean denoising error per image, over the given timesteps; images are (n, h, w, 3) uint8."""
    import torch

    from .testbed.train import to_model_range

    text_encoder = getattr(pipeline, "text_encoder", None) or pipeline.bert
    vae = getattr(pipeline, "vae", None) or pipeline.vqvae
    alphas = torch.as_tensor(pipeline.scheduler.alphas_cumprod)
    # LDM pads prompts to 77 tokens; Stable Diffusion to the tokenizer's length.
    max_length = 77 if hasattr(pipeline, "bert") else pipeline.tokenizer.model_max_length
    errors = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_model_range(images[start : start + batch_size])
            ids = pipeline.tokenizer(
                captions[start : start + batch_size],
                padding="max_length",
                max_length=max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            z = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
            hidden = text_encoder(ids)[0]
            per_t = []
            for t in timesteps:
                rng = torch.Generator().manual_seed(seed * 1000 + t)
                noise = torch.randn(z.shape[1:], generator=rng).expand_as(z)
                a = alphas[t]
                noisy = a.sqrt() * z + (1 - a).sqrt() * noise
                tt = torch.full((len(z),), t, dtype=torch.long)
                pred = pipeline.unet(noisy, tt, encoder_hidden_states=hidden).sample
                per_t.append(((pred - noise) ** 2).flatten(1).mean(1))
            errors.append(torch.stack(per_t, 1).mean(1))
    return torch.cat(errors).numpy()
