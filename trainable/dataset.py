"""The torch Dataset of a run: decoded pairs through an albumentations transform."""

from __future__ import annotations

import numpy as np
import torch

from trainable.classes import FLIP_LUT
from trainable.decode import decode_pair

__all__ = ["FaceParsingDataset"]


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
