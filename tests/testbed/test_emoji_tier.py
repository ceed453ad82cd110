"""The emoji tier as built: its splits, its embedders and the leakage of its fine-tunes (emoji_tier.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mia_checks import metrics
from mia_checks.testbed import emoji, emoji_tier

AUDITED = ("ft_members", "ft_nonmembers", "ft_null")


def _rows(testbed: Path, split: str, manifest: str = "groups.jsonl") -> list[dict]:
    return [json.loads(line) for line in (testbed / emoji_tier.DATA / split / manifest).read_text().splitlines()]


def test_splits_are_disjoint_deterministic_and_balanced(testbed: Path):
    groups = {split: {r["group"] for r in _rows(testbed, split)} for split in (*AUDITED, "pretrain")}
    names = list(groups)
    assert all(not groups[a] & groups[b] for i, a in enumerate(names) for b in names[i + 1:])
    members, nonmembers = _rows(testbed, "ft_members"), _rows(testbed, "ft_nonmembers")
    assert len(members) == len(nonmembers) == 256
    assert [r["category"] for r in members] == [r["category"] for r in nonmembers]  # pair i shares a category
    assert {r["style"] for r in members + nonmembers} == {emoji.FINETUNE_STYLE}
    assert _rows(testbed, "slice_members") == members[: emoji_tier.SLICE]  # the tests' slice is a prefix of pairs
    # Deterministic: the split drawn again from the cached package is the one on disk.
    contents = {style: emoji.read_package(testbed.parent.parent / "downloads" / p.file_name, p.style)
                for style, p in emoji.PACKAGES.items()}
    catalogue = contents["noto"][0]
    again = emoji.split_images(catalogue, groups_of=emoji.duplicate_groups(
        catalogue, {style: pngs for style, (_, pngs) in contents.items()}))
    for split in (*AUDITED, "pretrain"):
        assert [f"{im.style}-{Path(im.image).stem}.png" for im in again[split]] == \
               [r["file_name"] for r in _rows(testbed, split, "metadata.jsonl")]
    build = json.loads((testbed / emoji_tier.DATA / "build.json").read_text())
    assert {p["licence"] for p in build["packages"].values()} >= {"Twemoji graphics: CC-BY 4.0; package: MIT"}
    # No two audited images share pixels (the gate would refuse them, and a copy across the sets is a leak).
    from PIL import Image

    pixels = [Image.open(testbed / emoji_tier.DATA / split / r["file_name"]).tobytes()
              for split in AUDITED for r in _rows(testbed, split, "metadata.jsonl")]
    assert len(set(pixels)) == len(pixels) == 768


def test_captions_alone_cannot_tell_members_from_nonmembers(testbed: Path):
    """A classifier on the tiny CLIP's caption embeddings, cross-validated: its AUC's 95% interval holds ½
    (a fixed split, so a fixed outcome; a 5% chance of failing had the split been drawn afresh)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from mia_checks.embedders import load_embedder

    embedder = load_embedder(str(testbed / "emoji-clip"))
    texts = [r["text"] for split in ("ft_members", "ft_nonmembers") for r in _rows(testbed, split, "metadata.jsonl")]
    labels = np.repeat([1, 0], 256)
    scores = cross_val_predict(LogisticRegression(max_iter=1000), embedder.embed_texts(texts), labels, cv=5,
                               method="predict_proba")[:, 1]
    auc = metrics.auc_interval(labels, scores, confidence=0.95)
    assert auc.low < 0.5 < auc.high, auc


def test_the_tiny_clip_retrieves_unseen_emoji_by_caption(testbed: Path):
    """Image → caption retrieval among the 256 held-out non-members: the own caption in the top 5 far more
    often than chance (5/256 ≈ 2%)."""
    from PIL import Image

    from mia_checks.embedders import load_embedder

    embedder = load_embedder(str(testbed / "emoji-clip"))
    rows, folder = _rows(testbed, "ft_nonmembers", "metadata.jsonl"), testbed / emoji_tier.DATA / "ft_nonmembers"
    images = embedder.embed_images([np.asarray(Image.open(folder / r["file_name"]).convert("RGB")) for r in rows])
    texts = embedder.embed_texts([r["text"] for r in rows])
    top5 = np.argsort(-(images @ texts.T), axis=1)[:, :5]
    assert np.mean([i in top5[i] for i in range(len(rows))]) >= 0.1


@pytest.mark.parametrize("target", ["emoji-finetune"])
def test_the_fine_tune_leaks_like_real_fine_tunes_and_its_null_twin_does_not(whitebox_auc, target: str):
    """Issue 20's range for the best white-box attack, held here for the loss attack at 256 vs 256 (one-sided
    90% bound above ½); the null twin, fine-tuned the same way on other emoji, within 0.1 of chance."""
    auc = whitebox_auc(target)
    assert 0.6 <= auc.value <= 0.9 and auc.low > 0.5, auc
    assert abs(whitebox_auc("emoji-finetune-null").value - 0.5) <= 0.1


def test_planted_duplicates_are_named_and_repeated(testbed: Path):
    build = json.loads((testbed / "emoji-finetune-dup" / "build.json").read_text())
    members = {r["file_name"] for r in _rows(testbed, "ft_members", "metadata.jsonl")}
    assert len(build["planted"]) == 5 and set(build["planted"]) <= members
    assert build["training_images"] == 256 + 5 * 19
    assert Counter(build["planted"]).most_common(1)[0][1] == 1
