"""Every target kind behind the one interface (prompts and seeds in, images out), on test-bed models."""

from __future__ import annotations


import numpy as np
import pytest

from mia_checks.errors import MiaUsageError
from mia_checks.targets import GenerationSettings, load_target, resolve

PROMPTS = ["a handwritten one, heavy ink, upright, wide, written high",
           "a handwritten eight, light ink, leaning left, narrow, written low"]


@pytest.mark.parametrize("name, kind", [("sd-null", "diffusers:StableDiffusionPipeline"),
                                        ("ldm-null", "diffusers:LDMTextToImagePipeline"),
                                        ("amused-null", "diffusers:AmusedPipeline"),
                                        ("dalle-null", "seq2seq:BartForConditionalGeneration+VQModel")])
def test_each_family_generates_32px_images_that_depend_only_on_prompt_and_seed(testbed, name, kind):
    target = load_target(str(testbed / name), GenerationSettings(steps=8, guidance=1.0, device="cpu"))
    assert target.kind == kind and len(target.identity) == 64
    pair = target.generate(PROMPTS, [5, 5])
    alone = target.generate(PROMPTS[1:], [5])
    assert [im.shape for im in pair] == [(32, 32, 3)] * 2 and pair[0].dtype == np.uint8
    assert np.abs(pair[1].astype(int) - alone[0].astype(int)).max() <= 1  # not a function of the batch
    assert not np.array_equal(pair[0], pair[1])


def test_single_file_checkpoint_generates_what_its_pipeline_folder_does(testbed):
    settings = GenerationSettings(steps=8, guidance=1.0, device="cpu")
    single = load_target(str(testbed / "single-file" / "sd-leaky.safetensors"), settings,
                         config=str(testbed / "sd-leaky"))
    folder = load_target(str(testbed / "sd-leaky"), settings)
    assert single.kind == "diffusers-single-file:StableDiffusionPipeline" and single.identity != folder.identity
    a, b = single.generate(PROMPTS, [1, 2]), folder.generate(PROMPTS, [1, 2])
    assert all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(a, b))


def test_lora_adapter_changes_the_base_pipeline(testbed):
    settings = GenerationSettings(steps=8, guidance=1.0, device="cpu")
    base = load_target(str(testbed / "sd-null"), settings)
    adapted = load_target(str(testbed / "sd-null"), settings, lora=str(testbed / "lora-leaky"))
    assert adapted.kind == "diffusers:StableDiffusionPipeline+lora" and adapted.identity != base.identity
    assert np.abs(adapted.generate(PROMPTS[:1], [3])[0].astype(int) - base.generate(PROMPTS[:1], [3])[0]).mean() > 5


@pytest.mark.parametrize("breakage", ["another architecture's prefix", "all up-projections zero"])
def test_a_lora_that_changes_no_weight_is_an_error_naming_the_file_and_its_prefixes(testbed, tmp_path, breakage):
    """Either way the adapter loads without a word from diffusers, and the audit would measure the base model
    under the adapter's name."""
    from safetensors.torch import load_file, save_file

    from mia_checks.errors import ModelLoadError

    state = load_file(testbed / "lora-leaky" / "pytorch_lora_weights.safetensors")
    if breakage == "another architecture's prefix":  # SD3 / Flux name their denoiser `transformer`
        state, prefix = {"transformer." + k.removeprefix("unet."): v for k, v in state.items()}, "transformer."
    else:
        state, prefix = {k: v * 0 if "lora_B" in k else v for k, v in state.items()}, "unet."
    (tmp_path / "adapter").mkdir()
    save_file(state, tmp_path / "adapter" / "pytorch_lora_weights.safetensors")
    target = load_target(str(testbed / "sd-null"), GenerationSettings(steps=2, guidance=1.0, device="cpu"),
                         lora=str(tmp_path / "adapter"))
    with pytest.raises(ModelLoadError, match=f"--mia-lora: .*adapter/pytorch_lora_weights.safetensors changes no weight"
                                             f".*keys start with {prefix}"):
        target.generate(PROMPTS[:1], [3])


def test_specs_that_are_not_targets_are_usage_errors(tmp_path, testbed):
    (tmp_path / "model.ckpt").write_bytes(b"pickle")
    with pytest.raises(MiaUsageError, match="model.ckpt is a pickle-based checkpoint.*--mia-allow-pickle"):
        resolve(str(tmp_path / "model.ckpt"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MiaUsageError, match="notes.txt is a single file but not a checkpoint"):
        resolve(str(tmp_path / "notes.txt"))
    with pytest.raises(MiaUsageError, match="cannot import"):
        load_target("no_such_module_xyz:generate", GenerationSettings())
    with pytest.raises(MiaUsageError, match="--mia-lora: .*/nothing does not exist"):
        resolve(str(testbed / "sd-null"), lora=str(tmp_path / "nothing"))
    with pytest.raises(MiaUsageError, match="--mia-lora: a LoRA adapter applies to a diffusers pipeline"):
        resolve("os:getcwd", lora=str(testbed / "lora-leaky"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "pytorch_lora_weights.bin").write_bytes(b"pickle")
    with pytest.raises(MiaUsageError, match="--mia-lora: .*only pickle-based weights"):
        resolve(str(testbed / "sd-null"), lora=str(tmp_path / "adapter"))


@pytest.mark.parametrize("name, family, kind, access", [
    ("sd-null", "diffusers", "diffusers:StableDiffusionPipeline", "denoiser"),
    ("ldm-null", "diffusers", "diffusers:LDMTextToImagePipeline", "denoiser"),
    ("amused-null", "diffusers", "diffusers:AmusedPipeline", "masked-token"),
    ("dalle-null", "seq2seq", "seq2seq:BartForConditionalGeneration+VQModel", "next-token"),
    ("single-file/sd-leaky.safetensors", "diffusers", "diffusers-single-file:StableDiffusionPipeline", "denoiser"),
])
def test_a_spec_is_resolved_once_into_its_family_kind_and_access(testbed, name, family, kind, access):
    spec = resolve(str(testbed / name))
    assert (spec.family, spec.kind, spec.access, spec.no_access) == (family, kind, access, None)
    lora = resolve(str(testbed / "sd-null"), lora=str(testbed / "lora-leaky"))
    assert lora.kind == "diffusers:StableDiffusionPipeline+lora" and lora.lora == testbed / "lora-leaky"
