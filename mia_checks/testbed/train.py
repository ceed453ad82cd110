"""Training loops of the test bed: the autoencoder and text-conditioned latent denoisers.

Deterministic on one machine: every loop seeds its own generator and runs full-batch on one thread
(the builder sets torch's thread count), so the same seed gives bit-identical weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def to_model_range(images: np.ndarray) -> torch.Tensor:
    """(n, h, w, 3) uint8 → (n, 3, h, w) float in [-1, 1], as diffusers' VAEs expect."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def denoising_step(unet, text_encoder, scheduler, optimizer, x: torch.Tensor, input_ids: torch.Tensor,
                   rng: torch.Generator, train_text_encoder: bool = True) -> None:
    """One optimiser step of the denoising objective ‖ε_θ(x_t, t, c) − ε‖²: ε, then t ~ U{0, …, T−1}, drawn
    from rng in that order (the built artifacts depend on it)."""
    noise = torch.randn(x.shape, generator=rng)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x),), generator=rng)
    with torch.set_grad_enabled(train_text_encoder):
        hidden = text_encoder(input_ids)[0]
    loss = F.mse_loss(unet(scheduler.add_noise(x, noise, t), t, encoder_hidden_states=hidden).sample, noise)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def train_vae(images: np.ndarray, steps: int, seed: int, batch_size: int = 32, lr: float = 2e-3,
              config: dict | None = None):
    """Train the tiny AutoencoderKL (`config`: components.VAE_CONFIG's by default) on images; sets
    scaling_factor to 1 / std of the latents."""
    from .components import make_vae

    torch.manual_seed(seed)
    vae = make_vae(config)
    data = to_model_range(images)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        batch = data[torch.randint(len(data), (batch_size,), generator=rng)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=rng)).sample
        loss = F.mse_loss(recon, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval()
    with torch.no_grad():
        latents = vae.encode(data[:512]).latent_dist.mode()
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    return vae


@torch.no_grad()
def encode_latents(vae, images: np.ndarray) -> torch.Tensor:
    """Scaled posterior means: the deterministic latents the denoiser is trained on."""
    return vae.encode(to_model_range(images)).latent_dist.mode() * vae.config.scaling_factor


def tokenize(tokenizer, captions: list[str], max_length: int | None = None) -> torch.Tensor:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=max_length or tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_denoiser(
    unet,
    text_encoder,
    latents: torch.Tensor,
    input_ids: torch.Tensor,
    steps: int,
    seed: int,
    lr: float = 1e-3,
    repeats: int = 2,
    on_step: Callable[[int], None] | None = None,
    params: list | None = None,
) -> None:
    """Full-batch epsilon-prediction training of unet and text_encoder on (latents, captions).

    Each step sees every training pair `repeats` times with fresh noise and timesteps; on_step(step) is
    called after each optimiser step (used to save early checkpoints of the same run). `params`: what is
    trained (default: every parameter of both; a LoRA adapter's parameters for a LoRA fine-tune).
    """
    from .components import make_train_scheduler

    scheduler = make_train_scheduler()
    rng = torch.Generator().manual_seed(seed)
    params = params if params is not None else list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    latents = latents.repeat(repeats, 1, 1, 1)
    input_ids = input_ids.repeat(repeats, 1)
    unet.train()
    text_encoder.train()
    for step in range(1, steps + 1):
        denoising_step(unet, text_encoder, scheduler, optimizer, latents, input_ids, rng)
        if on_step is not None:
            on_step(step)
    unet.eval()
    text_encoder.eval()
