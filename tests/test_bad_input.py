"""Hostile and careless input (issue 11, item 5): every case is a clear error naming the option or file and
what to do, a usage error (exit code 4) where it is one; never a pass, a hang or a deep traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mia_checks.data import balance, check_disjoint, load_image, load_reference_set
from mia_checks.errors import MiaUsageError
from mia_checks.settings import build_settings

BASE = {"target": "model:generate", "members": "m", "nonmembers": "n"}


def settings_with(**options: str):
    return build_settings({**BASE, **options})


# --- numeric options: finite, and in range for what they mean -------------------------------------------

@pytest.mark.parametrize("name, value, message", [
    ("threshold", "nan", r"--mia-threshold \(gate metric auc\): 'nan' is not a finite number"),
    ("threshold", "inf", "not a finite number"),
    ("threshold", "II-P=nan", "not a finite number"),
    ("threshold", "-1", r"--mia-threshold \(gate metric auc\): -1.0 is out of range \[0.0, 1.0\]"),
    ("threshold", "1.5", "out of range"),
    ("threshold", ",", "--mia-threshold: empty"),
    ("alpha", "nan", "--mia-alpha: 'nan' is not a finite number"),
    ("alpha", "0", "out of range"),
    ("guidance", "nan", "--mia-guidance: 'nan' is not a finite number"),
    ("guidance", "-inf", "not a finite number"),
    ("guidance", "-1", "--mia-guidance: -1.0 is out of range: below its minimum 0"),
    ("known-fraction", "nan", "--mia-known-fraction: 'nan' is not a finite number"),
    ("max-samples", "5", "--mia-max-samples .*sets under 20 images are refused.*5 is out of range: below its minimum 20"),
    ("max-samples", "nan", "not a valid int"),
    ("steps", "0", "--mia-steps: 0 is out of range: below its minimum 1"),
    ("folds", "1e9", "--mia-folds: '1e9' is not a valid int"),
])
def test_numeric_options_are_finite_and_in_range(name, value, message):
    with pytest.raises(MiaUsageError, match=message):
        settings_with(**{name: value})


@pytest.mark.parametrize("metric, ok, bad", [("accuracy", "0.6", "-0.1"), ("auc", "1", "1.01"),
                                             ("tpr@1%fpr", "0", "-0.5"), ("advantage", "-0.5", "-1.5")])
def test_threshold_range_follows_the_gate_metric(metric, ok, bad):
    assert settings_with(**{"gate-metric": metric, "threshold": ok}).threshold == float(ok)
    with pytest.raises(MiaUsageError, match=rf"gate metric {metric}.*out of range"):
        settings_with(**{"gate-metric": metric, "threshold": f"II-P={bad}"})


def test_max_samples_below_the_minimum_is_refused_after_the_cap(tmp_path):
    members = load_reference_set(make_set(tmp_path / "m", 20, seed=1), "members", "--mia-members")
    nonmembers = load_reference_set(make_set(tmp_path / "n", 20, seed=2), "nonmembers", "--mia-nonmembers")
    with pytest.raises(MiaUsageError, match="--mia-max-samples: 5 is below 20"):
        balance(members, nonmembers, 0, cap=5)
    assert len(balance(members, nonmembers, 0, cap=20)[0]) == 20


# --- images: mode, bit depth, size ------------------------------------------------------------------------

def make_set(folder: Path, n: int, seed: int = 0, size: int = 16, write=None) -> Path:
    """n random images with a metadata.jsonl; `write(array, path)` saves each image (default: 8-bit RGB PNG)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(n):
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            (write or (lambda a, p: Image.fromarray(a).save(p)))(array, folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": f"image {i}"}) + "\n")
    return folder


def test_16_bit_grayscale_is_scaled_to_8_bits_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    array, _ = load_image(tmp_path / "gray16.png", "--mia-members")
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8
    expected = np.round(ramp / 257).astype(np.uint8)
    assert np.array_equal(array[..., 0], expected)
    assert (array == 255).mean() < 0.01  # saturation made 72% of the pixels 255


def test_16_bit_set_and_its_8_bit_twin_load_alike(tmp_path):
    def save16(array, path):
        Image.fromarray(array[..., 0].astype(np.uint16) * 257).save(path)

    def save8(array, path):
        Image.fromarray(array[..., 0]).save(path)

    wide = load_reference_set(make_set(tmp_path / "w", 20, write=save16), "members", "--mia-members")
    narrow = load_reference_set(make_set(tmp_path / "n", 20, write=save8), "members", "--mia-members")
    assert all(np.array_equal(a, b) for a, b in zip(wide.images, narrow.images))


def test_images_of_unknown_range_are_refused(tmp_path):
    Image.fromarray(np.full((16, 16), 3.5, np.float32)).save(tmp_path / "float.tiff")
    with pytest.raises(MiaUsageError, match="float.tiff has 32-bit float pixels .*save it as an 8- or 16-bit"):
        load_image(tmp_path / "float.tiff", "--mia-members")


def test_tiny_images_are_refused(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(MiaUsageError, match="--mia-members: image .*dot.png is 1x1 pixels; images must be at least 8x8"):
        load_image(tmp_path / "dot.png", "--mia-members")


def test_decompression_bomb_names_the_file(tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 Mpixels, a few kB on disk
    with pytest.raises(MiaUsageError, match="--mia-members: image .*bomb.png is too large to load safely"):
        load_image(tmp_path / "bomb.png", "--mia-members")


# --- manifests: inside the set folder, regular files, no duplicates -----------------------------------------

def rewrite_manifest(folder: Path, edit) -> None:
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    edit(rows)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("file_name", ["../outside.png", "sub/../../outside.png", "/etc/passwd"])
def test_manifest_paths_stay_inside_the_set_folder(tmp_path, file_name):
    folder = make_set(tmp_path / "set", 20)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8) + 7).save(tmp_path / "outside.png")
    rewrite_manifest(folder, lambda rows: rows[3].update(file_name=file_name))
    with pytest.raises(MiaUsageError, match=r"--mia-members: .*metadata.jsonl entry 4 .* points outside the set folder"):
        load_reference_set(folder, "members", "--mia-members")


def test_a_named_pipe_is_refused_without_hanging(tmp_path):
    folder = make_set(tmp_path / "set", 20)
    (folder / "5.png").unlink()
    os.mkfifo(folder / "5.png")  # opening it for reading would block forever
    with pytest.raises(MiaUsageError, match="--mia-members: .*5.png is not a regular file"):
        load_reference_set(folder, "members", "--mia-members")


def test_duplicate_rows_and_rows_pointing_at_one_image_are_errors(tmp_path):
    folder = make_set(tmp_path / "set", 21)
    rewrite_manifest(folder, lambda rows: rows[20].update(file_name="./3.png"))
    with pytest.raises(MiaUsageError, match="entries 4 and 21 both list ./3.png.*remove the duplicate row"):
        load_reference_set(folder, "members", "--mia-members")


def test_one_image_under_two_names_is_an_error(tmp_path):
    folder = make_set(tmp_path / "set", 20)
    Image.open(folder / "2.png").save(folder / "9.png", compress_level=0)  # same pixels, other bytes
    with pytest.raises(MiaUsageError, match="--mia-members: .*2.png and .*9.png hold the same pixels"):
        load_reference_set(folder, "members", "--mia-members")


def test_overlap_is_detected_by_decoded_pixels_not_file_bytes(tmp_path):
    members = make_set(tmp_path / "m", 20, seed=1)
    nonmembers = make_set(tmp_path / "n", 20, seed=2)
    for i in (4, 11):  # re-encode two members (other compression, other bytes) as non-members
        Image.open(members / f"{i}.png").save(nonmembers / f"{i}.png", compress_level=0, optimize=False)
        assert (members / f"{i}.png").read_bytes() != (nonmembers / f"{i}.png").read_bytes()
    m = load_reference_set(members, "members", "--mia-members")
    n = load_reference_set(nonmembers, "nonmembers", "--mia-nonmembers")
    with pytest.raises(MiaUsageError, match=r"--mia-members and --mia-nonmembers share 2 image\(s\)"):
        check_disjoint(m, n)


# --- callable targets: import, and the contract of what they return ------------------------------------------

@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(folder: Path, name: str, body: str) -> str:
    (folder / f"{name}.py").write_text("import numpy as np\n" + body)
    return name


@pytest.mark.parametrize("spec_body, message", [
    (("exits_at_import", "import sys\nsys.exit(0)\ndef gen(p, s):\n    return []\n"),
     r"--mia-target: cannot import exits_at_import .*SystemExit: 0"),
    (("raises_at_import", "raise RuntimeError('no API key')\n"), "cannot import raises_at_import .*no API key"),
    (("has_no_gen", "x = 1\n"), "module has_no_gen has no attribute 'gen'"),
    (("not_callable", "gen = 42\n"), r"not_callable:gen is not callable \(it is a int\)"),
])
def test_callables_that_cannot_be_imported_are_usage_errors(module_dir, spec_body, message):
    from mia_checks.targets import resolve_callable

    name = write_module(module_dir, *spec_body)
    with pytest.raises(MiaUsageError, match=message):
        resolve_callable(f"{name}:gen")


def test_missing_modules_and_functions_are_usage_errors():
    from mia_checks.targets import resolve_callable

    with pytest.raises(MiaUsageError, match="cannot import nosuchmod for nosuchmod:gen"):
        resolve_callable("nosuchmod:gen")
    with pytest.raises(MiaUsageError, match="module os has no attribute 'nosuchfunc'"):
        resolve_callable("os:nosuchfunc")


@pytest.mark.parametrize("returns, message", [
    ("raise ValueError('quota exceeded')", "raised ValueError: quota exceeded"),
    ("return None", "it returned NoneType, not a list of images"),
    ("return 'an image'", "it returned str"),
    ("return ['a.png' for _ in p]", "image 0 is a str, not an image"),
    ("return [None for _ in p]", "image 0 is a NoneType"),
    ("return [np.zeros((3, 32, 32), np.uint8) for _ in p]", r"has shape \(3, 32, 32\) \(channels first\? return HxWx3\)"),
    ("return [np.zeros((1, 1, 3), np.uint8) for _ in p]", "is 1x1 pixels"),
    ("return [np.full((32, 32, 3), 200.0) for _ in p]", r"float pixels in \[200, 200\], outside \[0, 1\]"),
    ("return [np.full((32, 32, 3), np.nan) for _ in p]", "has NaN pixels"),
    ("return [np.zeros((32, 32, 3), np.int64) for _ in p]", "array of int64; return uint8"),
    ("return [np.zeros((32, 32, 3), np.uint8)]", "returned 1 images for 2 prompts"),
])
def test_callable_contract_violations_name_the_contract(module_dir, returns, message):
    from mia_checks.targets import GenerationSettings, TargetContractError, load_target

    name = write_module(module_dir, f"contract_{abs(hash(returns))}", f"def gen(p, s):\n    {returns}\n")
    target = load_target(f"{name}:gen", GenerationSettings())
    with pytest.raises(TargetContractError, match=message) as info:
        target.generate(["a", "b"], [1, 2])
    assert "callable contract" in str(info.value) and f"{name}:gen" in str(info.value)


def test_contract_abiding_outputs_are_converted_exactly(module_dir):
    from mia_checks.targets import GenerationSettings, load_target

    name = write_module(module_dir, "abiding", """
from PIL import Image
def gen(p, s):
    ramp = np.linspace(0, 1, 32 * 32 * 3).reshape(32, 32, 3)
    return [ramp, (ramp * 255).round().astype(np.uint8), Image.fromarray((ramp * 255).round().astype(np.uint8))]
""")
    floats, ints, pil = load_target(f"{name}:gen", GenerationSettings()).generate(["a", "b", "c"], [1, 2, 3])
    assert floats.dtype == np.uint8 and np.array_equal(floats, ints) and np.array_equal(ints, pil)


# --- through pytest: each a usage error (exit code 4) that names the option or file -------------------------

@pytest.fixture
def project(pytester: pytest.Pytester):
    """A project with 20 + 20 reference images and a callable target; usage errors come before any model."""
    make_set(pytester.path / "members", 20, seed=1)
    make_set(pytester.path / "nonmembers", 20, seed=2)
    pytester.makepyfile(model="""
        import numpy as np
        def generate(prompts, seeds):
            return [np.random.default_rng(s).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds]
        not_a_function = 42
    """)
    pytester.syspathinsert()

    def run(*options: str) -> pytest.RunResult:
        base = {"--mia-target": "model:generate", "--mia-members": "members", "--mia-nonmembers": "nonmembers",
                "--mia-cache-dir": "cache"}
        base.update(o.split("=", 1) for o in options if "=" in o)
        return pytester.runpytest(*(f"{k}={v}" for k, v in base.items()), "-p", "no:cacheprovider",
                                  *(o for o in options if "=" not in o))

    return run


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


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
    ("--mia-embedder=/no/such/clip", "--mia-embedder: /no/such/clip does not exist. Give a local embedder folder*"),
    ("--mia-embedder=transformers:./nowhere", "--mia-embedder: nowhere does not exist.*"),
    ("--mia-json=/proc/x.json", "--mia-json: cannot write the report in /proc (*); give a writable folder."),
    ("--mia-cache-dir=/proc/mia-cache", "--mia-cache-dir: cannot write the generation cache in /proc/mia-cache*"),
    ("--mia-markdown=members", "--mia-markdown: members exists and is not a regular file*"),
])
def test_bad_options_are_usage_errors_naming_the_option(project, option, message):
    assert_usage_error(project(option), message)


