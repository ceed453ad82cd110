"""What the test bed's embedders read (run by hand): retrieval and captioning on held-out images.

    python benchmarks/embedder_quality.py [--tiers emoji,digits]

The semantic attacks (I-S, II-S, III, IV) and caption-less mode are only as good as the CLIP and BLIP they use.
Per tier, on images no embedder saw (emoji: the 256 audited non-members; digits: the 32 non-members), each image
against every caption of the set:
- CLIP: image → caption retrieval by cosine similarity, top-1 and top-5;
- the BLIP captioner: the same retrieval by the caption's log-likelihood, log p(caption | image) summed over its
  tokens (a captioner's own ranking of captions), top-1 and top-5; and its greedy captions as caption-less mode
  writes them (captioning.Captioner): how many equal the true caption, and the mean word-level F1 against it.
Chance is k / n for top-k. Captions that occur twice in a set (digits: "a handwritten 3 …") count as one hit.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import torch
import torch.nn.functional as F

from mia_checks.captioning import load_captioner
from mia_checks.embedders import load_embedder
from mia_checks.testbed import ensure_built
from mia_checks.testbed.digits import read_image_folder

# tier → (CLIP, BLIP captioner, held-out folder)
TIERS = {"emoji": ("emoji-clip", "emoji-blip", "emoji-data/ft_nonmembers"),
         "digits": ("clip", "blip", "data/nonmembers")}


def top_k_hits(scores: np.ndarray, captions: list[str], k: int) -> float:
    """Share of rows i whose own caption is among the k best-scored columns (a column with the same caption text
    as row i counts as its own)."""
    best = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([any(captions[j] == captions[i] for j in row) for i, row in enumerate(best)]))


def word_f1(predicted: str, truth: str) -> float:
    """Harmonic mean of word precision and recall (bags of lower-case words)."""
    p, t = re.findall(r"\w+", predicted.lower()), re.findall(r"\w+", truth.lower())
    common = sum(min(p.count(w), t.count(w)) for w in set(p))
    return 0.0 if common == 0 else 2 * common / (len(p) + len(t))


@torch.no_grad()
def caption_log_likelihoods(model, processor, images: np.ndarray, captions: list[str]) -> np.ndarray:
    """(images, captions) matrix of Σ_t log p(token_t | tokens_<t, image) under the captioner's text decoder,
    teacher-forced from [DEC] as training and generate() start."""
    from mia_checks.testbed.blip import MAX_TOKENS

    pixels = processor(images=list(images), return_tensors="pt").pixel_values
    image_embeds = model.vision_model(pixel_values=pixels).last_hidden_state
    text = processor.tokenizer(captions, padding="max_length", truncation=True, max_length=MAX_TOKENS,
                               return_tensors="pt")
    ids, mask = text.input_ids.clone(), text.attention_mask
    ids[:, 0] = model.config.text_config.bos_token_id
    out = np.empty((len(images), len(captions)))
    for i in range(len(images)):
        logits = model.text_decoder(input_ids=ids, attention_mask=mask,
                                    encoder_hidden_states=image_embeds[i : i + 1].expand(len(captions), -1, -1)).logits
        logp = F.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        out[i] = (logp * mask[:, 1:]).sum(1).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiers", default="emoji,digits")
    args = parser.parse_args()
    tiers = args.tiers.split(",")
    root = ensure_built([name for tier in tiers for name in TIERS[tier][:2]])
    print("| tier | held-out images | CLIP top-1 / top-5 | BLIP likelihood top-1 / top-5 | BLIP captions exact | "
          "BLIP word F1 | chance top-5 | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for tier in tiers:
        clip, blip, folder = TIERS[tier]
        start = time.perf_counter()
        images, captions = read_image_folder(root / folder)
        embedder = load_embedder(str(root / clip))
        cosine = embedder.embed_images(list(images)) @ embedder.embed_texts(captions).T
        captioner = load_captioner(str(root / blip))
        likelihood = caption_log_likelihoods(captioner.model, captioner.processor, images, captions)
        written = captioner.caption(list(images))
        exact = np.mean([w.lower() == c.lower() for w, c in zip(written, captions)])
        f1 = np.mean([word_f1(w, c) for w, c in zip(written, captions)])
        print(f"| {tier} | {len(images)} | {top_k_hits(cosine, captions, 1):.3f} / {top_k_hits(cosine, captions, 5):.3f}"
              f" | {top_k_hits(likelihood, captions, 1):.3f} / {top_k_hits(likelihood, captions, 5):.3f} | {exact:.3f} "
              f"| {f1:.3f} | {5 / len(set(captions)):.3f} | {time.perf_counter() - start:.0f} |", flush=True)
        for w, c in list(zip(written, captions))[:5]:
            print(f"    written: {w!r:50} true: {c!r}")


if __name__ == "__main__":
    main()
