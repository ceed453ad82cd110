"""The emoji tier's data: captioned colour images in two drawing styles, from two pinned npm packages.

`emoji-datasource-twitter@16.0.0` and `emoji-datasource-google@16.0.0` each hold 3,786 PNGs at 64 px
(`img/<style>/64/`), written here at 48 px and `emoji.json`: 1,911 emoji with a name, a category and up to 25 skin-tone variants.
The tarballs are fetched once from the npm registry by exact version, checked against the registry's
sha512 integrity hash (nothing is installed, no script runs), and cached under `<cache>/downloads/`.

Licences: the Twemoji graphics are CC-BY 4.0 (Twitter, Inc. and other contributors), Google's Noto
emoji are Apache-2.0; the packages' own code is MIT (iamcal/emoji-data).

Splits are drawn over *groups*: an emoji with its skin-tone variants and its drawing in the other style,
and every emoji drawn with the same pixels (duplicate_groups). A group lives in one split, so no non-member is a recoloured or restyled copy of a member. Each
category is shuffled and spread over the splits in proportion (members and non-members are paired
within a category, a coin deciding which is which), so the audited sets are balanced in category and
come from one pool. The audited sets and the null twin's set are Noto drawings of the base emoji; the
base is pretrained on every Twemoji drawing of the other groups and on the Noto drawings of half of them:
most of one style and part of the other, as a fine-tune teaches a pretrained model a style it has seen
a little of.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
import tarfile
import unicodedata
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-" + base64 digest of the tarball
    style: str  # the folder under img/
    caption: str  # what captions call the style
    licence: str

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"


REGISTRY = "https://registry.npmjs.org"
PACKAGES = {
    "twemoji": Package("emoji-datasource-twitter", "16.0.0",
                       "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
                       "twitter", "Twemoji style", "Twemoji graphics: CC-BY 4.0; package: MIT"),
    "noto": Package("emoji-datasource-google", "16.0.0",
                    "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
                    "google", "Noto style", "Noto emoji graphics: Apache-2.0; package: MIT"),
}
PRETRAIN_STYLE, FINETUNE_STYLE = "twemoji", "noto"
IMAGE_SIZE = 48  # the packages' 64 px, resized: a 12×12 latent grid (components.EMOJI_VAE_CONFIG)
BACKGROUND = (255, 255, 255)  # the transparent PNGs are composited on white
SKIN_TONES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark", "1F3FF": "dark"}
# Groups per audited split; the rest pretrain the base. 256 + 256 non-members make TPR at 1% FPR measurable.
SPLIT_SIZES = {"ft_members": 256, "ft_nonmembers": 256, "ft_null": 256}
SPLIT_SEED = 2016
PRETRAIN_OTHER_STYLE = 0.5  # the share of pretraining groups whose Noto drawing the base also sees


class EmojiFetchError(RuntimeError):
    """A pinned package could not be fetched or failed its integrity check."""


def integrity_of(data: bytes) -> str:
    """npm's Subresource-Integrity string of a tarball: "sha512-" + base64(sha512(data))."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch_package(package: Package, downloads: Path) -> Path:
    """The package's tarball in `downloads`, fetched once and checked against its pinned integrity hash."""
    path = downloads / package.file_name
    if path.is_file():
        data = path.read_bytes()
    else:
        try:
            with urllib.request.urlopen(package.url, timeout=120) as response:
                data = response.read()
        except OSError as exc:
            raise EmojiFetchError(
                f"cannot download {package.url} ({exc}). The emoji tier of the test bed needs "
                f"{package.name}@{package.version} once: fetch it where the registry is reachable "
                f"(`npm pack {package.name}@{package.version}`) and put the tarball at {path}") from exc
    found = integrity_of(data)
    if found != package.integrity:
        raise EmojiFetchError(f"{path if path.is_file() else package.url}: integrity {found} does not match the "
                              f"pinned {package.integrity} of {package.name}@{package.version}; delete the file "
                              f"and fetch it again from {package.url}")
    if not path.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.rename(path)
    return path


