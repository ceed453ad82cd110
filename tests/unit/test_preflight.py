"""The checks before a run (preflight.py), in-process: every bad option or input is a MiaUsageError that names
the option or file and what to do, raised before any model loads (the plugin turns it into exit code 4:
tests/plugin/test_usage_errors.py proves that part through pytest)."""

from __future__ import annotations

import fnmatch
import json
import sys

import pytest
from PIL import Image

from mia_checks.errors import MiaUsageError
from mia_checks.preflight import preflight
from helpers import make_set

MODEL = """
import numpy as np
def generate(prompts, seeds):
    return [np.random.default_rng(s).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds]
not_a_function = 42
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with 20 + 20 reference images and a callable target (`model:generate`); `run(*options)`
    runs the checks on its options (`--mia-NAME=VALUE`, or a bare flag) from the project's folder."""
    make_set(tmp_path / "members", 20, seed=1)
    make_set(tmp_path / "nonmembers", 20, seed=2)
    (tmp_path / "model.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def run(*options: str):
        raw = {"target": "model:generate", "members": "members", "nonmembers": "nonmembers", "cache-dir": "cache"}
        for option in options:
            name, sep, value = option.removeprefix("--mia-").partition("=")
            raw[name] = value if sep else "true"
        return preflight(raw)

    yield run
    for name in set(sys.modules) - before:  # the project's modules (model, exiting) are its own
        sys.modules.pop(name, None)


def assert_usage_error(check, message: str) -> None:
    """`check()` raises a usage error whose whole message matches the pattern `message` (fnmatch)."""
    with pytest.raises(MiaUsageError) as info:
        check()
    assert fnmatch.fnmatchcase(str(info.value), message), f"{info.value!s}\n  does not match\n{message}"


@pytest.mark.parametrize("option, message", [
    ("--mia-threshold=nan", "--mia-threshold (gate metric auc): 'nan' is not a finite number*"),
    ("--mia-alpha=nan", "--mia-alpha: 'nan' is not a finite number*"),
    ("--mia-max-samples=5", "--mia-max-samples (sets under 20 images are refused*): 5 is out of range: below its minimum 20."),
    ("--mia-threshold=-1", "--mia-threshold (gate metric auc): -1.0 is out of range [[]0.0, 1.0[]]."),
    ("--mia-guidance=nan", "--mia-guidance: 'nan' is not a finite number*"),
    ("--mia-folds=100", "--mia-folds: 100 folds need at least 100 members and 100 non-members, but * give 20 each*"),
    ("--mia-device=tpu", "--mia-device: 'tpu' is not a device mia-checks can use; choose auto, cpu, cuda*"),
    ("--mia-device=cuda:99", "--mia-device: cuda:99 asked for, but *"),
    ("--mia-target=nosuchmod:gen", "--mia-target: cannot import nosuchmod for nosuchmod:gen (ModuleNotFoundError*"),
    ("--mia-target=os:nosuchfunc", "--mia-target: cannot import os:nosuchfunc (module os has no attribute*"),
    ("--mia-target=model:not_a_function", "--mia-target: model:not_a_function is not callable (it is a int)*"),
    ("--mia-target=/no/such/checkpoint", "--mia-target: /no/such/checkpoint does not exist*"),
    ("--mia-members=/no/such/folder", "--mia-members: /no/such/folder does not exist*"),
    ("--mia-embedder=/no/such/clip", "--mia-embedder: /no/such/clip does not exist. Give a local embedder folder*"),
    ("--mia-embedder=transformers:./nowhere", "--mia-embedder: nowhere does not exist.*"),
    ("--mia-embedder=members", "--mia-embedder: members is neither an open_clip model folder*nor a transformers*"),
    ("--mia-json=/proc/x.json", "--mia-json: cannot write the report in /proc (*); give a writable folder."),
    ("--mia-cache-dir=/proc/mia-cache", "--mia-cache-dir: cannot write the generation cache in /proc/mia-cache*"),
    ("--mia-markdown=members", "--mia-markdown: members exists and is not a regular file*"),
    ("--mia-attacks=I-P,V", "--mia-attacks: unknown V; choose from I-P, I-S, II-P, II-S, III, IV*"),
    ("--mia-gate-metric=f1", "--mia-gate-metric: unknown f1*"),
    ("--mia-folds=1", "--mia-folds: 1 is out of range*"),
    ("--mia-seed=42949672", "--mia-seed: 42949672 is out of range [[]0, 42949671[]]."),
    ("--mia-seed=-1", "--mia-seed: -1 is out of range [[]0, 42949671[]]."),
    ("--mia-threshold=II-Q=0.5", "--mia-threshold: unknown attack 'II-Q'*"),
    ("--mia-known-fraction=0.9", "--mia-known-fraction: 0.9 is out of range [[]0.01, 0.8[]]*"),
    ("--mia-shadow-target=model:generate", "shadow-model mode needs --mia-shadow-members, --mia-shadow-nonmembers too."),
    ("--mia-compare-fail=auc", "--mia-compare-fail: 'auc' is not METRIC:AMOUNT*"),
    ("--mia-compare-fail=f1:0.1", "--mia-compare-fail: 'f1:0.1' is not METRIC:AMOUNT*"),
    ("--mia-compare-fail=auc:-1", "--mia-compare-fail: 'auc:-1': the allowed rise cannot be negative*"),
    ("--mia-compare=7", "--mia-compare: no saved run '7' in .mia-checks/ (saved runs: none)*"),
    ("--mia-top-k=4", "--mia-top-k: sampling options apply to seq2seq*"),
    ("--mia-attacks=II-P,loss,CLiD", "--mia-attacks: loss, CLiD are white-box attacks, but a black-box callable "
                                     "exposes no weights to query*"),
    ("--mia-lora=members", "--mia-lora: a LoRA adapter applies to a diffusers pipeline, not to a callable target."),
])
def test_bad_options_are_usage_errors_naming_the_option(project, option, message):
    assert_usage_error(lambda: project(option), message)


def test_good_options_pass_and_the_checks_report_what_they_established(project):
    checked = project("--mia-attacks=all")
    assert checked.target.family == "callable" and checked.target.access is None and checked.shadow is None
    assert len(checked.members) == len(checked.nonmembers) == 20 and checked.baseline is None
    assert checked.progress == "auto"
    assert project("--mia-target-identity=v1").settings.target_identity == "v1"  # a callable may declare one


def test_cuda_without_a_gpu_is_a_usage_error(project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --mia-device=cuda is valid here (cuda:99 is tested instead)")
    assert_usage_error(lambda: project("--mia-device=cuda"), "--mia-device: cuda asked for, but torch sees no CUDA GPU*")


def test_a_cache_dir_that_is_a_file(project, tmp_path):
    (tmp_path / "cache.txt").write_text("not a folder")
    assert_usage_error(lambda: project("--mia-cache-dir=cache.txt"), "--mia-cache-dir: cache.txt is a file, not a folder*")


def test_a_module_that_exits_at_import_is_a_usage_error(project, tmp_path):
    (tmp_path / "exiting.py").write_text("import sys\nsys.exit(0)\ndef generate(p, s):\n    return []\n")
    assert_usage_error(lambda: project("--mia-target=exiting:generate"),
                       "--mia-target: cannot import exiting for exiting:generate (SystemExit: 0)*")


@pytest.mark.parametrize("content, message", [("", "*model_index.json is not valid JSON*re-save the pipeline*"),
                                              ("{oops", "*model_index.json is not valid JSON*"),
                                              ("[1, 2]", "*model_index.json names no pipeline class*"),
                                              ('{"unet": ["diffusers", "UNet2DModel"]}', "*names no pipeline class*")])
def test_malformed_model_index_is_a_usage_error(project, tmp_path, content, message):
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "model_index.json").write_text(content)
    assert_usage_error(lambda: project("--mia-target=pipe"), "--mia-target: " + message)


def test_a_folder_that_is_not_a_pipeline(project):
    assert_usage_error(lambda: project("--mia-target=members"),
                       "--mia-target: members is not a diffusers pipeline folder (no model_index.json)*")


def test_reencoded_members_as_nonmembers_are_refused(project, tmp_path):
    for i in (0, 7):
        Image.open(tmp_path / "members" / f"{i}.png").save(tmp_path / "nonmembers" / f"{i}.png", compress_level=1)
    assert_usage_error(project, "--mia-members and --mia-nonmembers share 2 image(s)*")


def test_members_and_nonmembers_that_are_one_set(project):
    assert_usage_error(lambda: project("--mia-nonmembers=members"),
                       "--mia-members and --mia-nonmembers share 20 image(s)*")


def test_tiny_images_are_refused(project, tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "members" / "3.png")
    assert_usage_error(project, "--mia-members: image *3.png is 1x1 pixels; images must be at least 8x8*")


def test_a_set_without_captions_asks_for_a_captioner(project, tmp_path):
    (tmp_path / "members" / "metadata.jsonl").unlink()
    assert_usage_error(project, "--mia-members: members has no metadata.jsonl.*--mia-captioner=*")


@pytest.mark.parametrize("document, message", [
    ({"foo": 1}, "*bad.json is not a saved mia-checks run (the document has no 'results'); pass a report written by*"),
    ([], "*is not a saved mia-checks run (the document is a list, not an object)*"),
    ({"members": {"sha256": "a"}, "nonmembers": {"sha256": "b"},
      "results": [{"attack": "II-P"}]}, "*(results[[]0[]] has no 'accuracy')*"),
])
def test_a_baseline_that_is_not_a_saved_run_is_a_usage_error(project, tmp_path, document, message):
    (tmp_path / "bad.json").write_text(json.dumps(document))
    assert_usage_error(lambda: project("--mia-compare=bad.json"), "--mia-compare: " + message)
