"""How often the default gate passes `null` and fails `leaky`, over many seeds (run by hand).

    python benchmarks/gate_false_alarms.py --seeds 20
    python benchmarks/gate_false_alarms.py --seeds 20 --targets dalle-null,dalle-leaky

Each seed changes the generation noise, the folds and the attack models; the reference sets stay fixed
(32 members vs 32 non-members of the test bed). A run "passes" when no attack's verdict leaks. Uses the
same Audit the plugin uses, with the default settings and the demo's guidance 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import ensure_built


def run(target: str, seed: int, root, cache: str, rule: str, generations: int) -> tuple[bool, dict[str, float]]:
    settings = build_settings({
        "target": str(root / target), "members": str(root / "data" / "members"),
        "nonmembers": str(root / "data" / "nonmembers"), "embedder": str(root / "clip"),
        "guidance": "1", "seed": str(seed), "cache-dir": cache, "gate-rule": rule,
        "generations": None if generations is None else str(generations),
    })
    audit = Audit(settings, progress=False)
    verdicts = {a: audit.verdict(a) for a in settings.attacks}
    return not any(v.leaks for v in verdicts.values()), {a: v.value for a, v in verdicts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rule", default="bound", choices=["bound", "point"])
    parser.add_argument("--generations", type=int, default=None, help="default: the plugin's")
    parser.add_argument("--targets", default="sd-null,sd-leaky", help="comma-separated test-bed targets")
    args = parser.parse_args()
    targets = args.targets.split(",")
    root = ensure_built(["data", "clip", *targets])
    with tempfile.TemporaryDirectory() as cache:
        for target in targets:
            start, passes, worst = time.perf_counter(), 0, []
            for seed in range(args.seeds):
                passed, values = run(target, seed, root, cache, args.rule, args.generations)
                passes += passed
                worst.append(max(values.values()))
                print(f"{target} seed {seed:2d}: {'pass' if passed else 'FAIL'}  max accuracy {worst[-1]:.3f}", flush=True)
            print(f"== {target}: the whole run passed in {passes}/{args.seeds} seeds "
                  f"({100 * passes / args.seeds:.0f}%), rule {args.rule}; max accuracy over attacks: "
                  f"mean {sum(worst) / len(worst):.3f}; {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