def test_cuda_without_a_gpu_is_a_usage_error(project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --mia-device=cuda is valid here (cuda:99 is tested instead)")
    assert_usage_error(project("--mia-device=cuda"), "--mia-device: cuda asked for, but torch sees no CUDA GPU*")


def test_a_cache_dir_that_is_a_file(project, pytester):
    (pytester.path / "cache.txt").write_text("not a folder")
    assert_usage_error(project("--mia-cache-dir=cache.txt"), "--mia-cache-dir: cache.txt is a file, not a folder*")


def test_a_module_that_exits_at_import_is_a_usage_error_not_exit_0(project, pytester):
    pytester.makepyfile(exiting="import sys\nsys.exit(0)\ndef generate(p, s):\n    return []\n")
    assert_usage_error(project("--mia-target=exiting:generate"),
                       "--mia-target: cannot import exiting for exiting:generate (SystemExit: 0)*")


@pytest.mark.parametrize("content, message", [("", "*model_index.json is not valid JSON*re-save the pipeline*"),
                                              ("{oops", "*model_index.json is not valid JSON*"),
                                              ("[1, 2]", "*model_index.json names no pipeline class*"),
                                              ('{"unet": ["diffusers", "UNet2DModel"]}', "*names no pipeline class*")])
def test_malformed_model_index_is_a_usage_error(project, pytester, content, message):
    (pytester.path / "pipe").mkdir()
    (pytester.path / "pipe" / "model_index.json").write_text(content)
    assert_usage_error(project("--mia-target=pipe"), "--mia-target: " + message)


def test_reencoded_members_as_nonmembers_are_refused(project, pytester):
    for i in (0, 7):
        Image.open(pytester.path / "members" / f"{i}.png").save(pytester.path / "nonmembers" / f"{i}.png",
                                                                 compress_level=1)
    assert_usage_error(project(), "--mia-members and --mia-nonmembers share 2 image(s)*")


def test_sixteen_bit_and_tiny_images_through_pytest(project, pytester):
    Image.new("RGB", (1, 1)).save(pytester.path / "members" / "3.png")
    assert_usage_error(project(), "--mia-members: image *3.png is 1x1 pixels; images must be at least 8x8*")


@pytest.mark.parametrize("document, message", [
    ({"foo": 1}, "*bad.json is not a saved mia-checks run (the document has no 'results'); pass a report written by*"),
    ([], "*is not a saved mia-checks run (the document is a list, not an object)*"),
    ({"members": {"sha256": "a"}, "nonmembers": {"sha256": "b"},
      "results": [{"attack": "II-P"}]}, "*(results[[]0[]] has no 'accuracy')*"),
])
def test_a_baseline_that_is_not_a_saved_run_is_a_usage_error(project, pytester, document, message):
    (pytester.path / "bad.json").write_text(json.dumps(document))
    assert_usage_error(project("--mia-compare=bad.json"), "--mia-compare: " + message)


# --- through the gate on the test bed ------------------------------------------------------------------------

def test_a_callable_returning_0_255_floats_errors_naming_the_contract_never_passes(pytester, demo_args):
    pytester.makepyfile(float_model="""
        import numpy as np
        def generate(prompts, seeds):
            return [np.random.default_rng(s).uniform(0, 255, (32, 32, 3)) for s in seeds]
    """)
    args = [a for a in demo_args("sd-null") if not a.startswith("--mia-target=")]
    result = pytester.runpytest(*args, "--mia-target=float_model:generate", "--mia-attacks=II-P")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*float_model:generate declares no identity*: its generations are not reused across runs",
        "II-P: could not measure: --mia-target float_model:generate broke the callable contract: *image 0 has "
        "float pixels in [[]0*, 25*[]], outside [[]0, 1[]]; divide 0–255 floats by 255 or return uint8."])
    assert "Traceback" not in result.stdout.str()


