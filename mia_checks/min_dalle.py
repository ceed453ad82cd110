"""Real DALL·E mini / mega weights in min-dalle's folder layout, loaded offline into our own modules.

    <root>/dalle_bart_mini/  (or dalle_bart_mega/)   vocab.json, merges.txt, encoder.pt, decoder.pt
    <root>/vqgan/                                    detoker.pt

(`--mia-target` is <root>, holding exactly one dalle_bart_* folder, or the dalle_bart_* folder itself.) Each
`.pt` may be replaced by a `.safetensors` file of the same name and state dict, which is preferred; `.pt`
files are read with `torch.load(weights_only=True)` and only with --mia-allow-pickle.

Unlike min-dalle itself (which this module does not import): nothing is downloaded, torch's global state
(grad mode, thread count, RNG) is left alone, every state dict must match its module key for key
(a missing, extra or mis-shaped weight is an error naming the file), and the sizes — vocabularies, text
and image token counts, layers, widths, codebook, the VQGAN decoder's levels and so the image size — are
read from the weights, not assumed (256 tokens, 16,384 codes, 256 px). Two things the weights do not hold:
the attention head width (64 in DALL·E mini and mega) and the VQGAN's GroupNorm groups (32). The decoder
starts from token id = the codebook size, DALL·E mini's decoder_start_token_id.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MiaUsageError, ModelLoadError
from .seq2seq import Sampling

# min-dalle's defaults for DALL·E mini / mega.
DEFAULT_SAMPLING = Sampling(temperature=1.0, top_k=256, supercondition=16.0)
HEAD_WIDTH = 64
VQGAN_GROUPS = 32
PAD_ID = 1  # BART's <pad>
WORD_START = chr(ord(" ") + 256)  # "Ġ": byte-level BPE's marker of a word's first piece
PARTS = {"encoder": "dalle", "decoder": "dalle", "detoker": "vqgan"}


@dataclass(frozen=True)
class MinDalleLayout:
    dalle: Path  # …/dalle_bart_mini or …/dalle_bart_mega
    vqgan: Path

    @staticmethod
    def find(path: Path, option: str = "--mia-target") -> MinDalleLayout:
        path = Path(path)
        if path.name.startswith("dalle_bart_"):
            candidates, root = [path], path.parent
        else:
            candidates, root = sorted(p for p in path.glob("dalle_bart_*") if p.is_dir()), path
        if len(candidates) != 1:
            raise MiaUsageError(f"{option}: {path} holds {len(candidates)} dalle_bart_* folders "
                                f"({', '.join(p.name for p in candidates)}): give the one to audit, e.g. {candidates[0] if candidates else path}.")
        if not (root / "vqgan").is_dir():
            raise MiaUsageError(f"{option}: {candidates[0]} has no vqgan/ folder beside it (min-dalle's layout: "
                                "<root>/dalle_bart_mini/ and <root>/vqgan/detoker.pt).")
        return MinDalleLayout(candidates[0], root / "vqgan")

    def weights(self, part: str) -> Path:
        """The part's weights file: .safetensors if present, else min-dalle's .pt."""
        folder = self.dalle if PARTS[part] == "dalle" else self.vqgan
        safe = folder / f"{part}.safetensors"
        return safe if safe.is_file() else folder / f"{part}.pt"

    def identity(self) -> str:
        from .targets import hash_file

        files = [self.dalle / "vocab.json", self.dalle / "merges.txt"] + [self.weights(p) for p in PARTS]
        return hashlib.sha256("\0".join(hash_file(f) for f in files).encode()).hexdigest()


def is_min_dalle_folder(path: Path) -> bool:
    path = Path(path)
    if not path.is_dir():
        return False
    if path.name.startswith("dalle_bart_"):
        return (path.parent / "vqgan").is_dir()
    return (path / "vqgan").is_dir() and any(p.is_dir() for p in path.glob("dalle_bart_*"))


def check_min_dalle_folder(path: Path, allow_pickle: bool, option: str = "--mia-target") -> None:
    layout = MinDalleLayout.find(path, option)
    for name in ("vocab.json", "merges.txt"):
        if not (layout.dalle / name).is_file():
            raise MiaUsageError(f"{option}: {layout.dalle / name} is missing (min-dalle's layout needs the BART "
                                "tokenizer's vocab.json and merges.txt beside encoder.pt and decoder.pt).")
    for part in PARTS:
        weights = layout.weights(part)
        if not weights.is_file():
            raise MiaUsageError(f"{option}: {weights.with_suffix('')}.safetensors (or .pt) is missing.")
        if weights.suffix == ".pt" and not allow_pickle:
            raise MiaUsageError(f"{option}: {weights} is a pickle-based weights file. Loading a pickle can run "
                                "arbitrary code: convert it to safetensors (same name, .safetensors), or pass "
                                "--mia-allow-pickle if you trust it (it is then read with torch.load(weights_only=True)).")


def read_state_dict(path: Path, allow_pickle: bool) -> dict:
    """A state dict of tensors only; a truncated or corrupt file is an error naming it."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif allow_pickle:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise MiaUsageError(f"{path} is pickle-based: pass --mia-allow-pickle if you trust it.")
    except MiaUsageError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read {path} (truncated or not a weights file?): {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path} is not a state dict of tensors.")
    return state


