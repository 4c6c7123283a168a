"""Test-time augmentation: multi-scale inference and a horizontal flip that swaps left/right.

For each scale the batch is resized, padded at the bottom and right to a multiple of the
network's stride (smp encoders need it), predicted, cropped back, and the class probabilities are
resized to the output size; with ``flip`` the mirrored batch is predicted
too and its left/right eye, brow and ear channels are exchanged before it is mirrored back. All
predictions are averaged as probabilities, as mmsegmentation's aug_test does. Scales ``[1.0]``
without flip is plain inference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainable.classes import FLIP_LUT, NUM_CLASSES

__all__ = ["FLIP_CHANNELS", "scaled_probs", "tta_probs"]

FLIP_CHANNELS = torch.as_tensor(FLIP_LUT[:NUM_CLASSES].astype("int64"))
STRIDE = 32  # smp encoders need inputs divisible by their output stride


def _predict_padded(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % STRIDE, -w % STRIDE
    if not (ph or pw):
        return model(x)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return model(F.pad(x, (0, pw, 0, ph), mode=mode))[..., :h, :w]


def scaled_probs(model: nn.Module, images: torch.Tensor, scales: Sequence[float], flip: bool,
                 out_size: tuple[int, int]) -> Iterator[tuple[float, bool, torch.Tensor]]:
    """Yield ``(scale, flipped, probabilities at out_size)`` for every scale and flip once.

    Callers that score many combinations (the TTA search) compute these once and average subsets.
    """
    h, w = images.shape[-2:]
    for scale in scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            inp = torch.flip(x, dims=[3]) if flipped else x
            logits = _predict_padded(model, inp).float()
            if flipped:
                logits = torch.flip(logits, dims=[3])[:, FLIP_CHANNELS.to(logits.device)]
            if logits.shape[-2:] != tuple(out_size):
                logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
            yield scale, flipped, logits.softmax(dim=1)


def tta_probs(model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
              out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Mean class probabilities ``[N, C, H, W]`` over scales (and flip), at ``out_size``."""
    out_size = tuple(out_size or images.shape[-2:])
    total, n = None, 0
    for _, _, p in scaled_probs(model, images, scales, flip, out_size):
        total = p if total is None else total + p
        n += 1
    return total / n
