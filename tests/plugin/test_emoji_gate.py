"""The default gate on the emoji tier's fine-tunes, as users run it: a pretrained base fine-tuned on
captioned colour images fails, so does its LoRA fine-tune, and the null twin fine-tuned on other emoji
passes every attack (the tests' shared 128 + 128 slice, the default attacks and gate rule)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("target, lora, leaks", [("emoji-finetune", None, True), ("emoji-base", "emoji-lora", True),
                                                 ("emoji-finetune-null", None, False)])
def test_the_default_gate_on_the_emoji_tier(gate, demo_args, testbed, target, lora, leaks):
    result = gate(*demo_args(target), *([f"--mia-lora={testbed / lora}"] if lora else []), "--mia-json=report.json")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    report = json.loads((result.path / "report.json").read_text())
    records = report["results"]
    failed = [r["attack"] for r in records if r["verdict"]["leaks"]]
    if leaks:
        assert failed and outcomes.get("failed", 0) == len(failed), result.stdout.str()
    else:
        assert not failed and outcomes.get("failed", 0) == 0 and outcomes["passed"] == len(records) == 12, \
            result.stdout.str()
    # The members and non-members come from one pool: the no-model guard stays silent.
    assert "WARNING: distribution shift" not in result.stdout.str()
