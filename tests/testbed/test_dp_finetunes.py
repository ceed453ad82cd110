"""The DP-SGD fine-tunes of the test bed (testbed/dp.py): what each declares, and that each really trained."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from mia_checks.targets.privacy import PRIVACY_FILE, read_declared_privacy
from mia_checks.testbed.dp import DP_TARGETS

UNET = "unet/diffusion_pytorch_model.safetensors"


def test_each_dp_fine_tune_declares_what_opacus_accountant_proved(testbed):
    sigmas = []
    for name, target in DP_TARGETS.items():
        info = json.loads((testbed / name / "build.json").read_text())
        privacy = info["privacy"]
        assert privacy["delta"] == 1 / 256 and privacy["steps"] == 320 and privacy["max_grad_norm"] == 1.0
        assert info["split"] == "data-ft/ft_members" and privacy["training_images"] == 128
        sigmas.append(privacy["noise_multiplier"])
        declared = read_declared_privacy(testbed / name)
        if target is None:  # the control: clipped and Poisson-sampled alike, no noise, no claim
            assert privacy["epsilon"] is None and privacy["noise_multiplier"] == 0
            assert declared is None and not (testbed / name / PRIVACY_FILE).exists()
        else:
            assert declared.epsilon == privacy["epsilon"] == pytest.approx(target, rel=0.02)
            assert declared.delta == privacy["delta"] and declared.details["accountant"] == "prv"
    assert sigmas == sorted(sigmas) and len(set(sigmas)) == len(sigmas)  # control 0 < ε50 < ε8 < ε1


def test_each_dp_fine_tune_moved_the_base_and_noise_moved_it_differently(testbed):
    base = load_file(testbed / "sd-base" / UNET)
    unets = {name: load_file(testbed / name / UNET) for name in DP_TARGETS}
    for name, unet in unets.items():
        moved = sum(float((unet[k] - base[k]).abs().sum()) for k in base)
        assert moved > 0, f"{name} is the base: it trained nothing"
    control, eps1 = unets["sd-finetune-dp-control"], unets["sd-finetune-dp1"]
    assert any(not (control[k] == eps1[k]).all() for k in base)
