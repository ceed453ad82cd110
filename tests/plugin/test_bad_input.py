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


def test_a_callable_that_exits_errors_each_attack_in_one_line_and_skips_the_white_box_ones(pytester, demo_args):
    """sys.exit() inside the model: a SystemExit that escaped gave 1,420 lines of broken-fixture errors blaming
    pytest, even for the attacks the header lists as skipped."""
    pytester.makepyfile(exiting_model="""
        import sys
        def generate(prompts, seeds):
            sys.exit(3)
    """)
    args = without(demo_args("sd-null"), "--mia-target")
    result = pytester.runpytest(*args, "--mia-target=exiting_model:generate", "--mia-attacks=all", "-rs")
    result.assert_outcomes(errors=7, skipped=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["II-P: could not measure: --mia-target exiting_model:generate raised SystemExit: 3 "
                                 "(expected *"])
    assert "Traceback" not in result.stdout.str() and len(result.stdout.lines) < 200


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


@pytest.mark.parametrize("container", ["grey, full 16-bit range", "colour, 8-bit values 16 bits wide"])
def test_leaky_model_with_16_bit_reference_sets_still_fails(pytester, demo_args, testbed, container):
    """The same sets saved as 16-bit PNGs, as pipelines export them: scaled to the full range (grey), or
    8-bit values in a 16-bit colour container, as cv2.imwrite(image.astype(np.uint16)) writes — which Pillow
    reads as black (its high bytes) and which let the leaky model pass all twelve attacks."""
    import shutil

    import png

    for name in ("members", "nonmembers"):
        source, folder = testbed / "data" / name, pytester.path / name
        folder.mkdir()
        shutil.copy(source / "metadata.jsonl", folder)
        for path in source.glob("*.png"):
            image = np.asarray(Image.open(path).convert("RGB"))
            if container.startswith("grey"):
                Image.fromarray(np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 257).save(folder / path.name)
            else:
                with open(folder / path.name, "wb") as f:
                    png.Writer(image.shape[1], image.shape[0], bitdepth=16, greyscale=False).write(
                        f, image.astype(np.uint16).reshape(image.shape[0], -1))
    args = without(demo_args("sd-leaky"), "--mia-members", "--mia-nonmembers")
    result = pytester.runpytest(*args, "--mia-members=members", "--mia-nonmembers=nonmembers", "--mia-attacks=II-P")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*II-P (reconstruction): auc = 0.9*exceeds the threshold*"])
    notes = [line for line in result.stdout.lines if line.startswith("NOTE: ")]
    if container.startswith("colour"):
        assert notes == [f"NOTE: {what}: 32 of 32 images are 16-bit files holding 8-bit values (maximum ≤ 255): read "
                         "as 8-bit." for what in ("members", "non-members")]
    else:
        assert notes == []
