"""How often the default gate passes models that never saw the audited images and fails models that did,
over many seeds (run by hand).

    python benchmarks/gate_false_alarms.py --seeds 20 [--targets null,leaky,mild,finetune,finetune-null]
                                           [--attacks all] [--metric auc] [--rule bound] [--generations K]
    python benchmarks/gate_false_alarms.py --seeds 20 --targets dalle-null,dalle-leaky
    python benchmarks/gate_false_alarms.py --seeds 20 --targets emoji-finetune,emoji-lora,emoji-finetune-null [--small]

Each seed changes the generation noise, the white-box noise, the folds and the attack models; the
reference images stay fixed (each target's own audited sets: 32 vs 32 for the from-scratch targets,
128 vs 128 for the fine-tunes, 256 vs 256 for the emoji tier's or with --small its tests' 128 vs 128). A run "passes" when no attack's verdict leaks. Uses the same Audit the
plugin uses, with the default settings and the demo's guidance 1.

With --draw-sets every seed also re-draws the reference sets from a larger pool of images, class-matched
(each digit as often among the non-members as among the members): a false-alarm rate over draws of the
sets, not only over the noise of one draw. A target that never saw the pool (a null twin) gets both sets
drawn from it; a leaky target keeps its true members (its training split) and gets its non-members drawn.
Pools: the from-scratch targets' unseen splits among members, nonmembers, shadow_members and
shadow_nonmembers (128 images); the fine-tunes', ft_members, ft_nonmembers and ft_null minus the training
split (256; a fine-tune's null twin draws 125 + 125 from it, as many as its odd class counts allow). The emoji
tier keeps its category pairs: a null twin's pairs (ft_members[i], ft_nonmembers[i]) are re-coined, each side
a member with probability ½; a leaky target keeps its members and draws each one's non-member from the unseen
emoji of its category (ft_nonmembers and ft_null).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mia_checks.audit import Audit
from mia_checks.settings import build_settings
from mia_checks.testbed import audit_sets, ensure_built
from mia_checks.testbed.build import ALIASES, FINETUNES, TARGETS, audit_artifacts, audit_options

SCRATCH_POOL = ("data/members", "data/nonmembers", "data/shadow_members", "data/shadow_nonmembers")
FINETUNE_POOL = ("data-ft/ft_members", "data-ft/ft_nonmembers", "data-ft/ft_null")

LEAKY = {"leaky", "mild", "finetune", "sd-leaky", "sd-mild", "sd-finetune", "ldm-leaky", "lora-leaky", "dalle-leaky",
         "amused-leaky", "emoji-finetune", "emoji-finetune-dup", "emoji-lora", "emoji-large-finetune"}


def _rows(folder) -> list[dict]:
    return [{**json.loads(line), "folder": folder} for line in (folder / "metadata.jsonl").read_text().splitlines()
            if line]


def _digit(row: dict) -> str:
    return row["text"].split(",")[0]  # "a handwritten eight": the class


def _write(rows: list[dict], out: Path) -> str:
    out.mkdir(parents=True)
    for i, row in enumerate(rows):
        (out / f"{i:04d}.png").symlink_to(row["folder"] / row["file_name"])
    (out / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i:04d}.png", "text": r["text"]}) + "\n"
                                                for i, r in enumerate(rows)))
    return str(out)


def _twice_drawable(shape: Counter, pool: Counter) -> Counter:
    """The class histogram `shape`, each class cut to half its count in the pool — members and non-members both
    need it — and the set topped up towards its size from the classes with the most to spare; a few short when
    the pool's odd counts leave no more. (The fine-tunes' sets are not class-balanced: ft_members holds 19 nines,
    the null twin's 256-image pool 29.)"""
    out = Counter({d: min(n, pool[d] // 2) for d, n in shape.items()})
    while sum(out.values()) < sum(shape.values()):
        spare = max(sorted(pool), key=lambda d: pool[d] // 2 - out[d])
        if pool[spare] // 2 <= out[spare]:
            break
        out[spare] += 1
    return +out  # classes the pool cannot give twice drop out


def unseen_pool(target: str, root: Path) -> tuple[str, list[dict]]:
    """A digit target's training split (a folder under the root) and the pool of images it never saw."""
    name = ALIASES.get(target, target)
    trained = f"data-ft/{FINETUNES[name]}" if name in FINETUNES else f"data/{TARGETS.get(name, (None, 'members'))[1]}"
    pool_names = FINETUNE_POOL if name in FINETUNES else SCRATCH_POOL
    return trained, [r for p in pool_names if p != trained for r in _rows(root / p)]


def drawn_sets(target: str, seed: int, root: Path, work: Path) -> tuple[str, str]:
    """Class-matched member and non-member folders for this seed (see the module's docstring)."""
    trained, pool = unseen_pool(target, root)
    members_dir, _ = audit_sets(target)
    shape = Counter(_digit(r) for r in _rows(root / members_dir))  # the class histogram of an audit set
    rng = np.random.default_rng([0x73657473, seed])

    def draw(histogram: Counter, exclude: set[int]) -> list[int]:
        picked = []
        for digit, count in sorted(histogram.items()):
            candidates = [i for i, r in enumerate(pool) if _digit(r) == digit and i not in exclude]
            picked += list(rng.choice(candidates, count, replace=False))
        return sorted(picked)

    if target in LEAKY:
        members = _rows(root / trained)
        nonmembers = [pool[i] for i in draw(Counter(_digit(r) for r in members), set())]
    else:
        shape = _twice_drawable(shape, Counter(_digit(r) for r in pool))
        chosen = draw(shape, set())
        members, nonmembers = [pool[i] for i in chosen], [pool[i] for i in draw(shape, set(chosen))]
    folder = work / f"{target}-{seed}"
    return _write(members, folder / "members"), _write(nonmembers, folder / "nonmembers")


def drawn_emoji_sets(target: str, seed: int, root: Path, work: Path, small: bool) -> tuple[str, str]:
    """The emoji tier's sets for this seed, category-paired (see the module's docstring)."""
    from mia_checks.testbed import emoji_tier

    data = root / emoji_tier.build_of(target).data
    pairs = emoji_tier.SLICE if small else None

    def rows(split: str) -> list[dict]:
        meta = _rows(data / split)
        return [{**m, **json.loads(g)} for m, g in zip(meta, (data / split / "groups.jsonl").read_text().splitlines())]

    rng = np.random.default_rng([0x656D6F6A, seed])
    first, second = rows("ft_members")[:pairs], rows("ft_nonmembers")[:pairs]
    if target in LEAKY:
        pool = rows("ft_nonmembers") + rows("ft_null")
        by_category: dict[str, list[dict]] = {}
        for row in pool:
            by_category.setdefault(row["category"], []).append(row)
        members, nonmembers = first, []
        for row in members:
            candidates = by_category[row["category"]]
            nonmembers.append(candidates.pop(int(rng.integers(len(candidates)))))
    else:
        coins = rng.integers(0, 2, len(first)).astype(bool)
        members = [b if c else a for a, b, c in zip(first, second, coins)]
        nonmembers = [a if c else b for a, b, c in zip(first, second, coins)]
    folder = work / f"{target}-{seed}"
    return _write(members, folder / "members"), _write(nonmembers, folder / "nonmembers")


def run(target: str, seed: int, root, cache: str, args) -> tuple[bool, dict[str, float], list[str], bool]:
    raw = audit_options(root, target, small=args.small)
    if args.draw_sets:
        draw = (lambda *a: drawn_emoji_sets(*a, args.small)) if target.startswith("emoji-") else drawn_sets
        raw["members"], raw["nonmembers"] = draw(target, seed, root, Path(cache) / "sets")
    raw |= {"seed": str(seed), "cache-dir": cache, "gate-rule": args.rule, "gate-metric": args.metric,
            "attacks": args.attacks, "generations": None if args.generations is None else str(args.generations)}
    audit = Audit(build_settings(raw), progress=False)
    verdicts = {a: audit.verdict(a) for a in audit.attacks}
    leaking = [a for a, v in verdicts.items() if v.leaks]
    shifted = audit.distribution_shift().shifted  # the no-model guard: the sets differ without any model
    return not leaking, {a: v.value for a, v in verdicts.items()}, leaking, shifted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="to split a run: seeds first … first+seeds−1")
    parser.add_argument("--targets", default="null,leaky,mild,finetune,finetune-null")
    parser.add_argument("--attacks", default="all")
    parser.add_argument("--metric", default="auc")
    parser.add_argument("--rule", default="bound", choices=["bound", "point"])
    parser.add_argument("--generations", type=int, default=None, help="default: the plugin's")
    parser.add_argument("--draw-sets", action="store_true", help="re-draw the reference sets at every seed")
    parser.add_argument("--small", action="store_true", help="the emoji tier's 128 + 128 slice (the tests') instead "
                                                            "of its 256 + 256")
    args = parser.parse_args()
    targets = args.targets.split(",")
    root = ensure_built([a for t in targets for a in audit_artifacts(t)])
    print(f"gate: metric {args.metric}, rule {args.rule}, attacks {args.attacks}; {args.seeds} seeds; "
          + ("reference sets re-drawn at every seed, class- or category-matched" if args.draw_sets
             else "fixed reference sets"))
    with tempfile.TemporaryDirectory() as cache:
        for target in targets:
            start, passes, caught_by, shifts = time.perf_counter(), 0, Counter(), 0
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                passed, values, leaking, shifted = run(target, seed, root, cache, args)
                passes += passed
                shifts += shifted
                caught_by.update(leaking)
                best = max(values, key=values.get)
                print(f"{target} seed {seed:2d}: {'pass' if passed else 'FAIL ' + ','.join(leaking)}  "
                      f"best {best} {values[best]:.3f}" + ("  (shift guard warned)" if shifted else ""), flush=True)
            want = "failed" if target in LEAKY else "passed"
            count = args.seeds - passes if target in LEAKY else passes
            print(f"== {target}: the whole run {want} in {count}/{args.seeds} seeds ({100 * count / args.seeds:.0f}%); "
                  f"failing attacks: {dict(caught_by.most_common()) or 'none'}; shift guard warned in {shifts}; "
                  f"{time.perf_counter() - start:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
