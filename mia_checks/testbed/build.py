"""Build the test bed once into a cache directory keyed by the builder's version.

Artifacts (each a folder under <cache>/testbed/v<BUILDER_VERSION>/):
- data/<split>/         image folders with metadata.jsonl (members, nonmembers, shadow_*, null_train, public)
- tokenizer/            the offline BPE CLIPTokenizer
- vae/                  AutoencoderKL trained on the public split
- vq/                   VQModel (64-code tokenizer of images) trained on the public split in [-1, 1], for seq2seq
- amused-vq/            the same in [0, 1], diffusers' aMUSEd convention
- clip/                 tiny open_clip model trained on the public split
- clip-hf/              tiny transformers CLIPModel (+ CLIPProcessor) trained on the public split
- blip/, blip-itm/      tiny BLIP captioner and BLIP image–text retrieval model, trained on the public split
- sd-leaky, sd-mild, sd-null, sd-shadow, ldm-leaky, ldm-null, amused-leaky, amused-null: saved pipelines
- dalle-leaky, dalle-null: seq2seq targets (BART over captions → VQ codes → vq/), mia_checks/seq2seq.py's layout
- min-dalle-vqgan/      min-dalle's VQGAN decoder (its Detokenizer) trained to render vq/'s codes (detoker.pt)
- min-dalle-leaky, min-dalle-null: the same task in min-dalle's layout and module classes (dalle_bart_mini/ with
                        vocab.json one entry past the encoder's embeddings, <mask>, as DALL·E mini ships it; vqgan/)
- single-file/sd-leaky.safetensors  sd-leaky as one original-layout checkpoint (diffusers' from_single_file)
- lora-leaky/           a LoRA adapter fine-tuned on the members over sd-null (load_lora_weights)
- data-ft/<split>/      the realistic setting's splits, carved out of the public pool (finetune.py)
- sd-base               pretrained from scratch on data-ft/pretrain (1,253 captioned digits)
- sd-finetune, sd-finetune-null: sd-base fine-tuned the train_text_to_image.py way on ft_members / ft_null
- sd-finetune-dup: the same on ft_members with planted duplicates (5 members 20× each, named in build.json):
                        the ground truth of the memorisation and regurgitation tests
- sd-finetune-dp-control, sd-finetune-dp50, -dp8, -dp1: the same recipe on ft_members with DP-SGD (dp.py): per-sample
                        clipping alone (the control), and noise for ε ≈ 50, 8, 1; each folder's privacy.json
                        declares what the accountant proved
- emoji-*               the emoji tier: captioned colour images, a pretrained base and its fine-tunes (emoji_tier.py)

Independent artifacts train in two processes of one thread each (on 2 cores that beats one process of two
threads); a file lock per artifact lets pytest-xdist workers and the demo share one build.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from ..store import default_cache_root
from ..targets.privacy import PRIVACY_FILE
from . import emoji_tier

BUILDER_VERSION = "2"
# An artifact's recipe version, bumped when its recipe changes: a folder built by an older recipe (its
# build.json says which; none said means 1) is rebuilt, as is one with no build.json. BUILDER_VERSION
# rebuilds everything.
RECIPES = {"amused-leaky": 2, "amused-null": 2}  # 2: on amused-vq (aMUSEd's [0, 1] pixels), not vq
SEED = 0
VAE_STEPS = 300
CLIP_STEPS = 300
BLIP_STEPS = 600  # image–text retrieval
CAPTIONER_STEPS = 1500  # names the right digit for 91% of members and non-members (600 steps: 61%)
TARGET_STEPS = 800  # memorises 32 members: black-box reconstruction AUC ≈ 1 from step 600 on
AMUSED_STEPS = 1500  # masked-token training memorises more slowly than denoising
DALLE_STEPS = 1000  # teacher-forced next-code training; 600 steps left best-of-2 pixel-MSE AUC at 0.90
MIN_DALLE_STEPS = 1000  # the same for the min-dalle twins: best-of-2 pixel-MSE AUC 1.0 (supercondition 1)
LORA_STEPS = 800
LORA_RANK = 8
MILD_STEPS = 60  # the same run, stopped early: white-box AUC ≈ 0.75, black-box attacks near chance

# target name → (text encoder family, training split)
TARGETS = {
    "sd-leaky": ("sd", "members"),
    "sd-null": ("sd", "null_train"),
    "sd-shadow": ("sd", "shadow_members"),
    "ldm-leaky": ("ldm", "members"),
    "ldm-null": ("ldm", "null_train"),
    "amused-leaky": ("amused", "members"),
    "amused-null": ("amused", "null_train"),
    "dalle-leaky": ("dalle", "members"),
    "dalle-null": ("dalle", "null_train"),
    "min-dalle-leaky": ("min-dalle", "members"),
    "min-dalle-null": ("min-dalle", "null_train"),
}
EARLY_STOPS = {"sd-mild": ("sd-leaky", MILD_STEPS)}  # saved from the run of another target
# The realistic setting (finetune.py): a pretrained base, fine-tuned briefly on 128 members.
PRETRAIN_STEPS = 2500  # batch 64: ≈ 128 epochs of the 1,253 pretraining images
FINETUNES = {"sd-finetune": "ft_members", "sd-finetune-null": "ft_null", "sd-finetune-dup": "ft_members",
             "sd-finetune-dp-control": "ft_members", "sd-finetune-dp50": "ft_members", "sd-finetune-dp8": "ft_members",
             "sd-finetune-dp1": "ft_members"}
# Rough seconds on one core, to start the longest jobs first.
COST = {"sd-base": 400, "sd-finetune-dup": 120, "sd-finetune-dp-control": 170, "sd-finetune-dp50": 170,
        "sd-finetune-dp8": 170, "sd-finetune-dp1": 170, "amused-leaky": 170, "amused-null": 170, "ldm-leaky": 150, "ldm-null": 150, "sd-leaky": 110,
        "sd-null": 110, "sd-shadow": 110, "lora-leaky": 110, "vae": 40, "vq": 40, "amused-vq": 40, "clip": 35,
        "clip-hf": 35, "blip": 60, "blip-itm": 35}
COST |= {"dalle-leaky": 90, "dalle-null": 90, "min-dalle-vqgan": 60, "min-dalle-leaky": 45, "min-dalle-null": 45}
ALIASES = {"leaky": "sd-leaky", "mild": "sd-mild", "null": "sd-null", "shadow": "sd-shadow",
           "finetune": "sd-finetune", "finetune-null": "sd-finetune-null", "finetune-dup": "sd-finetune-dup",
           "finetune-dp-control": "sd-finetune-dp-control", "finetune-dp50": "sd-finetune-dp50",
           "finetune-dp8": "sd-finetune-dp8", "finetune-dp1": "sd-finetune-dp1"}
DERIVED = {"single-file": "sd-leaky", "lora-leaky": "sd-null"}  # artifact → the target it is made from
ADAPTERS = {"lora-leaky": "sd-null", "emoji-lora": "emoji-base"}  # LoRA adapter → the pipeline it loads over
EMBEDDERS = ("clip", "clip-hf", "blip", "blip-itm")  # trained on the public split; clip-hf uses the tokenizer
ALL_ARTIFACTS = ("data", "tokenizer", "vae", "vq", "amused-vq", *EMBEDDERS, "min-dalle-vqgan", *TARGETS, *EARLY_STOPS,
                 *DERIVED, "data-ft", "sd-base", *FINETUNES, *emoji_tier.ARTIFACTS)
COST |= emoji_tier.COST
# Built when a benchmark or `python -m mia_checks.testbed` asks, not for the test suite: artifacts no test reads.
BENCHMARK_ONLY = emoji_tier.BENCHMARK_ONLY
SUITE_ARTIFACTS = tuple(name for name in ALL_ARTIFACTS if name not in BENCHMARK_ONLY)
CAPTION_SPLITS = ("public", "members", "nonmembers", "shadow_members", "shadow_nonmembers", "null_train")


def audit_sets(target: str, small: bool = False) -> tuple[str, str]:
    """The member and non-member folders (relative to the test bed root) a target is audited on; `small`: the
    emoji tier's 128 + 128 slice that the tests share instead of its 256 + 256."""
    if target.startswith("emoji-"):
        return emoji_tier.audit_folders(target, small)
    if ALIASES.get(target, target) in FINETUNES:
        return "data-ft/ft_members", "data-ft/ft_nonmembers"
    return "data/members", "data/nonmembers"


