"""DALL·E mini / mega as torch modules, named and shaped as min-dalle's state dicts are (their keys load
strictly: `min_dalle.load_strict`). Imported only when such a model loads: this module imports torch.

What the weights do not hold: the attention head width (64 in DALL·E mini and mega) and the VQGAN's
GroupNorm groups (32). The text encoder masks BART's <pad> (id 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

HEAD_WIDTH = 64
VQGAN_GROUPS = 32
PAD_ID = 1  # BART's <pad>


class GLU(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.ln0, self.ln1 = nn.LayerNorm(width), nn.LayerNorm(hidden)
        self.fc0 = nn.Linear(width, hidden, bias=False)
        self.fc1 = nn.Linear(width, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)

    def forward(self, x):
        x = self.ln0(x)
        return self.fc2(self.ln1(nn.functional.gelu(self.fc0(x)) * self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.heads = width // HEAD_WIDTH
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(width, width, bias=False)
                                                                for _ in range(4))

    def attend(self, queries, keys, values, mask):
        """queries (b, q, w), keys/values (b, k, w) already projected; mask (b, 1|q, k) True = visible."""
        b, q, w = queries.shape
        split = lambda x: x.view(b, x.shape[1], self.heads, -1).transpose(1, 2)
        scores = split(queries) @ split(keys).transpose(-1, -2) / math.sqrt(w // self.heads)
        scores = scores.masked_fill(~mask[:, None], float("-inf"))
        out = torch.softmax(scores, -1) @ split(values)
        return self.out_proj(out.transpose(1, 2).reshape(b, q, w))


class EncoderLayer(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.pre_self_attn_layer_norm, self.self_attn_layer_norm = nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attn = Attention(width)
        self.glu = GLU(width, hidden)

    def forward(self, x, mask):
        h = self.pre_self_attn_layer_norm(x)
        a = self.self_attn
        x = x + self.self_attn_layer_norm(a.attend(a.q_proj(h), a.k_proj(h), a.v_proj(h), mask))
        return x + self.glu(x)


class DecoderLayer(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.pre_self_attn_layer_norm, self.self_attn_layer_norm = nn.LayerNorm(width), nn.LayerNorm(width)
        self.pre_encoder_attn_layer_norm, self.encoder_attn_layer_norm = nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attn, self.encoder_attn = Attention(width), Attention(width)
        self.glu = GLU(width, hidden)

    def forward(self, x, cache: dict, text, text_mask):
        """x: the new positions (b, 1, w); cache: this layer's keys and values of earlier positions."""
        h = self.pre_self_attn_layer_norm(x)
        a = self.self_attn
        cache["k"] = torch.cat([cache["k"], a.k_proj(h)], 1) if "k" in cache else a.k_proj(h)
        cache["v"] = torch.cat([cache["v"], a.v_proj(h)], 1) if "v" in cache else a.v_proj(h)
        visible = torch.ones(len(x), 1, cache["k"].shape[1], dtype=torch.bool, device=x.device)
        x = x + self.self_attn_layer_norm(a.attend(a.q_proj(h), cache["k"], cache["v"], visible))
        h = self.pre_encoder_attn_layer_norm(x)
        c = self.encoder_attn
        if "text_k" not in cache:
            cache["text_k"], cache["text_v"] = c.k_proj(text), c.v_proj(text)
        x = x + self.encoder_attn_layer_norm(c.attend(c.q_proj(h), cache["text_k"], cache["text_v"], text_mask))
        return x + self.glu(x)


class Encoder(nn.Module):
    def __init__(self, vocab: int, positions: int, width: int, hidden: int, layers: int):
        super().__init__()
        self.embed_tokens, self.embed_positions = nn.Embedding(vocab, width), nn.Embedding(positions, width)
        self.layers = nn.ModuleList(EncoderLayer(width, hidden) for _ in range(layers))
        self.layernorm_embedding, self.final_ln = nn.LayerNorm(width), nn.LayerNorm(width)

    def forward(self, ids):
        mask = (ids != PAD_ID)[:, None, :]
        x = self.layernorm_embedding(self.embed_tokens(ids) + self.embed_positions.weight[: ids.shape[1]])
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_ln(x), mask


class Decoder(nn.Module):
    def __init__(self, vocab: int, positions: int, width: int, hidden: int, layers: int):
        super().__init__()
        self.embed_tokens, self.embed_positions = nn.Embedding(vocab, width), nn.Embedding(positions, width)
        self.layers = nn.ModuleList(DecoderLayer(width, hidden) for _ in range(layers))
        self.layernorm_embedding, self.final_ln = nn.LayerNorm(width), nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens, position: int, caches: list[dict], text, text_mask):
        x = self.layernorm_embedding(self.embed_tokens(tokens) + self.embed_positions.weight[position])
        for layer, cache in zip(self.layers, caches):
            x = layer(x, cache, text, text_mask)
        return self.lm_head(self.final_ln(x))


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(VQGAN_GROUPS, c_in, eps=1e-6), nn.GroupNorm(VQGAN_GROUPS, c_out, eps=1e-6)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        if c_in != c_out:
            self.nin_shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttentionBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.GroupNorm(VQGAN_GROUPS, c, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q, k, v = (f(h).flatten(2) for f in (self.q, self.k, self.v))  # (b, c, hw)
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), -1)  # (b, hw, hw)
        return x + self.proj_out((v @ weights.transpose(1, 2)).view(b, c, hh, ww))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpLevel(nn.Module):
    def __init__(self, channels: list[tuple[int, int]], attention: bool, upsample: bool):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(i, o) for i, o in channels)
        if attention:
            self.attn = nn.ModuleList(AttentionBlock(o) for _, o in channels)
        if upsample:
            self.upsample = Upsample(channels[-1][1])

    def forward(self, x):
        for j, block in enumerate(self.block):
            x = block(x)
            if hasattr(self, "attn"):
                x = self.attn[j](x)
        return self.upsample(x) if hasattr(self, "upsample") else x


class Mid(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResnetBlock(c, c), AttentionBlock(c), ResnetBlock(c, c)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class VQGanDecoder(nn.Module):
    def __init__(self, embed: int, mid: int, levels: list[tuple[list[tuple[int, int]], bool, bool]], out: int):
        super().__init__()
        self.conv_in = nn.Conv2d(embed, mid, 3, padding=1)
        self.mid = Mid(mid)
        self.up = nn.ModuleList(UpLevel(*level) for level in levels)
        self.norm_out = nn.GroupNorm(VQGAN_GROUPS, out, eps=1e-6)
        self.conv_out = nn.Conv2d(out, 3, 3, padding=1)

    def forward(self, z):
        z = self.mid(self.conv_in(z))
        for level in reversed(self.up):  # up.0 is the last, full-resolution level
            z = level(z)
        return self.conv_out(nn.functional.silu(self.norm_out(z)))


class Detokenizer(nn.Module):
    def __init__(self, codebook: int, embed: int, decoder: VQGanDecoder):
        super().__init__()
        self.embedding = nn.Embedding(codebook, embed)
        self.post_quant_conv = nn.Conv2d(embed, embed, 1)
        self.decoder = decoder

    def forward(self, codes, side: int):
        z = self.embedding(codes).view(len(codes), side, side, -1).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(z)).permute(0, 2, 3, 1).clamp(0, 1)
