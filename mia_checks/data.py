"""Reference sets: the member and non-member images with their captions.

Accepted layouts (paths in manifests are relative to the manifest's folder):
- an image folder with `metadata.jsonl` (diffusers' train_text_to_image format: one
  `{"file_name": ..., "text": ...}` per line) or `metadata.csv` with the same columns;
- a `.jsonl` or `.csv` manifest file with those columns (`image` and `caption` are accepted too).
In caption-less mode (`captions_required=False`) captions may be missing (they are then ""), and a plain
folder of images with no manifest is accepted.

Manifests are UTF-8 (a byte-order mark, as Excel's "CSV UTF-8" writes, is skipped). A CSV manifest is
separated by commas, semicolons (Excel in many locales) or tabs: the one that splits the header into a known
file column. JSONL lines end at "\n" only, so a caption may hold U+2028 or U+0085; captions are kept exactly.
A caption given as a list (COCO style) is its first non-empty string.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import MiaUsageError

FILE_KEYS = ("file_name", "image", "path")
TEXT_KEYS = ("text", "caption", "prompt")
MIN_IMAGES = 20  # per set: below this, a 5-fold attack has too few images to say anything
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MIN_SIDE = 8  # pixels: smaller images carry nothing an attack could compare
CSV_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}  # Excel writes ";" in many locales
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THUMBNAIL_SIDE = 32  # pixels: the near-duplicate check compares 32×32 RGB thumbnails
# Two thumbnails this close (PSNR, dB) are one image re-encoded or resized. Measured (benchmarks/near_duplicates.py)
# on scikit-learn's 1,797 digits upsampled to 32 and 64 px and 150 256-px photo crops: every re-encoding scores
# ≥ 36.2 dB (JPEG q95 ≥ 48.2, q75 ≥ 39.9, q50 ≥ 36.2; resized by −3 or +4 px ≥ 40.0, and then q75 ≥ 37.9): no
# misses; distinct digits score ≤ 30.5 dB (0 of 1,613,706 pairs reach 35, at either size), distinct crops of
# one photo, some overlapping, ≤ 32.5 dB (0 of 11,175 pairs).
NEAR_DUPLICATE_PSNR = 35.0


class LazyImages(Sequence):
    """A reference set's images, decoded when read (one at a time or a slice): memory stays bounded by the
    batch being read, not by the set. A file whose bytes changed since the set was checked is an error."""

    def __init__(self, files: tuple[Path, ...], hashes: tuple[str, ...], option: str):
        self.files, self.hashes, self.option = files, hashes, option

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        image, digest = load_image(self.files[index], self.option)
        if digest != self.hashes[index]:
            raise MiaUsageError(f"{self.option}: {self.files[index]} changed while the audit ran; rerun on a set "
                                "that stays put.")
        return image

    def take(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self[int(i)] for i in indices]

    def subset(self, indices: Sequence[int]) -> LazyImages:
        return LazyImages(tuple(self.files[i] for i in indices), tuple(self.hashes[i] for i in indices), self.option)


@dataclass(frozen=True)
class ReferenceSet:
    """A checked set, in manifest order: files, captions, content hashes (of the file's bytes: the cache key;
    of its decoded pixels: the overlap check), each image's size, and the images, decoded when read.
    `notes` are sentences about how the set was read (for the report); `thumbnails` are the images as
    (n, 32, 32, 3) uint8 for the near-duplicate check (None: computed from the images when needed)."""

    name: str
    source: Path
    files: tuple[Path, ...]
    captions: tuple[str, ...]
    hashes: tuple[str, ...]
    pixel_hashes: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]  # (height, width)
    option: str = "the reference set"
    notes: tuple[str, ...] = ()
    thumbnails: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def images(self) -> LazyImages:
        return LazyImages(self.files, self.hashes, self.option)

    @property
    def digest(self) -> str:
        """One hash of the whole set: image contents and captions, in order."""
        h = hashlib.sha256()
        for image_hash, caption in zip(self.hashes, self.captions):
            h.update(image_hash.encode())
            h.update(caption.encode())
        return h.hexdigest()

    def subset(self, indices: Sequence[int]) -> ReferenceSet:
        pick = lambda seq: tuple(seq[i] for i in indices)  # noqa: E731
        thumbnails = None if self.thumbnails is None else self.thumbnails[np.asarray(indices, dtype=int)]
        return ReferenceSet(self.name, self.source, pick(self.files), pick(self.captions), pick(self.hashes),
                            pick(self.pixel_hashes), pick(self.sizes), self.option, self.notes, thumbnails)

    def thumbnail_array(self) -> np.ndarray:
        """The (n, 32, 32, 3) uint8 thumbnails: kept from loading, else computed from the images."""
        if self.thumbnails is not None:
            return self.thumbnails
        return np.stack([thumbnail(image) for image in self.images]) if len(self) else _no_thumbnails()


def _read_rows(manifest: Path, option: str) -> list[dict]:
    try:
        text = manifest.read_bytes().decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except OSError as exc:
        raise MiaUsageError(f"{option}: cannot read {manifest}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise MiaUsageError(f"{option}: {manifest} is not UTF-8 text ({exc}); save it as UTF-8 (in Excel: "
                            "'CSV UTF-8').") from None
    return _csv_rows(text, manifest, option) if manifest.suffix == ".csv" else _jsonl_rows(text, manifest, option)


def _jsonl_rows(text: str, manifest: Path, option: str) -> list[dict]:
    """One JSON object per line. Lines end at "\n" only (a trailing "\r" is dropped): str.splitlines would also
    split at U+2028, U+0085 and others, which JSON allows unescaped inside a caption."""
    rows = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MiaUsageError(f"{option}: {manifest} line {number} is not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict):
            raise MiaUsageError(f"{option}: {manifest} line {number} must be a JSON object.")
        rows.append(row)
    return rows


def _header(text: str, delimiter: str) -> list[str]:
    first_line = text.split("\n", 1)[0].removesuffix("\r")
    return [name.strip() for name in next(csv.reader([first_line], delimiter=delimiter), [])]


def _csv_delimiter(text: str, manifest: Path, option: str) -> str:
    """The delimiter (comma, semicolon or tab) that splits the header into a known file column."""
    def fit(delimiter: str) -> tuple[bool, int]:
        names = _header(text, delimiter)
        return any(k in names for k in FILE_KEYS), sum(n in FILE_KEYS + TEXT_KEYS for n in names)

    best = max(CSV_DELIMITERS, key=fit)
    if fit(best)[0]:
        return best
    widest = max(CSV_DELIMITERS, key=lambda d: len(_header(text, d)))
    names = _header(text, widest)
    found = ("no columns" if not any(names) else f"one column {names[0]!r}" if len(names) == 1 else
             f"{len(names)} {CSV_DELIMITERS[widest]}-separated columns {', '.join(map(repr, names))}")
    raise MiaUsageError(
        f"{option}: {manifest} has no image column: its header (first line) has {found}, and none is one of "
        f"{', '.join(FILE_KEYS)} (with the columns separated by commas, semicolons or tabs). Name the column of "
        "image paths file_name and the captions text."
    )


def _csv_rows(text: str, manifest: Path, option: str) -> list[dict]:
    """Rows of a CSV manifest, parsed from a file-like with newline="" so that quoted line breaks (and U+2028)
    stay inside their caption."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_csv_delimiter(text, manifest, option))
    try:
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        return list(reader)
    except csv.Error as exc:
        raise MiaUsageError(f"{option}: {manifest} line {reader.line_num} is not valid CSV ({exc}).") from None


