"""Repeated captions on real data (issue 19): the fine-tune's sets with captions cut to three parts, as class-style
captions repeat. Queries that share a caption get identical generations; the folds must keep them together,
and the report must say so. (The statistical effect, over seeds: benchmarks/shared_captions.py; the mechanism,
on simulated twins: tests/unit/test_protocol.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from mia_checks.attacks import ATTACKS
from mia_checks.audit import Audit
from mia_checks.metrics import auc_interval
from mia_checks.preflight import preflight
from mia_checks.protocol import cross_validate
from mia_checks.record import run_header
from mia_checks.reports.terminal import format_header
from mia_checks.testbed.shared_captions import coarse_caption_set, twin_labels


@pytest.fixture(scope="module")
def null_audit(testbed, tmp_path_factory) -> Audit:
    """The null twin (it saw neither set) audited on the fine-tune's sets with captions cut to three parts."""
    tmp = tmp_path_factory.mktemp("shared")
    sets = {s: coarse_caption_set(testbed / "data-ft" / s, tmp / s) for s in ("ft_members", "ft_nonmembers")}
    members = [line for line in (sets["ft_members"] / "metadata.jsonl").read_text().splitlines()]
    assert len(members) == 128 and len({line.split('"text": ')[1] for line in members}) == 69
    checked = preflight({"target": str(testbed / "sd-finetune-null"), "members": str(sets["ft_members"]),
                         "nonmembers": str(sets["ft_nonmembers"]), "embedder": str(testbed / "clip"),
                         "guidance": "1", "generations": "1", "attacks": "I-S,II-P", "cache-dir": str(tmp / "c")})
    return Audit(checked.settings, checked.members, checked.nonmembers, progress="off", spec=checked.target)


def test_queries_sharing_a_caption_share_their_fold_in_every_attack(null_audit):
    audit = null_audit
    captions = np.array(audit.captions)
    twins = [c for c in set(captions) if len(set(audit.labels[captions == c])) == 2]
    assert len(twins) >= 40  # members and non-members that share a caption: the anti-learning case
    for attack in ("I-S", "II-P", "baseline"):
        folds = audit.result(attack).oof.folds
        assert all(len(set(folds[audit.query_groups == g])) == 1 for g in np.unique(audit.query_groups))
        assert all(len(set(folds[captions == c])) == 1 for c in twins)
    header = format_header(run_header(audit, "gate"))
    assert "protocol: partial-knowledge, 5-fold; seed 0; 247 of 256 queries share a caption or a near-duplicate " \
           "image with another and stay in one fold with it (79 groups, the largest of 6)" in header


def _null_draws(audit: Audit, attack: str, draws: int, twins: bool, grouped: bool = True) -> tuple[float, int]:
    """Mean AUC and intervals wholly below ½ over `draws` seeded re-draws of the null twin's labels."""
    x = ATTACKS[attack].features(audit.inputs(ATTACKS[attack]), audit.settings.combine)
    aucs, below = [], 0
    for draw in range(draws):
        rng = np.random.default_rng([19, draw])
        labels = twin_labels(audit.captions, rng) if twins else rng.permutation(audit.labels)
        oof = cross_validate(ATTACKS[attack].model, x, labels, 5, draw, groups=audit.query_groups if grouped else None)
        auc = auc_interval(labels, oof.scores, 0.95, oof.auc_variance_factor, oof.auc_strata, oof.auc_skewness)
        aucs.append(auc.value)
        below += auc.high < 0.5
    return float(np.mean(aucs)), below


@pytest.mark.parametrize(("attack", "draws"), [("I-S", 40), ("II-P", 100)])
def test_a_null_twin_reads_chance_over_random_draws_of_its_sets_under_grouped_folds(null_audit, attack, draws):
    """Issue 19, item 2: on a model that saw none of the queries every split of them into members and non-members
    is a null draw, so the queries' labels are re-drawn (128 + 128) while their features stay: a rate over draws
    of the sets, not over noise. I-S reads the generations alone, so queries that share a caption have identical
    features; II-P compares each query with them. Over the draws the grouped folds' mean AUC must be ½ within
    0.02, and intervals wholly below ½ no likelier than their nominal 2.5%. Measured per-draw spread here:
    SD 0.040 (I-S) and 0.050 (II-P), standard errors of the mean 0.0063 and 0.0050, so 0.02 is over 3 of them:
    a false alarm in under 1 of 500 seed choices per attack. Seeded: the outcome is fixed."""
    assert null_audit.query_groups is not None
    mean, below = _null_draws(null_audit, attack, draws, twins=False)
    assert abs(mean - 0.5) < 0.02, mean
    assert below <= binom.ppf(0.99, draws, 0.025), below  # more: a 1% chance at the nominal 2.5%


def test_a_null_twin_whose_non_members_share_the_members_captions_reads_chance_only_under_grouped_folds(null_audit):
    """Issue 19's case, reproduced: non-members share members' captions (twin_labels: 95% of them here, 57% in the
    issue's fine-tune), so a member and a non-member get identical generations. Folds that split them anti-learn:
    each teaches the model the opposite label for the other. Measured over 40 draws: I-S ungrouped 0.309, grouped
    0.501 (per-draw SD 0.016, standard error 0.0036 at 20 draws: the tolerance 0.02 is over 5 of them)."""
    grouped, below = _null_draws(null_audit, "I-S", 20, twins=True)
    ungrouped, _ = _null_draws(null_audit, "I-S", 20, twins=True, grouped=False)
    assert abs(grouped - 0.5) < 0.02 and below <= 2, (grouped, below)
    assert ungrouped < 0.4, ungrouped  # the reproduction reproduces: without the groups, far below chance


def test_one_caption_for_every_query_falls_back_to_ungrouped_folds_and_says_what_that_costs(testbed, tmp_path):
    """A DreamBooth-style audit: every training photo and every held-out photo under one prompt. Groups cannot
    make balanced folds, so the folds ignore them — stated in the header, not a silent bias, not an error."""
    import json

    for split in ("members", "nonmembers"):
        folder = coarse_caption_set(testbed / "data" / split, tmp_path / split)
        rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        (folder / "metadata.jsonl").write_text("".join(json.dumps({**r, "text": "a photo of sks digit"}) + "\n"
                                                       for r in rows))
    checked = preflight({"target": str(testbed / "sd-null"), "members": str(tmp_path / "members"),
                         "nonmembers": str(tmp_path / "nonmembers"), "embedder": str(testbed / "clip"),
                         "cache-dir": str(tmp_path / "c")})
    audit = Audit(checked.settings, checked.members, checked.nonmembers, progress="off", spec=checked.target)
    groups, kept, fallback = audit.grouping
    assert np.bincount(groups).max() == 64 and kept is None and audit.query_groups is None
    header = run_header(audit, "gate")
    assert header["query_groups"]["kept_whole"] is False
    assert ("seed 0; NOTE: the largest group of queries sharing a caption or an image holds 64 of 64, too many to "
            "keep in one of 5 balanced folds: the folds ignore the groups") in format_header(header)