def test_a_report_that_cannot_be_written_keeps_the_report_on_screen_and_fails(pytester, demo_args):
    pytester.makeconftest("""
        import os
        def pytest_collection_finish(session):
            os.mkdir("report.json")  # after the option was checked: writing it will fail
    """)
    result = pytester.runpytest(*demo_args("sd-null"), "--mia-attacks=II-P", "--mia-json=report.json",
                                "--mia-markdown=summary.md")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mia-checks privacy report*", "II-P *pass*", "PASS: 0 of 1 attacks leak*",
                                 "Markdown summary: summary.md",
                                 "ERROR: could not write the JSON report to report.json: IsADirectoryError*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED and (pytester.path / "summary.md").is_file()


def test_leaky_model_with_16_bit_reference_sets_still_fails(pytester, demo_args, testbed):
    """The same sets saved as 16-bit grayscale PNG (as some pipelines export them): scaled, the leak shows."""
    import shutil

    for name in ("members", "nonmembers"):
        source, folder = testbed / "data" / name, pytester.path / name
        folder.mkdir()
        shutil.copy(source / "metadata.jsonl", folder)
        for png in source.glob("*.png"):
            gray = np.asarray(Image.open(png).convert("L")).astype(np.uint16) * 257
            Image.fromarray(gray).save(folder / png.name)
        assert Image.open(next(folder.glob("*.png"))).mode == "I;16"
    args = [a for a in demo_args("sd-leaky") if not a.startswith(("--mia-members=", "--mia-nonmembers="))]
    result = pytester.runpytest(*args, "--mia-members=members", "--mia-nonmembers=nonmembers", "--mia-attacks=II-P")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*II-P (reconstruction): auc = 0.9*exceeds the threshold*"])
