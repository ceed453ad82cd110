"""White-box access to token-based text-to-image models: the model's own training loss on the query image's VQ
tokens given its caption (lower = member). One score per image, deterministic and independent of batch and
order. The `loss` attack reads it through `NextTokenAccess` or `MaskedTokenAccess`.

- seq2seq (DALL·E-mini-style, `targets.seq2seq.BartVQ`): teacher-forced negative log-likelihood of the image's codes,
  each given the caption and the true previous codes, over the whole shared vocabulary (as trained).
- aMUSEd (MUSE-style masked token prediction, diffusers `AmusedPipeline`): cross-entropy of the masked tokens
  at fixed masks, one per mask ratio, drawn from `seed` and shared by every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import WhiteBoxError
from .base import MASKED_TOKEN, NEXT_TOKEN, WhiteBoxOptions, check_image_size

DEFAULT_MASK_RATIOS = WhiteBoxOptions().token_mask_ratios


def _to_range(images: np.ndarray, pixel_range: tuple[float, float]):
    import torch

    low, high = pixel_range
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return x * (high - low) + low


def _vq_factor(vq) -> int:
    return 2 ** (len(vq.config.block_out_channels) - 1)


@dataclass(frozen=True)
class TokenBatch:
    images: np.ndarray  # (b, H, W, 3) uint8
    captions: list[str]
    seed: int


def seq2seq_loss(model, images_uint8: np.ndarray, captions: list[str]):
    """(b,) mean per-token NLL (nats) of each image's VQ codes under teacher forcing."""
    import torch

    codes = model.image_codes(images_uint8)
    logits = model.teacher_forced_logits(list(captions), codes)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), codes + model.text_vocab_size,
                                            reduction="none")
    return nll.mean(1)


def masks_for(seed: int, grid: tuple[int, int], ratios: tuple[float, ...] = DEFAULT_MASK_RATIOS):
    """One boolean mask per ratio: exactly round(ratio·H·W) positions, chosen by a generator seeded from
    (seed, k); never empty."""
    import torch

    n = grid[0] * grid[1]
    masks = []
    for k, ratio in enumerate(ratios):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) * 1000 + k))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[: max(1, round(ratio * n))]] = True
        masks.append(mask.view(grid))
    return torch.stack(masks)


