"""Null coverage of the intervals and tests read from out-of-fold decisions (issue 19), run by hand:

    .venv/bin/python benchmarks/oof_dependence.py [--runs 400] [--mlp-runs 400]

Null runs: features independent of the labels (6 standard normals), n members + n non-members, 5-fold
partial-knowledge (protocol.cross_validate), each run its own seed. For each attack model, the share of
runs whose 95% accuracy interval lies wholly below / above ½ (nominal 2.5% each), and whose shift test —
the one-sided binomial test of accuracy > ½ at α = 0.05 — rejects (nominal 5%): read as independent
counts (design effect 1, as before) and at their effective size (OutOfFold.design_effect).
"""

from __future__ import annotations

import argparse

import numpy as np

from mia_checks import metrics
from mia_checks.attacks.base import logistic, mlp
from mia_checks.protocol import cross_validate


def null_run(model, n: int, seed: int) -> tuple[int, int, float]:
    rng = np.random.default_rng([0x6E756C6C, seed])
    x, labels = rng.normal(size=(2 * n, 6)), np.r_[np.ones(n, int), np.zeros(n, int)]
    oof = cross_validate(model, x, labels, 5, seed)
    return int((oof.decisions == labels).sum()), 2 * n, oof.design_effect


def rates(runs: list[tuple[int, int, float]], design_effect: bool) -> tuple[float, float, float]:
    below = above = rejected = 0
    for correct, n, f in runs:
        f = f if design_effect else 1.0
        estimate = metrics.proportion(correct, n, 0.95, f)
        low, high = estimate.low, estimate.high
        below, above = below + (high < 0.5), above + (low > 0.5)
        rejected += metrics.binomial_p_greater(*metrics.effective_counts(correct, n, f)) < 0.05
    return below / len(runs), above / len(runs), rejected / len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--mlp-runs", type=int, default=400)
    args = parser.parse_args()
    print("model      n     runs  f     | independent: below  above  shift | effective: below  above  shift")
    for model, n, count in ((logistic, 32, args.runs), (logistic, 128, args.runs), (mlp, 32, args.mlp_runs)):
        runs = [null_run(model, n, seed) for seed in range(count)]
        plain, effective = rates(runs, False), rates(runs, True)
        print(f"{model.__name__:9s} {n:4d} {count:6d}  {runs[0][2]:.1f}   |  "
              + "  ".join(f"{r:5.1%}" for r in plain) + "     |  " + "  ".join(f"{r:5.1%}" for r in effective),
              flush=True)


if __name__ == "__main__":
    main()
