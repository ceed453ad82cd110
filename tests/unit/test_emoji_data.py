"""The emoji tier's data: the pinned fetch refuses what it cannot trust, and the group split is disjoint,
deterministic and balanced (synthetic catalogues here; the real one in tests/testbed/test_emoji_tier.py)."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mia_checks.testbed import emoji
from mia_checks.testbed.emoji import (
    EmojiFetchError,
    Package,
    fetch_package,
    integrity_of,
    split_groups,
    split_images,
)

CATEGORIES = ("Flags", "Food & Drink", "Objects", "People & Body", "Symbols")


def _package(integrity: str) -> Package:
    return Package("emoji-datasource-test", "1.0.0", integrity, "test", "Test style", "test")


def test_a_cached_tarball_with_the_wrong_hash_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "emoji-datasource-test-1.0.0.tgz"
    path.write_bytes(b"not the pinned archive")
    with pytest.raises(EmojiFetchError, match=r"emoji-datasource-test-1\.0\.0\.tgz: integrity sha512-.* does not match"):
        fetch_package(_package(integrity_of(b"the pinned archive")), tmp_path)
    assert fetch_package(_package(integrity_of(b"not the pinned archive")), tmp_path) == path


def test_without_the_registry_the_error_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setattr(emoji, "REGISTRY", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(EmojiFetchError, match=r"cannot download .*npm pack emoji-datasource-test@1\.0\.0.*put the "
                                              r"tarball at .*emoji-datasource-test-1\.0\.0\.tgz"):
        fetch_package(_package(integrity_of(b"x")), tmp_path / "downloads")
    assert not (tmp_path / "downloads").exists()


def test_a_downloaded_archive_is_checked_before_it_is_cached(tmp_path, monkeypatch):
    served = tmp_path / "registry" / "emoji-datasource-test" / "-" / "emoji-datasource-test-1.0.0.tgz"
    served.parent.mkdir(parents=True)
    served.write_bytes(b"tampered")
    monkeypatch.setattr(emoji, "REGISTRY", (tmp_path / "registry").as_uri())
    with pytest.raises(EmojiFetchError, match="does not match the pinned"):
        fetch_package(_package(integrity_of(b"original")), tmp_path / "downloads")
    assert not (tmp_path / "downloads").exists()  # nothing unchecked was cached
    cached = fetch_package(_package(integrity_of(b"tampered")), tmp_path / "downloads")
    assert cached.read_bytes() == b"tampered"


def test_a_package_without_images_is_refused(tmp_path):
    path = tmp_path / "p.tgz"
    with tarfile.open(path, "w:gz") as archive:
        data = json.dumps([]).encode()
        info = tarfile.TarInfo("package/emoji.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(EmojiFetchError, match="no package/emoji.json or no package/img/twitter/64"):
        emoji.read_package(path, "twitter")


def test_captions_are_lower_case_ascii_names():
    assert emoji.caption_name("Côte d’Ivoire Flag") == "cote divoire flag"
    assert emoji.caption_name("KEYCAP: *") == "keycap"
    assert emoji.skin_tone_words("1F3FB") == "light skin tone"
    assert emoji.skin_tone_words("1F3FB-1F3FF") == "light and dark skin tones"


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=len(CATEGORIES), max_size=len(CATEGORIES)),
       pairs=st.integers(1, 20), null=st.integers(0, 20), seed=st.integers(0, 2**16))
def test_group_splits_are_disjoint_deterministic_and_category_paired(counts, pairs, null, seed):
    categories = [c for c, n in zip(CATEGORIES, counts) for _ in range(n)]
    sizes = {"ft_members": pairs, "ft_nonmembers": pairs, "ft_null": null}
    if sum(n // 2 for n in counts) < pairs:
        with pytest.raises(ValueError, match="category-matched pairs"):
            split_groups(categories, sizes, seed)
        return
    splits = split_groups(categories, sizes, seed)
    assert splits == split_groups(categories, sizes, seed)
    everything = [g for split in splits.values() for g in split]
    assert sorted(everything) == list(range(len(categories)))  # a partition of the groups
    assert len(splits["ft_members"]) == pairs and len(splits["ft_null"]) == min(null, len(categories) - 2 * pairs)
    for member, nonmember in zip(splits["ft_members"], splits["ft_nonmembers"]):  # pair i: one category
        assert categories[member] == categories[nonmember]


def _catalogue() -> list[dict]:
    rows = []
    for i in range(400):
        entry = {"name": f"THING {i}", "image": f"{i:04x}.png", "category": CATEGORIES[i % len(CATEGORIES)]}
        if i % 3 == 0:
            entry["skin_variations"] = {k: {"image": f"{i:04x}-{k.lower()}.png"} for k in emoji.SKIN_TONES}
        rows.append(entry)
    return rows


def test_an_emoji_its_skin_tones_and_its_other_style_stay_in_one_split():
    sizes = {"ft_members": 60, "ft_nonmembers": 60, "ft_null": 60}
    splits = split_images(_catalogue(), sizes, seed=7)
    groups = {name: {im.group for im in images} for name, images in splits.items()}
    names = list(groups)
    assert all(not groups[a] & groups[b] for i, a in enumerate(names) for b in names[i + 1:])
    for name in ("ft_members", "ft_nonmembers", "ft_null"):  # one Noto base drawing per group
        assert {im.style for im in splits[name]} == {emoji.FINETUNE_STYLE} and len(splits[name]) == len(groups[name])
    pretrain = splits["pretrain"]
    styles = Counter(im.style for im in pretrain)
    assert styles[emoji.PRETRAIN_STYLE] > styles[emoji.FINETUNE_STYLE] > 0  # most of one style, part of the other
    assert any("skin tone" in im.caption for im in pretrain)
    assert all(im.caption.endswith(("Twemoji style", "Noto style")) for images in splits.values() for im in images)
    member_categories = Counter(im.category for im in splits["ft_members"])
    assert member_categories == Counter(im.category for im in splits["ft_nonmembers"])


def _png(colour: tuple[int, int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_emoji_drawn_with_the_same_pixels_are_one_group_and_one_audited_image():
    """Territories whose flag is their country's (Heard & McDonald Islands draws Australia's): one group, so a
    member's exact copy can never be a non-member, and the audited sets hold one of them."""
    catalogue = _catalogue()
    red, blue = _png((255, 0, 0, 255)), _png((0, 0, 255, 255))
    drawings = {"noto": {e["image"]: _png((i % 200, i // 200, 7, 255)) for i, e in enumerate(catalogue)},
                "twemoji": {}}
    drawings["noto"][catalogue[5]["image"]] = drawings["noto"][catalogue[9]["image"]] = red  # the same flag
    drawings["twemoji"][catalogue[2]["image"]] = drawings["twemoji"][catalogue[300]["image"]] = blue  # other style
    groups_of = emoji.duplicate_groups(catalogue, drawings)
    assert groups_of[9] == groups_of[5] == 5 and groups_of[300] == groups_of[2] == 2
    assert len(set(groups_of)) == len(catalogue) - 2
    splits = split_images(catalogue, {"ft_members": 60, "ft_nonmembers": 60, "ft_null": 60}, seed=7,
                          groups_of=groups_of)
    audited = [im.image for name in ("ft_members", "ft_nonmembers", "ft_null") for im in splits[name]]
    assert catalogue[9]["image"] not in audited and catalogue[300]["image"] not in audited
    where = {name: {im.group for im in images} for name, images in splits.items()}
    assert sum(5 in groups for groups in where.values()) == 1
