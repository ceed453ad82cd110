"""CLiD's two terms apart (run by hand): why CLiD does or does not lead on a target.

    python benchmarks/clid_terms.py [--targets emoji-finetune,sd-finetune,emoji-lora]

CLiD_th scores (1 − α)·L + α·D (attacks/whitebox.py): L the conditional denoising loss, D its rise when the
caption is cut (CLiD's reduced captions). Per target, on its audit sets, seed 0: the AUC of −L alone, of D
alone, and the mean D of members and non-members beside the mean L. Where D separates better than L (the
published Pokémon fine-tunes), CLiD leads; where D is weaker, CLiD reads like the loss attack.
"""

from __future__ import annotations

import argparse
import tempfile

from sklearn.metrics import roc_auc_score

from mia_checks.attacks import ATTACKS
from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import ensure_built
from mia_checks.testbed.build import audit_artifacts, audit_options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="emoji-finetune,sd-finetune,emoji-lora")
    args = parser.parse_args()
    targets = args.targets.split(",")
    root = ensure_built([a for t in targets for a in audit_artifacts(t)])
    print("| target | queries | AUC of L alone | AUC of D alone | mean D members / non-members | mean L |")
    print("|---|---|---|---|---|---|")
    for target in targets:
        with tempfile.TemporaryDirectory() as cache:
            audit = Audit(build_settings({**audit_options(root, target), "attacks": "CLiD", "cache-dir": cache}),
                          progress=False)
            m, y = audit.measurements(ATTACKS["CLiD"]), audit.labels
            loss, rise = m[:, 0], m[:, 1:].mean(1)
            print(f"| {target} | {len(y)} | {roc_auc_score(y, -loss):.3f} | {roc_auc_score(y, rise):.3f} | "
                  f"{rise[y == 1].mean():.4f} / {rise[y == 0].mean():.4f} | {loss.mean():.4f} |", flush=True)


if __name__ == "__main__":
    main()
