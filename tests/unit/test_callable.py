"""Black-box callable targets (targets/callable.py): their import, their contract (issue 11, item 5), and the
identity they declare (issue 11, item 2): generations are cached under it; without one they are not reused
across runs, so a changed model behind the same name is never served the old model's images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mia_checks.audit import Audit
from mia_checks.errors import MiaUsageError, TargetContractError
from mia_checks.settings import build_settings
from mia_checks.targets import GenerationSettings, load_target
from mia_checks.targets.callable import resolve_callable
from helpers import make_set


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
    name = write_module(module_dir, *spec_body)
    with pytest.raises(MiaUsageError, match=message):
        resolve_callable(f"{name}:gen")


def test_missing_modules_and_functions_are_usage_errors():
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
    name = write_module(module_dir, f"contract_{abs(hash(returns))}", f"def gen(p, s):\n    {returns}\n")
    target = load_target(f"{name}:gen", GenerationSettings())
    with pytest.raises(TargetContractError, match=message) as info:
        target.generate(["a", "b"], [1, 2])
    assert "callable contract" in str(info.value) and f"{name}:gen" in str(info.value)


def test_contract_abiding_outputs_are_converted_exactly(module_dir):
    name = write_module(module_dir, "abiding", """
from PIL import Image
def gen(p, s):
    ramp = np.linspace(0, 1, 32 * 32 * 3).reshape(32, 32, 3)
    return [ramp, (ramp * 255).round().astype(np.uint8), Image.fromarray((ramp * 255).round().astype(np.uint8))]
""")
    floats, ints, pil = load_target(f"{name}:gen", GenerationSettings()).generate(["a", "b", "c"], [1, 2, 3])
    assert floats.dtype == np.uint8 and np.array_equal(floats, ints) and np.array_equal(ints, pil)


# --- identity ---------------------------------------------------------------------------------------------

WRAPPER = """
import numpy as np
from pathlib import Path

def gen(prompts, seeds):
    Path("calls.txt").open("a").write(str(len(prompts)))
    return [np.random.default_rng([s, {version}]).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds]
{attribute}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a rewritten module must not load from a stale .pyc
    make_set(tmp_path / "members", 20, seed=1)
    make_set(tmp_path / "nonmembers", 20, seed=2)
    yield tmp_path
    sys.modules.pop("wrapper", None)


def deploy(folder: Path, version: int, attribute: str = "") -> None:
    """Put a model behind the name wrapper:gen, as a new release would; a new run imports it afresh."""
    (folder / "wrapper.py").write_text(WRAPPER.format(version=version, attribute=attribute))
    sys.modules.pop("wrapper", None)
    (folder / "calls.txt").unlink(missing_ok=True)


def run(folder: Path, run_id: str, **options: str) -> tuple[np.ndarray, Audit]:
    """One run's generations (what every attack reads), and whether the callable was called."""
    settings = build_settings({"target": "wrapper:gen", "members": str(folder / "members"),
                               "nonmembers": str(folder / "nonmembers"), "cache-dir": str(folder / "cache"),
                               "generations": "1", **options})
    audit = Audit(settings, progress=False, run_id=run_id)
    return audit.read_generated(list(range(len(audit.captions)))), audit


def expected(version: int, audit: Audit) -> np.ndarray:
    from mia_checks.generation import query_seed

    return np.stack([[np.random.default_rng([query_seed(0, 0, c), version]).integers(0, 256, (16, 16, 3),
                                                                                       dtype=np.uint8)]
                     for c in audit.captions])


def test_without_an_identity_a_changed_model_is_never_served_stale_images(project):
    deploy(project, version=1)
    first, audit = run(project, "run-1")
    assert np.array_equal(first, expected(1, audit))
    assert "declares no identity" in audit.target.identity_note and audit.target.run_scoped
    deploy(project, version=2)  # same name, another model
    second, audit = run(project, "run-2")
    assert (project / "calls.txt").exists()  # generated afresh ...
    assert np.array_equal(second, expected(2, audit)) and not np.array_equal(first, second)  # ... by the new model


@pytest.mark.parametrize("how", ["attribute", "option"])
def test_a_declared_identity_reuses_generations_until_it_changes(project, how):
    def release(version: int) -> dict[str, str]:
        if how == "attribute":
            deploy(project, version, f'gen.mia_identity = "model-v{version}"')
            return {}
        deploy(project, version)
        return {"target-identity": f"model-v{version}"}

    options = release(1)
    first, audit = run(project, "run-1", **options)
    assert "model-v1" in audit.target.identity_note and "reused across runs" in audit.target.identity_note
    options = release(1)
    again, _ = run(project, "run-2", **options)
    assert np.array_equal(first, again) and not (project / "calls.txt").exists()  # served from the cache
    options = release(2)
    changed, audit = run(project, "run-3", **options)
    assert (project / "calls.txt").exists() and np.array_equal(changed, expected(2, audit))


def test_an_identity_attribute_can_be_computed_and_must_be_a_string(project):
    deploy(project, 1, 'gen.mia_identity = lambda: "sha256:abc"')
    _, audit = run(project, "run-1")
    assert "'sha256:abc' (wrapper:gen.mia_identity)" in audit.target.identity_note
    deploy(project, 1, "gen.__version__ = 3")
    with pytest.raises(MiaUsageError, match=r"wrapper:gen.__version__ must be a non-empty string"):
        run(project, "run-2")[1].target