def audit_options(root: Path, target: str, small: bool = False) -> dict[str, str]:
    """The gate's options (build_settings' raw names) auditing a test-bed target as the demo does: the target (a
    LoRA adapter over its pipeline), its audit sets, the CLIP of its images, guidance 1 (the test bed's models
    never saw an empty prompt)."""
    name = ALIASES.get(target, target)
    members, nonmembers = audit_sets(name, small)
    model = {"target": str(root / ADAPTERS[name]), "lora": str(root / name)} if name in ADAPTERS else \
        {"target": str(root / name)}
    return {**model, "members": str(root / members), "nonmembers": str(root / nonmembers),
            "embedder": str(root / embedder_for(name)), "guidance": "1"}


def audit_artifacts(target: str) -> list[str]:
    """What audit_options(target) reads, for ensure_built: the target (an adapter's pipeline is its dependency),
    the CLIP of its images, and the data artifact holding its audit sets."""
    name = ALIASES.get(target, target)
    return [name, embedder_for(name), audit_sets(name)[0].split("/")[0]]


def embedder_for(target: str) -> str:
    """The test bed's CLIP (a folder under its root) trained on the images a target draws."""
    if target.startswith("emoji-"):
        return emoji_tier.build_of(target).artifact("clip")
    return "clip"


