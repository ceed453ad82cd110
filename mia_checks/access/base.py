"""What white-box access to a target is: its kinds, the options every white-box measurement takes, the batch a
probe measures, and the probe itself (what an attack asks of one kind of access, at what cost).

Kinds: a latent diffusion denoiser (`denoiser.Denoiser`: Stable Diffusion, LDM), an autoregressive seq2seq
token model (`tokens.NextTokenAccess`: DALL·E-mini-style) and a MUSE-style masked token model
(`tokens.MaskedTokenAccess`: aMUSEd). Definitions of what each attack measures: docs/attacks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import WhiteBoxError

DENOISER = "denoiser"  # a latent diffusion denoiser (access.denoiser.Denoiser)
NEXT_TOKEN = "next-token"  # an autoregressive seq2seq token model (access.tokens.NextTokenAccess)
MASKED_TOKEN = "masked-token"  # a MUSE-style masked token model, aMUSEd (access.tokens.MaskedTokenAccess)
TOKEN_KINDS = (NEXT_TOKEN, MASKED_TOKEN)
CLID_REDUCTIONS = ("null", "first", "middle", "last")  # CLiD's reduced captions: null, thirds of the words


@dataclass(frozen=True)
class WhiteBoxOptions:
    """Every choice the white-box attacks make, each an option (--mia-loss-timesteps, …), echoed in the
    report and part of the score cache's key."""

    loss_timesteps: tuple[int, ...] = (100, 200, 300, 400, 500)
    sima_timesteps: tuple[int, ...] = (50, 100, 200)
    pia_timestep: int = 200
    secmi_timestep: int = 100
    secmi_interval: int = 10
    clid_timesteps: tuple[int, ...] = (440, 450, 460)
    clid_captions: tuple[str, ...] = CLID_REDUCTIONS
    token_mask_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)  # aMUSEd's token loss: one fixed mask per ratio
    lowpass: int = 0  # FreMIA's low-pass on loss, PIA, SecMI and CLiD errors: half-width kept; 0 = off
    memorization_steps: int = 1  # exposure.memorization: first sampling steps measured
    memorization_generations: int = 4  # and starting noises per caption (Wen et al.'s K)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class QueryBatch:
    """What a denoiser probe gets for a batch of queries: latents x₀, caption states c, and what seeds the noise."""

    x0: Any  # (b, C, h, w) float32 tensor
    hidden: Any  # (b, L, D) text encoder states
    captions: list[str]
    hashes: list[str]
    seed: int


@dataclass(frozen=True)
class Probe:
    """What a white-box attack asks of one kind of white-box access: measure(access, batch, options) → (b, d)
    tensor, batch from access.query_batch; its settings (the cache key and the report) and its cost in model
    calls (denoiser or transformer forward passes) per image."""

    measure: Callable[[Any, Any, WhiteBoxOptions], Any]
    settings: Callable[[WhiteBoxOptions], dict]
    calls: Callable[[WhiteBoxOptions], int]
    # Denoiser probes: the last diffusion timestep the probe touches, and the options that set it; checked
    # against the target's scheduler before anything runs.
    last_timestep: Callable[[WhiteBoxOptions], int] | None = None
    timestep_options: str = ""


def two_text_encoders(pipeline_class: str) -> str:
    """Why the white-box attacks cannot query an SDXL-style pipeline (the reason its target spec gives, and the
    denoiser's guard when an SDXL pipeline reaches it anyway)."""
    return (f"{pipeline_class} has two text encoders (SDXL): white-box attacks do not support its added "
            "conditioning yet")


def check_image_size(images: list[np.ndarray], size: int, name: str, what: str) -> None:
    """White-box attacks score the images as the model was trained on them: at its resolution."""
    wrong = {im.shape[:2] for im in images} - {(size, size)}
    if wrong:
        h, w = sorted(wrong)[0]
        raise WhiteBoxError(
            f"{what}: query images of {h}×{w} pixels, but {name} works at {size}×{size}. White-box attacks score "
            f"the images as the model was trained on them: resize (and centre-crop) the reference sets to "
            f"{size}×{size}, as your training script did.")