def _find_manifest(path: Path, option: str, captions_required: bool = True) -> Path | None:
    if not path.exists():
        raise MiaUsageError(
            f"{option}: {path} does not exist. Give an image folder with metadata.jsonl, or a .jsonl/.csv manifest."
        )
    if path.is_file():
        if path.suffix not in (".jsonl", ".csv"):
            raise MiaUsageError(f"{option}: {path} is not a .jsonl or .csv manifest.")
        return path
    for name in ("metadata.jsonl", "metadata.csv"):
        if (path / name).is_file():
            return path / name
    if not captions_required:
        return None  # a plain image folder
    raise MiaUsageError(
        f"{option}: {path} has no metadata.jsonl. Add one line per image, "
        '{"file_name": "0001.png", "text": "its caption"} (the format of diffusers\' train_text_to_image.py), '
        "or run caption-less with --mia-captioner=Salesforce/blip-image-captioning-base."
    )


def _value(row: dict, keys: tuple[str, ...]) -> tuple[str, object] | None:
    """The first of `keys` with a value that is not blank, and that value (None: none has one)."""
    return next(((key, row[key]) for key in keys if not _blank(row.get(key))), None)


def _blank(value: object) -> bool:
    """None, a blank string, or a list of nothing but blank strings."""
    if isinstance(value, list):
        return all(isinstance(v, str) and not v.strip() for v in value)
    return value is None or (isinstance(value, str) and not value.strip())


