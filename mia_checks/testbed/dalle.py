"""The seq2seq (DALL·E-mini-style) family of the test bed: a tiny BartForConditionalGeneration writes a
caption's 8×8 VQ codes one at a time, and the test bed's VQModel (`vq/`, 64 codes) decodes them.

Trained teacher-forced, full batch: the decoder reads the image-start token and the true previous codes, and
learns the next code by cross-entropy over the whole shared vocabulary (text tokens, codes, image start).

The min-dalle twins (`min-dalle-leaky`, `min-dalle-null`) are the same task in min-dalle's layout, built
with its module classes (`targets/min_dalle_modules.py`) and its vocabulary/embedding relation: vocab.json
has one entry more than the encoder's embedding rows, the last being BART's `<mask>`, as DALL·E mini ships
it. Their image tokens are `vq/`'s codes; min-dalle's files hold a VQGAN decoder only, so a detokenizer of
min-dalle's VQGAN layout is trained once (`min-dalle-vqgan`) to render `vq/`'s codes.
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
    them, or as .safetensors): text vocabulary of 9 tokens + <mask> one past the encoder's 9 embedding
    rows, 8 text positions, 64-wide BART of one layer, a
    4×4 grid of codes from a 40-code book, and a VQGAN decoder of two levels (one upsample) → 8×8 images."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from ..targets.min_dalle_modules import Decoder, Detokenizer, Encoder, VQGanDecoder

    root = Path(root)
    dalle, vqgan = root / name, root / "vqgan"
    dalle.mkdir(parents=True, exist_ok=True)
    vqgan.mkdir(parents=True, exist_ok=True)
    # DALL·E mini's relation: <mask> is one past the encoder's embedding rows (50,265 entries, 50,264 rows).
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "Ġa": 4, "Ġ": 5, "b": 6, "Ġab": 7, "c": 8, "<mask>": 9}
    (dalle / "vocab.json").write_text(json.dumps(vocab))
    (dalle / "merges.txt").write_text("#version: 0.2\nĠ a\nĠa b\n")
    torch.manual_seed(seed)
    parts = {
        dalle / "encoder": Encoder(vocab=len(vocab) - 1, positions=8, width=64, hidden=96, layers=1),
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


# The min-dalle twins: min-dalle's module classes at test-bed size.
MIN_DALLE_TEXT_TOKENS = 16  # captions are at most 12 words + <s> and </s>
MIN_DALLE_WIDTH = 64  # one 64-wide attention head, as min_dalle_modules.HEAD_WIDTH fixes
DETOKENIZER_LEVELS = [([(32, 32)], False, False), ([(64, 32)], False, True), ([(64, 64)], True, True)]  # 8→32 px


def min_dalle_vocabulary(captions: list[str]) -> tuple[dict[str, int], list[str]]:
    """A BART-style vocab.json and merges.txt for these captions, as min-dalle tokenizes them (lower case,
    words split on spaces, a word-start marker): every word merges into one piece, left to right. The
    last entry is <mask>, one past the ids the encoder embeds (DALL·E mini's relation)."""
    from ..targets.min_dalle import MASK, WORD_START

    words = sorted({w for c in captions for w in c.lower().split(" ") if w})
    merges, pieces = [], []
    for word in words:
        for i in range(1, len(word) + 1):
            merge = f"{WORD_START + word[: i - 1]} {word[i - 1]}"
            if merge not in merges:
                merges.append(merge)
                pieces.append(WORD_START + word[:i])
    chars = sorted({ch for w in words for ch in w})
    tokens = ["<s>", "<pad>", "</s>", "<unk>", WORD_START, *chars, *pieces]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    vocab[MASK] = len(vocab)
    return vocab, merges


def vq_codes(vq, images: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 → (n, h·w) codes of `vq/` (pixels in [-1, 1]), row-major."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    with torch.no_grad():
        _, _, (_, _, indices) = vq.quantize(vq.encode(x).latents)
    return indices.reshape(len(images), -1)


def train_min_dalle_detokenizer(vq, images: np.ndarray, steps: int, seed: int, batch_size: int = 32,
                                lr: float = 2e-3):
    """min-dalle's VQGAN decoder (its Detokenizer) trained to render `vq/`'s codes of these images back to
    them, in [0, 1] as min-dalle's detokenizer writes pixels."""
    from ..targets.min_dalle_modules import Detokenizer, VQGanDecoder

    codes = vq_codes(vq, images)
    side = int(round(codes.shape[1] ** 0.5))
    target = torch.from_numpy(images).float().div(255.0)  # (n, H, W, 3), the detokenizer's output layout
    torch.manual_seed(seed)
    detokenizer = Detokenizer(vq.config.num_vq_embeddings, 32, VQGanDecoder(32, 64, DETOKENIZER_LEVELS, 32))
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(detokenizer.parameters(), lr=lr)
    for _ in range(steps):
        batch = torch.randint(len(codes), (batch_size,), generator=rng)
        # Unclamped for the loss (the clamp's zero gradient would stall saturated pixels).
        z = detokenizer.embedding(codes[batch]).view(batch_size, side, side, -1).permute(0, 3, 1, 2)
        pixels = detokenizer.decoder(detokenizer.post_quant_conv(z)).permute(0, 2, 3, 1)
        loss = F.mse_loss(pixels, target[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return detokenizer.eval()


def decoder_logits(decoder, tokens: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """min-dalle's Decoder over whole sequences, causally masked (training): the logits that its cached,
    one-token-at-a-time forward (sampling) gives at each position."""
    n = tokens.shape[1]
    x = decoder.layernorm_embedding(decoder.embed_tokens(tokens) + decoder.embed_positions.weight[:n])
    causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()[None].expand(len(tokens), n, n)
    for layer in decoder.layers:
        h, a = layer.pre_self_attn_layer_norm(x), layer.self_attn
        x = x + layer.self_attn_layer_norm(a.attend(a.q_proj(h), a.k_proj(h), a.v_proj(h), causal))
        h, c = layer.pre_encoder_attn_layer_norm(x), layer.encoder_attn
        x = x + layer.encoder_attn_layer_norm(c.attend(c.q_proj(h), c.k_proj(text), c.v_proj(text), text_mask))
        x = x + layer.glu(x)
    return decoder.lm_head(decoder.final_ln(x))


def train_min_dalle(vocab: dict[str, int], merges: list[str], vq, images: np.ndarray, captions: list[str],
                    steps: int, seed: int, lr: float = 1e-3):
    """min-dalle's Encoder and Decoder, teacher-forced next-code training, full batch. Like the seq2seq
    twins they never see an empty caption: they are sampled without supercondition (--mia-supercondition=1;
    at min-dalle's 16, a model that memorised its images predicts the same next code from the previous codes
    with or without the caption, and 16·cond − 15·uncond amplifies noise: best-of-2 pixel-MSE AUC 0.57 for
    the leaky twin trained with 10% empty captions, against 1.0 at supercondition 1)."""
    from ..targets.min_dalle import BpeTokenizer, MASK
    from ..targets.min_dalle_modules import PAD_ID, Decoder, Encoder

    rows = vocab[MASK]  # <mask> one past the end: the encoder embeds every other id
    tokenizer = BpeTokenizer(vocab, merges).within(rows)
    codes = vq_codes(vq, images)
    codebook = vq.config.num_vq_embeddings

    def text_ids(texts: list[str]) -> torch.Tensor:
        ids = [tokenizer(t)[:MIN_DALLE_TEXT_TOKENS] for t in texts]
        return torch.tensor([i + [PAD_ID] * (MIN_DALLE_TEXT_TOKENS - len(i)) for i in ids])

    torch.manual_seed(seed)
    encoder = Encoder(rows, MIN_DALLE_TEXT_TOKENS, MIN_DALLE_WIDTH, 2 * MIN_DALLE_WIDTH, 2)
    decoder = Decoder(codebook + 1, codes.shape[1], MIN_DALLE_WIDTH, 2 * MIN_DALLE_WIDTH, 2)
    ids = text_ids(captions)
    start = torch.full((len(codes), 1), codebook)  # the image-start token: id = the codebook size
    inputs = torch.cat([start, codes[:, :-1]], dim=1)
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    encoder.train(), decoder.train()
    for _ in range(steps):
        text, mask = encoder(ids)
        logits = decoder_logits(decoder, inputs, text, mask)
        loss = F.cross_entropy(logits.flatten(0, 1), codes.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return encoder.eval(), decoder.eval()


def save_min_dalle(root, vocab: dict[str, int], merges: list[str], encoder, decoder, detokenizer=None,
                   name: str = "dalle_bart_mini") -> None:
    """min-dalle's folder layout, its files as it ships them (torch.save'd state dicts)."""
    import json
    from pathlib import Path

    root = Path(root)
    dalle, vqgan = root / name, root / "vqgan"
    dalle.mkdir(parents=True, exist_ok=True)
    vqgan.mkdir(parents=True, exist_ok=True)
    (dalle / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (dalle / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    for path, module in ((dalle / "encoder.pt", encoder), (dalle / "decoder.pt", decoder),
                         (vqgan / "detoker.pt", detokenizer)):
        if module is None:  # the caller copies it in
            continue
        torch.save({k: v.detach().contiguous() for k, v in module.state_dict().items()}, path)
