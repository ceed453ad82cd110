"""The one table of which attack runs on which target, why not, and at what cost (attacks/compatibility.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_checks.access.base import DENOISER, MASKED_TOKEN, NEXT_TOKEN
from mia_checks.attacks import GROUPS
from mia_checks.attacks.compatibility import calls_per_image, check_attack_choice, runnable, skip_reason, skipped
from mia_checks.errors import MiaUsageError
from mia_checks.settings import build_settings
from mia_checks.targets import TargetSpec

SD = TargetSpec("sd/", "diffusers", "diffusers:StableDiffusionPipeline", DENOISER, None, path=Path("sd"))
AMUSED = TargetSpec("amused/", "diffusers", "diffusers:AmusedPipeline", MASKED_TOKEN, None, path=Path("amused"))
DALLE = TargetSpec("dalle/", "seq2seq", "seq2seq:BartForConditionalGeneration+VQModel", NEXT_TOKEN, None)
CALLABLE = TargetSpec("m:gen", "callable", "callable", None, "a black-box callable exposes no weights to query")
ALL = GROUPS["all"]


def test_black_box_attacks_run_on_every_target():
    for target in (SD, AMUSED, DALLE, CALLABLE):
        assert all(skip_reason(a, [target]) is None for a in GROUPS["blackbox"])


def test_white_box_attacks_run_where_the_target_has_a_probe_for_its_access():
    assert runnable(ALL, [SD]) == ALL
    assert runnable(ALL, [AMUSED]) == runnable(ALL, [DALLE]) == (*GROUPS["blackbox"], "loss")
    assert runnable(ALL, [CALLABLE]) == GROUPS["blackbox"]
    assert skipped(ALL, [CALLABLE]) == {a: "a black-box callable exposes no weights to query" for a in GROUPS["whitebox"]}
    assert skip_reason("SimA", [AMUSED]).startswith("amused/ is a token model (masked-token): of the white-box "
                                                    "attacks only loss")
    # The shadow model must serve the attack too.
    assert skip_reason("loss", [SD, CALLABLE]) == CALLABLE.no_access and skip_reason("loss", [SD, SD]) is None


def test_calls_per_image_are_the_probes_and_sampling_steps():
    settings = build_settings({"target": "t", "members": "m", "nonmembers": "n", "guidance": "1"})
    assert {a: calls_per_image(a, SD, settings) for a in GROUPS["whitebox"]} == {
        "loss": 5, "SimA": 3, "PIA": 2, "SecMI": 12, "CLiD": 15}
    assert calls_per_image("II-P", SD, settings) == 25 * 2  # steps × K, no guidance
    guided = build_settings({"target": "t", "members": "m", "nonmembers": "n"})  # the pipeline's default: on
    assert calls_per_image("II-P", SD, guided) == 25 * 2 * 2
    assert calls_per_image("loss", AMUSED, settings) == 3 and calls_per_image("loss", DALLE, settings) == 1


def test_attacks_named_on_a_target_that_cannot_run_them_are_a_usage_error():
    check_attack_choice(ALL, False, [CALLABLE])  # the default, all: skipped with the reason instead
    check_attack_choice(("II-P", "loss"), True, [AMUSED])
    with pytest.raises(MiaUsageError, match="--mia-attacks: SimA, PIA are white-box attacks, but amused/ is a token"):
        check_attack_choice(("II-P", "SimA", "PIA"), True, [AMUSED])