def _file_name(row: dict, manifest: Path, number: int, option: str) -> str:
    """The entry's image path: a string with no control characters that the file system can encode."""
    picked = _value(row, FILE_KEYS)
    if picked is None:
        raise MiaUsageError(f"{option}: {manifest} entry {number} has no file_name: give each entry a "
                            f"'file_name' (or 'image' or 'path'), the image's path relative to the manifest.")
    key, value = picked
    if not isinstance(value, str):
        raise MiaUsageError(f"{option}: {manifest} entry {number}: '{key}' is a {_json_type(value)}, not a path; "
                            "give one image path per entry, as a string.")
    bad = [c for c in value if unicodedata.category(c) == "Cc"]
    if bad:
        raise MiaUsageError(f"{option}: {manifest} entry {number}: '{key}' holds the control character "
                            f"{bad[0]!r}; file names hold none: fix the manifest.")
    try:
        os.fsencode(value)
    except UnicodeError:
        raise MiaUsageError(f"{option}: {manifest} entry {number}: '{key}' holds an unpaired surrogate and cannot "
                            "name a file: fix the manifest.") from None
    return value


def _caption(row: dict, manifest: Path, number: int, option: str, required: bool) -> str | None:
    """The entry's caption: a string, or the first non-empty string of a list (COCO style); None if none.
    A value of another type is an error where captions are required (and ignored in caption-less mode)."""
    picked = _value(row, TEXT_KEYS)
    if picked is None:
        return None
    key, value = picked
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), value)
    if not isinstance(value, str):
        if not required:
            return None
        raise MiaUsageError(f"{option}: {manifest} entry {number}: '{key}' is a {_json_type(picked[1])} "
                            "with no text; give the caption as a string (or a list of strings).")
    try:
        value.encode()
    except UnicodeError:
        raise MiaUsageError(f"{option}: {manifest} entry {number}: '{key}' holds an unpaired surrogate, which is "
                            "not text: fix the manifest.") from None
    return value


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "list", dict: "JSON object"}
    return names.get(type(value), type(value).__name__)


def _open_regular(path: Path, option: str) -> bytes:
    """The bytes of a regular file; a FIFO, device or folder is refused before it is opened (no hang)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MiaUsageError(f"{option}: image {path} listed in the manifest does not exist.") from None
    except OSError as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None
    if not stat.S_ISREG(mode):
        raise MiaUsageError(f"{option}: {path} is not a regular file (a folder, pipe or device); list image files only.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None


def eight_bit(wide: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint8 values of 16-bit pixels, and whether they were 8-bit values. The bit depth is read from the data,
    not the container: when no value exceeds 255 (an 8-bit image saved 16 bits wide, as
    `cv2.imwrite(a.astype(np.uint16))` writes) the values are kept; otherwise 65535 is scaled to 255 (rounded,
    never clipped). A truly 16-bit image that dark (every value under 0.4% of full scale) is read brighter."""
    if int(wide.max(initial=0)) <= 255:
        return wide.astype(np.uint8), True
    return np.round(wide.astype(np.float64) * (255 / 65535)).astype(np.uint8), False


def _rgb(values: np.ndarray) -> np.ndarray:
    """(h, w, planes) → (h, w, 3): grey is repeated, alpha dropped (as PIL's convert("RGB") does)."""
    return np.repeat(values[..., :1], 3, axis=2) if values.shape[2] < 3 else values[..., :3]


