"""Seq2seq (DALL·E-mini-style) targets: a BART-style encoder-decoder reads the caption and writes the image
as a sequence of VQ codes, one token at a time; a VQ decoder turns the codes into pixels.

The folder layout of this kind (what `save_seq2seq` writes, each part with `save_pretrained`, safetensors):

    seq2seq_index.json   {"format": "mia-checks-seq2seq", "version": 1, "image_tokens": [H, W],
                          "text_max_length": L, "sampling": {"temperature": …, "top_k": …, "supercondition": …}}
    bart/                transformers BartForConditionalGeneration (config.json, model.safetensors)
    tokenizer/           the caption tokenizer (any transformers tokenizer folder)
    vqvae/               diffusers VQModel with lookup_from_codebook=True (config.json, diffusion_pytorch_model.safetensors)

BART has one vocabulary, so it is shared: ids [0, T) are the tokenizer's text tokens, T + k is image code k
(k < the VQModel's codebook size C), and T + C is the image-start token the decoder begins from. Sampling only
ever draws image codes. Real DALL·E mini / mega checkpoints in min-dalle's layout load through `min_dalle.py`
into the same sampler.

Sampling (`sample_image`) is DALL·E mini's: temperature, top-k and "supercondition" (classifier-free guidance
on logits: f·cond + (1 − f)·uncond, the unconditional row being the empty caption; f = 1 turns it off). Each
image is sampled alone with its own CPU generator, so it depends only on its prompt and seed. Nothing here
touches torch's global state (grad mode is set by context managers, no global RNG, no thread count).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import MiaUsageError, ModelLoadError

INDEX_FILE = "seq2seq_index.json"
FORMAT = "mia-checks-seq2seq"
PARTS = ("bart", "tokenizer", "vqvae")


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


class BartVQ:
    """A BartForConditionalGeneration over the shared vocabulary and a VQModel decoder (see the module doc)."""

    def __init__(self, bart, tokenizer, vqvae, image_tokens: tuple[int, int], text_max_length: int,
                 sampling: Sampling = Sampling()):
        self.bart, self.tokenizer, self.vqvae = bart, tokenizer, vqvae
        self.image_tokens = tuple(image_tokens)
        self.text_max_length = text_max_length
        self.sampling = sampling
        self.text_vocab_size = len(tokenizer)
        self.codebook_size = vqvae.config.num_vq_embeddings
        self.image_start_token_id = self.text_vocab_size + self.codebook_size
        self.n_image_tokens = self.image_tokens[0] * self.image_tokens[1]
        self.check_sizes()

    def check_sizes(self, where: str = "the model") -> None:
        expected = self.text_vocab_size + self.codebook_size + 1
        config = self.bart.config
        problems = []
        if config.vocab_size != expected:
            problems.append(f"BART's vocabulary has {config.vocab_size} tokens, but the tokenizer's "
                            f"{self.text_vocab_size} text tokens + {self.codebook_size} image codes + 1 image-start "
                            f"token make {expected}")
        if config.decoder_start_token_id != self.image_start_token_id:
            problems.append(f"decoder_start_token_id is {config.decoder_start_token_id}, not the image-start token "
                            f"{self.image_start_token_id}")
        if config.max_position_embeddings < max(self.n_image_tokens, self.text_max_length):
            problems.append(f"max_position_embeddings {config.max_position_embeddings} < "
                            f"{max(self.n_image_tokens, self.text_max_length)} positions needed")
        if not self.vqvae.config.lookup_from_codebook:
            problems.append("the VQModel must have lookup_from_codebook=True to decode codes")
        if problems:
            raise ModelLoadError(f"{where}: " + "; ".join(problems))

    @property
    def device(self):
        return self.bart.device

    def text_inputs(self, prompts: list[str]):
        enc = self.tokenizer(list(prompts), padding="max_length", max_length=self.text_max_length, truncation=True,
                             return_tensors="pt")
        return enc.input_ids.to(self.device), enc.attention_mask.to(self.device)

    def start(self, prompts: list[str]):
        import torch

        ids, mask = self.text_inputs(prompts)
        encoder_outputs = self.bart.get_encoder()(input_ids=ids, attention_mask=mask)
        state: dict[str, Any] = {"cache": None}
        start = torch.full((len(prompts), 1), self.image_start_token_id, dtype=torch.long, device=self.device)

        def step(previous):
            tokens = start if previous is None else (previous.to(self.device) + self.text_vocab_size).view(-1, 1)
            out = self.bart(encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=tokens,
                            cache=state["cache"], use_cache=True)
            state["cache"] = out.cache
            # Sampled on the CPU, with the image's own CPU generator, on any device.
            return out.logits[:, -1, self.text_vocab_size : self.text_vocab_size + self.codebook_size].float().cpu()

        return step

    def decode_codes(self, codes) -> np.ndarray:
        import torch

        h, w = self.image_tokens
        shape = (len(codes), h, w, self.vqvae.config.latent_channels)
        pixels = self.vqvae.decode(codes.reshape(len(codes), -1).to(self.device), force_not_quantize=True,
                                   shape=shape).sample
        # The VQModel works in [-1, 1], as diffusers' autoencoders do.
        pixels = (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
        return (pixels * 255).round().to(torch.uint8).cpu().numpy()

    def teacher_forced_logits(self, captions: list[str], codes):
        """Logits over the whole vocabulary at each image position, given the true previous codes."""
        import torch

        ids, mask = self.text_inputs(captions)
        codes = codes.to(self.device)
        start = torch.full((len(codes), 1), self.image_start_token_id, dtype=torch.long, device=self.device)
        decoder_ids = torch.cat([start, codes[:, :-1] + self.text_vocab_size], dim=1)
        return self.bart(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits

    def image_codes(self, images: np.ndarray):
        """(n, H, W, 3) uint8 → (n, n_image_tokens) codes of the VQModel's encoder, row-major."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        latents = self.vqvae.encode(x.to(self.device)).latents
        _, _, (_, _, indices) = self.vqvae.quantize(latents)
        return indices.reshape(len(images), -1)

    def to(self, device: str) -> BartVQ:
        self.bart.to(device)
        self.vqvae.to(device)
        return self