def testbed_root(cache_root: Path | None = None) -> Path:
    return (cache_root or default_cache_root()) / "testbed" / f"v{BUILDER_VERSION}"


def _dependencies(name: str) -> tuple[str, ...]:
    if name in emoji_tier.DEPENDENCIES:
        return emoji_tier.DEPENDENCIES[name]
    if name == "clip-hf":
        return ("tokenizer",)
    if name in ("tokenizer", "vae", "vq", "amused-vq", *EMBEDDERS):
        return ("data",)
    if name == "min-dalle-vqgan":
        return ("vq",)
    if name in TARGETS and TARGETS[name][0] == "min-dalle":
        return ("vq", "min-dalle-vqgan")
    if name in TARGETS:
        return ("tokenizer", {"amused": "amused-vq", "dalle": "vq"}.get(TARGETS[name][0], "vae"))
    if name in EARLY_STOPS:
        return (EARLY_STOPS[name][0],)
    if name in DERIVED:
        return (DERIVED[name],)
    if name == "data-ft":
        return ("data",)
    if name == "sd-base":
        return ("data-ft", "tokenizer", "vae")
    if name in FINETUNES:
        return ("sd-base",)
    return ()


def _load_split(root: Path, split: str):
    """Images (uint8) and captions of a written split, in manifest order: `split` under data/, or a path."""
    from .digits import read_image_folder

    return read_image_folder(root / split if "/" in split else root / "data" / split)


def _build_data(root: Path, out: Path, name: str) -> dict:
    from .digits import write_splits

    write_splits(out)
    return {"splits": {p.name: sum(1 for _ in open(p / "metadata.jsonl")) for p in sorted(out.iterdir())}}


def _build_tokenizer(root: Path, out: Path, name: str) -> dict:
    from .tokenizer import build_tokenizer

    captions = [c for split in ("public", "members", "nonmembers", "shadow_members", "shadow_nonmembers",
                                "null_train") for c in _load_split(root, split)[1]]
    return {"vocab_size": len(build_tokenizer(out, captions))}


def _build_vae(root: Path, out: Path, name: str) -> dict:
    from .train import train_vae

    images, _ = _load_split(root, "public")
    vae = train_vae(images, steps=VAE_STEPS, seed=SEED)
    vae.save_pretrained(out, safe_serialization=True)
    return {"steps": VAE_STEPS, "parameters": sum(p.numel() for p in vae.parameters())}


