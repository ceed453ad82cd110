"""The plugin as users meet it: pytest runs on generated projects (pytester), or shared runs of the same
command (conftest: `gate`, `demo_run`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers import without


def test_help_shows_the_option_group(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["mia-checks: membership-inference privacy gate*", "*--mia-target=TARGET*",
                                 "*--mia-gate-rule=RULE*", "*mia_threshold*"])


def test_inactive_plugin_imports_no_torch(pytester: pytest.Pytester):
    pytester.makeconftest("""
        import sys
        def pytest_sessionfinish(session):
            open("modules.txt", "w").write("torch" if "torch" in sys.modules else "none")
    """)
    pytester.makepyfile("def test_nothing():\n    assert True\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert (pytester.path / "modules.txt").read_text() == "none"


def test_leaky_target_fails_with_a_message_naming_attack_value_threshold_and_rule(demo_run):
    outcomes = demo_run.parseoutcomes()
    assert outcomes["failed"] >= 2 and outcomes["failed"] + outcomes["passed"] == 14  # II-P, white-box, exposure
    demo_run.stdout.fnmatch_lines([
        "*II-P (reconstruction): auc = 0.9*lower bound*exceeds the threshold 0.550*rule: 99.6% one-sided*",
        "*mia-checks privacy report*",
        "target: *sd-leaky (diffusers:StableDiffusionPipeline)",
        "distribution shift check: no-model baseline*no evidence of a distribution shift",
        "*attack*accuracy*AUC*TPR@1%FPR*advantage*ε lower bd*threshold*verdict*",
        "II-P *FAIL",
        "FAILED mia-checks::test_attack[[]II-P[]]*",
    ])
    report = json.loads((demo_run.path / "report.json").read_text())
    assert [r["attack"] for r in report["results"]] == ["I-P", "I-S", "II-P", "II-S", "III", "IV", "NN", "loss", "SimA",
                                                        "PIA", "SecMI", "CLiD"]
    assert report["members"]["n"] == report["nonmembers"]["n"] == 32
    assert len(report["checkpoint_sha256"]) == 64 and report["versions"]["torch"]
    ii_p = report["results"][2]
    assert ii_p["verdict"]["leaks"] and ii_p["auc"]["value"] > 0.9 and ii_p["tpr_at_1pct_fpr"] is None
    assert len(ii_p["scores"]) == 64 and ii_p["protocol"] == "partial-knowledge"


def test_null_target_passes(null_run):
    null_run.assert_outcomes(passed=14)
    null_run.stdout.fnmatch_lines(["*mia-checks privacy report*", "gate: 99.6% one-sided lower bound of auc*",
                                   "PASS: 0 of 12 attacks leak beyond the threshold"])


def test_mild_target_is_audited_and_reported(pytester, demo_args):
    result = pytester.runpytest(*demo_args("sd-mild"), "--mia-attacks=II-P,IV", "--mia-gate-rule=point")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2
    result.stdout.fnmatch_lines(["gate: point estimate of auc > threshold", "II-P *", "IV *"])


def test_stricter_thresholds_from_ini_and_command_line_wins(pytester, demo_args):
    pytester.makeini("[pytest]\nmia_attacks = II-P\nmia_threshold = 0.99\n")
    result = pytester.runpytest(*demo_args("sd-leaky"))
    result.assert_outcomes(passed=1)  # AUC 0.985, its bound < 0.99
    result = pytester.runpytest(*demo_args("sd-leaky"), "--mia-threshold=II-P=0.6")
    result.assert_outcomes(failed=1)


def test_users_write_their_own_tests_against_the_audit_fixture(pytester, demo_args):
    pytester.makepyfile(test_mine="""
        def test_reconstruction_auc_is_reported(mia_audit, mia_members, mia_settings):
            result = mia_audit.result("II-P")
            assert len(mia_members) == 32 and mia_settings.folds == 5
            assert result.auc.value > 0.9   # the leaky target memorised its members

        def test_stricter_limit_on_iv(mia_audit):
            assert mia_audit.result("IV").auc.value < 0.5, "IV leaks beyond our own stricter limit"
    """)
    result = pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=II-P", "test_mine.py")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*IV leaks beyond our own stricter limit*"])


def test_results_are_identical_under_xdist(leaky_parallel_run, demo_run):
    """The demo's serial audit of `leaky` and the same audit on two pytest-xdist workers."""
    parallel = leaky_parallel_run
    counts = [{k: r.parseoutcomes().get(k, 0) for k in ("passed", "failed")} for r in (demo_run, parallel)]
    assert counts[0] == counts[1] and counts[1]["failed"] >= 2
    parallel.stdout.fnmatch_lines(["*mia-checks privacy report*", "II-P *FAIL*"])
    a, b = (json.loads(path.read_text()) for path in (demo_run.path / "report.json", parallel.path / "parallel.json"))
    assert a["results"] == b["results"]
    # The serial run's exit status (the demo says when pytest's was "tests failed") is the parallel one's.
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED and "the gate failed the target: it leaks" in demo_run.stdout.str()


