"""Repeated captions, grouped folds against ungrouped ones, over seeds (issue 19). By hand:

    .venv/bin/python benchmarks/shared_captions.py --targets sd-finetune-null,sd-finetune --seeds 10

The fine-tune's reference sets with their captions cut to three parts (testbed/shared_captions.py: 69
distinct captions among the 128 members, 91 of the 128 non-members sharing a member's), audited black-box;
each seed's generations and features serve both fold schemes, side by side. Prints, per target and attack,
the mean AUC over the seeds and the share of 95% intervals wholly below ½, grouped and ungrouped.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from mia_checks.attacks import ATTACKS, BLACK_BOX
from mia_checks.audit import Audit
from mia_checks.preflight import preflight
from mia_checks.testbed.build import ensure_built, testbed_root
from mia_checks.testbed.shared_captions import coarse_caption_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="sd-finetune-null,sd-finetune")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--parts", type=int, default=3, help="caption parts kept")
    args = parser.parse_args()
    targets = args.targets.split(",")
    ensure_built(["data-ft", "clip", *targets])
    root, work = testbed_root(), Path(tempfile.mkdtemp(prefix="mia-shared-"))
    sets = {s: coarse_caption_set(root / "data-ft" / s, work / s, args.parts) for s in ("ft_members", "ft_nonmembers")}
    attacks = [a for a, attack in ATTACKS.items() if attack.access == BLACK_BOX]
    for target in targets:
        aucs = {scheme: {a: [] for a in attacks} for scheme in ("grouped", "ungrouped")}
        for seed in range(args.seeds):
            checked = preflight({"target": str(root / target), "members": str(sets["ft_members"]),
                                 "nonmembers": str(sets["ft_nonmembers"]), "embedder": str(root / "clip"),
                                 "guidance": "1", "attacks": "blackbox", "seed": str(seed)})
            audit = Audit(checked.settings, checked.members, checked.nonmembers, progress="off", spec=checked.target)
            groups = audit.query_groups
            for scheme in ("grouped", "ungrouped"):
                audit._results.clear()
                audit.__dict__["query_groups"] = groups if scheme == "grouped" else None
                for attack in attacks:
                    auc = audit.result(attack).auc
                    aucs[scheme][attack].append((auc.value, auc.high < 0.5))
            print(f"{target} seed {seed} done", flush=True)
        print(f"\n{target}: mean AUC over {args.seeds} seeds (share of 95% intervals wholly below ½)")
        for attack in attacks:
            cells = [f"{np.mean([v for v, _ in aucs[s][attack]]):.3f} ({np.mean([b for _, b in aucs[s][attack]]):.0%})"
                     for s in ("grouped", "ungrouped")]
            print(f"  {attack:5s} grouped {cells[0]}   ungrouped {cells[1]}")


if __name__ == "__main__":
    main()
