"""Hostile and careless input (issue 11, item 5) through the gate on the test bed: a callable that breaks its
contract, a report that cannot be written, reference sets saved as 16-bit images. Never a pass, a hang or a
deep traceback."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import without



def test_a_callable_returning_0_255_floats_errors_naming_the_contract_never_passes(pytester, demo_args):
    pytester.makepyfile(float_model="""
        import numpy as np
        def generate(prompts, seeds):
            return [np.random.default_rng(s).uniform(0, 255, (32, 32, 3)) for s in seeds]
    """)
    args = without(demo_args("sd-null"), "--mia-target")
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
    args = without(demo_args("sd-leaky"), "--mia-members", "--mia-nonmembers")
    result = pytester.runpytest(*args, "--mia-members=members", "--mia-nonmembers=nonmembers", "--mia-attacks=II-P")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*II-P (reconstruction): auc = 0.9*exceeds the threshold*"])
