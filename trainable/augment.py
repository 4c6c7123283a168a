"""Albumentations pipelines built from the config.

Geometry is applied to image and mask together (nearest-neighbour for masks, borders filled with
background 0); photometric changes and cutout touch the image only. The horizontal flip swaps the
subject's left/right labels, which albumentations' own flip (like mmsegmentation's) does not.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from trainable.classes import FLIP_LUT
from trainable.config import AugConfig
from trainable.solution import eval_transform, normalize

__all__ = ["HorizontalFlipSwap", "eval_transform", "train_transform"]


class HorizontalFlipSwap(A.HorizontalFlip):
    """Horizontal flip that also exchanges left/right eye, brow and ear labels in the mask."""

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        return FLIP_LUT[np.ascontiguousarray(mask[:, ::-1])]


def train_transform(aug: AugConfig, size: int, mean: list[float], std: list[float]) -> A.Compose:
    """Training pipeline: resize, flip, rescale-crop, rotate, colour jitter, cutout, normalise."""
    ops: list = [A.Resize(size, size)]
    if aug.flip_p > 0:
        flip = HorizontalFlipSwap if aug.flip_swap else A.HorizontalFlip
        ops.append(flip(p=aug.flip_p))
    if (aug.scale_min, aug.scale_max) != (1.0, 1.0):
        ops += [
            A.RandomScale(scale_limit=(aug.scale_min - 1, aug.scale_max - 1), p=1.0),
            A.PadIfNeeded(size, size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            A.RandomCrop(size, size),
        ]
    if aug.rotate_p > 0 and aug.rotate_limit > 0:
        ops.append(A.Rotate(limit=aug.rotate_limit, border_mode=cv2.BORDER_CONSTANT, fill=0,
                            fill_mask=0, p=aug.rotate_p))
    s = aug.jitter_scale
    jitter = (aug.jitter_brightness * s, aug.jitter_contrast * s, aug.jitter_saturation * s,
              min(aug.jitter_hue * s, 0.5))
    if aug.jitter_p > 0 and any(jitter):
        b, c, sat, h = jitter
        ops.append(A.ColorJitter(brightness=(max(0, 1 - b), 1 + b), contrast=(max(0, 1 - c), 1 + c),
                                 saturation=(max(0, 1 - sat), 1 + sat), hue=(-h, h), p=aug.jitter_p))
    if aug.cutout_p > 0 and aug.cutout_max > 0:
        lo = max(aug.cutout_min, 1.0 / size)
        # fill_mask=None keeps the labels under a hole: the model learns to see through occluders
        ops.append(A.CoarseDropout(num_holes_range=(1, aug.cutout_holes), hole_height_range=(lo, aug.cutout_max),
                                   hole_width_range=(lo, aug.cutout_max), fill=0, fill_mask=None,
                                   p=aug.cutout_p))
    return A.Compose(ops + normalize(mean, std))


