"""Reference-set loading: the accepted layouts, and a clear error for every kind of bad input (files, images,
manifests: issue 11, item 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mia_checks.data import balance, check_disjoint, load_image, load_reference_set
from mia_checks.errors import MiaUsageError
from helpers import make_set, rewrite_manifest


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
                .filter(str.strip), min_size=20, max_size=25))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_captions_round_trip_through_metadata_jsonl(tmp_path_factory, captions):
    folder = make_set(tmp_path_factory.mktemp("set"), len(captions), size=8, captions=captions)
    loaded = load_reference_set(folder, "members", "--mia-members")
    assert list(loaded.captions) == captions
    assert all(im.shape == (8, 8, 3) and im.dtype == np.uint8 for im in loaded.images)


def test_csv_manifest_with_image_and_caption_columns(tmp_path):
    folder = make_set(tmp_path / "imgs", 20)
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
    folder = make_set(tmp_path / "set", 20)
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
    members = load_reference_set(make_set(tmp_path / "m", 20, seed=1), "members", "--mia-members")
    overlapping = load_reference_set(make_set(tmp_path / "n", 20, seed=1), "nonmembers", "--mia-nonmembers")
    with pytest.raises(MiaUsageError, match="share 20 image"):
        check_disjoint(members, overlapping)
    check_disjoint(members, load_reference_set(make_set(tmp_path / "o", 20, seed=2), "n", "--mia-nonmembers"))


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


def test_max_samples_below_the_minimum_is_refused_after_the_cap(tmp_path):
    members = load_reference_set(make_set(tmp_path / "m", 20, seed=1), "members", "--mia-members")
    nonmembers = load_reference_set(make_set(tmp_path / "n", 20, seed=2), "nonmembers", "--mia-nonmembers")
    with pytest.raises(MiaUsageError, match="--mia-max-samples: 5 is below 20"):
        balance(members, nonmembers, 0, cap=5)
    assert len(balance(members, nonmembers, 0, cap=20)[0]) == 20


# --- images: mode, bit depth, size ------------------------------------------------------------------------

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