def _build_vq(root: Path, out: Path, name: str) -> dict:
    from .amused import train_vq

    unit_range = name == "amused-vq"  # aMUSEd's VQ reads pixels in [0, 1]
    vq = train_vq(_load_split(root, "public")[0], steps=VAE_STEPS, seed=SEED, unit_range=unit_range)
    vq.save_pretrained(out, safe_serialization=True)
    return {"steps": VAE_STEPS, "pixels": "[0, 1]" if unit_range else "[-1, 1]",
            "parameters": sum(p.numel() for p in vq.parameters())}


def _build_amused(root: Path, out: Path, name: str) -> dict:
    from diffusers import VQModel
    from transformers import CLIPTokenizer

    from .amused import train_amused

    split = TARGETS[name][1]
    images, captions = _load_split(root, split)
    pipe = train_amused(CLIPTokenizer.from_pretrained(str(root / "tokenizer")), VQModel.from_pretrained(root / "amused-vq"),
                        images, captions, AMUSED_STEPS, seed=SEED + 2)
    pipe.save_pretrained(out, safe_serialization=True)
    return {"family": "amused", "split": split, "steps": AMUSED_STEPS,
            "transformer_parameters": sum(p.numel() for p in pipe.transformer.parameters())}


def _build_dalle(root: Path, out: Path, name: str) -> dict:
    from diffusers import VQModel
    from transformers import CLIPTokenizer

    from ..targets.seq2seq import save_seq2seq
    from .dalle import train_dalle

    split = TARGETS[name][1]
    images, captions = _load_split(root, split)
    model = train_dalle(CLIPTokenizer.from_pretrained(str(root / "tokenizer")), VQModel.from_pretrained(root / "vq"),
                        images, captions, DALLE_STEPS, seed=SEED + 2)
    save_seq2seq(model, out)
    return {"family": "dalle", "split": split, "steps": DALLE_STEPS,
            "bart_parameters": sum(p.numel() for p in model.bart.parameters())}


def _build_min_dalle_vqgan(root: Path, out: Path, name: str) -> dict:
    import torch
    from diffusers import VQModel

    from .dalle import train_min_dalle_detokenizer

    detokenizer = train_min_dalle_detokenizer(VQModel.from_pretrained(root / "vq").eval(),
                                              _load_split(root, "public")[0], steps=VAE_STEPS, seed=SEED)
    out.mkdir(parents=True)
    torch.save({k: v.contiguous() for k, v in detokenizer.state_dict().items()}, out / "detoker.pt")
    return {"steps": VAE_STEPS, "from": "vq", "parameters": sum(p.numel() for p in detokenizer.parameters())}


def _build_min_dalle(root: Path, out: Path, name: str) -> dict:
    """A twin in min-dalle's layout: its vocabulary from every split's captions (no caption is <unk>)."""
    from diffusers import VQModel

    from .dalle import min_dalle_vocabulary, save_min_dalle, train_min_dalle

    split = TARGETS[name][1]
    images, captions = _load_split(root, split)
    vocab, merges = min_dalle_vocabulary([c for s in CAPTION_SPLITS for c in _load_split(root, s)[1]])
    encoder, decoder = train_min_dalle(vocab, merges, VQModel.from_pretrained(root / "vq").eval(), images, captions,
                                       MIN_DALLE_STEPS, seed=SEED + 2)
    save_min_dalle(out, vocab, merges, encoder, decoder, detokenizer=None)
    shutil.copyfile(root / "min-dalle-vqgan" / "detoker.pt", out / "vqgan" / "detoker.pt")
    return {"family": "min-dalle", "split": split, "steps": MIN_DALLE_STEPS, "vocab": len(vocab),
            "encoder_rows": vocab["<mask>"], "parameters": sum(p.numel() for m in (encoder, decoder)
                                                               for p in m.parameters())}


def _build_clip(root: Path, out: Path, name: str) -> dict:
    from .embedder import train_tiny_clip

    images, captions = _load_split(root, "public")
    train_tiny_clip(out, images, captions, steps=CLIP_STEPS, seed=SEED)
    return {"steps": CLIP_STEPS}


