"""The test bed's artifact graph, without building anything: every artifact has a builder and its dependencies
come before it; the suite never builds a benchmark-only artifact; the large emoji build reads its own data, VAE,
CLIP and base, never the tests' ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_checks.testbed import build, emoji_tier


def test_every_artifact_has_a_builder_and_is_built_after_its_dependencies():
    for name in build.ALL_ARTIFACTS:
        # An early stop (sd-mild) is saved by its source's run.
        assert callable(build._builder(build.EARLY_STOPS.get(name, (name,))[0])), name
        closure = build._closure([name])
        assert closure[-1] == name
        for dep in build._dependencies(name):
            assert dep in build.ALL_ARTIFACTS and closure.index(dep) < closure.index(name), (name, dep)


def test_the_suite_builds_everything_but_the_benchmark_only_artifacts():
    suite = set(build._closure(build.SUITE_ARTIFACTS))
    assert suite.isdisjoint(build.BENCHMARK_ONLY)
    assert suite | set(build.BENCHMARK_ONLY) == set(build.ALL_ARTIFACTS)
    assert {"emoji-blip", "emoji-large-finetune", "emoji-large-finetune-null"} <= set(build.BENCHMARK_ONLY)


@pytest.mark.parametrize("target", ["emoji-large-finetune", "emoji-large-finetune-null"])
def test_the_large_build_is_audited_on_its_own_sets_with_its_own_models(target: str):
    closure = build._closure([target])
    assert [n for n in closure if n.startswith("emoji-") and not n.startswith("emoji-large")] == \
        ["emoji-data", "emoji-tokenizer"]  # the packages' fetch and the BPE of every emoji caption, nothing trained
    options = build.audit_options(Path("/bed"), target)
    assert options["members"] == "/bed/emoji-large-data/ft_members"
    assert options["nonmembers"] == "/bed/emoji-large-data/ft_nonmembers"
    assert options["embedder"] == "/bed/emoji-large-clip"
    with pytest.raises(ValueError, match="benchmark-only"):
        build.audit_sets(target, small=True)


def test_the_standard_emoji_targets_keep_their_sets():
    assert build.audit_sets("emoji-lora", small=True) == ("emoji-data/slice_members", "emoji-data/slice_nonmembers")
    assert build.audit_options(Path("/bed"), "emoji-lora")["target"] == "/bed/emoji-base"
    assert emoji_tier.build_of("emoji-finetune-dup") is emoji_tier.STANDARD
