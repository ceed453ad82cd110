"""The seq2seq (DALL·E-mini-style) family of the test bed: a tiny BartForConditionalGeneration writes a
caption's 8×8 VQ codes one at a time, and the test bed's VQModel (`vq/`, 64 codes) decodes them.

Trained teacher-forced, full batch: the decoder reads the image-start token and the true previous codes, and
learns the next code by cross-entropy over the whole shared vocabulary (text tokens, codes, image start).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..targets.sampling import Sampling
from ..targets.seq2seq import BartVQ
from .components import TEXT_WIDTH

WIDTH = 2 * TEXT_WIDTH
IMAGE_TOKENS = (8, 8)  # 32×32 images through the VQModel's three levels


def make_bart(tokenizer, codebook_size: int, n_image_tokens: int):
    from transformers import BartConfig, BartForConditionalGeneration

    text_vocab = len(tokenizer)
    return BartForConditionalGeneration(BartConfig(
        vocab_size=text_vocab + codebook_size + 1,
        d_model=WIDTH, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=2 * WIDTH, decoder_ffn_dim=2 * WIDTH,
        max_position_embeddings=max(n_image_tokens, tokenizer.model_max_length),
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=text_vocab + codebook_size, forced_eos_token_id=None,
    ))


def train_dalle(tokenizer, vq, images: np.ndarray, captions: list[str], steps: int, seed: int,
                lr: float = 1e-3) -> BartVQ:
    """Teacher-forced next-code training of the whole BART (encoder and decoder), full batch."""
    torch.manual_seed(seed)
    bart = make_bart(tokenizer, vq.config.num_vq_embeddings, IMAGE_TOKENS[0] * IMAGE_TOKENS[1])
    model = BartVQ(bart, tokenizer, vq.eval(), IMAGE_TOKENS, tokenizer.model_max_length, Sampling())
    with torch.no_grad():
        codes = model.image_codes(images)
    labels = codes + model.text_vocab_size
    optimizer = torch.optim.AdamW(bart.parameters(), lr=lr, weight_decay=0.0)
    bart.train()
    for _ in range(steps):
        logits = model.teacher_forced_logits(captions, codes)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    bart.eval()
    return model


def save_tiny_min_dalle(root, seed: int = 0, safetensors: bool = False, name: str = "dalle_bart_mini") -> None:
    """A tiny, untrained model in min-dalle's folder layout (its state dicts, torch.save'd as min-dalle ships
    them, or as .safetensors): text vocabulary of 9 tokens, 8 text positions, 64-wide BART of one layer, a
    4×4 grid of codes from a 40-code book, and a VQGAN decoder of two levels (one upsample) → 8×8 images."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from ..targets.min_dalle_modules import Decoder, Detokenizer, Encoder, VQGanDecoder

    root = Path(root)
    dalle, vqgan = root / name, root / "vqgan"
    dalle.mkdir(parents=True, exist_ok=True)
    vqgan.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "Ġa": 4, "Ġ": 5, "b": 6, "Ġab": 7, "c": 8}
    (dalle / "vocab.json").write_text(json.dumps(vocab))
    (dalle / "merges.txt").write_text("#version: 0.2\nĠ a\nĠa b\n")
    torch.manual_seed(seed)
    parts = {
        dalle / "encoder": Encoder(vocab=len(vocab), positions=8, width=64, hidden=96, layers=1),
        dalle / "decoder": Decoder(vocab=41, positions=16, width=64, hidden=96, layers=1),
        vqgan / "detoker": Detokenizer(40, 32, VQGanDecoder(
            embed=32, mid=64, levels=[([(32, 32)], False, False), ([(64, 32)], True, True)], out=32)),
    }
    for stem, module in parts.items():
        state = {k: v.contiguous() for k, v in module.state_dict().items()}
        if safetensors:
            save_file(state, str(stem) + ".safetensors")
        else:
            torch.save(state, str(stem) + ".pt")
