"""The white-box family against the paper's black-box six, on the same sets and targets (run by hand).

    python benchmarks/whitebox_vs_blackbox.py [--targets leaky,mild,finetune,finetune-null,ldm-leaky,lora-leaky]
    python benchmarks/whitebox_vs_blackbox.py --targets emoji-finetune,emoji-lora,emoji-finetune-null

Per target, with empty caches, measured side by side in one run:
- the black-box verdict's wall time: generation (25 DDIM steps × K = 2 per query), embeddings, the six
  attack models under 5-fold cross-validation;
- the white-box verdict's wall time: the queries' embeddings (the distribution-shift guard needs them),
  the five probes (denoiser calls) and their attack models;
- per attack: AUC, TPR@1%FPR, accuracy, denoiser calls per image and seconds (a black-box attack's own
  seconds exclude the generation and embeddings that all six share, shown on the `generate+embed` row).
Target of issue 9 on the realistic fine-tune: white-box ≥ 10× faster at ≥ equal (best) AUC.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import ensure_built
from mia_checks.testbed.build import audit_artifacts, audit_options


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def audit(root, target: str, cache: str, seed: int) -> Audit:
    return Audit(build_settings({**audit_options(root, target), "seed": str(seed), "cache-dir": cache}),
                 progress=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="leaky,mild,finetune,finetune-null,ldm-leaky,lora-leaky")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    targets = args.targets.split(",")
    root = ensure_built([a for t in targets for a in audit_artifacts(t)])
    print("| target | attack | access | AUC | TPR@1%FPR | accuracy | calls/img | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for target in targets:
        # Each family gets its own audit and empty cache: each loads the checkpoint itself.
        with tempfile.TemporaryDirectory() as black_cache, tempfile.TemporaryDirectory() as white_cache:
            audits = {"black-box": audit(root, target, black_cache, args.seed),
                      "white-box": audit(root, target, white_cache, args.seed)}
            _, shared = timed(lambda: audits["black-box"].features)
            # Both verdicts include the distribution-shift guard's query embeddings (inside `features` above).
            _, guard = timed(lambda: audits["white-box"].query_features)
            family = {"black-box": shared, "white-box": guard}
            best = {"black-box": 0.0, "white-box": 0.0}
            print(f"| {target} | generate+embed | black-box | | | | | {shared:.1f} |")
            print(f"| {target} | embed queries | white-box | | | | | {guard:.1f} |")
            for attack in audits["black-box"].attacks:
                access = "white-box" if attack in audits["black-box"].settings.whitebox_attacks else "black-box"
                a = audits[access]
                result, seconds = timed(lambda: a.result(attack))
                family[access] += seconds
                best[access] = max(best[access], result.auc.value)
                tpr = "n/a" if result.tpr_at_1pct_fpr != result.tpr_at_1pct_fpr else f"{result.tpr_at_1pct_fpr:.3f}"
                print(f"| {target} | {attack} | {access} | {result.auc.format()} | {tpr} | "
                      f"{result.accuracy.value:.3f} | {a.calls_per_image(attack)} | {seconds:.1f} |", flush=True)
            summary.append((target, family, best, len(a.labels)))
    print("\n| target | queries | black-box verdict | white-box verdict | speed-up | best AUC black-box | best AUC white-box |")
    print("|---|---|---|---|---|---|---|")
    for target, family, best, n in summary:
        print(f"| {target} | {n} | {family['black-box']:.1f} s | {family['white-box']:.1f} s | "
              f"{family['black-box'] / family['white-box']:.1f}× | {best['black-box']:.3f} | {best['white-box']:.3f} |")


if __name__ == "__main__":
    main()