def _build_hf_embedder(root: Path, out: Path, name: str) -> dict:
    from .blip import train_captioner, train_retrieval
    from .embedder import train_tiny_hf_clip

    images, captions = _load_split(root, "public")
    if name == "clip-hf":
        train_tiny_hf_clip(out, root / "tokenizer", images, captions, steps=CLIP_STEPS, seed=SEED)
        return {"steps": CLIP_STEPS, "kind": "transformers CLIPModel"}
    train = train_captioner if name == "blip" else train_retrieval
    steps = CAPTIONER_STEPS if name == "blip" else BLIP_STEPS
    train(out, images, captions, steps=steps, seed=SEED)
    return {"steps": steps, "kind": "BlipForConditionalGeneration" if name == "blip" else "BlipForImageTextRetrieval"}


def _build_single_file(root: Path, out: Path, name: str) -> dict:
    from .single_file import save_single_file

    path = save_single_file(root / "sd-leaky", out / "sd-leaky.safetensors")
    return {"from": "sd-leaky", "file": path.name, "bytes": path.stat().st_size}


def _build_lora(root: Path, out: Path, name: str) -> dict:
    """A LoRA fine-tune of sd-null on the members: only the adapter learns, the base stays frozen."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from .train import encode_latents, tokenize, train_denoiser

    pipe = StableDiffusionPipeline.from_pretrained(root / DERIVED["lora-leaky"])
    images, captions = _load_split(root, "members")
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    torch.manual_seed(SEED + 3)
    pipe.unet.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights="gaussian",
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]))
    params = [p for p in pipe.unet.parameters() if p.requires_grad]
    train_denoiser(pipe.unet, pipe.text_encoder, encode_latents(pipe.vae, images), tokenize(pipe.tokenizer, captions),
                   LORA_STEPS, seed=SEED + 2, params=params)
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                              safe_serialization=True)
    return {"base": DERIVED["lora-leaky"], "split": "members", "steps": LORA_STEPS, "rank": LORA_RANK,
            "adapter_parameters": sum(p.numel() for p in params)}


def _build_finetune_data(root: Path, out: Path, name: str) -> dict:
    import numpy as np

    from .digits import NUMBER_WORDS, write_image_folder
    from .finetune import carve_finetune_splits

    images, captions = _load_split(root, "public")
    names = [r["file_name"] for r in map(json.loads, (root / "data" / "public" / "metadata.jsonl").read_text().splitlines())]
    labels = [NUMBER_WORDS.index(c.split(",")[0].split()[-1]) for c in captions]
    splits = carve_finetune_splits(captions, np.array(labels))
    for split, idx in splits.items():
        write_image_folder(out / split, images[idx], [captions[i] for i in idx], [names[i] for i in idx])
    return {"from": "data/public", "splits": {split: len(idx) for split, idx in splits.items()}}


def _build_base(root: Path, out: Path, name: str) -> dict:
    """sd-base: UNet and text encoder trained from scratch on data-ft/pretrain, in minibatches."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    from .components import assemble_pipeline, make_clip_text_encoder, make_unet
    from .finetune import train_minibatch
    from .train import encode_latents, tokenize

    tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"))
    vae = AutoencoderKL.from_pretrained(root / "vae")
    images, captions = _load_split(root, "data-ft/pretrain")
    torch.manual_seed(SEED + 1)
    unet, text_encoder = make_unet(), make_clip_text_encoder(tokenizer)
    train_minibatch(unet, text_encoder, encode_latents(vae, images), tokenize(tokenizer, captions), PRETRAIN_STEPS,
                    seed=SEED + 2, batch_size=64, lr=1e-3, train_text_encoder=True)
    assemble_pipeline("sd", tokenizer, vae, text_encoder, unet).save_pretrained(out, safe_serialization=True)
    return {"split": "data-ft/pretrain", "images": len(images), "steps": PRETRAIN_STEPS, "batch_size": 64}


