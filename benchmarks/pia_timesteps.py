"""PIA and SimA against the timestep (run by hand): why PIA trails SimA on the test bed.

    python benchmarks/pia_timesteps.py [--targets emoji-finetune,finetune] [--timesteps 5,10,25,50,100,200,400]

PIA compares ε₀ = ε_θ(x₀, 0, c) with ε_θ(√ᾱ_t·x₀ + √(1−ᾱ_t)·ε₀, t, c) at one t (default 200, its paper's for
Stable Diffusion); SimA reads ‖ε_θ(x₀, t, c)‖⁴₄ over a grid (default 50, 100, 200). Per target, on its audit
sets, seed 0: each attack's AUC with a single t from the list, so that the two are compared at equal t.
"""

from __future__ import annotations

import argparse
import tempfile

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import ensure_built
from mia_checks.testbed.build import audit_artifacts, audit_options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="emoji-finetune,finetune")
    parser.add_argument("--timesteps", default="5,10,25,50,100,200,400")
    args = parser.parse_args()
    targets, timesteps = args.targets.split(","), [int(t) for t in args.timesteps.split(",")]
    root = ensure_built([a for t in targets for a in audit_artifacts(t)])
    print("| target | t | PIA AUC [95% CI] | SimA AUC [95% CI] (grid of this t alone) |")
    print("|---|---|---|---|")
    for target in targets:
        with tempfile.TemporaryDirectory() as cache:
            for t in timesteps:
                raw = {**audit_options(root, target), "attacks": "PIA,SimA", "cache-dir": cache,
                       "pia-timestep": str(t), "sima-timesteps": str(t)}
                audit = Audit(build_settings(raw), progress=False)
                auc = {name: audit.result(name).auc for name in ("PIA", "SimA")}
                print(f"| {target} | {t} | {auc['PIA'].value:.3f} [{auc['PIA'].low:.3f}, {auc['PIA'].high:.3f}] | "
                      f"{auc['SimA'].value:.3f} [{auc['SimA'].low:.3f}, {auc['SimA'].high:.3f}] |", flush=True)


if __name__ == "__main__":
    main()