def amused_loss(pipeline, images_uint8: np.ndarray, captions: list[str], seed: int,
                mask_ratios: tuple[float, ...] = DEFAULT_MASK_RATIOS, pixel_range: tuple[float, float] = (0.0, 1.0),
                aesthetic_score: float = 6.0):
    """(b,) mean over the fixed masks of the masked tokens' cross-entropy (nats), as aMUSEd is trained: masked
    positions get the mask token, the transformer reads the caption (penultimate hidden states and pooled
    embedding) and micro-conditions (width, height, crop 0, 0, aesthetic score) and predicts them.
    `pixel_range`: what the VQModel's encoder reads; diffusers' aMUSEd works in [0, 1] (its image processor
    does not normalise)."""
    import torch

    vq, transformer = pipeline.vqvae, pipeline.transformer
    mask_id = pipeline.scheduler.config.mask_token_id
    height, width = images_uint8.shape[1:3]
    device = transformer.device
    micro = torch.tensor([float(width), float(height), 0.0, 0.0, aesthetic_score], device=device)
    latents = vq.encode(_to_range(images_uint8, pixel_range).to(device, vq.dtype)).latents
    _, _, (_, _, indices) = vq.quantize(latents)
    tokens = indices.reshape(len(images_uint8), latents.shape[2], latents.shape[3])
    ids = pipeline.tokenizer(list(captions), padding="max_length", max_length=pipeline.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
    out = pipeline.text_encoder(ids, return_dict=True, output_hidden_states=True)
    per_mask = []
    for mask in masks_for(seed, tuple(tokens.shape[1:]), mask_ratios).to(device):
        inputs = torch.where(mask, mask_id, tokens)
        logits = transformer(inputs, encoder_hidden_states=out.hidden_states[-2], pooled_text_emb=out.text_embeds,
                             micro_conds=micro.expand(len(images_uint8), -1).to(transformer.dtype))
        ce = torch.nn.functional.cross_entropy(logits.float(), tokens, reduction="none")  # (b, H, W)
        per_mask.append(ce[:, mask].mean(1))
    return torch.stack(per_mask, 1).mean(1)


class _TokenAccess:
    """What both token accesses share: the image-size check and the batch a probe measures (images, captions
    and the seed of aMUSEd's masks; no noise is drawn, so the image hashes are not needed)."""

    name: str
    image_size: int

    def check_images(self, images: list[np.ndarray], what: str) -> None:
        check_image_size(images, self.image_size, self.name, what)

    def query_batch(self, images: np.ndarray, captions: list[str], hashes: list[str], seed: int) -> TokenBatch:
        return TokenBatch(images, list(captions), seed)


class NextTokenAccess(_TokenAccess):
    """White-box access to a seq2seq token model (`targets.seq2seq.BartVQ`): its teacher-forced token NLL."""

    kind = NEXT_TOKEN

    def __init__(self, model, name: str = "the target"):
        if not hasattr(model, "image_codes"):
            raise WhiteBoxError(f"{name}: its files hold no VQ encoder to turn query images into codes (min-dalle "
                                "ships the VQGAN decoder only); use --mia-attacks=blackbox.")
        self.model, self.name = model, name
        self.image_size = model.image_tokens[0] * _vq_factor(model.vqvae)

    def loss(self, batch: TokenBatch, options: WhiteBoxOptions):
        return seq2seq_loss(self.model, batch.images, batch.captions)


class MaskedTokenAccess(_TokenAccess):
    """White-box access to aMUSEd (`AmusedPipeline`): its masked-token cross-entropy at fixed, seeded masks."""

    kind = MASKED_TOKEN

    def __init__(self, pipeline, name: str = "the target"):
        missing = [part for part in ("vqvae", "transformer", "text_encoder", "tokenizer", "scheduler")
                   if getattr(pipeline, part, None) is None]
        if missing:
            raise WhiteBoxError(f"{name} ({type(pipeline).__name__}) has no {', '.join(missing)}: the token loss "
                                "queries an aMUSEd pipeline; use --mia-attacks=blackbox.")
        self.pipeline, self.name = pipeline, name
        self.image_size = int(pipeline.transformer.config.sample_size) * _vq_factor(pipeline.vqvae)

    def loss(self, batch: TokenBatch, options: WhiteBoxOptions):
        return amused_loss(self.pipeline, batch.images, batch.captions, batch.seed, options.token_mask_ratios)


def _batched(score, images: np.ndarray, captions: list[str], batch_size: int) -> np.ndarray:
    import torch

    with torch.inference_mode():
        parts = [score(images[i : i + batch_size], captions[i : i + batch_size])
                 for i in range(0, len(images), batch_size)]
    return torch.cat(parts).double().cpu().numpy()


def seq2seq_token_nll(model, images_uint8: np.ndarray, captions: list[str], batch_size: int = 64) -> np.ndarray:
    """Mean per-token NLL (nats) of each image's VQ codes under teacher forcing; images (n, H, W, 3) uint8."""
    return _batched(lambda im, c: seq2seq_loss(model, im, c), images_uint8, list(captions), batch_size)


def amused_masked_ce(pipeline, images_uint8: np.ndarray, captions: list[str], seed: int = 0,
                     mask_ratios: tuple[float, ...] = DEFAULT_MASK_RATIOS, pixel_range: tuple[float, float] = (0.0, 1.0),
                     aesthetic_score: float = 6.0, batch_size: int = 64) -> np.ndarray:
    """`amused_loss` over (n, H, W, 3) uint8 images, in batches."""
    return _batched(lambda im, c: amused_loss(pipeline, im, c, seed, mask_ratios, pixel_range, aesthetic_score),
                    images_uint8, list(captions), batch_size)