def _build_finetune(root: Path, out: Path, name: str) -> dict:
    from diffusers import StableDiffusionPipeline

    from .dp import DP_RECIPE, DP_TARGETS, dp_finetune
    from .finetune import RECIPE, finetune, with_planted_duplicates

    pipe = StableDiffusionPipeline.from_pretrained(root / "sd-base")
    split = f"data-ft/{FINETUNES[name]}"
    images, captions = _load_split(root, split)
    info: dict = {"base": "sd-base", "split": split, **RECIPE}
    if name in DP_TARGETS:
        privacy = dp_finetune(pipe, images, captions, seed=SEED + 4, target_epsilon=DP_TARGETS[name])
        pipe.save_pretrained(out, safe_serialization=True)
        if privacy["epsilon"] is not None:  # the control declares nothing: it has no guarantee
            (out / PRIVACY_FILE).write_text(json.dumps(privacy, indent=2) + "\n")
        return {**info, **DP_RECIPE, "target_epsilon": DP_TARGETS[name], "privacy": privacy}
    if name == "sd-finetune-dup":
        images, captions, planted = with_planted_duplicates(root / split, images, captions, seed=SEED + 5)
        info |= planted
    finetune(pipe, images, captions, seed=SEED + 4)
    pipe.save_pretrained(out, safe_serialization=True)
    return info


def _build_target(root: Path, out: Path, name: str) -> dict:
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    from .components import assemble_pipeline, make_clip_text_encoder, make_ldm_bert, make_unet
    from .train import encode_latents, tokenize, train_denoiser

    family, split = TARGETS[name]
    tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"))
    vae = AutoencoderKL.from_pretrained(root / "vae")
    images, captions = _load_split(root, split)
    torch.manual_seed(SEED + 1)
    unet = make_unet()
    text_encoder = make_ldm_bert(tokenizer) if family == "ldm" else make_clip_text_encoder(tokenizer)
    input_ids = tokenize(tokenizer, captions, max_length=77 if family == "ldm" else None)
    pipe = assemble_pipeline(family, tokenizer, vae, text_encoder, unet)
    early = {n: steps for n, (source, steps) in EARLY_STOPS.items() if source == name}

    def save_early(step: int) -> None:
        for early_name, steps in early.items():
            if step == steps:
                tmp = out.parent / f"{early_name}.partial"
                shutil.rmtree(tmp, ignore_errors=True)
                pipe.save_pretrained(tmp, safe_serialization=True)
                (tmp / "build.json").write_text(json.dumps({"steps": steps, "split": split, "family": family}))

    train_denoiser(unet, text_encoder, encode_latents(vae, images), input_ids, TARGET_STEPS, seed=SEED + 2,
                   on_step=save_early)
    pipe.save_pretrained(out, safe_serialization=True)
    return {"family": family, "split": split, "steps": TARGET_STEPS,
            "unet_parameters": sum(p.numel() for p in unet.parameters()),
            "text_encoder_parameters": sum(p.numel() for p in text_encoder.parameters())}


# The artifacts built by a function of their own; targets and fine-tunes by their family's (`_builder`).
BUILDERS: dict[str, Callable[[Path, Path, str], dict]] = {
    "data": _build_data, "tokenizer": _build_tokenizer, "vae": _build_vae, "vq": _build_vq, "amused-vq": _build_vq,
    "clip": _build_clip, "clip-hf": _build_hf_embedder, "blip": _build_hf_embedder, "blip-itm": _build_hf_embedder,
    "single-file": _build_single_file, "lora-leaky": _build_lora, "data-ft": _build_finetune_data,
    "sd-base": _build_base, "min-dalle-vqgan": _build_min_dalle_vqgan,
}


def _builder(name: str) -> Callable[[Path, Path, str], dict]:
    """What builds `name` into a folder: (test bed root, output folder, name) → its build record."""
    if name in BUILDERS:
        return BUILDERS[name]
    if name in emoji_tier.BUILDERS:
        return emoji_tier.BUILDERS[name]
    if name in FINETUNES:
        return _build_finetune
    return {"amused": _build_amused, "dalle": _build_dalle, "min-dalle": _build_min_dalle}.get(TARGETS[name][0],
                                                                                              _build_target)


