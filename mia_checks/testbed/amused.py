"""The token-based family: a tiny aMUSEd (MUSE-style masked image-token prediction), the closest diffusers
analogue to DALL-E mini's sequence of image tokens. A VQModel turns 32×32 digits into 8×8 tokens from a
64-entry codebook; a UVit2DModel learns to fill in masked tokens given the caption."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .components import AUTOENCODER_BASE, TEXT_WIDTH
from .train import to_model_range

CODEBOOK = 64
VQ_CONFIG = dict(
    AUTOENCODER_BASE,
    latent_channels=8,
    num_vq_embeddings=CODEBOOK,
    vq_embed_dim=8,
    lookup_from_codebook=True,  # the pipeline decodes token ids
)
MICRO_ENCODE = 4
TRANSFORMER_CONFIG = dict(
    hidden_size=TEXT_WIDTH,
    cond_embed_dim=TEXT_WIDTH,
    micro_cond_encode_dim=MICRO_ENCODE,
    micro_cond_embed_dim=5 * MICRO_ENCODE,  # five micro-conditions, each sinusoidally encoded
    encoder_hidden_size=TEXT_WIDTH,
    vocab_size=CODEBOOK + 1,  # + the mask token
    codebook_size=CODEBOOK,
    in_channels=TEXT_WIDTH,
    block_out_channels=TEXT_WIDTH,
    num_res_blocks=1,
    block_num_heads=4,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=2 * TEXT_WIDTH,
    sample_size=8,
)
# The pipeline's default micro-conditioning at 32×32: width, height, crop x, crop y, aesthetic score.
MICRO_CONDS = (32.0, 32.0, 0.0, 0.0, 6.0)


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """(n, h, w, 3) uint8 → (n, 3, h, w) float in [0, 1]: what diffusers' aMUSEd VQ reads and writes (its image
    processor does not normalise)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)


def train_vq(images: np.ndarray, steps: int, seed: int, batch_size: int = 32, lr: float = 2e-3,
             unit_range: bool = False):
    """unit_range: pixels in [0, 1] (aMUSEd's convention) instead of [-1, 1] (the seq2seq kind's)."""
    from diffusers import VQModel

    torch.manual_seed(seed)
    vq = VQModel(**VQ_CONFIG)
    data = to_unit_range(images) if unit_range else to_model_range(images)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vq.parameters(), lr=lr)
    for _ in range(steps):
        batch = data[torch.randint(len(data), (batch_size,), generator=rng)]
        out = vq(batch)
        loss = F.mse_loss(out.sample, batch) + out.commit_loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return vq.eval()


@torch.no_grad()
def image_tokens(vq, images: np.ndarray) -> torch.Tensor:
    """(n, 8, 8) codebook indices of images, read in [0, 1] as aMUSEd's VQ does."""
    h = vq.encode(to_unit_range(images)).latents
    _, _, (_, _, indices) = vq.quantize(h)
    return indices.reshape(len(images), h.shape[2], h.shape[3])


def make_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
        num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=tokenizer.model_max_length,
        projection_dim=TEXT_WIDTH, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))


def train_amused(tokenizer, vq, images: np.ndarray, captions: list[str], steps: int, seed: int,
                 lr: float = 1e-3, repeats: int = 2):
    """Masked-token training (mask ratio cos(π/2·u), u ~ U(0, 1)) of transformer and text encoder."""
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel

    from .train import tokenize

    torch.manual_seed(seed)
    transformer = UVit2DModel(**TRANSFORMER_CONFIG)
    text_encoder = make_text_encoder(tokenizer)
    tokens = image_tokens(vq, images).repeat(repeats, 1, 1)
    ids = tokenize(tokenizer, captions).repeat(repeats, 1)
    micro = torch.tensor(MICRO_CONDS).expand(len(tokens), -1)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(list(transformer.parameters()) + list(text_encoder.parameters()), lr=lr)
    for _ in range(steps):
        ratio = torch.cos(math.pi / 2 * torch.rand(len(tokens), 1, 1, generator=rng))
        mask = torch.rand(tokens.shape, generator=rng) < ratio
        inputs = torch.where(mask, CODEBOOK, tokens)
        out = text_encoder(ids, output_hidden_states=True)
        logits = transformer(inputs, encoder_hidden_states=out.hidden_states[-2], pooled_text_emb=out.text_embeds,
                             micro_conds=micro)
        loss = F.cross_entropy(logits.permute(0, 2, 3, 1)[mask], tokens[mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return AmusedPipeline(vqvae=vq, tokenizer=tokenizer, text_encoder=text_encoder.eval(),
                          transformer=transformer.eval(), scheduler=AmusedScheduler(mask_token_id=CODEBOOK))
