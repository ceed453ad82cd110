"""Tiny joint image–text embedders trained contrastively on the public digits, saved the way users' models
are: an open_clip model in the hub layout (open_clip_config.json + open_clip_model.safetensors), and a
transformers CLIPModel (save_pretrained), each loading exactly like a user's CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def train_contrastive(encode_image, encode_text, logit_scale, params, pixels: torch.Tensor, tokens: torch.Tensor,
                      steps: int, seed: int, batch_size: int = 128, lr: float = 2e-3) -> None:
    """CLIP's symmetric InfoNCE on random batches; encode_* take batch indices and return normalised
    embeddings. Images with the same caption are positives of each other, not negatives."""
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    for _ in range(steps):
        idx = torch.randint(len(pixels), (batch_size,), generator=rng)
        logits = logit_scale().exp() * encode_image(idx) @ encode_text(idx).T
        same = (tokens[idx][:, None, :] == tokens[idx][None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)


def tiny_clip_config(image_size: int = 32) -> dict:
    """TINY_CLIP_CONFIG at another square resolution: the patch grows with it (always 4×4 patches)."""
    vision = dict(TINY_CLIP_CONFIG["vision_cfg"], image_size=image_size, patch_size=image_size // 4)
    return dict(TINY_CLIP_CONFIG, vision_cfg=vision)


def train_tiny_clip(folder: Path, images: np.ndarray, captions: list[str], steps: int, seed: int) -> Path:
    """An open_clip CLIP at the images' resolution, contrastive on (images, captions)."""
    import open_clip
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model_cfg = tiny_clip_config(images.shape[1])
    model = CLIP(**model_cfg)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    pixels, tokens = _pixels(images), tokenizer(captions)
    model.train()
    train_contrastive(lambda i: model.encode_image(pixels[i], normalize=True),
                      lambda i: model.encode_text(tokens[i], normalize=True),
                      lambda: model.logit_scale, list(model.parameters()), pixels, tokens, steps, seed)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    config = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": MEAN, "std": STD}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return folder


def train_tiny_hf_clip(folder: Path, tokenizer_folder: Path, images: np.ndarray, captions: list[str], steps: int,
                       seed: int) -> Path:
    """A transformers CLIPModel with the test bed's BPE tokenizer, saved with its CLIPProcessor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from ..embedders import projected

    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_folder))
    size = {"height": 32, "width": 32}
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size=size, crop_size=size, do_center_crop=False,
                                                                 image_mean=list(MEAN), image_std=list(STD)),
                              tokenizer=tokenizer)
    width = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=tokenizer.model_max_length,
                                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                         pad_token_id=tokenizer.pad_token_id, **width),
                        vision_config=dict(image_size=32, patch_size=8, **width), projection_dim=64)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    pixels = _pixels(images)
    text = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt")
    tokens, mask = text.input_ids, text.attention_mask
    model.train()
    train_contrastive(lambda i: F.normalize(projected(model.get_image_features(pixel_values=pixels[i])), dim=-1),
                      lambda i: F.normalize(projected(model.get_text_features(input_ids=tokens[i],
                                                                              attention_mask=mask[i])), dim=-1),
                      lambda: model.logit_scale, list(model.parameters()), pixels, tokens, steps, seed)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