def read_package(tarball: Path, style: str) -> tuple[list[dict], dict[str, bytes]]:
    """emoji.json's entries and the 64 px PNGs (file name → bytes) of one style's package."""
    catalogue, pngs = None, {}
    prefix = f"package/img/{style}/64/"
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.name == "package/emoji.json":
                catalogue = json.load(archive.extractfile(member))
            elif member.isfile() and member.name.startswith(prefix) and member.name.endswith(".png"):
                pngs[member.name[len(prefix):]] = archive.extractfile(member).read()
    if catalogue is None or not pngs:
        raise EmojiFetchError(f"{tarball}: no package/emoji.json or no {prefix}*.png; is it the right package?")
    return catalogue, pngs


def caption_name(name: str) -> str:
    """An emoji's name as a caption: lower case ASCII words ("Côte d’Ivoire Flag" → "cote divoire flag"; the
    tokenizer's alphabet is ASCII)."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9,.'!?\- ]", " ", text)).strip()


def skin_tone_words(key: str) -> str:
    tones = [SKIN_TONES[code] for code in key.split("-")]
    return f"{tones[0]} skin tone" if len(set(tones)) == 1 else f"{' and '.join(tones)} skin tones"


@dataclass(frozen=True)
class EmojiImage:
    group: int  # index of the emoji in emoji.json: its variants and both styles share it
    style: str  # a key of PACKAGES
    image: str  # file name in the package
    caption: str
    category: str


def group_images(catalogue: list[dict], group: int, style: str, variants: bool) -> list[EmojiImage]:
    """The drawings of one emoji in one style: the base, and with `variants` its skin tones."""
    entry = catalogue[group]
    name, suffix = caption_name(entry["name"]), PACKAGES[style].caption
    out = [EmojiImage(group, style, entry["image"], f"{name}, {suffix}", entry["category"])]
    if variants:
        out += [EmojiImage(group, style, v["image"], f"{name}, {skin_tone_words(key)}, {suffix}", entry["category"])
                for key, v in sorted((entry.get("skin_variations") or {}).items())]
    return out


def split_groups(categories: list[str], sizes: dict[str, int] = SPLIT_SIZES,
                 seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    """Groups (indices) of each split: ft_members, ft_nonmembers, ft_null and the pretraining rest.

    Each category is shuffled and its groups interleaved with every other category's by their relative
    rank, so any prefix holds every category in proportion. The first pairs form the audited pool: each
    pair is two groups of one category, a coin deciding which is the member. Then ft_null; pretrain is
    the rest.
    """
    rng = np.random.default_rng(seed)
    cats = np.asarray(categories)
    ranked = []
    for category in sorted(set(categories)):
        idx = rng.permutation(np.flatnonzero(cats == category))
        ranked += [((i + 0.5) / len(idx), category, int(g)) for i, g in enumerate(idx)]
    ranked.sort()
    if sizes["ft_members"] != sizes["ft_nonmembers"]:
        raise ValueError("members and non-members are drawn in pairs: give them one size")
    members, nonmembers, waiting, used = [], [], {}, set()
    for _, category, group in ranked:
        if len(members) == sizes["ft_members"]:
            break
        if category not in waiting:
            waiting[category] = group
            continue
        pair = [waiting.pop(category), group]
        first = int(rng.integers(2))
        members.append(pair[first])
        nonmembers.append(pair[1 - first])
        used |= set(pair)
    if len(members) < sizes["ft_members"]:
        raise ValueError(f"only {len(members)} category-matched pairs for {sizes['ft_members']} members")
    rest = [g for _, _, g in ranked if g not in used]
    null, pretrain = rest[: sizes["ft_null"]], rest[sizes["ft_null"]:]
    # The audited sets keep their pairs' order, so that any prefix of both is a balanced, category-paired slice.
    return {"ft_members": members, "ft_nonmembers": nonmembers, "ft_null": sorted(null),
            "pretrain": sorted(pretrain)}


def duplicate_groups(catalogue: list[dict], drawings: dict[str, dict[str, bytes]]) -> list[int]:
    """Each emoji's group (the index of its first emoji): emoji whose drawings (any skin tone, either style)
    render to the same pixels are one group. Several territories' flags are their country's
    (Heard & McDonald Islands draws Australia's), so a group is more than one emoji's variants."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    first: dict[bytes, int] = {}
    edges = []
    for i, entry in enumerate(catalogue):
        files = [entry["image"], *(v["image"] for v in (entry.get("skin_variations") or {}).values())]
        edges += [(i, first.setdefault(hashlib.sha256(render(pngs[f]).tobytes()).digest(), i))
                  for pngs in drawings.values() for f in files if f in pngs]
    rows, cols = np.array(edges, dtype=int).reshape(-1, 2).T
    n = len(catalogue)
    _, component = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    lowest = {c: i for i, c in reversed(list(enumerate(component)))}  # each component's first emoji
    return [lowest[c] for c in component]


def split_images(catalogue: list[dict], sizes: dict[str, int] = SPLIT_SIZES, seed: int = SPLIT_SEED,
                 groups_of: list[int] | None = None) -> dict[str, list[EmojiImage]]:
    """Every split's images. `groups_of`: each emoji's group (duplicate_groups; default: its own). The audited
    and null sets hold one Noto drawing per group (its first emoji's); pretrain every Twemoji drawing (skin
    tones too) of its groups' emoji and the Noto base drawings of a seeded share of its groups."""
    groups_of = groups_of or list(range(len(catalogue)))
    units = sorted(set(groups_of))
    members_of = {u: [i for i, g in enumerate(groups_of) if g == u] for u in units}
    chosen = split_groups([catalogue[u]["category"] for u in units], sizes, seed)
    split = {name: [units[k] for k in idx] for name, idx in chosen.items()}

    def drawings(unit: int, style: str, variants: bool, every: bool) -> list[EmojiImage]:
        emoji = members_of[unit] if every else [unit]
        return [dataclasses.replace(im, group=unit) for i in emoji
                for im in group_images(catalogue, i, style, variants)]

    out = {name: [im for u in split[name] for im in drawings(u, FINETUNE_STYLE, False, False)]
           for name in ("ft_members", "ft_nonmembers", "ft_null")}
    rng = np.random.default_rng(seed + 1)
    other = set(rng.choice(split["pretrain"], int(PRETRAIN_OTHER_STYLE * len(split["pretrain"])), replace=False).tolist())
    out["pretrain"] = [im for u in split["pretrain"] for im in drawings(u, PRETRAIN_STYLE, True, True)]
    out["pretrain"] += [im for u in sorted(other) for im in drawings(u, FINETUNE_STYLE, False, True)]
    return out


def render(png: bytes, size: int = IMAGE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: the PNG (any mode) composited on BACKGROUND, resized with Lanczos if needed."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGBA", image.size, BACKGROUND + (255,))
    canvas.alpha_composite(image)
    rgb = canvas.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.LANCZOS)
    return np.asarray(rgb)


