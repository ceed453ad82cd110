"""Reference-set loading: the accepted layouts, and a clear error for every kind of bad input (files, images,
manifests: issue 11, item 5)."""

from __future__ import annotations

import hashlib

import csv
import dataclasses
import io
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


# --- manifests: encodings, dialects, captions kept exactly, values of the wrong type (hostile-input review) ---

CAPTION_TEXT = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)),
                                          st.sampled_from("\u2028\u2029\x85\r\n\x0b\x0c\x1c\x1d\x1e\x00\"';,\t")),
                       min_size=1, max_size=20).filter(str.strip)


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",", bom: bool = False) -> None:
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


@given(st.lists(CAPTION_TEXT, min_size=20, max_size=20), st.sampled_from([",", ";", "\t"]), st.booleans())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_caption_round_trips_exactly_through_jsonl_and_csv(tmp_path_factory, captions, delimiter, bom):
    folder = make_set(tmp_path_factory.mktemp("set"), 20, size=8)
    jsonl = "".join(json.dumps({"file_name": f"{i}.png", "text": c}, ensure_ascii=False) + "\n"
                    for i, c in enumerate(captions))  # U+2028, U+0085 ... unescaped inside the JSON strings
    (folder / "metadata.jsonl").write_bytes(("\ufeff" if bom else "").encode() + jsonl.encode())
    assert list(load_reference_set(folder, "members", "--mia-members").captions) == captions
    write_csv(folder / "set.csv", ["file_name", "text"], [[f"{i}.png", c] for i, c in enumerate(captions)],
              delimiter, bom)
    assert list(load_reference_set(folder / "set.csv", "members", "--mia-members").captions) == captions


@pytest.mark.parametrize("bom", [True, False])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_excel_csv_with_a_byte_order_mark_and_any_delimiter_loads(tmp_path, delimiter, bom):
    folder = make_set(tmp_path / "set", 20)
    rows = [[f"{i}.png", f"image {i}; a caption, with both"] for i in range(20)]
    write_csv(tmp_path / "set" / "set.csv", ["file_name", "text"], rows, delimiter, bom)
    assert (tmp_path / "set" / "set.csv").read_bytes().startswith(b"\xef\xbb\xbf") == bom
    loaded = load_reference_set(folder / "set.csv", "members", "--mia-members")
    assert loaded.captions[7] == "image 7; a caption, with both" and loaded.files[7] == folder / "7.png"


@pytest.mark.parametrize("header, found", [
    ("filename;caption", r"2 semicolon-separated columns 'filename', 'caption'"),
    ("filename\tcaption", r"2 tab-separated columns 'filename', 'caption'"),
    ("picture", r"one column 'picture'"),
])
def test_a_csv_without_a_known_file_column_names_the_columns_it_found(tmp_path, header, found):
    make_set(tmp_path / "set", 20)
    (tmp_path / "set" / "set.csv").write_text(header + "\n" + "".join(f"{i}.png;c\n" for i in range(20)))
    with pytest.raises(MiaUsageError, match=rf"--mia-members: .*set.csv has no image column: its header \(first "
                                            rf"line\) has {found}.*none is one of file_name, image, path"):
        load_reference_set(tmp_path / "set" / "set.csv", "members", "--mia-members")


def test_a_manifest_that_is_not_utf8_is_refused_saying_how_to_save_it(tmp_path):
    make_set(tmp_path / "set", 20)
    (tmp_path / "set" / "set.csv").write_bytes("file_name,text\n".encode() + "".join(
        f"{i}.png,café {i}\n" for i in range(20)).encode("cp1252"))
    with pytest.raises(MiaUsageError, match="--mia-members: .*set.csv is not UTF-8 text .*'CSV UTF-8'"):
        load_reference_set(tmp_path / "set" / "set.csv", "members", "--mia-members")


@pytest.mark.parametrize("text, caption", [
    (["", "  ", "a cat", "a dog"], "a cat"),  # COCO style: the first non-empty string
    ([7, "a cat"], "a cat"),
])
def test_a_list_caption_is_its_first_non_empty_string(tmp_path, text, caption):
    folder = make_set(tmp_path / "set", 20)
    rewrite_manifest(folder, lambda rows: rows[3].update(text=text))
    assert load_reference_set(folder, "members", "--mia-members").captions[3] == caption


@pytest.mark.parametrize("value, kind", [(["0.png"], "list"), ({"path": "0.png"}, "JSON object"), (3, "number"),
                                         (True, "boolean")])
def test_a_file_name_that_is_not_a_string_is_an_error_naming_the_entry(tmp_path, value, kind):
    folder = make_set(tmp_path / "set", 20)
    rewrite_manifest(folder, lambda rows: rows[4].update(file_name=value))
    with pytest.raises(MiaUsageError, match=rf"--mia-members: .*metadata.jsonl entry 5: 'file_name' is a {kind}, "
                                            "not a path") as info:
        load_reference_set(folder, "members", "--mia-members")
    assert repr(value) not in str(info.value).partition("entry 5:")[2]  # (the tmp path may hold digits)


