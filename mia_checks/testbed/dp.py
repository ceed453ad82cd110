"""DP-SGD fine-tunes of sd-base: the defense that tracking mode follows across releases.

The recipe of `finetune.py` (UNet only, random flip, AdamW, batch 16, 40 epochs, the same members), trained
with DP-SGD through Opacus: Poisson-sampled batches (expected size 16), each sample's gradient clipped to
`max_grad_norm`, Gaussian noise of std σ·max_grad_norm added to their sum, and the PRV accountant's ε at
δ = 1/(2·n_train). σ is chosen by Opacus for the target ε. The control is the same run with σ = 0: the same
clipping and sampling, no noise, no guarantee (ε = ∞), so that a fall in leakage is the noise's doing.

The text encoder is frozen (as in train_text_to_image.py), so the captions' hidden states are computed once;
only the UNet sees per-sample gradients.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .finetune import RECIPE

# name → target ε (None: the control, clipped and sampled alike but without noise)
DP_TARGETS = {"sd-finetune-dp-control": None, "sd-finetune-dp50": 50.0, "sd-finetune-dp8": 8.0,
              "sd-finetune-dp1": 1.0}
DP_RECIPE = {**RECIPE, "max_grad_norm": 1.0, "sampling": "poisson", "accountant": "prv"}


def dp_delta(n_train: int) -> float:
    """δ = 1/(2n): below the 1/n at which a mechanism may publish one whole record and still be (0, δ)-DP."""
    return 1.0 / (2 * n_train)


def dp_finetune(pipe, images: np.ndarray, captions: list[str], seed: int, target_epsilon: float | None,
                recipe: dict = DP_RECIPE) -> dict:
    """Fine-tune the pipeline's UNet in place with DP-SGD; returns the privacy record (what privacy.json holds).

    Deterministic: batches, noise and flips come from generators seeded by `seed`.
    """
    import warnings

    from opacus import PrivacyEngine
    from opacus.accountants.utils import get_noise_multiplier
    from torch.utils.data import DataLoader, TensorDataset

    from .components import make_train_scheduler
    from .train import encode_latents, tokenize

    # Opacus's advice on secure RNG (a test bed wants reproducible noise), on RDP orders (the PRV accountant
    # decides), and torch's note on backward hooks over inputs that need no gradient: not the builder's news.
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    torch.manual_seed(seed)
    n = len(images)
    latents = encode_latents(pipe.vae, images)
    flipped = encode_latents(pipe.vae, np.ascontiguousarray(images[:, :, ::-1]))
    with torch.no_grad():
        hidden = pipe.text_encoder(tokenize(pipe.tokenizer, captions))[0]
    delta = dp_delta(n)
    sample_rate = recipe["batch_size"] / n
    steps = recipe["epochs"] * (n // recipe["batch_size"])
    sigma = 0.0 if target_epsilon is None else get_noise_multiplier(
        target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps,
        accountant=recipe["accountant"])

    rng = torch.Generator().manual_seed(seed)
    unet = pipe.unet
    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe["lr"], weight_decay=1e-2)
    loader = DataLoader(TensorDataset(latents, flipped, hidden), batch_size=recipe["batch_size"],
                        generator=torch.Generator().manual_seed(seed + 1))
    engine = PrivacyEngine(accountant=recipe["accountant"])
    model, optimizer, loader = engine.make_private(
        module=unet, optimizer=optimizer, data_loader=loader, noise_multiplier=sigma,
        max_grad_norm=recipe["max_grad_norm"], poisson_sampling=True,
        noise_generator=torch.Generator().manual_seed(seed + 2))
    scheduler = make_train_scheduler()
    done = 0
    while done < steps:  # Poisson batches: `steps` optimiser steps, each batch drawn anew
        for x, xf, h in loader:
            if done == steps:
                break
            if len(x) == 0:  # P = (1 − q)^n ≈ 4e-8 per step: never seen, but a skipped step would go unaccounted
                raise RuntimeError("an empty Poisson batch; change the seed")
            flip = torch.rand(len(x), generator=rng) < 0.5
            x = torch.where(flip[:, None, None, None], xf, x)
            noise = torch.randn(x.shape, generator=rng)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x),), generator=rng)
            loss = F.mse_loss(model(scheduler.add_noise(x, noise, t), t, encoder_hidden_states=h).sample, noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
    model.remove_hooks()
    unet.eval()
    for p in unet.parameters():  # Opacus leaves per-sample gradients on the parameters
        p.grad_sample = None
        p.grad = None
    # The control proves nothing: ε None (the builder writes no privacy.json for it).
    epsilon = None if target_epsilon is None else float(engine.get_epsilon(delta))
    return {"epsilon": epsilon, "delta": delta, "noise_multiplier": float(sigma),
            "max_grad_norm": recipe["max_grad_norm"], "steps": steps, "sample_rate": sample_rate,
            "accountant": recipe["accountant"], "mechanism": "DP-SGD (Opacus, Poisson sampling)",
            "training_images": n}
