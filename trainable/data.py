"""Face-parsing data sets on disk: layouts, a validation pass, statistics and the torch Dataset.

Two layouts are read, pairing image and mask by file stem:

- course:  ``<root>/train/train_image/0.jpg`` + ``<root>/train/train_mask/0.png`` (also ``val``,
  and ``test/test_image`` without masks);
- generic: ``<root>/<split>/images`` + ``<root>/<split>/masks`` (or ``labels``).

Masks are 8-bit PNGs, palette or grayscale, holding class indices 0..18. An image larger than its
mask by a whole factor (the full CelebAMask-HQ release pairs 1024 px images with 512 px masks) is
resized to the mask. ``scan_split`` reads every file once, names every problem with its file, and
computes the per-channel mean/std and class pixel counts; the result is cached beside the data
(or in a cache folder when the data folder is read-only) and reused while the files are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainable.audit import audit, column_sums, orientation
from trainable.classes import FLIP_LUT, NUM_CLASSES
from trainable.config import DataConfig
from trainable.decode import decode_pair, image_scale, list_images, read_image, read_mask
from trainable.errors import UserError
from trainable.layout import replacing

__all__ = [
    "DataError",
    "FaceParsingDataset",
    "SplitInfo",
    "cache_root",
    "find_split",
    "fingerprint",
    "has_split",
    "holdout_names",
    "scan_split",
    "train_and_val",
]

CACHE_NAME = ".facesearch-stats.json"
CACHE_VERSION = 2  # 2: with each mask's left/right orientation
MAX_LISTED = 20  # problems printed before "... and N more"


class DataError(UserError):
    """Problems with a data set; each line names a file and what is wrong with it."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more problems"] if more else [])))


def find_split(root: str | Path, split: str, with_masks: bool = True) -> tuple[Path, Path | None]:
    """The image folder and mask folder of ``split`` under ``root``, in either layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError([f"{root}: data folder not found; pass an existing folder with --data"])
    base = root / split
    candidates = [(base / f"{split}_image", (base / f"{split}_mask",)),
                  (base / "images", (base / "masks", base / "labels"))]
    for img_dir, mask_dirs in candidates:
        if img_dir.is_dir():
            if not with_masks:
                return img_dir, None
            for mask_dir in mask_dirs:
                if mask_dir.is_dir():
                    return img_dir, mask_dir
            names = " or ".join(str(m) for m in mask_dirs)
            raise DataError([f"{img_dir}: found images but no mask folder; expected {names}"])
    raise DataError([f"{base}: no '{split}' split; expected {split}/{split}_image (course layout) "
                     f"or {split}/images (generic layout)"])


def has_split(root: str | Path, split: str) -> bool:
    """Whether ``root`` holds ``split`` in either layout (its folders, not yet its files)."""
    base = Path(root) / split
    return (base / f"{split}_image").is_dir() or (base / "images").is_dir()


def holdout_names(images: list[str], fraction: float) -> list[str]:
    """The file names of the training images held out for validation: a ``fraction`` of them (at
    least one), chosen by a hash of each name, so the same files always give the same split whatever
    their order, and adding files moves few of the others."""
    names = sorted(Path(p).name for p in images)
    n = max(1, round(len(names) * fraction))
    if n >= len(names):
        raise DataError([f"data.val_fraction={fraction:g} holds out {n} of {len(names)} training pairs and leaves "
                         f"none to train on; lower it"])
    return sorted(sorted(names, key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:n])


def train_and_val(root: str | Path, data: DataConfig, notes: list[str] | None = None) -> tuple[SplitInfo, SplitInfo]:
    """The training and validation splits of ``data``: the data's own validation
    split, or, when it has none, the training pairs listed in ``data.holdout`` (or drawn by
    ``data.val_fraction``) held out of the training split. The statistics of a held-out split are
    those of the whole training folder."""
    train = scan_split(root, "train", cache_dir=data.cache_dir)
    if has_split(root, "val") and not data.holdout:
        return train, scan_split(root, "val", cache_dir=data.cache_dir)
    if data.holdout:
        try:
            held = set(Path(data.holdout).read_text().split())
        except OSError as e:
            raise DataError([f"{data.holdout}: the list of held-out training images is unreadable ({e.strerror})"]) \
                from None
    else:
        held = set(holdout_names(train.images, data.val_fraction))
    if notes is not None:
        notes.append(f"{Path(root) / 'train'}: no validation split; {len(held)} of {len(train)} training pairs "
                     f"are held out for validation (data.val_fraction={data.val_fraction:g})")
    pick = [Path(p).name in held for p in train.images]

    def part(keep: bool) -> SplitInfo:
        return replace(train, split="val" if keep else "train",
                       images=[p for p, k in zip(train.images, pick) if k == keep],
                       masks=[m for m, k in zip(train.masks, pick) if k == keep],
                       orientations=[o for o, k in zip(train.orientations, pick) if k == keep], notes=[])

    return part(False), part(True)


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


class FaceParsingDataset(torch.utils.data.Dataset):
    """Image/mask pairs through an albumentations transform; yields (CHW float image, HW uint8 mask).

    Pairs come decoded and resized to ``size`` (see ``decode.decode_pair``), from ``arrays`` when
    a decoded-array cache (``array_cache.ArrayCache``) is given. ``native_masks=True`` keeps each
    mask at its file's resolution (the transform then sees only the image) so that validation is scored at the
    resolution the course scores. An item is addressed by its index, or by ``(index, seed)``: the
    transform is reseeded whenever the seed changes, so a batch's augmentation depends on its seed
    alone, not on which worker process draws it.
    """

    def __init__(self, images: list[str], masks: list[str] | None, transform, size: int = 0,
                 native_masks: bool = False, flip_double: bool = False, arrays=None,
                 swap_labels: frozenset[int] = frozenset()):
        self.images, self.masks = images, masks
        self.transform = transform
        self.size = size
        self.native_masks = native_masks
        self.flip_double = flip_double  # items n..2n-1 are the mirrored, label-swapped pairs
        self.swap_labels = swap_labels  # pairs whose mask's left/right labels are exchanged as read (audit)
        self.arrays = arrays
        self._seed: int | None = None

    def __len__(self) -> int:
        return len(self.images) * (2 if self.flip_double else 1)

    def __getitem__(self, key: int | tuple[int, int]):
        i, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None and seed != self._seed:
            self.transform.set_random_seed(seed)
            self._seed = seed
        mirrored = i >= len(self.images)
        i %= len(self.images)
        if self.arrays is not None:
            image, mask = self.arrays[i]
        else:
            image, mask = decode_pair(self.images[i], self.masks[i] if self.masks else None, self.size,
                                      self.native_masks)
        if mask is None:
            return self.transform(image=image)["image"], torch.zeros(0, dtype=torch.uint8)
        if i in self.swap_labels:
            mask = FLIP_LUT[mask]
        if mirrored:
            image, mask = np.ascontiguousarray(image[:, ::-1]), FLIP_LUT[mask[:, ::-1]]
        # masks stay uint8 (the loop widens them on the device): an int64 mask is 8x the bytes to
        # write, collate and send from a worker
        if self.native_masks:
            return self.transform(image=image)["image"], _mask_tensor(mask)
        out = self.transform(image=image, mask=mask)
        return out["image"], _mask_tensor(out["mask"])


def _mask_tensor(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(mask, torch.Tensor):
        return mask
    return torch.from_numpy(mask if mask.flags.writeable else mask.copy())  # a decoded PNG can be read-only
