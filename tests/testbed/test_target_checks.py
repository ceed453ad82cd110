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