def write_emoji_splits(out: Path, downloads: Path, sizes: dict[str, int] = SPLIT_SIZES) -> dict:
    """Fetch both packages (once), write every split as an image folder with metadata.jsonl under out;
    returns the build record (counts, packages, licences)."""
    from .digits import write_image_folder

    contents = {style: read_package(fetch_package(p, downloads), p.style) for style, p in PACKAGES.items()}
    catalogue = contents[FINETUNE_STYLE][0]
    if [e["image"] for e in catalogue] != [e["image"] for e in contents[PRETRAIN_STYLE][0]]:
        raise EmojiFetchError("the two packages' emoji.json list different emoji: pin one emoji-data version")
    drawings = {style: pngs for style, (_, pngs) in contents.items()}
    groups_of = duplicate_groups(catalogue, drawings)
    splits = split_images(catalogue, sizes, groups_of=groups_of)
    for name, images in splits.items():
        pixels = np.stack([render(contents[im.style][1][im.image]) for im in images])
        files = [f"{im.style}-{Path(im.image).stem}.png" for im in images]
        write_image_folder(out / name, pixels, [im.caption for im in images], files)
        rows = [{"file_name": file, "group": im.group, "category": im.category, "style": im.style}
                for im, file in zip(images, files)]
        (out / name / "groups.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),  # near-duplicates share a group
                                                 encoding="utf-8")
    return {"splits": {name: len(images) for name, images in splits.items()},
            "groups": len(set(groups_of)), "emoji_in_shared_groups": len(groups_of) - len(set(groups_of)),
            "packages": {p.name: {"version": p.version, "integrity": p.integrity, "licence": p.licence}
                         for p in PACKAGES.values()},
            "image_size": IMAGE_SIZE, "background": list(BACKGROUND), "seed": SPLIT_SEED}