def _build_one(root: str, name: str) -> tuple[str, float]:
    """Build one artifact into <name>.partial, then rename: a folder that exists is complete."""
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(1)
    for library in (diffusers_logging, transformers_logging):  # one line per built artifact, nothing else
        library.set_verbosity_error()
        library.disable_progress_bar()
    root_path = Path(root)
    out = root_path / f"{name}.partial"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    info = _builder(name)(root_path, out, name)
    seconds = time.perf_counter() - start
    _drop_build_paths(out)
    (out / "build.json").write_text(json.dumps({**info, "seconds": round(seconds, 1), "seed": SEED,
                                                "recipe": RECIPES.get(name, 1)}, indent=2))
    shutil.rmtree(root_path / name, ignore_errors=True)  # rebuilt to recover a lost early stop
    out.rename(root_path / name)
    for early_name, (source, _) in EARLY_STOPS.items():
        partial = root_path / f"{early_name}.partial"
        if source == name and partial.exists():
            _drop_build_paths(partial)
            partial.rename(root_path / early_name)
    return name, seconds


def _drop_build_paths(folder: Path) -> None:
    """save_pretrained records where a component was loaded from (`_name_or_path`): the cache's own path.
    Dropped, so that an artifact's bytes, and the checkpoint hash that keys its generations, do not depend
    on where the test bed was built."""
    for config in folder.rglob("config.json"):
        data = json.loads(config.read_text())
        if data.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _is_current(folder: Path) -> bool:
    """Built, by the artifact's current recipe."""
    info = folder / "build.json"
    if not info.is_file():  # every build writes it; a folder without it was copied in part or by hand
        return False
    return json.loads(info.read_text()).get("recipe", 1) == RECIPES.get(folder.name, 1)


def _closure(names: Iterable[str]) -> list[str]:
    """The artifacts needed for names, dependencies first."""
    ordered: list[str] = []

    def visit(n: str) -> None:
        for dep in _dependencies(n):
            visit(dep)
        if n not in ordered:
            ordered.append(n)

    for n in names:
        visit(ALIASES.get(n, n))
    return ordered


def _critical_path(name: str, jobs: list[str]) -> float:
    """Rough seconds from starting `name` to finishing the longest chain of jobs that wait for it: the longest
    jobs start first, and a quick one that a long one waits for (data-ft before sd-base) starts before both."""
    waiting = [n for n in jobs if name in _dependencies(n)]
    return COST.get(name, 1) + max((_critical_path(n, jobs) for n in waiting), default=0)


def ensure_built(names: Iterable[str] = ALL_ARTIFACTS, cache_root: Path | None = None, workers: int = 2,
                 log=print) -> Path:
    """Build whatever of `names` (and their dependencies) is missing; returns the test bed root."""
    from filelock import FileLock

    root = testbed_root(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    needed = _closure(names)
    if all(_is_current(root / n) for n in needed):  # nothing to build: no need to wait for another build's lock
        return root
    with FileLock(str(root / ".build.lock")):
        done = {n for n in needed if _is_current(root / n)}
        todo = [n for n in needed if n not in done]
        if not todo:
            return root
        log(f"mia-checks: building test bed artifacts {', '.join(todo)} in {root}")
        start = time.perf_counter()
        # An early stop is written by its source's run: only real jobs are submitted.
        jobs = [n for n in todo if n not in EARLY_STOPS]
        jobs += [source for n, (source, _) in EARLY_STOPS.items() if n in todo and source not in jobs]
        running: dict = {}
        with ProcessPoolExecutor(max_workers=workers) as pool:
            while jobs or running:
                ready = [n for n in jobs if all(d in done for d in _dependencies(n) if d not in EARLY_STOPS)]
                for name in sorted(ready, key=lambda n: -_critical_path(n, jobs))[: workers - len(running)]:
                    running[pool.submit(_build_one, str(root), name)] = name
                    jobs.remove(name)
                if not running:
                    raise RuntimeError(f"cannot build {jobs}: unmet dependencies")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name, seconds = future.result()
                    del running[future]
                    log(f"mia-checks: built {name} in {seconds:.0f} s ({time.perf_counter() - start:.0f} s into the build)")
                    done.add(name)
                    done |= {n for n, (source, _) in EARLY_STOPS.items() if source == name}
    return root


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mia_checks.testbed", description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", default=list(ALL_ARTIFACTS), help=f"any of {', '.join(ALL_ARTIFACTS)}")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $MIA_CHECKS_CACHE or ~/.cache/mia-checks")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    root = ensure_built(args.artifacts, args.cache_dir)
    print(f"test bed ready in {root} ({time.perf_counter() - start:.0f} s)")
    return 0
