"""The emoji tier: an SD-architecture base pretrained on thousands of captioned colour emoji, and the
fine-tunes users make of such a base (data: emoji.py).

Artifacts (folders under the test bed root):
- emoji-data/<split>/   ft_members, ft_nonmembers (256 each, category-paired), ft_null (256), pretrain (the rest:
                        every Twemoji drawing of its groups, skin tones too, and half their Noto drawings);
                        slice_members / slice_nonmembers: the first 128 pairs, the tests' shared slice
- emoji-tokenizer/      the CLIP-style BPE trained on every emoji caption
- emoji-vae/            AutoencoderKL, 48×48×3 → 12×12×4, trained on pretrain
- emoji-clip/           open_clip CLIP on pretrain (48 px, 4×4 patches); emoji-blip/ a BLIP captioner, the same
- emoji-base            StableDiffusionPipeline (UNet, VAE, CLIP text encoder, DDIM) pretrained on pretrain, 10% of
                        captions dropped as Stable Diffusion's pretraining does
- emoji-finetune, emoji-finetune-null: emoji-base fine-tuned train_text_to_image.py's way on ft_members / ft_null
- emoji-finetune-dup    the same on ft_members with 5 members repeated 20× (named in build.json)
- emoji-lora            a LoRA adapter over emoji-base on ft_members, train_text_to_image_lora.py's way (LORA)
- emoji-large-*         benchmark-only (LARGE): the same recipes on 400 members, 400 non-members and a 400-image
                        null twin, with their own data split, VAE, CLIP and base (the pretraining split is smaller);
                        the test suite never builds them
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = "emoji-data"
# Pairs in the tests' shared slice. At 64 + 64 the default gate passed emoji-finetune (SimA 0.66–0.67 cannot clear
# the bound of 12 attacks at that size).
SLICE = 128
VAE_STEPS = 500
CLIP_STEPS = 600
CAPTIONER_STEPS = 1500
PRETRAIN_STEPS = 2000  # batch 64: ≈ 46 epochs of the 2,799 pretraining images
# Stable Diffusion's pretraining drops 10% of captions, so that the model has an unconditional branch: what
# classifier-free guidance and CLiD's conditional–unconditional discrepancy read. The digits' base has none.
CAPTION_DROPOUT = 0.1
# diffusers' train_text_to_image_lora.py's way: the base frozen, an adapter trained with the full fine-tune's
# minibatches and flips. Its defaults (rank 4 on the attention projections, 15k parameters here) barely moved
# this 1M-parameter UNet, whose attention is one block deep: loss / SimA AUC 0.52 / 0.52 at lr 3e-3. Measured
# at 256 + 256: rank 8 with the resnet convs 0.58 / 0.64 (lr 3e-3, 40 epochs), 0.56 / 0.58 (1e-2), 0.62 / 0.69
# (3e-3, 80 epochs); rank 16, 80 epochs 0.65 / 0.74, as leaky as the full fine-tune (0.63 / 0.73).
LORA = {"rank": 16, "target_modules": ["to_k", "to_q", "to_v", "to_out.0", "conv1", "conv2"], "lr": 3e-3, "epochs": 80}


@dataclass(frozen=True)
class Build:
    """One build of the tier: its artifacts' name prefix and its split sizes (emoji.split_groups)."""

    prefix: str
    members: int

    @property
    def data(self) -> str:
        return f"{self.prefix}-data"

    def artifact(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"


STANDARD = Build("emoji", 256)
# Benchmark-only: 400 members, so that figures at the tests' scale can be checked at a larger one. Its 1,200 audited
# and null groups leave 675 of the 1,875 for pretraining (standard: 1,107); the recipes are the standard's.
LARGE = Build("emoji-large", 400)


def build_of(name: str) -> Build:
    """The build an artifact belongs to."""
    return LARGE if name.startswith(LARGE.prefix) else STANDARD


FINETUNES = {"emoji-finetune": "ft_members", "emoji-finetune-null": "ft_null", "emoji-finetune-dup": "ft_members",
             "emoji-lora": "ft_members", "emoji-large-finetune": "ft_members", "emoji-large-finetune-null": "ft_null"}


def _trained(build: Build) -> tuple[str, ...]:
    """A build's own artifacts: its data, VAE, CLIP, base and fine-tunes (the tokenizer and BLIP are shared)."""
    return (build.data, build.artifact("vae"), build.artifact("clip"), build.artifact("base"),
            *(name for name in FINETUNES if build_of(name) is build))


ARTIFACTS = (*_trained(STANDARD), "emoji-tokenizer", "emoji-blip", *_trained(LARGE))
BENCHMARK_ONLY = ("emoji-blip", *_trained(LARGE))
# LARGE's data waits for the standard's, which fetches the packages both read.
DEPENDENCIES = {DATA: (), "emoji-tokenizer": (DATA,), "emoji-blip": (DATA,), LARGE.data: (DATA,),
                **{b.artifact(n): (b.data,) for b in (STANDARD, LARGE) for n in ("vae", "clip")},
                **{b.artifact("base"): ("emoji-tokenizer", b.artifact("vae")) for b in (STANDARD, LARGE)},
                **{name: (build_of(name).artifact("base"),) for name in FINETUNES}}
COST = {DATA: 10, "emoji-tokenizer": 2, "emoji-vae": 200, "emoji-clip": 60, "emoji-blip": 120, "emoji-base": 900,
        "emoji-finetune": 250, "emoji-finetune-null": 250, "emoji-finetune-dup": 330, "emoji-lora": 250,
        LARGE.data: 10, "emoji-large-vae": 200, "emoji-large-clip": 60, "emoji-large-base": 700,
        "emoji-large-finetune": 350, "emoji-large-finetune-null": 350}


def audit_folders(target: str, small: bool = False) -> tuple[str, str]:
    """The member and non-member folders (relative to the test bed root) of an emoji target: the full
    256 + 256 (LARGE: 400 + 400), or the tests' 128 + 128 slice."""
    if small and build_of(target) is LARGE:
        raise ValueError(f"{target} is benchmark-only: it has no tests' slice, audit it on its 400 + 400")
    prefix = "slice" if small else "ft"
    data = build_of(target).data
    return f"{data}/{prefix}_members", f"{data}/{prefix}_nonmembers"


def _load(root: Path, split: str, build: Build = STANDARD):
    from .digits import read_image_folder

    return read_image_folder(root / build.data / split)


def build_data(root: Path, out: Path, name: str) -> dict:
    import shutil

    from .emoji import write_emoji_splits

    build = build_of(name)
    sizes = {"ft_members": build.members, "ft_nonmembers": build.members, "ft_null": build.members}
    info = write_emoji_splits(out, root.parent.parent / "downloads", sizes)
    if build is LARGE:
        return info
    for label in ("members", "nonmembers"):  # the audited sets list their pairs in order: a prefix is balanced
        source, target = out / f"ft_{label}", out / f"slice_{label}"
        target.mkdir()
        for manifest in ("metadata.jsonl", "groups.jsonl"):
            rows = (source / manifest).read_text().splitlines()[:SLICE]
            (target / manifest).write_text("\n".join(rows) + "\n")
        for row in (source / "metadata.jsonl").read_text().splitlines()[:SLICE]:
            file = json.loads(row)["file_name"]
            shutil.copyfile(source / file, target / file)
    info["splits"] |= {"slice_members": SLICE, "slice_nonmembers": SLICE}
    return info


def build_tokenizer(root: Path, out: Path, name: str) -> dict:
    from .tokenizer import build_tokenizer

    captions = [c for split in ("pretrain", "ft_members", "ft_nonmembers", "ft_null") for c in _load(root, split)[1]]
    return {"vocab_size": len(build_tokenizer(out, captions, vocab_size=1500))}


def build_vae(root: Path, out: Path, name: str) -> dict:
    from .components import EMOJI_VAE_CONFIG
    from .train import train_vae

    vae = train_vae(_load(root, "pretrain", build_of(name))[0], steps=VAE_STEPS, seed=0, config=EMOJI_VAE_CONFIG)
    vae.save_pretrained(out, safe_serialization=True)
    return {"steps": VAE_STEPS, "parameters": sum(p.numel() for p in vae.parameters())}


def build_embedder(root: Path, out: Path, name: str) -> dict:
    """The tiny CLIP or BLIP captioner, trained on the pretraining split (the audited images are unseen)."""
    images, captions = _load(root, "pretrain", build_of(name))
    if name.endswith("-clip"):
        from .embedder import train_tiny_clip

        train_tiny_clip(out, images, captions, steps=CLIP_STEPS, seed=0)
        return {"steps": CLIP_STEPS, "kind": "open_clip CLIP"}
    from .blip import train_captioner

    train_captioner(out, images, captions, steps=CAPTIONER_STEPS, seed=0)
    return {"steps": CAPTIONER_STEPS, "kind": "BlipForConditionalGeneration"}


def build_base(root: Path, out: Path, name: str) -> dict:
    """emoji-base (emoji-large-base): UNet and text encoder trained from scratch on pretrain, in minibatches."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    from .components import (
        EMOJI_UNET_CONFIG,
        assemble_pipeline,
        make_clip_text_encoder,
        make_unet,
    )
    from .finetune import train_minibatch
    from .train import encode_latents, tokenize

    tokenizer = CLIPTokenizer.from_pretrained(str(root / "emoji-tokenizer"))
    build = build_of(name)
    vae = AutoencoderKL.from_pretrained(root / build.artifact("vae"))
    images, captions = _load(root, "pretrain", build)
    torch.manual_seed(1)
    unet, text_encoder = make_unet(EMOJI_UNET_CONFIG), make_clip_text_encoder(tokenizer)
    train_minibatch(unet, text_encoder, encode_latents(vae, images), tokenize(tokenizer, captions), PRETRAIN_STEPS,
                    seed=2, batch_size=64, lr=1e-3, train_text_encoder=True, caption_dropout=CAPTION_DROPOUT,
                    empty_ids=tokenize(tokenizer, [""]))
    assemble_pipeline("sd", tokenizer, vae, text_encoder, unet).save_pretrained(out, safe_serialization=True)
    return {"split": f"{build.data}/pretrain", "images": len(images), "steps": PRETRAIN_STEPS, "batch_size": 64,
            "caption_dropout": CAPTION_DROPOUT}


def build_finetune(root: Path, out: Path, name: str) -> dict:
    import torch
    from diffusers import StableDiffusionPipeline

    from .finetune import RECIPE, finetune, with_planted_duplicates

    build = build_of(name)
    pipe = StableDiffusionPipeline.from_pretrained(root / build.artifact("base"))
    split = FINETUNES[name]
    images, captions = _load(root, split, build)
    info: dict = {"base": build.artifact("base"), "split": f"{build.data}/{split}", **RECIPE}
    if name == "emoji-finetune-dup":
        images, captions, planted = with_planted_duplicates(root / DATA / split, images, captions, seed=5)
        info |= planted
    if name == "emoji-lora":
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

        pipe.unet.requires_grad_(False)
        torch.manual_seed(3)
        pipe.unet.add_adapter(LoraConfig(r=LORA["rank"], lora_alpha=LORA["rank"], init_lora_weights="gaussian",
                                         target_modules=LORA["target_modules"]))
        finetune(pipe, images, captions, seed=4, recipe=dict(RECIPE, lr=LORA["lr"], epochs=LORA["epochs"]))
        StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                                  safe_serialization=True)
        adapter = sum(p.numel() for p in pipe.unet.parameters() if p.requires_grad)
        return {**info, "lr": LORA["lr"], "epochs": LORA["epochs"], "lora": {**LORA, "adapter_parameters": adapter}}
    finetune(pipe, images, captions, seed=4)
    pipe.save_pretrained(out, safe_serialization=True)
    return info


BUILDERS = {"emoji-tokenizer": build_tokenizer, "emoji-blip": build_embedder, **{name: build_finetune for name in FINETUNES}}
BUILDERS |= {b.artifact(suffix): builder for b in (STANDARD, LARGE)
             for suffix, builder in (("data", build_data), ("vae", build_vae), ("clip", build_embedder),
                                     ("base", build_base))}
