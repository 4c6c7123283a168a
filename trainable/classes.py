"""The 19 CelebAMask-HQ classes and the left/right pairs a horizontal flip exchanges."""

from __future__ import annotations

import numpy as np

__all__ = ["CLASSES", "FLIP_LUT", "FLIP_PAIRS", "NUM_CLASSES", "PALETTE"]

CLASSES = (
    "background", "skin", "nose", "eye_glasses", "left_eye", "right_eye", "left_brow",
    "right_brow", "left_ear", "right_ear", "mouth", "upper_lip", "lower_lip", "hair", "hat",
    "earring", "necklace", "neck", "cloth",
)
NUM_CLASSES = len(CLASSES)

# "Left" is the subject's left, which appears on the image's right: a mirrored face shows the
# subject's left eye where the right eye was, so the labels must be exchanged. Lips do not swap.
FLIP_PAIRS = ((4, 5), (6, 7), (8, 9))
FLIP_LUT = np.arange(256, dtype=np.uint8)  # uint8 lookup table, also a channel permutation
for _a, _b in FLIP_PAIRS:
    FLIP_LUT[_a], FLIP_LUT[_b] = _b, _a

# The palette commonly used to view CelebAMask-HQ masks; the index values are what count.
PALETTE = np.array([
    [0, 0, 0], [204, 0, 0], [76, 153, 0], [204, 204, 0], [51, 51, 255], [204, 0, 204],
    [0, 255, 255], [255, 204, 204], [102, 51, 0], [255, 0, 0], [102, 204, 0], [255, 255, 0],
    [0, 0, 153], [0, 0, 204], [255, 51, 153], [0, 204, 204], [0, 51, 0], [255, 153, 51],
    [0, 204, 0],
], dtype=np.uint8)
