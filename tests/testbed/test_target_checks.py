"""The checks before a run on the test bed's real models (preflight.py, in-process): what a target spec names
decides which attacks and options apply, and weights are safetensors unless the user opts in."""

from __future__ import annotations

import shutil

import pytest

from mia_checks.errors import MiaUsageError
from mia_checks.preflight import preflight


@pytest.fixture
def checks(testbed, tmp_path):
    """`checks(target, **options)`: preflight on a test-bed target with its members and non-members."""
    def run(target: str, **options: str):
        raw = {"target": target if "/" in target else str(testbed / target),
               "members": str(testbed / "data" / "members"), "nonmembers": str(testbed / "data" / "nonmembers"),
               "embedder": str(testbed / "clip"), "cache-dir": str(tmp_path / "cache")}
        return preflight({**raw, **{k.replace("_", "-"): v for k, v in options.items()}})

    return run


def test_a_pipeline_is_resolved_once_with_what_the_attacks_can_query(checks, testbed):
    checked = checks("sd-null", attacks="whitebox")
    assert checked.target.access == "denoiser" and checked.settings.attacks_chosen
    shadow = checks("sd-null", shadow_target=str(testbed / "sd-shadow"),
                    shadow_members=str(testbed / "data" / "shadow_members"),
                    shadow_nonmembers=str(testbed / "data" / "shadow_nonmembers"))
    assert shadow.shadow.spec == str(testbed / "sd-shadow") and shadow.shadow.option == "--mia-shadow-target"


def test_a_token_model_runs_loss_alone_and_refuses_denoiser_attacks_by_name(checks, testbed):
    with pytest.raises(MiaUsageError, match=r"--mia-attacks: SimA, PIA, SecMI, CLiD are white-box attacks, but "
                                            r".*amused-null is a token model \(masked-token\): of the white-box "
                                            r"attacks only loss, on its own tokens, applies"):
        checks("amused-null", attacks="whitebox")
    assert checks("amused-null", attacks="loss,II-P").target.access == "masked-token"


def test_options_for_another_kind_of_target_or_model_are_usage_errors(checks, testbed):
    with pytest.raises(MiaUsageError, match="--mia-top-k: sampling options apply to seq2seq"):
        checks("sd-null", top_k="4")
    with pytest.raises(MiaUsageError, match="--mia-target-identity: only a callable target needs one"):
        checks("sd-null", target_identity="v1")
    with pytest.raises(MiaUsageError, match="--mia-embedder: .*/data is neither an open_clip model folder"):
        checks("sd-null", embedder=str(testbed / "data"))
    with pytest.raises(MiaUsageError, match="--mia-target: .*/data is not a diffusers pipeline folder"):
        checks("data")


def test_pickle_only_weights_are_refused_unless_opted_in(checks, testbed, tmp_path):
    import torch
    from safetensors.torch import load_file

    target = tmp_path / "pickled"
    shutil.copytree(testbed / "sd-null", target)
    unet = target / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(unet), target / "unet" / "diffusion_pytorch_model.bin")
    unet.unlink()
    with pytest.raises(MiaUsageError, match=r"--mia-target: .*/unet holds only pickle-based weights "
                                            r"\(diffusion_pytorch_model.bin\).*--mia-allow-pickle"):
        checks(str(target))
    assert checks(str(target), allow_pickle="true").target.kind == "diffusers:StableDiffusionPipeline"


def _with_scheduler_steps(testbed, tmp_path, steps: int):
    """sd-null with its scheduler config saying `steps` training timesteps (the weights are links)."""
    import json

    folder = tmp_path / f"sd-{steps}"
    shutil.copytree(testbed / "sd-null", folder, symlinks=True,
                    copy_function=lambda src, dst: __import__("os").symlink(src, dst))
    config = folder / "scheduler" / "scheduler_config.json"
    settings = json.loads(config.read_text())
    config.unlink()
    config.write_text(json.dumps({**settings, "num_train_timesteps": steps}))
    return str(folder)


@pytest.mark.parametrize("steps, options, message", [
    (500, {}, r"--mia-loss-timesteps: loss probes timestep 500, past the last step \(499\) of .*sd-500's scheduler "
              r"\(500 training steps\)\. Give timesteps of 0–499 \(e\.g\. the default grid scaled by 500/1000\)"),
    (1000, {"secmi_timestep": "980", "secmi_interval": "20"},
     r"--mia-secmi-timestep \+ --mia-secmi-interval: SecMI probes timestep 1000, past the last step \(999\)"),
    (1000, {"attacks": "CLiD", "clid_timesteps": "440,999"}, None),
    (500, {"attacks": "PIA,SecMI,II-P"}, None),  # their defaults (200; 100 + 10) fit 500 steps
])
def test_white_box_timesteps_are_checked_against_the_targets_own_scheduler(checks, testbed, tmp_path, steps,
                                                                           options, message):
    """Before anything loads: the ranges used to assume 1,000 steps and failed as IndexErrors mid-run."""
    target = _with_scheduler_steps(testbed, tmp_path, steps)
    if message is None:
        assert checks(target, **options).target.scheduler_steps == steps
    else:
        with pytest.raises(MiaUsageError, match=message):
            checks(target, **options)
