"""The token models' white-box loss on models that never saw the queries, over many random member /
non-member splits (run by hand).

    python benchmarks/token_loss_null_splits.py [--splits 1000] [--size 32]

The gate's false-alarm rate (α = 0.05 here, one attack) holds over draws of the reference sets, whereas
`gate_false_alarms.py` varies seeds on one fixed split. This scores the 128 test-bed images that neither
`dalle-null` nor `amused-null` was trained on (members, non-members, shadow members, shadow non-members)
once, draws random `size`-vs-`size` splits of them, and counts how often the loss attack's AUC would fail
the gate: its one-sided 95% DeLong lower bound above the default threshold 0.55. It also prints the fixed
split the test bed audits (the same 64 images every seed).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from PIL import Image

from mia_checks.gate import DEFAULT_THRESHOLDS
from mia_checks.metrics import auc_delong, auc_lower_bound
from mia_checks.testbed import ensure_built

UNSEEN = ("members", "nonmembers", "shadow_members", "shadow_nonmembers")


def load(root, split):
    rows = [json.loads(line) for line in (root / "data" / split / "metadata.jsonl").read_text().splitlines()]
    images = np.stack([np.asarray(Image.open(root / "data" / split / r["file_name"]).convert("RGB")) for r in rows])
    return images, [r["text"] for r in rows]


def scores(root, family: str, images, captions) -> np.ndarray:
    """Membership scores (higher = member): minus the loss."""
    if family == "dalle":
        from mia_checks.targets.seq2seq import load_seq2seq
        from mia_checks.access.tokens import seq2seq_token_nll

        return -seq2seq_token_nll(load_seq2seq(root / "dalle-null"), images, captions)
    from diffusers import AmusedPipeline

    from mia_checks.access.tokens import amused_masked_ce

    return -amused_masked_ce(AmusedPipeline.from_pretrained(root / "amused-null"), images, captions, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    root = ensure_built(["data", "dalle-null", "amused-null"])
    parts = [load(root, split) for split in UNSEEN]
    images = np.concatenate([p[0] for p in parts])
    captions = [c for p in parts for c in p[1]]
    threshold = DEFAULT_THRESHOLDS["auc"]
    labels = np.r_[np.ones(args.size), np.zeros(args.size)]
    for family in ("dalle", "amused"):
        s = scores(root, family, images, captions)
        rng = np.random.default_rng(0)
        aucs, fails = [], 0
        for _ in range(args.splits):
            pick = rng.permutation(len(s))[: 2 * args.size]
            aucs.append(auc_delong(labels, s[pick])[0])
            fails += auc_lower_bound(labels, s[pick], args.alpha) > threshold
        fixed = s[:64]  # the test bed's audited split: members, then non-members
        fixed_labels = np.r_[np.ones(32), np.zeros(32)]
        print(f"{family}-null: over {args.splits} random {args.size}-vs-{args.size} splits of 128 unseen images, "
              f"AUC mean {np.mean(aucs):.3f} (sd {np.std(aucs):.3f}), gate failed {fails / args.splits:.1%} "
              f"(nominal ≤ {args.alpha:.0%}); the test bed's fixed split: AUC {auc_delong(fixed_labels, fixed)[0]:.3f}, "
              f"bound {auc_lower_bound(fixed_labels, fixed, args.alpha):.3f}")


if __name__ == "__main__":
    main()
