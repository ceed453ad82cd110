"""Tiny BLIP models trained offline on the public digits, saved with save_pretrained like the hub's:
- a captioner (BlipForConditionalGeneration + BlipProcessor), the stand-in for
  Salesforce/blip-image-captioning-base in caption-less mode;
- an image–text retrieval model (BlipForImageTextRetrieval), the stand-in for Salesforce/blip-itm-base-coco
  as an embedder.
Their tokenizer is a WordPiece vocabulary of the captions' words (BERT's format, as BLIP's processor expects)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
MAX_TOKENS = 24
WIDTH = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)


def build_processor(folder: Path, captions: list[str], image_size: int = 32):
    """BlipProcessor: square images (32 px for the digits) normalised to [-1, 1], and a BERT tokenizer whose vocabulary is every word
    and punctuation mark of the captions."""
    from transformers import BertTokenizer, BlipImageProcessor, BlipProcessor

    words = sorted({w for c in captions for w in re.findall(r"\w+|[^\w\s]", c.lower())})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=MAX_TOKENS)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _text_config(tokenizer, **extra) -> dict:
    ids = tokenizer.convert_tokens_to_ids
    return dict(vocab_size=len(tokenizer), max_position_embeddings=MAX_TOKENS, pad_token_id=ids("[PAD]"),
                bos_token_id=ids("[DEC]"), sep_token_id=ids("[SEP]"), eos_token_id=ids("[SEP]"),
                encoder_hidden_size=WIDTH["hidden_size"], **WIDTH, **extra)


def _config(tokenizer, image_size: int = 32):
    from transformers import BlipConfig

    vision = dict(image_size=image_size, patch_size=image_size // 4, **WIDTH)  # 4×4 patches at any resolution
    return BlipConfig(text_config=_text_config(tokenizer), vision_config=vision,
                      projection_dim=64, image_text_hidden_size=64)


def _inputs(processor, images: np.ndarray, captions: list[str]):
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    text = processor.tokenizer(captions, padding="max_length", truncation=True, max_length=MAX_TOKENS,
                               return_tensors="pt")
    return pixels, text.input_ids, text.attention_mask


def train_captioner(folder: Path, images: np.ndarray, captions: list[str], steps: int, seed: int,
                    batch_size: int = 64, lr: float = 2e-3) -> Path:
    """Teacher-forced captioning loss; the decoder starts from [DEC] as BLIP's generate() does."""
    from transformers import BlipForConditionalGeneration

    processor = build_processor(folder, captions, images.shape[1])
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(_config(processor.tokenizer, images.shape[1]))
    pixels, input_ids, mask = _inputs(processor, images, captions)
    input_ids[:, 0] = model.config.text_config.bos_token_id
    labels = input_ids.masked_fill(mask == 0, -100)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(pixels), (batch_size,), generator=rng)
        loss = model(pixel_values=pixels[idx], input_ids=input_ids[idx], attention_mask=mask[idx],
                     labels=labels[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def train_retrieval(folder: Path, images: np.ndarray, captions: list[str], steps: int, seed: int) -> Path:
    """BLIP's image–text contrastive (ITC) head: the embeddings the semantic attacks use."""
    from transformers import BlipForImageTextRetrieval

    from .embedder import train_contrastive

    processor = build_processor(folder, captions)
    torch.manual_seed(seed)
    model = BlipForImageTextRetrieval(_config(processor.tokenizer))
    pixels, input_ids, mask = _inputs(processor, images, captions)
    scale = torch.nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def image(i):
        return F.normalize(model.vision_proj(model.vision_model(pixel_values=pixels[i]).last_hidden_state[:, 0]), dim=-1)

    def text(i):
        hidden = model.text_encoder(input_ids=input_ids[i], attention_mask=mask[i]).last_hidden_state
        return F.normalize(model.text_proj(hidden[:, 0]), dim=-1)

    model.train()
    # BLIP's post-norm BERT collapses to constant embeddings at CLIP's learning rate (measured: 2e-3 did, 2e-4 did not).
    train_contrastive(image, text, lambda: scale, [*model.parameters(), scale], pixels, input_ids, steps, seed, lr=3e-4)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
