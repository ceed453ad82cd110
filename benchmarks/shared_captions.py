"""Repeated captions, grouped folds against ungrouped ones, over seeds (issue 19). By hand:

    .venv/bin/python benchmarks/shared_captions.py --targets sd-finetune-null,sd-finetune --seeds 20 [--draw-sets random]

The fine-tune's reference sets with their captions cut to three parts (testbed/shared_captions.py: on the fixed
split, 69 distinct captions among the 128 members, 91 of the 128 non-members sharing a member's), audited
black-box; each seed's generations and features serve both fold schemes, side by side. Prints, per target and
attack, the mean AUC over the seeds and the shares of 95% intervals wholly below and wholly above ½, grouped
and ungrouped.

--draw-sets says what a seed re-draws besides the noise:
- none (default): nothing; the test bed's one fixed split, so the means are conditional on that draw.
- random: the sets, at random. A null twin's 256 queries (ft_members ∪ ft_nonmembers, neither seen) are
  re-split at random into 128 + 128; a fine-tune keeps its members and draws 128 non-members at random from
  the images it never saw (ft_nonmembers ∪ ft_null).
- matched: as random, but class-matched (each digit as often among the non-members as among the members):
  gate_false_alarms.drawn_sets.
- twins: as random, but non-members share members' captions wherever they can, as in issue 19's fine-tune:
  a null twin's queries are paired within their caption groups and each pair re-coined (one member, one
  non-member); a fine-tune's members each get an unseen image of the same cut caption where the pool has one.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from gate_false_alarms import LEAKY, _rows, _write, drawn_sets, unseen_pool

from mia_checks.attacks import ATTACKS, BLACK_BOX
from mia_checks.audit import Audit
from mia_checks.preflight import preflight
from mia_checks.testbed.build import ensure_built, testbed_root
from mia_checks.testbed.shared_captions import (
    coarse_caption,
    coarse_caption_set,
    twin_labels,
)

SCHEMES = ("grouped", "ungrouped")


def _members_and_pool(target: str, root: Path) -> tuple[list[dict] | None, list[dict]]:
    """A fine-tune's members (its training split) and the images it never saw; for a null twin, no fixed members
    and the 256 audited images, none of which it saw (gate_false_alarms.unseen_pool)."""
    trained, pool = unseen_pool(target, root)
    return (_rows(root / trained) if target in LEAKY else None), pool


def random_sets(target: str, seed: int, root: Path, parts: int) -> tuple[list[dict], list[dict]]:
    """128 + 128 drawn at random (see the module's docstring)."""
    rng = np.random.default_rng([0x72616E64, seed])
    members, pool = _members_and_pool(target, root)
    if members is not None:
        return members, [pool[i] for i in sorted(rng.choice(len(pool), len(members), replace=False))]
    order = rng.permutation(len(pool))
    return [pool[i] for i in sorted(order[:128])], [pool[i] for i in sorted(order[128:])]


def twin_sets(target: str, seed: int, root: Path, parts: int) -> tuple[list[dict], list[dict]]:
    """Sets whose non-members share the members' cut captions wherever they can (see the module's docstring)."""
    rng = np.random.default_rng([0x7477696E, seed])
    members, pool = _members_and_pool(target, root)
    if members is None:
        label = twin_labels([coarse_caption(row["text"], parts) for row in pool], rng)
        return [pool[i] for i in np.flatnonzero(label)], [pool[i] for i in np.flatnonzero(1 - label)]
    unused, nonmembers = list(range(len(pool))), []
    for member in (members[i] for i in rng.permutation(len(members))):
        caption = coarse_caption(member["text"], parts)
        same = [i for i in unused if coarse_caption(pool[i]["text"], parts) == caption] or unused
        nonmembers.append(pool[unused.pop(unused.index(same[int(rng.integers(len(same)))]))])
    return members, nonmembers


def sets_for(target: str, seed: int, draw: str, root: Path, work: Path, parts: int) -> tuple[Path, Path]:
    """This seed's member and non-member folders, captions cut to `parts`."""
    folder = work / f"{target}-{seed}-{draw}"
    if draw == "none":
        folders = (root / "data-ft/ft_members", root / "data-ft/ft_nonmembers")
    elif draw == "matched":
        folders = tuple(map(Path, drawn_sets(target, seed, root, folder / "drawn")))
    else:
        members, nonmembers = (twin_sets if draw == "twins" else random_sets)(target, seed, root, parts)
        folders = (Path(_write(members, folder / "drawn" / "members")),
                   Path(_write(nonmembers, folder / "drawn" / "nonmembers")))
    return tuple(coarse_caption_set(f, folder / "cut" / f.name, parts) for f in folders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="sd-finetune-null,sd-finetune")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--parts", type=int, default=3, help="caption parts kept")
    parser.add_argument("--draw-sets", default="none", choices=["none", "random", "matched", "twins"])
    args = parser.parse_args()
    targets = args.targets.split(",")
    ensure_built(["data-ft", "clip", *targets])
    root, work = testbed_root(), Path(tempfile.mkdtemp(prefix="mia-shared-"))
    attacks = [a for a, attack in ATTACKS.items() if attack.access == BLACK_BOX]
    for target in targets:
        runs = {scheme: {a: [] for a in attacks} for scheme in SCHEMES}
        shared = []
        for seed in range(args.seeds):
            members, nonmembers = sets_for(target, seed, args.draw_sets, root, work, args.parts)
            checked = preflight({"target": str(root / target), "members": str(members), "nonmembers": str(nonmembers),
                                 "embedder": str(root / "clip"), "guidance": "1", "attacks": "blackbox",
                                 "seed": str(seed)})
            audit = Audit(checked.settings, checked.members, checked.nonmembers, progress="off", spec=checked.target)
            captions, labels = np.array(audit.captions), audit.labels
            shared.append(np.isin(captions[labels == 0], captions[labels == 1]).mean())
            grouping = audit.grouping
            for scheme in SCHEMES:
                audit._results.clear()  # Audit.query_groups reads `grouping`: ungrouped keeps the groups, folds none
                audit.__dict__["grouping"] = grouping if scheme == "grouped" else (grouping[0], None, "ungrouped")
                for attack in attacks:
                    auc = audit.result(attack).auc
                    runs[scheme][attack].append((auc.value, auc.high < 0.5, auc.low > 0.5))
            print(f"{target} seed {seed} done", flush=True)
        print(f"\n{target}, sets drawn: {args.draw_sets}; {np.mean(shared):.0%} of non-members share a member's caption. "
              f"Mean AUC over {args.seeds} seeds (share of 95% intervals wholly below ½ / wholly above)")
        for attack in attacks:
            cells = []
            for scheme in SCHEMES:
                value, below, above = np.mean(runs[scheme][attack], axis=0)
                cells.append(f"{scheme} {value:.3f} ({below:.0%} / {above:.0%})")
            print(f"  {attack:5s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
