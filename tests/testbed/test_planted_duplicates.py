"""The memorization test on ground truth: the fine-tune with planted duplicates (5 members, 20× each) and its
null twin, under the default run's α split (12 attacks and 2 exposure tests). Over 20 seeds
(benchmarks/exposure.py) the planted five were flagged in 20/20 and nothing else; the null twin flagged
nothing in 20/20. Two seeds here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mia_checks.audit import Audit
from mia_checks.settings import build_settings


def flagged(testbed: Path, target: str, seed: int, tmp_path: Path) -> set[str]:
    raw = {"target": str(testbed / target), "members": str(testbed / "data-ft" / "ft_members"),
           "nonmembers": str(testbed / "data-ft" / "ft_nonmembers"), "seed": str(seed),
           "cache-dir": str(tmp_path), "attacks": "all", "embedder": str(testbed / "clip")}
    audit = Audit(build_settings(raw), progress=False)
    assert audit.gate.level == pytest.approx(0.05 / 14)
    result = audit.exposure("memorization")
    assert result.calls_per_image == 13 and set(result.thresholds) == {"noise magnitude", "denoising loss"}
    return {audit.members.files[i].name for i in result.flagged}


@pytest.mark.parametrize("seed", [0, 1])
def test_memorization_flags_the_planted_duplicates_and_nothing_on_the_null_twin(testbed, tmp_path, seed):
    planted = set(json.loads((testbed / "sd-finetune-dup" / "build.json").read_text())["planted"])
    assert len(planted) == 5
    found = flagged(testbed, "sd-finetune-dup", seed, tmp_path)
    assert len(found & planted) >= 4 and len(found - planted) <= 1, found
    assert flagged(testbed, "sd-finetune-null", seed, tmp_path) == set()
