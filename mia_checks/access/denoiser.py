"""White-box access to a latent diffusion pipeline (Stable Diffusion and LDM families): what the
white-box attacks ask of the model's owner's weights.

Notation of docs/attacks.md: x₀ = the scaled VAE latent of the query (posterior mean × scaling
factor); c = the text encoder's hidden states of the caption; ᾱ_t from the pipeline's own scheduler;
ε_θ(x_t, t, c) the denoiser's prediction converted to ε whatever the model predicts; no classifier-free
guidance. Everything runs on the pipeline's device and dtype (fp16 on CUDA); results come back float32.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import WhiteBoxError
from .base import DENOISER, QueryBatch, check_image_size, two_text_encoders

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def noise_seed(seed: int, image_hash: str, t: int) -> int:
    """Seed of the noise drawn for one image at timestep t: from (seed, image content, t), so that a score
    never depends on the batch or the order it was computed in."""
    digest = hashlib.sha256(f"{seed}\0{image_hash}\0{t}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFFFFFFFFFFFFFF


class Denoiser:
    kind = DENOISER

    def __init__(self, pipeline, name: str = "the target"):
        self.name = name
        self.unet = getattr(pipeline, "unet", None)
        self.text_encoder = getattr(pipeline, "text_encoder", None) or getattr(pipeline, "bert", None)
        self.vae = getattr(pipeline, "vae", None) or getattr(pipeline, "vqvae", None)
        self.tokenizer = getattr(pipeline, "tokenizer", None)
        scheduler = getattr(pipeline, "scheduler", None)
        missing = [what for what, part in (("a UNet denoiser (unet)", self.unet), ("a text encoder", self.text_encoder),
                                           ("an autoencoder (vae)", self.vae), ("a tokenizer", self.tokenizer),
                                           ("a noise scheduler with alphas_cumprod",
                                            getattr(scheduler, "alphas_cumprod", None)))
                   if part is None]
        if missing:
            raise WhiteBoxError(
                f"{name} ({type(pipeline).__name__}) has no {', '.join(missing)}: the white-box attacks query a "
                "latent diffusion denoiser (Stable Diffusion or LDM layout). Run the black-box attacks instead: "
                "--mia-attacks=blackbox.")
        if getattr(pipeline, "text_encoder_2", None) is not None:  # e.g. an SDXL single file read without its configs
            raise WhiteBoxError(f"{name}: {two_text_encoders(type(pipeline).__name__)}; use --mia-attacks=blackbox.")
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTION_TYPES:
            raise WhiteBoxError(f"{name}: the scheduler's prediction_type {self.prediction_type!r} is not supported "
                                f"(supported: {', '.join(PREDICTION_TYPES)}); use --mia-attacks=blackbox.")
        import torch

        self.alphas = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64)
        self.scheduler = scheduler
        # LDMTextToImagePipeline pads every prompt to 77 tokens; Stable Diffusion to its tokenizer's length.
        self.max_length = 77 if hasattr(pipeline, "bert") else self.tokenizer.model_max_length
        self.device, self.dtype = self.unet.device, self.unet.dtype
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_size = int(self.unet.config.sample_size) * factor

    def check_images(self, images: list[np.ndarray], what: str) -> None:
        check_image_size(images, self.image_size, self.name, what)

    def query_batch(self, images: np.ndarray, captions: list[str], hashes: list[str], seed: int) -> QueryBatch:
        """What a probe measures: the queries' latents and caption states, and what seeds their noise."""
        return QueryBatch(self.latents(images), self.text(captions), list(captions), list(hashes), seed)

    def alpha(self, t: int) -> float:
        if not 0 <= t < len(self.alphas):  # preflight checks the options; this guards any other caller
            raise WhiteBoxError(f"{self.name}: timestep {t} is outside its scheduler's 0–{len(self.alphas) - 1}.")
        return float(self.alphas[t])

    def latents(self, images: np.ndarray):
        """(b, h, w, 3) uint8 → x₀, the scaled posterior mean (b, C, h/f, w/f) in float32."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        x = x.to(self.device, self.vae.dtype)
        encoded = self.vae.encode(x)
        z = encoded.latent_dist.mean if hasattr(encoded, "latent_dist") else encoded.latents
        return z.float() * float(self.vae.config.scaling_factor)

    def text(self, captions: list[str]):
        ids = self.tokenizer(list(captions), padding="max_length", max_length=self.max_length, truncation=True,
                             return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0]

    def noise(self, hashes: list[str], seed: int, t: int, shape: tuple[int, ...]):
        """One ε per image, from noise_seed(seed, image hash, t), drawn on the CPU (the same on any device)."""
        import torch

        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(noise_seed(seed, h, t)))
                            for h in hashes]).to(self.device)

    def add_noise(self, x0, eps, t: int):
        """x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε."""
        a = self.alpha(t)
        return a**0.5 * x0 + (1 - a) ** 0.5 * eps

    def eps(self, x_t, t: int, hidden):
        """ε_θ(x_t, t, c), float32, converted from v- or x₀-prediction."""
        import torch

        timesteps = torch.full((len(x_t),), int(t), dtype=torch.long, device=self.device)
        out = self.unet(x_t.to(self.dtype), timesteps, encoder_hidden_states=hidden.to(self.dtype)).sample.float()
        a = self.alpha(t)
        if self.prediction_type == "v_prediction":  # v = √ᾱ·ε − √(1−ᾱ)·x₀  ⇒  ε = √ᾱ·v + √(1−ᾱ)·x_t
            return a**0.5 * out + (1 - a) ** 0.5 * x_t
        if self.prediction_type == "sample":  # x̂₀  ⇒  ε = (x_t − √ᾱ·x̂₀) / √(1−ᾱ)
            return (x_t - a**0.5 * out) / (1 - a) ** 0.5
        return out

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the denoiser's latents."""
        size = int(self.unet.config.sample_size)
        return int(self.unet.config.in_channels), size, size

    def sampling_timesteps(self, steps: int) -> list[int]:
        """The timesteps the pipeline's own scheduler samples at with `steps` inference steps, first first."""
        import copy

        scheduler = copy.deepcopy(self.scheduler)  # set_timesteps changes it; the pipeline's stays as it was
        scheduler.set_timesteps(steps)
        return [int(t) for t in scheduler.timesteps]

    def ddim_step(self, x_t, t: int, s: int, hidden, eps=None):
        """Φ(x_t, t→s) = √ᾱ_s·x̂₀ + √(1−ᾱ_s)·ε_θ(x_t, t, c), x̂₀ = (x_t − √(1−ᾱ_t)·ε_θ) / √ᾱ_t: deterministic;
        s > t inverts, s < t denoises. `eps`: a prediction already made (e.g. guided), else ε_θ(x_t, t, c)."""
        eps = self.eps(x_t, t, hidden) if eps is None else eps
        a_t, a_s = self.alpha(t), self.alpha(s)
        x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        return a_s**0.5 * x0 + (1 - a_s) ** 0.5 * eps