def _to_rgb8(image, path: Path, option: str) -> tuple[np.ndarray, bool]:
    """RGB uint8 pixels of a PIL image, and whether they came from a 16-bit image holding 8-bit values."""
    if image.mode.startswith("I;16"):
        gray, narrow = eight_bit(np.asarray(image))
        return _rgb(gray[..., None]), narrow
    if image.mode in ("I", "F"):
        raise MiaUsageError(f"{option}: image {path} has 32-bit {'float' if image.mode == 'F' else 'integer'} pixels "
                            f"(mode {image.mode}) whose range cannot be known; save it as an 8- or 16-bit PNG or JPEG.")
    try:
        return np.asarray(image.convert("RGB")), False
    except (ValueError, OSError) as exc:
        raise MiaUsageError(f"{option}: cannot convert image {path} (mode {image.mode}) to RGB ({exc}); save it as "
                            "an 8-bit RGB or grayscale PNG or JPEG.") from None


def to_rgb8(image, path: Path, option: str) -> np.ndarray:
    """RGB uint8 pixels of a PIL image, by mode: 16-bit grayscale holding 8-bit values is kept, else scaled to
    8 bits (never clipped: `eight_bit`); modes whose range cannot be known (32-bit integer or float) are refused."""
    return _to_rgb8(image, path, option)[0]


def _is_png16_colour(raw: bytes) -> bool:
    """A 16-bit PNG in colour or with alpha (from its IHDR): PIL opens these in 8-bit modes keeping only the
    high byte of each value, which turns 8-bit values held 16 bits wide into black."""
    return raw[:8] == PNG_SIGNATURE and raw[12:16] == b"IHDR" and len(raw) > 25 and raw[24] == 16 \
        and raw[25] in (2, 4, 6)  # colour types: RGB, grey + alpha, RGBA


def _read_png16(raw: bytes, path: Path, option: str) -> np.ndarray:
    """A 16-bit PNG's values, (h, w, planes) uint16, decoded by pypng (PIL has no 16-bit colour mode)."""
    import zlib

    import png

    try:
        width, height, rows, info = png.Reader(bytes=raw).read()  # raw values (asDirect would apply sBIT)
        values = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except (png.Error, zlib.error, ValueError, EOFError) as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None
    return values.reshape(height, width, info["planes"])


def _decode(path: Path, option: str) -> tuple[np.ndarray, str, bool]:
    """RGB uint8 array, sha256 of the file's bytes (and of the 8-bit rule when it applied), and whether it is a
    16-bit file holding 8-bit values."""
    from PIL import Image, UnidentifiedImageError

    raw = _open_regular(path, option)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:  # reads the header: size and bomb checks before decoding
                width, height = image.size
                if min(width, height) < MIN_SIDE:
                    raise MiaUsageError(f"{option}: image {path} is {width}x{height} pixels; images must be at least "
                                        f"{MIN_SIDE}x{MIN_SIDE} to compare with what the model generates.")
                if _is_png16_colour(raw):
                    array, narrow = eight_bit(_rgb(_read_png16(raw, path, option)))
                elif _wide_colour(image):
                    raise MiaUsageError(f"{option}: image {path} is a {image.format} with more than 8 bits per colour "
                                        "channel, which cannot be read exactly here; save it as a PNG (16-bit PNGs are "
                                        "read exactly) or as an 8-bit image.")
                else:
                    array, narrow = _to_rgb8(image, path, option)
    except MiaUsageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MiaUsageError(f"{option}: image {path} is too large to load safely ({exc}); resize it to the "
                            "model's resolution.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MiaUsageError(f"{option}: cannot read image {path} ({exc}). Fix or remove it.") from None
    # The digest keys the white-box and caption caches: an image read under the 8-bit rule gets its own key, so
    # entries computed when such files were read as near-black are not reused.
    digest = hashlib.sha256(raw + (b"\0read as 8-bit values" if narrow else b"")).hexdigest()
    return array, digest, narrow


def _wide_colour(image) -> bool:
    """A colour image (not a PNG: those are read by pypng) with more than 8 bits per channel, which Pillow
    opens in an 8-bit mode: a 16-bit TIFF (raw mode …;16…), a PPM whose maximum value exceeds 255."""
    if image.mode not in ("RGB", "RGBA", "LA", "RGBX"):
        return False
    for tile in image.tile:
        args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
        rawmode = args[0] if args and isinstance(args[0], str) else ""
        maxval = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
        if ";16" in rawmode or (tile.codec_name == "ppm" and maxval > 255):
            return True
    return False


def load_image(path: Path, option: str) -> tuple[np.ndarray, str]:
    """RGB uint8 array and sha256 of the file's bytes; a clear error if it is missing, not a regular file,
    not an image, of an unknown bit depth, tiny, or larger than PIL's decompression-bomb limit. 16-bit
    images (grey, or colour PNGs) are read by `eight_bit`."""
    array, digest, _ = _decode(path, option)
    return array, digest


def thumbnail(image: np.ndarray) -> np.ndarray:
    """32×32 RGB uint8 (bilinear, antialiased when shrinking): what the near-duplicate check compares."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR))


def _no_thumbnails() -> np.ndarray:
    return np.zeros((0, THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3), np.uint8)


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of decoded pixels (and shape): the same for any lossless re-encoding of one image."""
    return hashlib.sha256(f"{image.shape}".encode() + np.ascontiguousarray(image).tobytes()).hexdigest()


def _inside(folder: Path, file_name: str, option: str, manifest: Path, number: int) -> Path:
    """A manifest's path, kept inside the set folder (checked on the path as written: symlinks inside the
    folder are followed, as in Hugging Face's cache layout)."""
    relative = os.path.normpath(file_name)
    if os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep):
        raise MiaUsageError(f"{option}: {manifest} entry {number} ({file_name}) points outside the set folder "
                            f"{folder}; file names are relative to the manifest's folder and stay inside it.")
    return folder / relative


