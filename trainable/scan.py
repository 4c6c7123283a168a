"""The data check of one split: every file read once, every problem named with its file, and the
statistics training needs, cached while the files are unchanged.

Masks are 8-bit PNGs, palette or grayscale, holding class indices 0..18. An image larger than its
mask by a whole factor (the full CelebAMask-HQ release pairs 1024 px images with 512 px masks) is
resized to the mask. ``scan_split`` computes the per-channel mean/std, the class pixel counts and
each mask's left/right orientation (``trainable.audit``); the result is cached beside the data (or
in a cache folder when the data folder is read-only).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from trainable.audit import audit, column_sums, orientation
from trainable.classes import NUM_CLASSES
from trainable.decode import image_scale, list_images, read_image, read_mask
from trainable.folders import DataError, find_split
from trainable.layout import replacing

__all__ = ["SplitInfo", "cache_root", "fingerprint", "scan_split"]

CACHE_NAME = ".facesearch-stats.json"
CACHE_VERSION = 2  # 2: with each mask's left/right orientation


@dataclass
class SplitInfo:
    """A validated split: its pairs and the statistics computed in the same pass."""

    split: str
    images: list[str]
    masks: list[str] | None
    mean: list[float] = field(default_factory=list)  # RGB, in 0..1
    std: list[float] = field(default_factory=list)
    class_pixels: list[int] = field(default_factory=list)  # per class, over all masks
    mask_sizes: list[list[int]] = field(default_factory=list)  # distinct (h, w)
    orientations: list[int] = field(default_factory=list)  # per mask: +1, -1 or 0 (audit.orientation)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


def _check_pair(img_path: Path, mask_path: Path | None) -> tuple[list[str], np.ndarray | None]:
    """Problems found in one pair, and [sum R, G, B, sum R^2.., pixels, class counts.., h, w, left/right
    orientation (``audit.orientation``)]."""
    problems: list[str] = []
    try:
        img = read_image(img_path)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return [f"{img_path}: unreadable or truncated image ({e}); re-export or remove it"], None
    stats = [img.reshape(-1, 3).sum(0, dtype=np.float64),
             np.square(img.reshape(-1, 3), dtype=np.float64).sum(0), [img.shape[0] * img.shape[1]]]
    counts, size, vote = np.zeros(NUM_CLASSES), [0, 0], [0]
    if mask_path is not None:
        try:
            mask = read_mask(mask_path)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            return [f"{mask_path}: {e}" if isinstance(e, ValueError)
                    else f"{mask_path}: unreadable or truncated mask ({e}); re-export or remove it"], None
        top = int(mask.max(initial=0))
        if top >= NUM_CLASSES:
            bad = np.unique(mask[mask >= NUM_CLASSES])[:5].tolist()
            problems.append(f"{mask_path}: mask values {bad} outside 0..{NUM_CLASSES - 1}; "
                            f"masks must hold class indices")
        else:
            counts, columns = column_sums(mask)
            vote = [orientation(counts, columns)]
        if not image_scale(img.shape[:2], mask.shape[:2]):
            problems.append(
                f"{img_path}: image is {img.shape[1]}x{img.shape[0]} but its mask is "
                f"{mask.shape[1]}x{mask.shape[0]}; the image must be the mask's size or a whole "
                f"multiple of it (e.g. 1024 px for a 512 px mask)")
        size = list(mask.shape[:2])
    return problems, np.concatenate([*stats, counts, size, vote])


def fingerprint(folders: list[Path]) -> str:
    h = hashlib.sha1()
    for folder in folders:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            st = entry.stat()
            h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_root() -> Path:
    """Where derived data lives (``$FACESEARCH_CACHE`` or ``~/.cache/facesearch``)."""
    return Path(os.environ.get("FACESEARCH_CACHE") or Path.home() / ".cache" / "facesearch")


def _cache_paths(root: Path, cache_dir: str) -> list[Path]:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    fallback = Path(cache_dir) if cache_dir else cache_root()
    return [root / CACHE_NAME, fallback / f"stats-{key}.json"]


def _load_cached(paths: list[Path], entry: str) -> dict | None:
    for p in paths:
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if data.get("version") == CACHE_VERSION and entry in data.get("entries", {}):
            return data["entries"][entry]
    return None


def _store_cached(paths: list[Path], entry: str, value: dict) -> None:
    for p in paths:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError):
                data = {}
            if data.get("version") != CACHE_VERSION:
                data = {"version": CACHE_VERSION, "entries": {}}
            data["entries"][entry] = value
            with replacing(p) as tmp:  # trials starting together never read a half-written file
                tmp.write_text(json.dumps(data))
            return
        except OSError:
            continue  # read-only data folder: fall back to the cache folder


def scan_split(root: str | Path, split: str, with_masks: bool = True, cache_dir: str = "",
               workers: int = 4) -> SplitInfo:
    """Validate every pair of a split and compute its statistics (cached while files are unchanged).

    Raises ``DataError`` listing every problem, one line per file.
    """
    root = Path(root)
    img_dir, mask_dir = find_split(root, split, with_masks)
    folders = [img_dir] + ([mask_dir] if mask_dir else [])
    entry = f"{split}:{int(with_masks)}:{fingerprint(folders)}"
    caches = _cache_paths(root, cache_dir)
    cached = _load_cached(caches, entry)
    if cached is not None:
        return SplitInfo(**cached)

    notes: list[str] = []
    images = list_images(img_dir, notes)
    masks = list_images(mask_dir, notes) if mask_dir else {}
    problems = []
    if mask_dir:
        problems += [f"{images[s]}: image without mask (expected {mask_dir / s}.png)"
                     for s in images if s not in masks]
        problems += [f"{masks[s]}: mask without image in {img_dir}" for s in masks if s not in images]
    stems = [s for s in images if not mask_dir or s in masks]
    if not stems:
        problems.append(f"{img_dir}: split '{split}' is empty; it needs at least one "
                        f"{'image/mask pair' if mask_dir else 'image'}")
        raise DataError(problems)

    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL decodes without holding the GIL
        results = list(pool.map(lambda s: _check_pair(images[s], masks.get(s)), stems))
    rows = []
    for found, row in results:
        problems += found
        if row is not None:
            rows.append(row)
    if problems:
        raise DataError(problems)

    acc = np.sum(rows, axis=0)
    pixels = acc[6]
    mean = acc[0:3] / pixels / 255.0
    std = np.sqrt(np.maximum(acc[3:6] / pixels / 255.0**2 - mean**2, 0.0))
    sizes = sorted({(int(r[-3]), int(r[-2])) for r in rows}) if mask_dir else []
    orientations = [int(r[-1]) for r in rows] if mask_dir else []
    if mask_dir:
        named = {"train": "training", "val": "validation"}.get(split, split)
        note = audit(named, [str(masks[s]) for s in stems], orientations).note()
        notes += [note] if note else []
    info = SplitInfo(
        split=split,
        images=[str(images[s]) for s in stems],
        masks=[str(masks[s]) for s in stems] if mask_dir else None,
        mean=mean.tolist(),
        std=np.maximum(std, 1e-3).tolist(),
        class_pixels=[int(x) for x in acc[7:7 + NUM_CLASSES]],
        mask_sizes=[list(s) for s in sizes],
        orientations=orientations,
        notes=notes,
    )
    _store_cached(caches, entry, asdict(info))
    return info
