"""A callable target declares what it is (issue 11, item 2): its generations are cached under that identity;
without one they are not reused across runs, so a changed model behind the same name is never served the
old model's images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mia_checks.audit import Audit
from mia_checks.errors import MiaUsageError
from mia_checks.settings import build_settings
from test_data import make_folder

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
    make_folder(tmp_path / "members", 20, seed=1)
    make_folder(tmp_path / "nonmembers", 20, seed=2)
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
