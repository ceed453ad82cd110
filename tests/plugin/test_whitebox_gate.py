"""White-box attacks through the plugin, as users meet them: on by default for pipelines, skipped with the
reason for targets without weights, clear errors where a white-box attack cannot measure."""

from __future__ import annotations

import json

from helpers import without


WHITE_BOX = ["loss", "SimA", "PIA", "SecMI", "CLiD"]


def test_white_box_attacks_fail_the_mildly_leaky_target(pytester, demo_args):
    result = pytester.runpytest(*demo_args("sd-mild"), "--mia-attacks=whitebox", "--mia-json=report.json")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("failed", 0) + outcomes.get("passed", 0) == 5
    result.stdout.fnmatch_lines(["white-box: loss t=100,200,300,400,500; SimA t=50,100,200; PIA t=200; SecMI t=100 k=10;"
                                 " CLiD t=440,450,460 captions null+first+middle+last; noise per image*",
                                 "*attack*access*calls/img*",
                                 "SimA *white-box*3 *FAIL*"])
    report = json.loads((pytester.path / "report.json").read_text())
    calls = {r["attack"]: r["denoiser_calls"] for r in report["results"]}
    assert calls == {"loss": 5, "SimA": 3, "PIA": 2, "SecMI": 12, "CLiD": 15}
    assert {r["access"] for r in report["results"]} == {"white-box"}
    assert report["ablation"]["whitebox"]["pia_timestep"] == 200


def test_white_box_attacks_pass_the_model_that_never_saw_either_set(pytester, demo_args):
    result = pytester.runpytest(*demo_args("sd-null"), "--mia-attacks=whitebox")
    result.assert_outcomes(passed=5)


def test_white_box_scores_are_cached_and_options_change_the_key(pytester, demo_args):
    first = pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=PIA", "--mia-json=a.json")
    pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=PIA", "--mia-json=b.json")
    pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=PIA", "--mia-pia-timestep=300", "--mia-json=c.json")
    first.assert_outcomes(failed=1)
    a, b, c = (json.loads((pytester.path / f).read_text()) for f in ("a.json", "b.json", "c.json"))
    assert a["results"][0]["scores"] == b["results"][0]["scores"] != c["results"][0]["scores"]
    assert c["ablation"]["whitebox"]["pia_timestep"] == 300


def test_token_model_runs_loss_alone_and_skips_the_denoiser_attacks(pytester, demo_args):
    """(Named in --mia-attacks, they are a usage error instead: tests/testbed/test_target_checks.py.)"""
    result = pytester.runpytest(*demo_args("amused-null"), "--mia-attacks=all", "-rs", "--mia-token-mask-ratios=0.5", "-k", "loss or SimA")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["white-box: loss = cross-entropy of the masked VQ codes, one fixed mask (seeded) per "
                                 "ratio 0.5",
                                 "skipped: SimA, PIA, SecMI, CLiD (white-box): *is a token model (masked-token): of "
                                 "the white-box attacks only loss*"])


def test_query_images_of_another_size_error_and_never_pass(pytester, demo_args, testbed, tmp_path):
    from PIL import Image

    for split in ("members", "nonmembers"):
        folder = tmp_path / split
        folder.mkdir()
        for line in (testbed / "data" / split / "metadata.jsonl").read_text().splitlines():
            name = json.loads(line)["file_name"]
            Image.open(testbed / "data" / split / name).resize((40, 40)).save(folder / name)
        (folder / "metadata.jsonl").write_text((testbed / "data" / split / "metadata.jsonl").read_text())
    args = without(demo_args("sd-leaky"), "--mia-members", "--mia-nonmembers")
    result = pytester.runpytest(*args, f"--mia-members={tmp_path / 'members'}",
                                f"--mia-nonmembers={tmp_path / 'nonmembers'}", "--mia-attacks=loss")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*loss: cannot measure: white-box attacks: query images of 40×40 pixels, but "
                                 "*sd-leaky works at 32×32*resize*"])
