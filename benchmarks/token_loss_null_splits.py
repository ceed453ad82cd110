"""The token models' white-box loss on models that never saw the queries, over many random member /
non-member splits (run by hand).

    python benchmarks/token_loss_null_splits.py [--splits 1000] [--size 32]

The gate's false-alarm rate (α = 0.05 here, one attack) holds over draws of the reference sets, whereas
`gate_false_alarms.py` varies seeds on one fixed split. This scores the 128 test-bed images that neither
`dalle-null` nor `amused-null` was trained on (members, non-members, shadow members, shadow non-members)
once, draws random `size`-vs-`size` splits of them, and counts how often the loss attack's AUC would fail
the gate: its one-sided 95% DeLong lower bound above the default threshold 0.55. It draws the splits twice:
at random, and class-matched (each digit as often among the non-members as among the members, as
gate_false_alarms.py --draw-sets draws them), to tell whether the test bed's split needs matching. It also
prints the fixed split the test bed audits (the same 64 images every seed) and its classes.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

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
    digits = np.array([c.split(",")[0] for c in captions])  # "a handwritten eight": the class
    fixed_classes = Counter(digits[:32]), Counter(digits[32:64])  # the test bed's split: members, then non-members
    print(f"the test bed's fixed split: {sum((fixed_classes[0] - fixed_classes[1]).values())} of 32 members have no "
          "non-member of their class to match")
    for family in ("dalle", "amused"):
        s = scores(root, family, images, captions)
        for kind in ("random", "class-matched"):
            rng = np.random.default_rng(0)
            aucs, fails = [], 0
            for _ in range(args.splits):
                pick = matched_split(digits, args.size, rng) if kind == "class-matched" else \
                    rng.permutation(len(s))[: 2 * args.size]
                aucs.append(auc_delong(labels, s[pick])[0])
                fails += auc_lower_bound(labels, s[pick], args.alpha) > threshold
            print(f"{family}-null: over {args.splits} {kind} {args.size}-vs-{args.size} splits of 128 unseen images, "
                  f"AUC mean {np.mean(aucs):.3f} (sd {np.std(aucs):.3f}), gate failed {fails / args.splits:.1%} "
                  f"(nominal ≤ {args.alpha:.0%})")
        fixed = s[:64]
        print(f"{family}-null: the test bed's fixed split: AUC {auc_delong(labels, fixed)[0]:.3f}, "
              f"bound {auc_lower_bound(labels, fixed, args.alpha):.3f}, at the "
              f"{np.mean(np.array(aucs) < auc_delong(labels, fixed)[0]):.1%} quantile of the class-matched splits' AUCs")


def matched_split(digits: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` members then `size` non-members, each class as often in both (as near as the pool allows:
    classes dealt round-robin in a random order)."""
    by_class = {d: list(rng.permutation(np.flatnonzero(digits == d))) for d in np.unique(digits)}
    members, nonmembers = [], []
    while len(members) < size:
        if all(len(left) < 2 for left in by_class.values()):
            raise SystemExit(f"--size {size}: the pool holds fewer class-matched pairs than that")
        for d in rng.permutation(sorted(by_class)):
            if len(members) < size and len(by_class[d]) >= 2:
                members.append(by_class[d].pop())
                nonmembers.append(by_class[d].pop())
    return np.array(members + nonmembers)


if __name__ == "__main__":
    main()