def load_reference_set(path: str | Path, name: str, option: str, min_images: int = MIN_IMAGES,
                       captions_required: bool = True) -> ReferenceSet:
    """Load and check one reference set; `option` names the command-line option in error messages."""
    manifest = _find_manifest(Path(path), option, captions_required)
    if manifest is None:
        manifest = Path(path) / "(image files)"
        rows = [{"file_name": p.name} for p in sorted(Path(path).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        rows = _read_rows(manifest, option)
    files, captions, seen = [], [], {}
    for number, row in enumerate(rows, 1):
        file_name = _file_name(row, manifest, number, option)
        caption = _caption(row, manifest, number, option, captions_required)
        if caption is None and captions_required:
            raise MiaUsageError(
                f"{option}: {manifest} entry {number} ({file_name}) has no caption; every image needs a 'text', "
                "or run caption-less with --mia-captioner=Salesforce/blip-image-captioning-base."
            )
        file = _inside(manifest.parent, file_name, option, manifest, number)
        if file in seen:
            raise MiaUsageError(f"{option}: {manifest} entries {seen[file]} and {number} both list {file_name}; "
                                "each image may appear once: remove the duplicate row.")
        seen[file] = number
        files.append(file)
        captions.append(caption or "")
    if len(files) < min_images:
        raise MiaUsageError(
            f"{option}: {manifest} lists {len(files)} images; at least {min_images} are needed to measure leakage."
        )
    hashes, pixel_hashes, sizes, first, narrow = [], [], [], {}, 0
    thumbnails = np.empty((len(files), THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3), np.uint8)
    for index, file in enumerate(files):  # each image is decoded, checked, hashed, thumbnailed and dropped
        image, digest, was_narrow = _decode(file, option)
        pixels = pixel_hash(image)
        other = first.setdefault(pixels, file)
        if other != file:
            raise MiaUsageError(f"{option}: {other} and {file} hold the same pixels; each image may appear once: "
                                "remove one of them.")
        hashes.append(digest)
        pixel_hashes.append(pixels)
        sizes.append(image.shape[:2])
        thumbnails[index] = thumbnail(image)
        narrow += was_narrow
    notes = (f"{narrow} of {len(files)} images are 16-bit files holding 8-bit values (maximum ≤ 255): read as "
             "8-bit.",) if narrow else ()
    return ReferenceSet(name, Path(path), tuple(files), tuple(captions), tuple(hashes), tuple(pixel_hashes),
                        tuple(sizes), option, notes, thumbnails)


def check_disjoint(members: ReferenceSet, nonmembers: ReferenceSet) -> None:
    """Members and non-members must not share an image, or the verdict is meaningless: no two may hold the
    same decoded pixels (a lossless re-encoding), nor be near duplicates (a lossy re-encoding or a resize):
    32×32 thumbnails within PSNR ≥ 35 dB. Measured: JPEG q95, q75 and q50 copies and copies resized by a few
    pixels score ≥ 36.2 dB (none missed); distinct digits of scikit-learn's set ≤ 30.5 dB (0 false matches in
    1,613,706 pairs). A near duplicate within one set is not an error."""
    options = f"{members.option} and {nonmembers.option}"
    member_pixels = members.pixel_hashes
    shared = set(member_pixels) & set(nonmembers.pixel_hashes)
    if shared:
        examples = [str(f) for f, h in zip(members.files, member_pixels) if h in shared][:3]
        raise MiaUsageError(
            f"{options} share {len(shared)} image(s), e.g. {', '.join(examples)}. "
            "Non-members must be images the model never saw: remove them from one set."
        )
    pairs = near_duplicates(members.thumbnail_array(), nonmembers.thumbnail_array())
    if pairs:
        examples = [f"{members.files[i]} ↔ {nonmembers.files[j]} ({psnr:.1f} dB)" for i, j, psnr in pairs[:3]]
        raise MiaUsageError(
            f"{options} hold {len(pairs)} near-duplicate pair(s) — the same image re-encoded or resized, their "
            f"{THUMBNAIL_SIDE}x{THUMBNAIL_SIDE} thumbnails within PSNR ≥ {NEAR_DUPLICATE_PSNR:g} dB — e.g. "
            f"{'; '.join(examples)}. Non-members must be images the model never saw: remove one image of each "
            "pair from its set."
        )


def near_duplicates(a: np.ndarray, b: np.ndarray, threshold: float = NEAR_DUPLICATE_PSNR,
                    ) -> list[tuple[int, int, float]]:
    """(i, j, PSNR in dB) for every thumbnail pair a[i], b[j] at least `threshold` dB alike, closest first.
    scikit-learn's radius search compares them in chunks: memory stays bounded, and thousands of images per set
    take seconds. NEAR_DUPLICATE_PSNR states the threshold's measured rates."""
    from sklearn.neighbors import NearestNeighbors

    if not len(a) or not len(b):
        return []
    x, y = (t.reshape(len(t), -1).astype(np.float32) / 255 for t in (a, b))
    radius = np.sqrt(x.shape[1] * 10 ** (-threshold / 10))  # PSNR ≥ threshold ⇔ Euclidean distance ≤ radius
    distances, indices = NearestNeighbors(radius=radius, algorithm="brute").fit(x).radius_neighbors(y)
    pairs = [(int(i), j, _psnr(d, x.shape[1])) for j, (ds, ids) in enumerate(zip(distances, indices))
             for d, i in zip(ds, ids)]
    return sorted(pairs, key=lambda pair: -pair[2])


def _psnr(distance: float, size: int) -> float:
    """PSNR in dB of two [0, 1] images `distance` apart (Euclidean, over `size` values)."""
    return float(10 * np.log10(size / max(float(distance) ** 2, 1e-12)))


def balance(members: ReferenceSet, nonmembers: ReferenceSet, seed: int, cap: int | None = None):
    """Equal-sized sets (at most `cap` each), by seeded sampling without replacement; order is kept."""
    size = min(len(members), len(nonmembers), cap or len(members))
    if cap is not None and cap < MIN_IMAGES:  # the minimum applies after the cap
        raise MiaUsageError(f"--mia-max-samples: {cap} is below {MIN_IMAGES}; sets under {MIN_IMAGES} images are "
                            "refused (too few to measure leakage). Raise it or leave it unset.")
    rng = np.random.default_rng(seed)

    def sample(s: ReferenceSet) -> ReferenceSet:
        return s if len(s) == size else s.subset(np.sort(rng.choice(len(s), size, replace=False)))

    return sample(members), sample(nonmembers)
