"""Sampling of token models (DALL·E-mini-style seq2seq, in this project's layout or min-dalle's): image codes
drawn one at a time, then decoded to pixels.

Sampling (`sample_images`) is DALL·E mini's: temperature, top-k and "supercondition" (classifier-free guidance
on logits: f·cond + (1 − f)·uncond, the unconditional row being the empty caption; f = 1 turns it off). Each
image is sampled alone with its own CPU generator, so it depends only on its prompt and seed. Nothing here
touches torch's global state (grad mode is set by context managers, no global RNG, no thread count).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .base import quiet_libraries


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int | None = None  # None: every image code
    supercondition: float = 1.0  # 1: no guidance (a model never trained on empty captions needs no more)

    def describe(self) -> str:
        return (f"temperature {self.temperature:g}, top-k {self.top_k if self.top_k else 'all'}, "
                f"supercondition {self.supercondition:g}")

    def override(self, temperature: float | None, top_k: int | None, supercondition: float | None) -> Sampling:
        """The model's defaults with the user's options on top (None keeps the default)."""
        return Sampling(self.temperature if temperature is None else float(temperature),
                        self.top_k if top_k is None else int(top_k),
                        self.supercondition if supercondition is None else float(supercondition))


class TokenModel(Protocol):
    """What the sampler needs of a seq2seq model."""

    codebook_size: int
    n_image_tokens: int

    def start(self, prompts: list[str]) -> Callable[[Any], Any]:
        """A stepper for these prompts (one row each): step(prev_codes or None) → logits (rows, codebook)
        for the next image token, given the previous code of each row (None: the image-start token)."""

    def decode_codes(self, codes) -> np.ndarray:
        """(n, n_image_tokens) codes → (n, H, W, 3) uint8 images."""


def draw_code(logits, sampling: Sampling, generator):
    """One code from logits over the codebook: temperature, top-k (ties at the k-th value kept), softmax."""
    import torch

    logits = logits.float() / sampling.temperature
    if sampling.top_k and sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[0]


def sample_codes(model: TokenModel, prompt: str, seed: int, sampling: Sampling):
    """The image codes of one (prompt, seed): autoregressive, the prompt alone in its batch."""
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    guided = sampling.supercondition != 1.0
    with torch.inference_mode():
        step = model.start([prompt, ""] if guided else [prompt])
        codes, previous = [], None
        for _ in range(model.n_image_tokens):
            logits = step(previous)
            if guided:
                logits = sampling.supercondition * logits[0] + (1 - sampling.supercondition) * logits[1]
            else:
                logits = logits[0]
            code = draw_code(logits, sampling, generator)
            codes.append(code)
            previous = code.expand(2 if guided else 1)
        return torch.stack(codes)


def sample_images(model: TokenModel, prompts: list[str], seeds: list[int], sampling: Sampling) -> list[np.ndarray]:
    import torch

    images = []
    for prompt, seed in zip(prompts, seeds):
        codes = sample_codes(model, prompt, seed, sampling)
        with torch.inference_mode():  # decoded alone too: a batch's convolutions may round differently
            images.append(model.decode_codes(codes[None])[0])
    return images


class Seq2SeqRunner:
    """Loads the model on the first call only (a run whose images are all cached never loads it)."""

    def __init__(self, load: Callable[[], TokenModel], sampling: Sampling, device: str):
        self.load, self.sampling, self.device = load, sampling, device
        self.model: Any = None

    def __call__(self, prompts: list[str], seeds: list[int]) -> list[np.ndarray]:
        return sample_images(self.loaded(), prompts, seeds, self.sampling)

    def loaded(self) -> TokenModel:
        """The model, loaded now if it was not (what the white-box loss queries too)."""
        if self.model is None:
            import torch

            quiet_libraries()
            with torch.random.fork_rng(devices=[]):  # whatever a library's loading draws, the caller's RNG is kept
                self.model = self.load().to(self.device)
        return self.model
