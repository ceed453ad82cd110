"""Every target kind behind the one interface (prompts and seeds in, images out), on test-bed models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mia_checks.errors import MiaUsageError
from mia_checks.targets import GenerationSettings, check_target_spec, load_target

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


def test_specs_that_are_not_targets_are_usage_errors(tmp_path, testbed):
    (tmp_path / "model.ckpt").write_bytes(b"pickle")
    with pytest.raises(MiaUsageError, match="model.ckpt is a pickle-based checkpoint.*--mia-allow-pickle"):
        check_target_spec(str(tmp_path / "model.ckpt"), allow_pickle=False)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MiaUsageError, match="notes.txt is a single file but not a checkpoint"):
        check_target_spec(str(tmp_path / "notes.txt"), allow_pickle=False)
    with pytest.raises(MiaUsageError, match="cannot import"):
        load_target("no_such_module_xyz:generate", GenerationSettings())
    with pytest.raises(MiaUsageError, match="--mia-lora: .*/nothing does not exist"):
        check_target_spec(str(testbed / "sd-null"), False, lora=str(tmp_path / "nothing"))
    with pytest.raises(MiaUsageError, match="--mia-lora: a LoRA adapter applies to a diffusers pipeline"):
        check_target_spec("some_module:generate", False, lora=str(testbed / "lora-leaky"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "pytorch_lora_weights.bin").write_bytes(b"pickle")
    with pytest.raises(MiaUsageError, match="--mia-lora: .*only pickle-based weights"):
        check_target_spec(str(testbed / "sd-null"), False, lora=str(tmp_path / "adapter"))


@pytest.mark.parametrize("lora, outcome", [(True, "failed"), (False, "passed")])
def test_lora_fine_tune_through_the_gate(pytester, demo_args, testbed, lora, outcome):
    # The adapter was trained on the members over sd-null; sd-null alone never saw them.
    extra = [f"--mia-lora={testbed / 'lora-leaky'}"] if lora else []
    result = pytester.runpytest(*demo_args("sd-null"), "--mia-attacks=II-P", *extra)
    result.assert_outcomes(**{outcome: 1})
    if lora:
        result.stdout.fnmatch_lines(["target: *sd-null (diffusers:StableDiffusionPipeline+lora) with LoRA adapter *lora-leaky"])


def test_single_file_target_through_the_gate(pytester, demo_args, testbed):
    args = [a for a in demo_args("sd-leaky") if not a.startswith("--mia-target=")]
    result = pytester.runpytest(*args, f"--mia-target={testbed / 'single-file' / 'sd-leaky.safetensors'}",
                                f"--mia-target-config={testbed / 'sd-leaky'}", "--mia-attacks=II-P")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["target: *sd-leaky.safetensors (diffusers-single-file:StableDiffusionPipeline)"])


def test_black_box_callable_target_through_the_gate(pytester, demo_args, leaky_callable):
    args = [a for a in demo_args("sd-leaky") if not a.startswith("--mia-target=")]
    result = pytester.runpytest(*args, f"--mia-target={leaky_callable}", "--mia-attacks=II-P",
                                "--mia-json=report.json")
    result.assert_outcomes(failed=1)  # the wrapped model is the leaky one
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["target_kind"] == "callable" and report["checkpoint_sha256"] is None


@pytest.mark.parametrize("name, outcome", [("amused-leaky", "failed"), ("amused-null", "passed")])
def test_token_based_family_through_the_gate(pytester, demo_args, name, outcome):
    result = pytester.runpytest(*demo_args(name), "--mia-attacks=II-P")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines([f"target: *{name} (diffusers:AmusedPipeline)"])


@pytest.mark.parametrize("name, outcome", [("dalle-leaky", "failed"), ("dalle-null", "passed")])
def test_seq2seq_family_through_the_gate(pytester, demo_args, name, outcome):
    result = pytester.runpytest(*demo_args(name), "--mia-attacks=II-P", "--mia-json=report.json")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines([f"target: *{name} (seq2seq:BartForConditionalGeneration+VQModel)",
                                 "sampling: temperature 1, top-k all, supercondition 1 *"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["sampling"] == {"temperature": 1.0, "top_k": None, "supercondition": 1.0}


def test_seq2seq_sampling_options_are_echoed_and_key_the_cache(pytester, demo_args, testbed):
    from mia_checks.audit import Audit
    from mia_checks.settings import build_settings

    args = [*demo_args("dalle-null"), "--mia-attacks=II-P", "--mia-max-samples=20", "--mia-generations=1"]
    result = pytester.runpytest(*args, "--mia-top-k=4", "--mia-temperature=0.7")
    result.stdout.fnmatch_lines(["sampling: temperature 0.7, top-k 4, supercondition 1 *"])
    base = {"target": str(testbed / "dalle-null"), "members": str(testbed / "data" / "members"),
            "nonmembers": str(testbed / "data" / "nonmembers"), "cache-dir": str(pytester.path)}
    folder = lambda **options: Audit(build_settings({**base, **options}), progress=False).generation_cache.folder
    assert folder(**{"top-k": "4"}) == folder(**{"top-k": "4"})
    assert folder(**{"top-k": "4"}) != folder(**{"top-k": "5"}) != folder()
    assert folder(temperature="0.7") != folder() != folder(supercondition="2")


def test_sampling_option_on_a_diffusion_pipeline_is_a_usage_error(pytester, demo_args):
    result = pytester.runpytest(*demo_args("sd-null"), "--mia-top-k=4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mia-top-k: sampling options apply to seq2seq*"])


def test_checkpoint_hashes_are_remembered_by_path_size_and_mtime(tmp_path, monkeypatch):
    import os

    from mia_checks.targets import hash_folder

    monkeypatch.setenv("MIA_CHECKS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    weights = folder / "w.safetensors"
    weights.write_bytes(b"a" * 1000)
    first = hash_folder(folder)
    assert len(list((tmp_path / "cache" / "hashes").rglob("*"))) == 2  # one folder, one remembered hash
    weights.write_bytes(b"b" * 1000)  # new content, new mtime: hashed afresh
    second = hash_folder(folder)
    assert second != first
    stat = weights.stat()
    weights.write_bytes(b"a" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the memo answers
    assert hash_folder(folder) == second