def test_ablation_settings_are_echoed_and_a_smaller_known_part_still_catches_the_leak(pytester, demo_args):
    result = pytester.runpytest(*demo_args("sd-leaky"), "--mia-attacks=II-P", "--mia-known-fraction=0.25",
                                "--mia-combine=cosine", "--mia-json=report.json")
    result.assert_outcomes(failed=1)  # II-P still fails learning from 16 queries instead of 51
    result.stdout.fnmatch_lines(["ablation: 25 steps, guidance 1.0, 2 generation(s) per query, attacker knows 25% "
                                 "of the queries, IV combines cosine, embedder */clip"])
    ablation = json.loads((pytester.path / "report.json").read_text())["ablation"]
    assert ablation["known_fraction"] == 0.25 and ablation["steps"] == 25 and ablation["combine"] == ["cosine"]


@pytest.mark.parametrize("embedder", ["clip-hf", "blip-itm"])
def test_transformers_clip_and_blip_embedders_drive_the_semantic_attacks(pytester, demo_args, testbed, embedder):
    spec = f"transformers:{testbed / embedder}"
    args = without(demo_args("sd-leaky"), "--mia-embedder")
    result = pytester.runpytest(*args, f"--mia-embedder={spec}", "--mia-attacks=II-S,IV", "--mia-json=report.json")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2
    result.stdout.fnmatch_lines([f"ablation: *embedder {spec}"])
    ii_s = json.loads((pytester.path / "report.json").read_text())["results"][0]
    assert ii_s["attack"] == "II-S" and len(ii_s["scores"]) == 64
    if embedder == "clip-hf":  # the leaky target's copies are close in a CLIP space (measured AUC 0.7);
        assert ii_s["auc"]["value"] > 0.6  # the tiny BLIP's image space is too weak to say (measured 0.40)


@pytest.fixture
def captionless(testbed, tmp_path):
    """The members and non-members as plain image folders: no metadata, no captions."""
    folders = {}
    for split in ("members", "nonmembers"):
        folders[split] = tmp_path / split
        folders[split].mkdir()
        for png in (testbed / "data" / split).glob("*.png"):
            shutil.copy(png, folders[split])
    return folders


