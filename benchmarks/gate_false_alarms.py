"""How often the default gate passes models that never saw the audited images and fails models that did,
over many seeds (run by hand).

    python benchmarks/gate_false_alarms.py --seeds 20 [--targets null,leaky,mild,finetune,finetune-null]
                                           [--attacks all] [--metric auc] [--rule bound] [--generations K]
    python benchmarks/gate_false_alarms.py --seeds 20 --targets dalle-null,dalle-leaky

Each seed changes the generation noise, the white-box noise, the folds and the attack models; the
reference images stay fixed (each target's own audited sets: 32 vs 32 for the from-scratch targets,
128 vs 128 for the fine-tunes). A run "passes" when no attack's verdict leaks. Uses the same Audit the
plugin uses, with the default settings and the demo's guidance 1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import audit_sets, ensure_built
from mia_checks.testbed.build import ALIASES

LEAKY = {"leaky", "mild", "finetune", "sd-leaky", "sd-mild", "sd-finetune", "ldm-leaky", "lora-leaky", "dalle-leaky",
         "amused-leaky"}


def run(target: str, seed: int, root, cache: str, args) -> tuple[bool, dict[str, float], list[str]]:
    members, nonmembers = audit_sets(target)
    raw = {"target": str(root / ALIASES.get(target, target)), "members": str(root / members),
           "nonmembers": str(root / nonmembers), "embedder": str(root / "clip"), "guidance": "1",
           "seed": str(seed), "cache-dir": cache, "gate-rule": args.rule, "gate-metric": args.metric,
           "attacks": args.attacks, "generations": None if args.generations is None else str(args.generations)}
    audit = Audit(build_settings(raw), progress=False)
    verdicts = {a: audit.verdict(a) for a in audit.attacks}
    leaking = [a for a, v in verdicts.items() if v.leaks]
    return not leaking, {a: v.value for a, v in verdicts.items()}, leaking


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="to split a run: seeds first … first+seeds−1")
    parser.add_argument("--targets", default="null,leaky,mild,finetune,finetune-null")
    parser.add_argument("--attacks", default="all")
    parser.add_argument("--metric", default="auc")
    parser.add_argument("--rule", default="bound", choices=["bound", "point"])
    parser.add_argument("--generations", type=int, default=None, help="default: the plugin's")
    args = parser.parse_args()
    targets = args.targets.split(",")
    root = ensure_built(["data", "clip", *targets])
    print(f"gate: metric {args.metric}, rule {args.rule}, attacks {args.attacks}; {args.seeds} seeds")
    with tempfile.TemporaryDirectory() as cache:
        for target in targets:
            start, passes, caught_by = time.perf_counter(), 0, Counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                passed, values, leaking = run(target, seed, root, cache, args)
                passes += passed
                caught_by.update(leaking)
                best = max(values, key=values.get)
                print(f"{target} seed {seed:2d}: {'pass' if passed else 'FAIL ' + ','.join(leaking)}  "
                      f"best {best} {values[best]:.3f}", flush=True)
            want = "failed" if target in LEAKY else "passed"
            count = args.seeds - passes if target in LEAKY else passes
            print(f"== {target}: the whole run {want} in {count}/{args.seeds} seeds ({100 * count / args.seeds:.0f}%); "
                  f"failing attacks: {dict(caught_by.most_common()) or 'none'}; {time.perf_counter() - start:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
