"""White-box loss of token-based text-to-image models: the model's own training loss on the query image's VQ
tokens given its caption (lower = member). Not wired into the attack registry yet: plain functions, one score
per image, deterministic and independent of batch and order.

- seq2seq (DALL·E-mini-style, `seq2seq.BartVQ`): teacher-forced negative log-likelihood of the image's codes,
  each given the caption and the true previous codes, over the whole shared vocabulary (as trained).
- aMUSEd (MUSE-style masked token prediction, diffusers `AmusedPipeline`): cross-entropy of the masked tokens
  at fixed masks, one per mask ratio, drawn from `seed` and shared by every image.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MASK_RATIOS = (0.25, 0.5, 0.75)


def _to_range(images: np.ndarray, pixel_range: tuple[float, float]):
    import torch

    low, high = pixel_range
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return x * (high - low) + low


def seq2seq_token_nll(model, images_uint8: np.ndarray, captions: list[str], batch_size: int = 64) -> np.ndarray:
    """Mean per-token NLL (nats) of each image's VQ codes under teacher forcing; images (n, H, W, 3) uint8."""
    import torch

    scores = []
    with torch.inference_mode():
        for start in range(0, len(images_uint8), batch_size):
            codes = model.image_codes(images_uint8[start : start + batch_size])
            logits = model.teacher_forced_logits(list(captions[start : start + batch_size]), codes)
            targets = codes + model.text_vocab_size
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")
            scores.append(nll.mean(1))
    return torch.cat(scores).cpu().numpy().astype(np.float64)


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


def amused_masked_ce(pipeline, images_uint8: np.ndarray, captions: list[str], seed: int = 0,
                     mask_ratios: tuple[float, ...] = DEFAULT_MASK_RATIOS, pixel_range: tuple[float, float] = (-1.0, 1.0),
                     aesthetic_score: float = 6.0, batch_size: int = 64) -> np.ndarray:
    """Mean over the fixed masks of the masked tokens' cross-entropy (nats), as aMUSEd is trained: masked
    positions get the mask token, the transformer reads the caption (penultimate hidden states and pooled
    embedding) and micro-conditions (width, height, crop 0, 0, aesthetic score) and predicts them.
    `pixel_range`: what the VQModel's encoder was trained on (the test bed's: [-1, 1])."""
    import torch

    vq, transformer = pipeline.vqvae, pipeline.transformer
    mask_id = pipeline.scheduler.config.mask_token_id
    height, width = images_uint8.shape[1:3]
    device = transformer.device
    micro = torch.tensor([float(width), float(height), 0.0, 0.0, aesthetic_score], device=device)
    scores = []
    with torch.inference_mode():
        for start in range(0, len(images_uint8), batch_size):
            batch = images_uint8[start : start + batch_size]
            latents = vq.encode(_to_range(batch, pixel_range).to(device)).latents
            _, _, (_, _, indices) = vq.quantize(latents)
            tokens = indices.reshape(len(batch), latents.shape[2], latents.shape[3])
            ids = pipeline.tokenizer(list(captions[start : start + batch_size]), padding="max_length",
                                     max_length=pipeline.tokenizer.model_max_length, truncation=True,
                                     return_tensors="pt").input_ids.to(device)
            out = pipeline.text_encoder(ids, return_dict=True, output_hidden_states=True)
            per_mask = []
            for mask in masks_for(seed, tuple(tokens.shape[1:]), mask_ratios).to(device):
                inputs = torch.where(mask, mask_id, tokens)
                logits = transformer(inputs, encoder_hidden_states=out.hidden_states[-2],
                                     pooled_text_emb=out.text_embeds, micro_conds=micro.expand(len(batch), -1))
                ce = torch.nn.functional.cross_entropy(logits.float(), tokens, reduction="none")  # (b, H, W)
                per_mask.append(ce[:, mask].mean(1))
            scores.append(torch.stack(per_mask, 1).mean(1))
    return torch.cat(scores).cpu().numpy().astype(np.float64)
