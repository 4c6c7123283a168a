"""Images and masks on disk: listing a folder's images, decoding one image/mask pair as every reader
of the data does it, and writing a mask.

A leaf module (no torch): the data sets, the decoded-array cache, prediction and the evaluator all
decode through it, so that a cached pair is bit-identical to a decoded one.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
from PIL import Image

from trainable.classes import NUM_CLASSES, PALETTE
from trainable.errors import UserError

__all__ = ["IMAGE_EXTS", "decode_pair", "image_scale", "list_images", "read_image", "read_mask", "write_mask"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: Path, notes: list[str]) -> dict[str, Path]:
    """The images of ``folder`` by stem, sorted; hidden files and files that are not images are noted in
    ``notes`` and skipped. Two images with one stem are refused: a mask is named by its image's stem."""
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            notes.append(f"{p}: {'hidden' if p.name.startswith('.') else 'not an image'}, ignored")
        elif p.stem in files:
            raise UserError(f"{files[p.stem]} and {p.name} share the stem '{p.stem}', and a mask is named by its "
                            f"image's stem ({p.stem}.png); rename or remove one of them")
        else:
            files[p.stem] = p
    return files


def write_mask(mask: np.ndarray, path: Path) -> None:
    """``mask`` (class indices) as an 8-bit PNG with the CelebAMask-HQ palette: indices to a program,
    colours to a person."""
    png = Image.fromarray(mask, mode="P")
    png.putpalette(PALETTE.flatten().tolist())
    png.save(path)


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 array; raises OSError for unreadable or truncated files."""
    with Image.open(path) as im:
        im.load()  # forces a full decode: a truncated file fails here, not later
        return np.asarray(im.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """Class-index uint8 array from an 8-bit palette or grayscale PNG."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            what = "an RGB colour mask" if im.mode.startswith("RGB") else f"mode {im.mode}"
            raise ValueError(f"is {what}; masks must be 8-bit palette or grayscale PNGs holding "
                             f"class indices 0..{NUM_CLASSES - 1}")
        im.load()
        return np.asarray(im)


def image_scale(image_hw: tuple[int, int], mask_hw: tuple[int, int]) -> int:
    """Whole factor by which the image is larger than its mask, or 0 if they do not fit."""
    (h, w), (mh, mw) = image_hw, mask_hw
    if h % mh or w % mw or h // mh != w // mw:
        return 0
    return h // mh


def decode_pair(image_path: str | Path, mask_path: str | Path | None, size: int, native_masks: bool
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """One pair as the training pipeline first sees it: the image brought to its mask's size (a whole
    multiple of it), then image and mask resized to ``size`` (the mask kept as is with ``native_masks``;
    nothing resized when ``size`` is 0)."""
    image = read_image(Path(image_path))
    mask = read_mask(Path(mask_path)) if mask_path else None
    if mask is not None and image.shape[:2] != mask.shape[:2]:
        image = cv2.resize(image, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA)
    if size <= 0:
        return image, mask
    resize = A.Resize(size, size)  # the very transform the pipelines start with, so results are identical
    if mask is None or native_masks:
        return resize(image=image)["image"], mask
    out = resize(image=image, mask=mask)
    return out["image"], out["mask"]
