"""The full CelebAMask-HQ release as downloaded, read as a data set of index masks.

The release holds 1024 px images and, instead of index masks, one binary 512 px PNG per face part::

    <root>/CelebA-HQ-img/<id>.jpg
    <root>/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png
    <root>/CelebA-HQ-to-CelebA-mapping.txt      (optional: HQ id -> CelebA file)
    <root>/list_eval_partition.txt              (optional, CelebA's: file -> 0 train, 1 val, 2 test)

``prepare`` paints each face's parts into one index mask, in class order with a later part over an
earlier one (as the release's own preparation script does), in parallel with a progress bar, once,
into the cache, and lays the result out as the generic layout (``train/images`` + ``train/masks``,
the images linked, not copied). With both split files present the official train/val/test split
is used; without them every face is in ``train`` and validation is held out of it
(``data.val_fraction``). The user's files are never changed; the conversion is redone only when
the release's files change.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from trainable.decode import image_scale, list_images, write_mask
from trainable.folders import DATA_LAYOUTS, DataError
from trainable.layout import replacing
from trainable.scan import cache_root, fingerprint

__all__ = ["ANNO_DIR", "IMAGE_DIR", "MAPPING_FILE", "PARTITION_FILE", "PARTS", "combine_parts", "is_release",
           "prepare"]

IMAGE_DIR = "CelebA-HQ-img"
ANNO_DIR = "CelebAMask-HQ-mask-anno"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
PARTITION_FILE = "list_eval_partition.txt"
# classes 1..18 in this order (trainable.classes.CLASSES); painted in this order, later over earlier
PARTS = ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth", "u_lip",
         "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
SPLITS = {"0": "train", "1": "val", "2": "test"}  # list_eval_partition.txt's codes
VERSION = 1  # of the converted folder: a change of how masks are painted bumps it
_PART_FILE = re.compile(r"^(\d+)_(" + "|".join(PARTS) + r")\.png$")


def is_release(root: str | Path) -> bool:
    """Whether ``root`` is laid out as the CelebAMask-HQ release (either of its two folders)."""
    root = Path(root)
    return (root / IMAGE_DIR).is_dir() or (root / ANNO_DIR).is_dir()


def combine_parts(parts: dict[str, Path]) -> tuple[np.ndarray | None, list[str]]:
    """One face's index mask from its part PNGs (``{part: path}``), and the problems found."""
    mask, size, problems = None, None, []
    for cls, part in enumerate(PARTS, start=1):
        path = parts.get(part)
        if path is None:
            continue
        try:
            with Image.open(path) as im:
                im.load()
                pixels = np.asarray(im)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            problems.append(f"{path}: unreadable or truncated part PNG ({e}); re-download it")
            continue
        if pixels.ndim == 3:  # the release's part PNGs are grey stored as RGB; its script reads channel 0
            pixels = pixels[..., 0]
        values = np.unique(pixels)
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            problems.append(f"{path}: not a binary part mask (values {values[:6].tolist()}"
                            f"{' ...' if len(values) > 6 else ''}); a part PNG holds 0 and one other value")
            continue
        if size is None:
            size, mask = pixels.shape, np.zeros(pixels.shape, np.uint8)
        elif pixels.shape != size:
            problems.append(f"{path}: part is {pixels.shape[1]}x{pixels.shape[0]} but the face's other parts are "
                            f"{size[1]}x{size[0]}; every part PNG of a face must have the same size")
            continue
        mask[pixels != 0] = cls
    return mask, problems


def _find(root: Path, name: str) -> Path | None:
    for where in (root, root / "Anno", root / "Eval"):  # CelebA's own folders for its lists
        if (where / name).is_file():
            return where / name
    return None


def _official_split(root: Path, ids: list[str], notes: list[str]) -> dict[str, str] | None:
    """HQ id -> split name from the two split files, or ``None`` when they are not both there."""
    mapping, partition = _find(root, MAPPING_FILE), _find(root, PARTITION_FILE)
    if not mapping or not partition:
        if mapping or partition:
            have, lack = (MAPPING_FILE, PARTITION_FILE) if mapping else (PARTITION_FILE, MAPPING_FILE)
            notes.append(f"{root}: found {have} but not {lack}; without both the official split is unknown, "
                         f"so validation is held out of the training faces")
        return None
    try:
        hq_to_file = {}
        for line in mapping.read_text().splitlines()[1:]:  # header: idx orig_idx orig_file
            fields = line.split()
            if len(fields) >= 3:
                hq_to_file[fields[0]] = fields[2]
        file_to_code = dict(line.split()[:2] for line in partition.read_text().splitlines() if len(line.split()) >= 2)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError([f"{mapping}: unreadable split file ({e}); re-download it or remove it"]) from None
    split, problems = {}, []
    for hq in ids:
        code = file_to_code.get(hq_to_file.get(str(int(hq)), ""))
        if code not in SPLITS:
            problems.append(f"{mapping}: face {hq} has no split in {MAPPING_FILE} + {PARTITION_FILE}; "
                            f"use the release's files or remove both to hold out a validation split")
        else:
            split[hq] = SPLITS[code]
    if problems:
        raise DataError(problems)
    return split


