"""Reference-set loading: the accepted layouts, and a clear error for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mia_checks.data import balance, check_disjoint, load_reference_set
from mia_checks.errors import MiaUsageError


def make_folder(folder: Path, n: int, seed: int = 0, captions: list[str] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": captions[i] if captions else f"image {i}"}) + "\n")
    return folder


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
                .filter(str.strip), min_size=20, max_size=25))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_captions_round_trip_through_metadata_jsonl(tmp_path_factory, captions):
    folder = make_folder(tmp_path_factory.mktemp("set"), len(captions), captions=captions)
    loaded = load_reference_set(folder, "members", "--mia-members")
    assert list(loaded.captions) == captions
    assert all(im.shape == (8, 8, 3) and im.dtype == np.uint8 for im in loaded.images)


def test_csv_manifest_with_image_and_caption_columns(tmp_path):
    folder = make_folder(tmp_path / "imgs", 20)
    manifest = tmp_path / "set.csv"
    manifest.write_text("image,caption\n" + "".join(f"imgs/{i}.png,caption {i}\n" for i in range(20)))
    loaded = load_reference_set(manifest, "members", "--mia-members")
    assert loaded.captions[3] == "caption 3" and len(loaded) == 20
    assert loaded.files[3] == folder / "3.png"


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_path", "does not exist"),
        ("no_metadata", "has no metadata.jsonl"),
        ("missing_caption", "has no caption"),
        ("unreadable_image", "cannot read image"),
        ("missing_image", "does not exist"),
        ("tiny", "at least 20 are needed"),
        ("bad_json", "not valid JSON"),
    ],
)
def test_bad_sets_raise_errors_naming_the_option_and_file(tmp_path, breakage, message):
    folder = make_folder(tmp_path / "set", 20)
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    if breakage == "missing_path":
        folder = tmp_path / "nowhere"
    elif breakage == "no_metadata":
        (folder / "metadata.jsonl").unlink()
    elif breakage == "missing_caption":
        lines[4] = json.dumps({"file_name": "4.png"})
    elif breakage == "unreadable_image":
        (folder / "7.png").write_bytes(b"not a png")
    elif breakage == "missing_image":
        (folder / "7.png").unlink()
    elif breakage == "tiny":
        lines = lines[:5]
    elif breakage == "bad_json":
        lines[2] = "{oops"
    if folder.exists() and breakage != "no_metadata":
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(MiaUsageError, match=message) as info:
        load_reference_set(folder, "members", "--mia-members")
    assert "--mia-members" in str(info.value)


def test_shared_images_between_members_and_nonmembers_are_refused(tmp_path):
    members = load_reference_set(make_folder(tmp_path / "m", 20, seed=1), "members", "--mia-members")
    overlapping = load_reference_set(make_folder(tmp_path / "n", 20, seed=1), "nonmembers", "--mia-nonmembers")
    with pytest.raises(MiaUsageError, match="share 20 image"):
        check_disjoint(members, overlapping)
    check_disjoint(members, load_reference_set(make_folder(tmp_path / "o", 20, seed=2), "n", "--mia-nonmembers"))


@given(st.integers(20, 30), st.integers(20, 30), st.one_of(st.none(), st.integers(20, 30)), st.integers(0, 5))
@settings(max_examples=20, deadline=None)
def test_balance_gives_equal_seeded_subsets(n_members, n_nonmembers, cap, seed):
    from mia_checks.data import ReferenceSet

    def fake(n: int, name: str) -> ReferenceSet:
        return ReferenceSet(name, Path(name), tuple(Path(f"{i}") for i in range(n)), tuple(f"c{i}" for i in range(n)),
                            tuple(f"{name}{i}" for i in range(n)), tuple(f"p{name}{i}" for i in range(n)),
                            tuple((8, 8) for _ in range(n)))

    m, n = balance(fake(n_members, "m"), fake(n_nonmembers, "n"), seed, cap)
    assert len(m) == len(n) == min(n_members, n_nonmembers, cap or n_members)
    assert balance(fake(n_members, "m"), fake(n_nonmembers, "n"), seed, cap)[0].files == m.files
    assert list(m.files) == sorted(m.files, key=lambda p: int(p.name))  # order kept
