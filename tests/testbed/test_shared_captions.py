"""Repeated captions on real data (issue 19): the fine-tune's sets with captions cut to three parts, as class-style
captions repeat. Queries that share a caption get identical generations; the folds must keep them together,
and the report must say so. (The statistical effect, over seeds: benchmarks/shared_captions.py; the mechanism,
on simulated twins: tests/unit/test_protocol.py.)"""

from __future__ import annotations

import numpy as np

from mia_checks.audit import Audit
from mia_checks.preflight import preflight
from mia_checks.record import run_header
from mia_checks.reports.terminal import format_header
from mia_checks.testbed.shared_captions import coarse_caption_set


def test_queries_sharing_a_caption_share_their_fold_in_every_attack(testbed, tmp_path):
    sets = {s: coarse_caption_set(testbed / "data-ft" / s, tmp_path / s) for s in ("ft_members", "ft_nonmembers")}
    members = [line for line in (sets["ft_members"] / "metadata.jsonl").read_text().splitlines()]
    assert len(members) == 128 and len({line.split('"text": ')[1] for line in members}) == 69
    checked = preflight({"target": str(testbed / "sd-finetune-null"), "members": str(sets["ft_members"]),
                         "nonmembers": str(sets["ft_nonmembers"]), "embedder": str(testbed / "clip"),
                         "guidance": "1", "generations": "1", "attacks": "I-P,II-P", "cache-dir": str(tmp_path / "c")})
    audit = Audit(checked.settings, checked.members, checked.nonmembers, progress="off", spec=checked.target)
    captions = np.array(audit.captions)
    twins = [c for c in set(captions) if len(set(audit.labels[captions == c])) == 2]
    assert len(twins) >= 40  # members and non-members that share a caption: the anti-learning case
    for attack in ("I-P", "II-P", "baseline"):
        folds = audit.result(attack).oof.folds
        assert all(len(set(folds[audit.query_groups == g])) == 1 for g in np.unique(audit.query_groups))
        assert all(len(set(folds[captions == c])) == 1 for c in twins)
    header = format_header(run_header(audit, "gate"))
    assert "protocol: partial-knowledge, 5-fold; seed 0; 247 of 256 queries share a caption or a near-duplicate " \
           "image with another and stay in one fold with it (79 groups, the largest of 6)" in header


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