@pytest.mark.parametrize("value, kind", [({"en": "a cat"}, "JSON object"), (3.5, "number"), ([1, 2], "list"),
                                         (False, "boolean")])
def test_a_caption_with_no_text_is_an_error_where_captions_are_required(tmp_path, value, kind):
    folder = make_set(tmp_path / "set", 20)
    rewrite_manifest(folder, lambda rows: rows[6].update(text=value))
    with pytest.raises(MiaUsageError, match=rf"--mia-members: .*metadata.jsonl entry 7: 'text' is a {kind} with no "
                                            "text; give the caption as a string"):
        load_reference_set(folder, "members", "--mia-members")
    assert load_reference_set(folder, "members", "--mia-members", captions_required=False).captions[6] == ""


@pytest.mark.parametrize("file_name", ["3\x00.png", "3\n.png", "\x1b[31m3.png", "3.png\x7f"])
def test_control_characters_in_a_file_name_are_an_error_naming_the_entry(tmp_path, file_name):
    folder = make_set(tmp_path / "set", 20)
    rewrite_manifest(folder, lambda rows: rows[3].update(file_name=file_name))
    with pytest.raises(MiaUsageError, match=r"--mia-members: .*metadata.jsonl entry 4: 'file_name' holds the control "
                                            "character"):
        load_reference_set(folder, "members", "--mia-members")


@pytest.mark.parametrize("key", ["file_name", "text"])
def test_an_unpaired_surrogate_is_an_error_naming_the_entry(tmp_path, key):
    folder = make_set(tmp_path / "set", 20)
    rewrite_manifest(folder, lambda rows: rows[3].update({key: "3\ud800.png"}))  # json.dumps writes "\ud800"
    with pytest.raises(MiaUsageError, match=rf"--mia-members: .*metadata.jsonl entry 4: '{key}' holds an unpaired "
                                            "surrogate"):
        load_reference_set(folder, "members", "--mia-members")


# --- bit depth from the data, not the container -------------------------------------------------------------

def save_png16(values: np.ndarray, path: Path) -> None:
    """A 16-bit PNG of (h, w, planes) values, written by pypng (PIL cannot write 16-bit colour)."""
    import png

    height, width, planes = values.shape
    png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16).write(
        path.open("wb"), values.astype(np.uint16).reshape(height, width * planes))


@pytest.mark.parametrize("planes, pil_mode", [(1, "I;16"), (2, "RGBA"), (3, "RGB"), (4, "RGBA")])
def test_16_bit_files_holding_8_bit_values_load_like_their_8_bit_twin(tmp_path, planes, pil_mode):
    def wide(array, path):  # as cv2.imwrite(array.astype(np.uint16)) writes: 8-bit values, 16 bits wide
        save_png16(np.concatenate([array, array[..., :1]], axis=2)[..., :planes] if planes != 1 else
                   array[..., :1], path)

    def narrow(array, path):
        Image.fromarray(array if planes >= 3 else np.repeat(array[..., :1], 3, axis=2)).save(path)

    m16 = load_reference_set(make_set(tmp_path / "w", 20, write=wide), "members", "--mia-members")
    m8 = load_reference_set(make_set(tmp_path / "n", 20, write=narrow), "members", "--mia-members")
    with Image.open(m16.files[0]) as image:
        assert image.mode == pil_mode  # colour: PIL keeps the high byte only, which is 0 for all of these
    assert all(np.array_equal(a, b) for a, b in zip(m16.images, m8.images))
    assert m16.notes == ("20 of 20 images are 16-bit files holding 8-bit values (maximum ≤ 255): read as 8-bit.",)
    assert m8.notes == () and m16.subset(range(5)).notes == m16.notes
    # Their cache key says how they were read: scores cached when such files were read as black are not reused.
    assert m16.hashes[0] != hashlib.sha256(m16.files[0].read_bytes()).hexdigest()


def test_wide_colour_images_pillow_cannot_read_exactly_are_refused(tmp_path):
    """A PPM with 16-bit values (maximum 65535) holding 8-bit ones: Pillow scales them to black."""
    values = np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(">u2")
    (tmp_path / "wide.ppm").write_bytes(b"P6 16 16 65535\n" + values.tobytes())
    with pytest.raises(MiaUsageError, match=r"--mia-members: image .*wide.ppm is a PPM with more than 8 bits per "
                                            r"colour channel.*save it as a PNG"):
        load_image(tmp_path / "wide.ppm", "--mia-members")
    (tmp_path / "narrow.ppm").write_bytes(b"P6 16 16 255\n" + values.astype(np.uint8).tobytes())
    assert np.array_equal(load_image(tmp_path / "narrow.ppm", "--mia-members")[0], values)


@pytest.mark.parametrize("planes", [1, 3, 4])
def test_full_range_16_bit_images_are_still_scaled(tmp_path, planes):
    values = np.random.default_rng(0).integers(0, 65536, (16, 16, planes))
    values[0, 0, 0] = 65535
    save_png16(values, tmp_path / "wide.png")
    array, _ = load_image(tmp_path / "wide.png", "--mia-members")
    expected = np.round(values[..., :3] * (255 / 65535)).astype(np.uint8)
    assert np.array_equal(array, np.repeat(expected, 3, axis=2) if planes == 1 else expected)


