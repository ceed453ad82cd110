"""FreMIA's low-pass filter (--mia-lowpass) on and off, for the white-box attacks it applies to (run by hand;
issue 21):

    python benchmarks/lowpass.py --seeds 5 [--targets finetune,finetune-dup,finetune-null] [--widths 0,1,2,3]

Per target, attack and half-width: mean AUC and mean TPR@1%FPR over the seeds (each seed changes the noise
and the folds), with the mean of the AUC's 95% interval. On the fine-tunes, 128 members vs 128 non-members;
latents of 8 × 8, so half-width 4 keeps every frequency (= off).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import audit_sets, ensure_built
from mia_checks.testbed.build import ALIASES

ATTACKS = ("loss", "PIA", "SecMI", "CLiD")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", default="finetune,finetune-dup,finetune-null")
    parser.add_argument("--widths", default="0,1,2,3")
    args = parser.parse_args()
    targets, widths = args.targets.split(","), [int(w) for w in args.widths.split(",")]
    root = ensure_built(["data", *targets])
    with tempfile.TemporaryDirectory() as cache:
        for target in targets:
            members, nonmembers = (str(root / s) for s in audit_sets(target))
            for width in widths:
                rows = {a: [] for a in ATTACKS}
                for seed in range(args.seeds):
                    raw = {"target": str(root / ALIASES.get(target, target)), "members": members,
                           "nonmembers": nonmembers, "seed": str(seed), "cache-dir": cache,
                           "attacks": ",".join(ATTACKS), "lowpass": str(width), "exposure": "none"}
                    audit = Audit(build_settings(raw), progress=False)
                    for attack in ATTACKS:
                        r = audit.result(attack)
                        rows[attack].append((r.auc.value, r.auc.low, r.auc.high, r.tpr_at_1pct_fpr))
                for attack, values in rows.items():
                    auc, low, high, tpr = np.array(values).T
                    print(f"{target:14s} {attack:6s} low-pass {width or 'off':>3}: AUC {auc.mean():.3f} "
                          f"[{low.mean():.3f}, {high.mean():.3f}]  TPR@1%FPR {tpr.mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
