"""A tiny CLIP trained contrastively on the public digits, saved in open_clip's hub layout
(open_clip_config.json + open_clip_model.safetensors) so that it loads exactly like a user's CLIP."""

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


def train_tiny_clip(folder: Path, images: np.ndarray, captions: list[str], steps: int, seed: int,
                    batch_size: int = 128, lr: float = 2e-3) -> Path:
    import open_clip
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = CLIP(**TINY_CLIP_CONFIG)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    tokens = tokenizer(captions)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(pixels), (batch_size,), generator=rng)
        img = model.encode_image(pixels[idx], normalize=True)
        txt = model.encode_text(tokens[idx], normalize=True)
        logits = model.logit_scale.exp() * img @ txt.T
        # Images with the same caption are positives of each other, not negatives.
        same = (tokens[idx][:, None, :] == tokens[idx][None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    config = {"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {"mean": MEAN, "std": STD}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return folder
