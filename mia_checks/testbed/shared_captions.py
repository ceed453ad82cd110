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
from pathlib import Path


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
    text = "".join(json.dumps({**row, "text": ", ".join(row["text"].split(", ")[:parts])}) + "\n" for row in rows)
    (out / "metadata.jsonl").write_text(text, encoding="utf-8")
    return out