def _faces(root: Path) -> tuple[dict[str, Path], dict[str, dict[str, Path]], list[str]]:
    """The release's images and part PNGs by face id; refuses a release missing either folder."""
    image_dir, anno_dir = root / IMAGE_DIR, root / ANNO_DIR
    if not anno_dir.is_dir():
        raise DataError([f"{root}: found {IMAGE_DIR} but no {ANNO_DIR} folder; the release's part masks are "
                         f"expected in {anno_dir}/<k>/<id:05d>_<part>.png - unpack them there"])
    if not image_dir.is_dir():
        raise DataError([f"{root}: found {ANNO_DIR} but no {IMAGE_DIR} folder; unpack the release's images "
                         f"into {image_dir}"])
    notes: list[str] = []
    images = list_images(image_dir, notes)
    parts: dict[str, dict[str, Path]] = {}
    for p in sorted(anno_dir.glob("*/*.png")):
        m = _PART_FILE.match(p.name)
        if not m:
            notes.append(f"{p}: not named <id:05d>_<part>.png with a known part, ignored")
            continue
        parts.setdefault(str(int(m[1])), {})[m[2]] = p
    problems = [f"{images[i]}: no part PNGs for face {i} in {anno_dir}/{int(i) // 2000}/ "
                f"(expected e.g. {int(i):05d}_skin.png)" for i in images if i not in parts]
    problems += [f"{next(iter(parts[i].values()))}: parts of face {i} but no image {image_dir}/{i}.jpg"
                 for i in parts if i not in images]
    if problems:
        raise DataError(problems)
    if not images:
        raise DataError([f"{image_dir}: no images; unpack the release's images there"])
    return images, parts, notes


def _convert(root: Path, out: Path, key: str, workers: int) -> None:
    images, parts, notes = _faces(root)
    ids = sorted(images, key=int)
    split = _official_split(root, ids, notes) or dict.fromkeys(ids, "train")
    folders = DATA_LAYOUTS["generic"]  # what the data check reads: <split>/images + <split>/masks
    for name in set(split.values()):
        folders.image_dir(out, name).mkdir(parents=True)
        folders.mask_dirs(out, name)[0].mkdir()

    def one(hq: str) -> list[str]:
        mask, problems = combine_parts(parts[hq])
        if mask is None:
            return problems
        with Image.open(images[hq]) as im:  # the header only: the size, without decoding 1024 px
            width, height = im.size
        if not image_scale((height, width), mask.shape):
            return [*problems, f"{images[hq]}: image is {width}x{height} but its parts are {mask.shape[1]}x"
                               f"{mask.shape[0]}; the image must be the parts' size or a whole multiple of it"]
        if problems:
            return problems
        write_mask(mask, folders.mask_dirs(out, split[hq])[0] / f"{hq}.png")
        target = folders.image_dir(out, split[hq]) / images[hq].name
        try:
            target.symlink_to(images[hq].resolve())
        except OSError:  # a file system without symbolic links
            shutil.copyfile(images[hq], target)
        return []

    problems: list[str] = []
    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL decodes and zlib encodes without the GIL
        for found in tqdm(pool.map(one, ids), total=len(ids), desc=f"combining part masks of {root.name}",
                          unit="face", disable=None, leave=False):
            problems += found
    if problems:
        raise DataError(problems)
    counts = {name: n for name in SPLITS.values() if (n := sum(1 for s in split.values() if s == name))}
    meta = {"version": VERSION, "source": str(root), "fingerprint": key, "faces": counts,
            "official_split": set(split.values()) != {"train"}, "notes": notes}
    (out / "release.json").write_text(json.dumps(meta, indent=2) + "\n")


def prepare(root: str | Path, cache_dir: str = "", workers: int = 0) -> Path:
    """The release at ``root`` as a generic-layout folder in the cache, converted on first use.

    Safe when several trials start at once: one converts under a lock into a temporary folder and
    renames it into place; the others wait and reuse it.
    """
    root = Path(root).expanduser().resolve()
    if not (root / ANNO_DIR).is_dir() or not (root / IMAGE_DIR).is_dir():
        _faces(root)  # raises the one-line error naming what is missing
    folders = [root / IMAGE_DIR, *sorted(p for p in (root / ANNO_DIR).iterdir() if p.is_dir())]
    split_files = [p for p in (_find(root, MAPPING_FILE), _find(root, PARTITION_FILE)) if p]
    key = hashlib.sha1(f"{VERSION}\0{fingerprint(folders)}\0".encode()
                       + b"".join(p.read_bytes() for p in split_files)).hexdigest()
    base = Path(cache_dir) if cache_dir else cache_root()
    out = base / f"release-{hashlib.sha1(str(root).encode()).hexdigest()[:16]}"
    if _converted(out) == key:
        return out
    base.mkdir(parents=True, exist_ok=True)
    lock = os.open(base, os.O_RDONLY)  # the cache folder itself is the lock: a refused release leaves no file
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _converted(out) != key:  # a stale conversion (the release changed) is replaced whole
            with replacing(out, replace_folder=True) as tmp:
                _convert(root, tmp, key, workers or min(8, os.cpu_count() or 1))
    finally:
        os.close(lock)
    return out


def _converted(out: Path) -> str | None:
    try:
        return json.loads((out / "release.json").read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None