def test_the_note_counts_only_the_16_bit_files_holding_8_bit_values(tmp_path):
    def mixed(array, path):
        if int(path.stem) % 4 == 0:
            save_png16(array.astype(np.uint16), path)  # 8-bit values
        elif int(path.stem) % 4 == 1:
            save_png16(array.astype(np.uint16) * 257, path)  # full range
        else:
            Image.fromarray(array).save(path)

    loaded = load_reference_set(make_set(tmp_path / "set", 20, write=mixed), "members", "--mia-members")
    assert loaded.notes == ("5 of 20 images are 16-bit files holding 8-bit values (maximum ≤ 255): read as 8-bit.",)


def test_a_truncated_16_bit_colour_png_is_refused_naming_it(tmp_path):
    save_png16(np.full((16, 16, 3), 9), tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(MiaUsageError, match="--mia-members: cannot read image .*cut.png"):
        load_image(tmp_path / "cut.png", "--mia-members")


# --- near duplicates between members and non-members ------------------------------------------------------

def digit_images(side: int = 64) -> np.ndarray:
    """scikit-learn's 1,797 8×8 digits as side×side RGB uint8 (bilinear), as the test bed upsamples them."""
    from sklearn.datasets import load_digits

    return np.stack([np.repeat(np.asarray(Image.fromarray((d * 255 / 16).round().astype(np.uint8)).resize(
        (side, side), Image.Resampling.BILINEAR))[..., None], 3, axis=2) for d in load_digits().images])


def write_images(folder: Path, images, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"{i}.png" for i in range(len(images))]
    for image, name in zip(images, names):
        image.save(folder / name) if isinstance(image, Image.Image) else Image.fromarray(image).save(folder / name)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": n, "text": f"digit {n}"}) + "\n"
                                                   for n in names))
    return folder


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distinct_digits_that_look_alike_are_not_near_duplicates(tmp_path, seed):
    digits = digit_images()
    order = np.random.default_rng(seed).permutation(len(digits))
    members = load_reference_set(write_images(tmp_path / "m", digits[order[:64]]), "members", "--mia-members")
    nonmembers = load_reference_set(write_images(tmp_path / "n", digits[order[64:128]]), "nonmembers",
                                    "--mia-nonmembers")
    check_disjoint(members, nonmembers)


def jpeg_copy(image: np.ndarray, quality: int, resize: int = 0) -> Image.Image:
    side = image.shape[0] + resize
    buffer = io.BytesIO()
    Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=quality)
    return Image.open(buffer)


@pytest.mark.parametrize("quality, resize", [(95, 0), (75, 0), (75, -3), (90, 4)])
def test_lossy_copies_of_members_among_the_nonmembers_are_refused(tmp_path, quality, resize):
    digits = digit_images()
    members = load_reference_set(write_images(tmp_path / "m", digits[:30]), "members", "--mia-members")
    copies = [jpeg_copy(digits[i], quality, resize) for i in (4, 11)]
    nonmembers = write_images(tmp_path / "n", list(digits[100:128]) + copies,
                              [f"n{i}.png" for i in range(28)] + ["copy_of_4.jpg", "copy_of_11.jpg"])
    with pytest.raises(MiaUsageError, match=r"--mia-members and --mia-nonmembers hold 2 near-duplicate pair\(s\) .*"
                                            r"PSNR ≥ 35 dB .*m/(4|11).png ↔ .*n/copy_of_\1.jpg \(\d+\.\d dB\).*"
                                            "remove one image of each pair"):
        check_disjoint(members, load_reference_set(nonmembers, "nonmembers", "--mia-nonmembers"))


def test_near_duplicates_within_one_set_are_not_an_error_and_subsets_keep_thumbnails(tmp_path):
    digits = digit_images()
    folder = write_images(tmp_path / "m", list(digits[:20]) + [jpeg_copy(digits[3], 95)],
                          [f"{i}.png" for i in range(20)] + ["3_again.jpg"])
    members = load_reference_set(folder, "members", "--mia-members")
    assert len(members) == 21 and members.thumbnails.shape == (21, 32, 32, 3)
    part = members.subset([3, 20])
    assert np.array_equal(part.thumbnails, members.thumbnails[[3, 20]])
    others = write_images(tmp_path / "n", list(digits[40:59]) + [jpeg_copy(digits[3], 90)],
                          [f"{i}.png" for i in range(19)] + ["3_once_more.jpg"])
    with pytest.raises(MiaUsageError, match="hold 2 near-duplicate pair"):  # with 3.png and with 3_again.jpg
        check_disjoint(part, load_reference_set(others, "nonmembers", "--mia-nonmembers"))
    rebuilt = dataclasses.replace(part, thumbnails=None)  # a set built by hand: thumbnails come from its images
    assert np.array_equal(rebuilt.thumbnail_array(), part.thumbnails)
