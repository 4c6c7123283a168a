"""Test-time augmentation: multi-scale inference and a horizontal flip that swaps left/right.

The computation is ``trainable.solution``'s (the standalone ``run.py`` a submission ships, so that
the package and the submission predict alike); here it is bound to the 19 classes' left/right pairs.
Scales ``[1.0]`` without flip is plain inference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from trainable import solution
from trainable.classes import FLIP_LUT, NUM_CLASSES

__all__ = ["FLIP_CHANNELS", "scaled_probs", "tta_probs"]

FLIP_CHANNELS = torch.as_tensor(FLIP_LUT[:NUM_CLASSES].astype("int64"))


def scaled_probs(model: nn.Module, images: torch.Tensor, scales: Sequence[float], flip: bool,
                 out_size: tuple[int, int]) -> Iterator[tuple[float, bool, torch.Tensor]]:
    """Yield ``(scale, flipped, probabilities at out_size)`` for every scale and flip once.

    Callers that score many combinations (the TTA search) compute these once and average subsets.
    """
    return solution.scaled_probs(model, images, scales, flip, out_size, FLIP_CHANNELS)


def tta_probs(model: nn.Module, images: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False,
              out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Mean class probabilities ``[N, C, H, W]`` over scales (and flip), at ``out_size``."""
    return solution.tta_probs(model, images, scales, flip, out_size, FLIP_CHANNELS)
