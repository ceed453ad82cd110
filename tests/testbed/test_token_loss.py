"""White-box token losses of token models, against hand computations and on the test bed's twins."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mia_checks.metrics import roc_auc
from mia_checks.access.tokens import amused_masked_ce, masks_for, seq2seq_token_nll
from mia_checks.targets.seq2seq import load_seq2seq


def _split(root, name: str, n: int | None = None):
    rows = [json.loads(line) for line in (root / "data" / name / "metadata.jsonl").read_text().splitlines()][:n]
    images = np.stack([np.asarray(Image.open(root / "data" / name / r["file_name"]).convert("RGB")) for r in rows])
    return images, [r["text"] for r in rows]


def test_seq2seq_token_nll_is_the_teacher_forced_nll_by_hand(testbed):
    model = load_seq2seq(testbed / "dalle-null")
    images, captions = _split(testbed, "members", 3)
    scores = seq2seq_token_nll(model, images, captions)
    with torch.no_grad():
        ids, mask = model.text_inputs(captions[1:2])
        codes = model.image_codes(images[1:2])[0]
        total = 0.0
        for i in range(len(codes)):  # one position at a time, no cache, full vocabulary
            prefix = [model.image_start_token_id] + [int(c) + model.text_vocab_size for c in codes[:i]]
            logits = model.bart(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.tensor([prefix])).logits
            total -= float(torch.log_softmax(logits[0, -1], -1)[int(codes[i]) + model.text_vocab_size])
    assert scores.shape == (3,)
    assert scores[1] == pytest.approx(total / len(codes), rel=1e-4)
    assert seq2seq_token_nll(model, images[1:2], captions[1:2])[0] == pytest.approx(scores[1], rel=1e-5)  # batch-free


def test_amused_masks_are_seeded_and_exact():
    masks = masks_for(3, (8, 8), (0.25, 0.5))
    assert masks.shape == (2, 8, 8) and masks[0].sum() == 16 and masks[1].sum() == 32
    assert torch.equal(masks, masks_for(3, (8, 8), (0.25, 0.5))) and not torch.equal(masks, masks_for(4, (8, 8), (0.25, 0.5)))


def test_amused_masked_ce_is_the_masked_cross_entropy_by_hand(testbed):
    from diffusers import AmusedPipeline

    pipe = AmusedPipeline.from_pretrained(testbed / "amused-null")
    images, captions = _split(testbed, "members", 2)
    scores = amused_masked_ce(pipe, images, captions, seed=5, mask_ratios=(0.5,))
    with torch.no_grad():
        x = torch.from_numpy(images[:1]).permute(0, 3, 1, 2).float() / 255  # aMUSEd's VQ reads [0, 1]
        latents = pipe.vqvae.encode(x).latents
        tokens = pipe.vqvae.quantize(latents)[2][2].view(8, 8)
        mask = masks_for(5, (8, 8), (0.5,))[0]
        ids = pipe.tokenizer(captions[:1], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             return_tensors="pt").input_ids
        out = pipe.text_encoder(ids, output_hidden_states=True)
        logits = pipe.transformer(torch.where(mask, pipe.scheduler.config.mask_token_id, tokens)[None],
                                  encoder_hidden_states=out.hidden_states[-2], pooled_text_emb=out.text_embeds,
                                  micro_conds=torch.tensor([[32.0, 32.0, 0.0, 0.0, 6.0]]))[0]
        nll = [-float(torch.log_softmax(logits[:, r, c], 0)[tokens[r, c]]) for r, c in mask.nonzero().tolist()]
    assert scores[0] == pytest.approx(np.mean(nll), rel=1e-4)
    assert amused_masked_ce(pipe, images[:1], captions[:1], seed=5, mask_ratios=(0.5,))[0] == pytest.approx(scores[0], rel=1e-5)


@pytest.mark.parametrize("family", ["dalle", "amused"])
def test_token_loss_separates_members_on_the_leaky_twin_only(testbed, family):
    members, nonmembers = _split(testbed, "members"), _split(testbed, "nonmembers")
    labels = np.r_[np.ones(len(members[0])), np.zeros(len(nonmembers[0]))]
    aucs = {}
    for twin in ("leaky", "null"):
        if family == "dalle":
            model = load_seq2seq(testbed / f"dalle-{twin}")
            score = lambda images, captions: seq2seq_token_nll(model, images, captions)
        else:
            from diffusers import AmusedPipeline

            pipe = AmusedPipeline.from_pretrained(testbed / f"amused-{twin}")
            score = lambda images, captions: amused_masked_ce(pipe, images, captions, seed=0)
        aucs[twin] = roc_auc(labels, -np.r_[score(*members), score(*nonmembers)])  # lower loss = member
    assert aucs["leaky"] >= 0.9, aucs
    assert abs(aucs["null"] - 0.5) <= 0.2, aucs
