"""Decoded-array cache: a data set decoded once into uint8 arrays on local disk.

Decoding a JPEG and resizing it costs more than augmenting it, and a search decodes the same
images in every epoch of every trial. The first trial on a node decodes the images (and masks)
once, resized to the training size exactly as the first step of the pipeline would, into two
``.npy`` files; every trial on the node then memory-maps them and shares them through the page
cache. Trials that start together build it once: the builder holds a file lock and writes to a
temporary folder that is renamed into place when complete. The folder name is derived from the
files' paths, sizes and modification times, so a changed data set gets a new cache and the stale
one is removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainable.decode import decode_pair
from trainable.layout import replacing

__all__ = ["ArrayCache", "build_array_cache", "cache_bytes"]

CACHE_VERSION = 1
HEADROOM = 1 << 30  # leave at least this much disk free after building


class ArrayCache:
    """Memory-mapped ``images.npy`` (N, S, S, 3) and ``masks.npy`` (N, H, W) of a built cache folder.

    The arrays are opened lazily in each process, so a Dataset holding this object pickles cheaply
    into DataLoader workers and every worker shares the same pages.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "_images": None, "_masks": None}

    def _open(self) -> None:
        self._images = np.load(self.folder / "images.npy", mmap_mode="r")
        masks = self.folder / "masks.npy"
        self._masks = np.load(masks, mmap_mode="r") if masks.exists() else None

    def __len__(self) -> int:
        if self._images is None:
            self._open()
        return len(self._images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._images is None:
            self._open()
        # copies: the pages are shared and read-only, and augmentations may write in place; and
        # the pipeline runs faster on a fresh copy than on the mapped pages (bench/data_pipeline.py)
        mask = None if self._masks is None else np.array(self._masks[i])
        return np.array(self._images[i]), mask


def _mask_shape(mask_path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(mask_path) as im:
        return im.height, im.width


def cache_bytes(n: int, size: int, mask_hw: tuple[int, int] | None) -> int:
    """Disk bytes of a cache of ``n`` pairs at ``size`` px (masks of ``mask_hw``, or none)."""
    mask = mask_hw[0] * mask_hw[1] if mask_hw else 0
    return n * (size * size * 3 + mask)


def _keys(images: list[str], masks: list[str] | None, size: int, native_masks: bool) -> tuple[str, str]:
    """(which files at which size, which versions of them): a new version replaces the old one."""
    what, version = hashlib.sha1(), hashlib.sha1()
    what.update(f"v{CACHE_VERSION}\0{size}\0{int(native_masks)}\0{int(masks is not None)}\n".encode())
    for path in [*images, *(masks or [])]:
        st = os.stat(path)
        what.update(f"{os.path.abspath(path)}\n".encode())
        version.update(f"{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return what.hexdigest()[:20], version.hexdigest()[:20]


def build_array_cache(images: list[str], masks: list[str] | None, size: int, native_masks: bool,
                      root: Path, workers: int = 4) -> ArrayCache | None:
    """The cache of these pairs under ``root``, built now if missing; ``None`` (with a note) when it
    cannot be used: masks of different sizes kept native, or too little free disk space."""
    group_key, version = _keys(images, masks, size, native_masks)
    group = Path(root) / "arrays" / group_key
    final = group / version
    if (final / "images.npy").exists():
        return ArrayCache(final)
    mask_hw = None
    if masks is not None:
        mask_hw = _mask_shape(masks[0]) if native_masks else (size, size)
        if native_masks and any(_mask_shape(m) != mask_hw for m in masks[1:]):
            return None  # masks of different sizes cannot share one array

    group.mkdir(parents=True, exist_ok=True)
    with open(group / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # trials starting together: one builds, the others wait
        if (final / "images.npy").exists():
            return ArrayCache(final)
        needed = cache_bytes(len(images), size, mask_hw)
        free = shutil.disk_usage(group).free
        if free < needed + HEADROOM:
            print(f"note: decoded-array cache skipped: it needs {needed / 2**30:.1f} GiB and {group} has "
                  f"{free / 2**30:.1f} GiB free; images are decoded on the fly (set data.cache_dir to a "
                  f"larger local disk)", file=sys.stderr)
            return None
        for stale in group.iterdir():  # an older version of these files, or a build that died
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        with replacing(final) as tmp:
            tmp.mkdir()
            _write(tmp, images, masks, size, native_masks, mask_hw, workers)
    return ArrayCache(final)


def _write(folder: Path, images: list[str], masks: list[str] | None, size: int, native_masks: bool,
           mask_hw: tuple[int, int] | None, workers: int) -> None:
    n = len(images)
    image_arr = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    mask_arr = None
    if masks is not None:
        mask_arr = np.lib.format.open_memmap(folder / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, *mask_hw))

    def fill(i: int) -> None:
        image, mask = decode_pair(images[i], masks[i] if masks else None, size, native_masks)
        image_arr[i] = image
        if mask_arr is not None:
            mask_arr[i] = mask

    with ThreadPoolExecutor(max(1, workers)) as pool:  # decoding and resizing release the GIL
        list(pool.map(fill, range(n)))
    image_arr.flush()
    if mask_arr is not None:
        mask_arr.flush()