# min-dalle keeps these index tensors as plain attributes; a file saved from a version that registered them
# would carry them. They hold no weights, so they are dropped rather than rejected.
INDEX_KEYS = re.compile(r"(^|\.)(pose_tokens|token_indices)$")


def load_strict(module, state: dict, path: Path) -> None:
    """load_state_dict(strict=True), with missing, unexpected and mis-shaped keys reported by file. The
    module was built on the meta device: assigning the loaded tensors is all its parameters ever get."""
    state = {k: v for k, v in state.items() if not INDEX_KEYS.search(k)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} ≠ {tuple(own[k].shape)}" for k in set(own) & set(state)
                    if state[k].shape != own[k].shape)
    problems = [f"{what} ({len(keys)}): {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes))
                if keys]
    if problems:
        raise ModelLoadError(f"{path} does not match its model: " + "; ".join(problems))
    module.load_state_dict(state, strict=True, assign=True)


def _count(state: dict, prefix: str) -> int:
    """How many numbered children prefix.0, prefix.1, … the state dict has."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = {int(m.group(1)) for k in state for m in [pattern.match(k)] if m}
    if found != set(range(len(found))):
        raise ModelLoadError(f"{prefix}: layers {sorted(found)} are not numbered 0…n−1")
    return len(found)


def _shape(state: dict, key: str, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise ModelLoadError(f"{path} does not match its model: missing key {key}")
    return tuple(state[key].shape)


def build_modules():
    """The module classes, built on first use so that importing this file does not import torch."""
    import torch
    from torch import nn

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

    return dict(Encoder=Encoder, Decoder=Decoder, VQGanDecoder=VQGanDecoder, Detokenizer=Detokenizer)


def make_encoder(state: dict, path: Path):
    return _make_bart_half("Encoder", state, path)


def make_decoder(state: dict, path: Path):
    return _make_bart_half("Decoder", state, path)


def _make_bart_half(kind: str, state: dict, path: Path):
    """DALL·E's BART encoder or decoder, sized from its state dict."""
    vocab, width = _shape(state, "embed_tokens.weight", path)
    positions = _shape(state, "embed_positions.weight", path)[0]
    hidden = _shape(state, "layers.0.glu.fc0.weight", path)[0]
    _check_width(width, path)
    return build_modules()[kind](vocab, positions, width, hidden, _count(state, "layers"))


def make_detokenizer(state: dict, path: Path):
    codebook, embed = _shape(state, "embedding.weight", path)
    mid = _shape(state, "decoder.conv_in.weight", path)[0]
    levels = []
    for i in range(_count(state, "decoder.up")):
        prefix = f"decoder.up.{i}"
        channels = [_shape(state, f"{prefix}.block.{j}.conv1.weight", path)[1::-1]
                    for j in range(_count(state, f"{prefix}.block"))]
        levels.append((channels, f"{prefix}.attn.0.q.weight" in state, f"{prefix}.upsample.conv.weight" in state))
    out = _shape(state, "decoder.conv_out.weight", path)[1]
    modules = build_modules()
    return modules["Detokenizer"](codebook, embed, modules["VQGanDecoder"](embed, mid, levels, out))


def _check_width(width: int, path: Path) -> None:
    if width % HEAD_WIDTH:
        raise ModelLoadError(f"{path}: width {width} is not a multiple of the {HEAD_WIDTH}-wide attention heads of "
                             "DALL·E mini and mega.")