def test_caption_less_mode_captions_every_query_and_says_so(pytester, demo_args, testbed, captionless):
    result = _bad(pytester, demo_args, f"--mia-members={captionless['members']}",
                  f"--mia-nonmembers={captionless['nonmembers']}", f"--mia-captioner={testbed / 'blip'}",
                  "--mia-attacks=II-P,IV", "--mia-json=report.json")
    assert result.parseoutcomes().get("passed", 0) + result.parseoutcomes().get("failed", 0) == 2
    result.stdout.fnmatch_lines([f"captions: generated by {testbed / 'blip'} (caption-less mode), for every query"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["captions"]["source"] == "generated" and len(report["captions"]["captions"]) == 64
    # The tiny BLIP names the right digit for most queries (the class word is the caption's third word).
    truth = []
    for split in ("members", "nonmembers"):
        rows = [json.loads(line) for line in (testbed / "data" / split / "metadata.jsonl").read_text().splitlines()]
        truth += [r["text"] for r in sorted(rows, key=lambda r: r["file_name"])]  # the plain folder's order
    digit = lambda caption: caption.split()[2].rstrip(",")  # noqa: E731
    right = np.mean([digit(c) == digit(t) for c, t in zip(report["captions"]["captions"], truth)])
    assert right > 0.8  # measured 0.91; chance is 0.1


def test_junit_xml_carries_per_attack_properties(demo_run):
    xml = (demo_run.path / "junit.xml").read_text()  # xunit2: on the test suite, one set per attack
    assert 'name="mia.II-P.accuracy"' in xml and 'name="mia.II-P.verdict" value="FAIL"' in xml
    assert 'name="mia.I-P.verdict" value="pass"' in xml and xml.count('name="mia.loss.') == 5


def _bad(pytester, demo_args, *override: str):
    args = [a for a in demo_args("sd-null") if not any(a.startswith(o.split("=")[0] + "=") for o in override)]
    return pytester.runpytest(*args, *override)


def test_pickle_based_weights_load_when_opted_in(pytester, demo_args, testbed):
    """(Refused without the flag: tests/testbed/test_target_checks.py.)"""
    import torch
    from safetensors.torch import load_file

    target = pytester.path / "pickled"
    shutil.copytree(testbed / "sd-null", target)
    unet = target / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(unet), target / "unet" / "diffusion_pytorch_model.bin")
    unet.unlink()
    opted_in = _bad(pytester, demo_args, f"--mia-target={target}", "--mia-allow-pickle", "--mia-attacks=II-P")
    opted_in.assert_outcomes(passed=1)


def test_a_corrupt_checkpoint_errors_with_the_file_named_never_passes(pytester, demo_args, testbed):
    target = pytester.path / "corrupt"
    shutil.copytree(testbed / "sd-null", target)
    (target / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    result = _bad(pytester, demo_args, f"--mia-target={target}", "--mia-attacks=II-P")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*II-P: cannot measure: cannot load diffusers:StableDiffusionPipeline from *corrupt*"])


def test_an_embedder_that_cannot_load_errors_with_its_name(pytester, demo_args, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is unreachable here anyway: fail fast
    result = _bad(pytester, demo_args, "--mia-embedder=transformers:no-such-org/no-such-clip", "--mia-attacks=IV")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*IV: cannot measure: cannot load the embedder transformers:no-such-org/no-such-clip: *"])


def test_blank_generations_are_an_error_not_a_pass(pytester, demo_args):
    pytester.makepyfile(blank_model="""
        import numpy as np
        def generate(prompts, seeds):
            return [np.zeros((32, 32, 3), np.uint8) for _ in prompts]
    """)
    result = _bad(pytester, demo_args, "--mia-target=blank_model:generate", "--mia-attacks=II-P,III",
                  "-p", "no:randomly")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*II-P: cannot measure: the target generated a blank (constant) image*"])
    assert result.ret != 0


def test_distribution_shift_warns_loudly_and_can_be_an_error(pytester, demo_args, dimmed_nonmembers):
    shifted = f"--mia-nonmembers={dimmed_nonmembers}"
    warned = _bad(pytester, demo_args, shifted, "--mia-attacks=III")
    warned.stdout.fnmatch_lines(["*DistributionShiftWarning*members and non-members differ in distribution*",
                                 "WARNING: distribution shift: no-model baseline*accuracy 0.9*"])
    errored = _bad(pytester, demo_args, shifted, "--mia-attacks=II-P,III", "--mia-shift-check=error")
    errored.assert_outcomes(errors=2)
    errored.stdout.fnmatch_lines(["*distribution shift: no-model baseline*unreliable*"])


def _shadow_args(testbed):
    return [f"--mia-shadow-target={testbed / 'sd-shadow'}",
            f"--mia-shadow-members={testbed / 'data' / 'shadow_members'}",
            f"--mia-shadow-nonmembers={testbed / 'data' / 'shadow_nonmembers'}"]


@pytest.mark.parametrize("target, outcome", [("sd-leaky", "failed"), ("sd-null", "passed")])
def test_shadow_model_mode_fits_on_the_shadow_and_applies_frozen(pytester, demo_args, testbed, target, outcome):
    result = pytester.runpytest(*demo_args(target), *_shadow_args(testbed), "--mia-attacks=II-P",
                                "--mia-json=report.json")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["protocol: shadow-model (attack models fitted on *sd-shadow, applied frozen)*"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["protocol"] == "shadow-model" and report["results"][0]["protocol"] == "shadow-model"


