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
ever draws image codes (`sampling.py`). Real DALL·E mini / mega checkpoints in min-dalle's layout load
through `min_dalle.py` into the same sampler.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..access.base import NEXT_TOKEN
from ..errors import MiaUsageError, ModelLoadError
from ..store import hash_folder
from ..weights import check_weights_folder
from .base import SEQ2SEQ, GenerationSettings, Target, TargetSpec, resolve_device
from .sampling import Sampling, Seq2SeqRunner

INDEX_FILE = "seq2seq_index.json"
FORMAT = "mia-checks-seq2seq"
PARTS = ("bart", "tokenizer", "vqvae")
KIND = "seq2seq:BartForConditionalGeneration+VQModel"


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
    read_index(folder, option)
    for part in PARTS:
        if not (folder / part).is_dir():
            raise MiaUsageError(f"{option}: {folder} is a seq2seq target folder ({INDEX_FILE}) but has no {part}/ "
                                "folder. Save the model with mia_checks.targets.seq2seq.save_seq2seq.")
    for part in ("bart", "vqvae"):
        check_weights_folder(folder / part, allow_pickle, option)


def resolve(path: Path, spec: str, option: str, allow_pickle: bool, lora: str | None = None) -> TargetSpec:
    if lora:
        raise MiaUsageError("--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a seq2seq target.")
    check_seq2seq_folder(path, allow_pickle, option)
    index = read_index(path, option)
    try:
        sides = [int(n) for n in index["image_tokens"]]
        if len(sides) != 2 or min(sides) < 1:
            raise ValueError(f"image_tokens {sides}")
        image_tokens = sides[0] * sides[1]
        supercondition = Sampling(**index.get("sampling", {})).supercondition
    except (KeyError, TypeError, ValueError) as exc:
        raise MiaUsageError(f"{option}: {path / INDEX_FILE} has no valid image_tokens [H, W] or sampling "
                            f"({type(exc).__name__}: {exc}).") from None
    return TargetSpec(spec, SEQ2SEQ, KIND, NEXT_TOKEN, None, option, path, image_tokens=image_tokens,
                      supercondition=supercondition)


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


def load(spec: TargetSpec, settings: GenerationSettings, allow_pickle: bool = False) -> Target:
    path = spec.path
    sampling = Sampling(**read_index(path).get("sampling", {})).override(
        settings.temperature, settings.top_k, settings.supercondition)
    runner = Seq2SeqRunner(lambda: load_seq2seq(path, allow_pickle), sampling, resolve_device(settings.device))
    return Target(str(path), spec.kind, hash_folder(path), runner, runner.loaded, sampling=asdict(sampling))