def save_seq2seq(model: BartVQ, folder: Path) -> None:
    """Write the folder layout of this kind (safetensors)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.bart.save_pretrained(folder / "bart", safe_serialization=True)
    model.tokenizer.save_pretrained(str(folder / "tokenizer"))
    model.vqvae.save_pretrained(folder / "vqvae", safe_serialization=True)
    index = {"format": FORMAT, "version": 1, "image_tokens": list(model.image_tokens),
             "text_max_length": model.text_max_length, "sampling": asdict(model.sampling)}
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def is_seq2seq_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / INDEX_FILE).is_file()


def read_index(folder: Path, option: str = "--mia-target") -> dict:
    path = Path(folder) / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MiaUsageError(f"{option}: cannot read {path} ({exc}).") from None
    if index.get("format") != FORMAT or index.get("version") != 1:
        raise MiaUsageError(f"{option}: {path} is not a {FORMAT} version 1 index (format {index.get('format')!r}, "
                            f"version {index.get('version')!r}).")
    return index


def check_seq2seq_folder(folder: Path, allow_pickle: bool, option: str = "--mia-target") -> None:
    """Cheap checks before anything loads: the index, the three parts, safetensors weights."""
    from .targets import PICKLE_SUFFIXES

    read_index(folder, option)
    for part in PARTS:
        if not (folder / part).is_dir():
            raise MiaUsageError(f"{option}: {folder} is a seq2seq target folder ({INDEX_FILE}) but has no {part}/ "
                                "folder. Save the model with mia_checks.seq2seq.save_seq2seq.")
    for part in ("bart", "vqvae"):
        files = list((folder / part).iterdir())
        if not any(p.suffix == ".safetensors" for p in files):
            pickles = [p.name for p in files if p.suffix in PICKLE_SUFFIXES]
            if not pickles:
                raise MiaUsageError(f"{option}: {folder / part} holds no weights (*.safetensors).")
            if not allow_pickle:
                raise MiaUsageError(f"{option}: {folder / part} holds only pickle-based weights ({', '.join(pickles)}). "
                                    "Loading a pickle can run arbitrary code: convert it to safetensors, or pass "
                                    "--mia-allow-pickle if you trust this checkpoint.")


def load_seq2seq(folder: Path, allow_pickle: bool = False) -> BartVQ:
    """Load the folder strictly: every weight of the checkpoint must match a parameter of the model and the
    other way round (from_pretrained alone would silently keep random weights for missing keys)."""
    from diffusers import VQModel
    from transformers import AutoTokenizer, BartForConditionalGeneration

    folder = Path(folder)
    index = read_index(folder)
    try:
        bart, info = BartForConditionalGeneration.from_pretrained(
            folder / "bart", use_safetensors=None if allow_pickle else True, output_loading_info=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load {folder / 'bart'}: {type(exc).__name__}: {exc}") from exc
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise ModelLoadError(f"{folder / 'bart'}: the weights do not match the model's keys: "
                             + "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, sorted(v)[:5]))}"
                                         + (" …" if len(v) > 5 else "") for k, v in bad.items()))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        vqvae = VQModel.from_pretrained(folder / "vqvae", use_safetensors=None if allow_pickle else True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer or VQModel of {folder}: {type(exc).__name__}: {exc}") from exc
    sampling = Sampling(**index.get("sampling", {}))
    return BartVQ(bart.eval(), tokenizer, vqvae.eval(), tuple(index["image_tokens"]), int(index["text_max_length"]),
                  sampling)


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
            from diffusers.utils import logging as diffusers_logging
            from transformers.utils import logging as transformers_logging

            diffusers_logging.disable_progress_bar()  # loading bars would interleave with pytest's output
            transformers_logging.disable_progress_bar()
            with torch.random.fork_rng(devices=[]):  # whatever a library's loading draws, the caller's RNG is kept
                self.model = self.load().to(self.device)
        return self.model


def seq2seq_kind(path: Path) -> str | None:
    """'seq2seq' for this kind's folder, 'min-dalle' for min-dalle's layout, None for anything else."""
    from .min_dalle import is_min_dalle_folder

    if is_seq2seq_folder(path):
        return "seq2seq"
    if is_min_dalle_folder(path):
        return "min-dalle"
    return None


def check_seq2seq_target(path: Path, allow_pickle: bool, option: str = "--mia-target") -> None:
    from .min_dalle import check_min_dalle_folder

    if seq2seq_kind(path) == "seq2seq":
        check_seq2seq_folder(path, allow_pickle, option)
    else:
        check_min_dalle_folder(path, allow_pickle, option)


# Why the white-box attacks skip min-dalle's layout: the token loss must encode the query images into codes.
NO_VQ_ENCODER = "min-dalle's files hold the VQGAN decoder only, so query images cannot be encoded into its tokens"


def seq2seq_whitebox(path: Path) -> tuple[str | None, str | None]:
    """(white-box kind, None), or (None, why not): see targets.whitebox_access."""
    from .attacks.whitebox import NEXT_TOKEN

    return (NEXT_TOKEN, None) if seq2seq_kind(path) == "seq2seq" else (None, NO_VQ_ENCODER)


def load_seq2seq_target(path: Path, settings, allow_pickle: bool = False):
    """A Target of either seq2seq layout; `settings` is targets.GenerationSettings."""
    from .targets import Target, hash_folder, resolve_device

    device = resolve_device(settings.device)
    options = (settings.temperature, settings.top_k, settings.supercondition)
    if seq2seq_kind(path) == "seq2seq":
        defaults = Sampling(**read_index(path).get("sampling", {}))
        sampling = defaults.override(*options)
        kind, identity = "seq2seq:BartForConditionalGeneration+VQModel", hash_folder(path)
        runner = Seq2SeqRunner(lambda: load_seq2seq(path, allow_pickle), sampling, device)
    else:
        from . import min_dalle

        layout = min_dalle.MinDalleLayout.find(path)
        sampling = min_dalle.DEFAULT_SAMPLING.override(*options)
        kind, identity = f"min-dalle:{layout.dalle.name}", layout.identity()
        runner = Seq2SeqRunner(lambda: min_dalle.load_min_dalle(path, allow_pickle), sampling, device)
    whitebox_kind, unsupported = seq2seq_whitebox(path)
    return Target(str(path), kind, identity, runner, None if unsupported else runner.loaded, unsupported,
                  whitebox_kind, sampling=asdict(sampling))
