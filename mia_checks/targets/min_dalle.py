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
read from the weights, not assumed (256 tokens, 16,384 codes, 256 px); the modules themselves are in
`min_dalle_modules.py`. The decoder starts from token id = the codebook size, DALL·E mini's
decoder_start_token_id.

The text vocabulary may run one id past the encoder's embedding table, for BART's `<mask>` only: DALL·E
mini's vocab.json has 50,265 entries for 50,264 embedding rows, `<mask>` = 50264 being the one past the end
(min-dalle issue #93; mega's table has 50,272 rows). Any other id at or beyond the table is an error naming
the tokens. Tokenizing a caption never produces an id the table lacks: pieces whose id is not below the
table size (`<mask>`, however a caption spells it) become `<unk>`, as min-dalle's tokenizer cannot do.

Cost: sampling calls the decoder once per image token (the decoder's `embed_positions` rows, read at
`resolve` from the weights file's header: 256 for DALL·E mini and mega), on two rows — the caption and the
empty caption — when supercondition ≠ 1; denoising steps and guidance do not apply.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import MiaUsageError, ModelLoadError
from ..store import hash_file
from ..weights import check_weights_file
from .base import MIN_DALLE, GenerationSettings, Target, TargetSpec, resolve_device
from .sampling import Sampling, Seq2SeqRunner

# min-dalle's defaults for DALL·E mini / mega.
DEFAULT_SAMPLING = Sampling(temperature=1.0, top_k=256, supercondition=16.0)
WORD_START = chr(ord(" ") + 256)  # "Ġ": byte-level BPE's marker of a word's first piece
MASK = "<mask>"  # BART's mask token: the one vocabulary entry allowed one past the embedding table
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
        check_weights_file(weights, allow_pickle, option, "weights file (with --mia-allow-pickle it is read with "
                           "torch.load(weights_only=True); or save it as a .safetensors file of the same name)")


# Why the white-box attacks skip min-dalle's layout: the token loss must encode the query images into codes.
NO_VQ_ENCODER = "min-dalle's files hold the VQGAN decoder only, so query images cannot be encoded into its tokens"


def resolve(path: Path, spec: str, option: str, allow_pickle: bool, lora: str | None = None) -> TargetSpec:
    if lora:
        raise MiaUsageError("--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a min-dalle target.")
    check_min_dalle_folder(path, allow_pickle, option)
    layout = MinDalleLayout.find(path, option)
    return TargetSpec(spec, MIN_DALLE, f"min-dalle:{layout.dalle.name}", None, NO_VQ_ENCODER, option, path,
                      image_tokens=image_token_count(layout.weights("decoder"), allow_pickle),
                      supercondition=DEFAULT_SAMPLING.supercondition)


def image_token_count(path: Path, allow_pickle: bool) -> int:
    """The decoder's image positions (`embed_positions.weight` rows): one decoder call each per image.
    Read from the safetensors header, or a memory-mapped .pt (its tensors are not read)."""
    key = "embed_positions.weight"
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                shape = f.get_slice(key).get_shape() if key in f.keys() else None
        else:
            import torch

            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # not torch's zip format: no memory map, read it whole
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            shape = tuple(state[key].shape) if isinstance(state, dict) and key in state else None
    except Exception as exc:
        raise ModelLoadError(f"cannot read {path} (truncated or not a weights file?): {type(exc).__name__}: {exc}") from exc
    if not shape or len(shape) != 2 or shape[0] < 1:
        raise ModelLoadError(f"{path} does not match its model: no {key} of (image tokens, width)")
    return int(shape[0])


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
    from . import min_dalle_modules

    return getattr(min_dalle_modules, kind)(vocab, positions, width, hidden, _count(state, "layers"))


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
    from .min_dalle_modules import Detokenizer, VQGanDecoder

    return Detokenizer(codebook, embed, VQGanDecoder(embed, mid, levels, out))


def _check_width(width: int, path: Path) -> None:
    from .min_dalle_modules import HEAD_WIDTH

    if width % HEAD_WIDTH:
        raise ModelLoadError(f"{path}: width {width} is not a multiple of the {HEAD_WIDTH}-wide attention heads of "
                             "DALL·E mini and mega.")


class BpeTokenizer:
    """min-dalle's text tokenization with BART's vocabulary: lower case, ASCII only, words split on spaces,
    each word merged pair by pair (lowest merge rank first) from its characters after a word-start marker."""

    def __init__(self, vocab: dict[str, int], merges: list[str], limit: int | None = None):
        """limit: the encoder's embedding rows; pieces whose id is not below it are looked up as <unk>."""
        self.vocab = vocab
        self.limit = limit
        self.lookup = vocab if limit is None else {t: i for t, i in vocab.items() if i < limit}
        self.rank = {tuple(m.split()): r for r, m in enumerate(merges) if len(m.split()) == 2}
        self.bos, self.eos, self.unk = vocab["<s>"], vocab["</s>"], vocab["<unk>"]

    @staticmethod
    def from_folder(folder: Path) -> BpeTokenizer:
        path = folder / "vocab.json"
        try:
            vocab = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelLoadError(f"{path} is not JSON: {exc}") from None
        if not isinstance(vocab, dict) or not all(type(i) is int and i >= 0 for i in vocab.values()):
            raise ModelLoadError(f"{path} must map each token to a non-negative integer id.")
        lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
        merges = [line for line in lines if line and not line.startswith("#version")]
        missing = [t for t in ("<s>", "</s>", "<unk>") if t not in vocab]
        if missing:
            raise ModelLoadError(f"{path} lacks BART's special tokens {', '.join(missing)}.")
        return BpeTokenizer(vocab, merges)

    def within(self, rows: int, source: Path | str = "vocab.json") -> BpeTokenizer:
        """This tokenizer for an encoder of `rows` token embeddings. Only `<mask>` may lie beyond them, and
        only at id `rows` (BART's layout, which DALL·E mini ships): it is never looked up. Any other id at
        or beyond the table is an error."""
        beyond = sorted((i, t) for t, i in self.vocab.items() if i >= rows and not (t == MASK and i == rows))
        if beyond:
            shown = ", ".join(f"{t!r} = {i}" for i, t in beyond[:5]) + (" …" if len(beyond) > 5 else "")
            raise ModelLoadError(f"{source} has {len(beyond)} id(s) beyond the encoder's {rows} token "
                                 f"embeddings ({shown}); only BART's {MASK} may sit one past the end, at id {rows}.")
        bounded = copy.copy(self)
        bounded.limit, bounded.lookup = rows, {t: i for t, i in self.vocab.items() if i < rows}
        return bounded

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
        ids = [self.lookup.get(piece, self.unk) for w in text.split(" ") if w for piece in self.word(w)]
        return [self.bos] + ids + [self.eos]


class MinDalle:
    """DALL·E mini / mega as a TokenModel for the sampler in sampling.py."""

    def __init__(self, tokenizer: BpeTokenizer, encoder, decoder, detokenizer, source: Path):
        self.encoder, self.decoder, self.detokenizer = encoder, decoder, detokenizer
        self.text_rows = encoder.embed_tokens.num_embeddings
        self.tokenizer = tokenizer.within(self.text_rows, source / "vocab.json")
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

    @property
    def device(self):
        return self.decoder.lm_head.weight.device

    def start(self, prompts: list[str]):
        import torch

        from .min_dalle_modules import PAD_ID

        rows = []
        for prompt in prompts:
            ids = self.tokenizer(prompt)[: self.text_token_count]
            if max(ids) >= self.text_rows:  # cannot happen (`within`); on CUDA it would be a device assert
                raise ModelLoadError(f"caption {prompt!r} tokenized to an id beyond the {self.text_rows} embeddings")
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


def load(spec: TargetSpec, settings: GenerationSettings, allow_pickle: bool = False) -> Target:
    path = spec.path
    sampling = DEFAULT_SAMPLING.override(settings.temperature, settings.top_k, settings.supercondition)
    runner = Seq2SeqRunner(lambda: load_min_dalle(path, allow_pickle), sampling, resolve_device(settings.device))
    return Target(str(path), spec.kind, MinDalleLayout.find(path).identity(), runner, sampling=asdict(sampling))