class BpeTokenizer:
    """min-dalle's text tokenization with BART's vocabulary: lower case, ASCII only, words split on spaces,
    each word merged pair by pair (lowest merge rank first) from its characters after a word-start marker."""

    def __init__(self, vocab: dict[str, int], merges: list[str]):
        self.vocab = vocab
        self.rank = {tuple(m.split()): r for r, m in enumerate(merges) if len(m.split()) == 2}
        self.bos, self.eos, self.unk = vocab["<s>"], vocab["</s>"], vocab["<unk>"]

    @staticmethod
    def from_folder(folder: Path) -> BpeTokenizer:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
        merges = [line for line in lines if line and not line.startswith("#version")]
        missing = [t for t in ("<s>", "</s>", "<unk>") if t not in vocab]
        if missing:
            raise ModelLoadError(f"{folder / 'vocab.json'} lacks BART's special tokens {', '.join(missing)}.")
        return BpeTokenizer(vocab, merges)

    def word(self, word: str) -> list[str]:
        pieces = [WORD_START] + list(word)
        while len(pieces) > 1:
            pairs = list(zip(pieces, pieces[1:]))
            best = min(pairs, key=lambda p: self.rank.get(p, math.inf))
            if best not in self.rank:
                break
            i = pairs.index(best)
            pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
        return pieces

    def __call__(self, text: str) -> list[int]:
        text = text.lower().encode("ascii", errors="ignore").decode()
        ids = [self.vocab.get(piece, self.unk) for w in text.split(" ") if w for piece in self.word(w)]
        return [self.bos] + ids + [self.eos]


class MinDalle:
    """DALL·E mini / mega as a TokenModel for the sampler in seq2seq.py."""

    def __init__(self, tokenizer: BpeTokenizer, encoder, decoder, detokenizer, source: Path):
        self.tokenizer, self.encoder, self.decoder, self.detokenizer = tokenizer, encoder, decoder, detokenizer
        self.text_token_count = encoder.embed_positions.num_embeddings
        self.n_image_tokens = decoder.embed_positions.num_embeddings
        self.codebook_size = detokenizer.embedding.num_embeddings
        self.side = math.isqrt(self.n_image_tokens)
        self.start_token = self.codebook_size
        if self.side * self.side != self.n_image_tokens:
            raise ModelLoadError(f"{source}: {self.n_image_tokens} image tokens do not make a square grid.")
        if decoder.lm_head.out_features <= self.codebook_size:
            raise ModelLoadError(f"{source}: the decoder's {decoder.lm_head.out_features} outputs cannot hold the "
                                 f"VQGAN's {self.codebook_size} codes and an image-start token.")
        if max(tokenizer.vocab.values()) >= encoder.embed_tokens.num_embeddings:
            raise ModelLoadError(f"{source}: vocab.json has ids beyond the encoder's "
                                 f"{encoder.embed_tokens.num_embeddings} token embeddings.")

    @property
    def device(self):
        return self.decoder.lm_head.weight.device

    def start(self, prompts: list[str]):
        import torch

        rows = []
        for prompt in prompts:
            ids = self.tokenizer(prompt)[: self.text_token_count]
            rows.append(ids + [PAD_ID] * (self.text_token_count - len(ids)))
        text, text_mask = self.encoder(torch.tensor(rows, device=self.device))
        caches: list[dict] = [{} for _ in self.decoder.layers]
        position = {"i": 0}

        def step(previous):
            tokens = (torch.full((len(prompts),), self.start_token, device=self.device) if previous is None
                      else previous.to(self.device))
            logits = self.decoder(tokens[:, None], position["i"], caches, text, text_mask)
            position["i"] += 1
            return logits[:, -1, : self.codebook_size].float().cpu()

        return step

    def decode_codes(self, codes) -> np.ndarray:
        import torch

        pixels = self.detokenizer(codes.to(self.device), self.side)
        return (pixels * 255).round().to(torch.uint8).cpu().numpy()

    def to(self, device: str) -> MinDalle:
        for module in (self.encoder, self.decoder, self.detokenizer):
            module.to(device)
        return self


def load_min_dalle(path: Path, allow_pickle: bool = False) -> MinDalle:
    """Load strictly, sizes from the weights; never touches the network or torch's global state."""
    import torch

    layout = MinDalleLayout.find(Path(path))
    modules = []
    for part, make in (("encoder", make_encoder), ("decoder", make_decoder), ("detoker", make_detokenizer)):
        weights = layout.weights(part)
        state = read_state_dict(weights, allow_pickle)
        with torch.device("meta"):  # no random initialisation: nothing drawn from the caller's RNG, no time spent
            module = make(state, weights)
        load_strict(module, state, weights)
        modules.append(module.eval())
    return MinDalle(BpeTokenizer.from_folder(layout.dalle), *modules, source=layout.dalle)
