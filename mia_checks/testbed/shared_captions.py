"""Reference sets whose captions repeat, as real data's do (class-style captions, BLIP captions, templated
prompts): a copy of a set with each caption cut to its first parts, "a handwritten eight, light ink, leaning
right, wide, written high" → "a handwritten eight, light ink, leaning right". Each caption still describes
its own image, only less finely, so the images that share one are alike. On the fine-tune's sets, three
parts leave 69 distinct captions among the 128 members, and 91 of the 128 non-members share a member's
caption (issue 19 measured 65 of 100 and 57 of 100 on a real fine-tune, where ungrouped folds read every
black-box attack below chance). The images are linked, not copied: membership is unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def coarse_caption(text: str, parts: int = 3) -> str:
    """The caption's first `parts` comma-separated parts."""
    return ", ".join(text.split(", ")[:parts])


def coarse_caption_set(folder: Path, out: Path, parts: int = 3) -> Path:
    """Write `out`: the images of `folder` (linked) with a metadata.jsonl whose captions keep their first
    `parts` comma-separated parts. Deterministic."""
    folder, out = Path(folder), Path(out)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines() if line]
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        link = out / row["file_name"]
        if not link.exists():
            os.symlink((folder / row["file_name"]).resolve(), link)
    text = "".join(json.dumps({**row, "text": coarse_caption(row["text"], parts)}) + "\n" for row in rows)
    (out / "metadata.jsonl").write_text(text, encoding="utf-8")
    return out


def twin_labels(captions: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Membership labels (1 member, 0 non-member) for queries a model never saw, drawn so that non-members share
    members' captions wherever they can, as in issue 19's fine-tune: the queries of each caption are paired at
    random and each pair re-coined, one member and one non-member; the unpaired are split half and half. On a
    null twin every such draw is a null draw, and generation features are identical within a pair: the case in
    which folds that split caption groups anti-learn."""
    by_caption: dict[str, list[int]] = {}
    for i, caption in enumerate(captions):
        by_caption.setdefault(caption, []).append(i)
    labels, unpaired = np.zeros(len(captions), int), []
    for queries in by_caption.values():
        queries = list(rng.permutation(queries))
        for a, b in zip(queries[0::2], queries[1::2]):
            labels[[a, b]] = rng.permutation(2)
        unpaired += queries[len(queries) - len(queries) % 2:]
    labels[rng.permutation(np.array(unpaired, dtype=int))] = np.arange(len(unpaired)) % 2
    return labels
