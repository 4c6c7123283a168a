"""Losses: weighted cross-entropy, softmax focal, dice, Lovasz-softmax and weighted mixes of them.

Dice and Lovasz come from segmentation_models_pytorch. Focal is written here because smp's
multiclass focal loss is a sum of per-class sigmoid losses, not the softmax focal loss of
Lin et al. that face-parsing work uses; with gamma = 0 ours equals weighted cross-entropy.
Every loss has the same ``forward(logits, target)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from trainable.classes import NUM_CLASSES
from trainable.config import LossConfig

__all__ = ["LOSSES", "REPORT_CLASS_WEIGHTS", "FocalLoss", "MixedLoss", "build_loss", "class_weights"]

# The weights of the CelebAMask face-parsing report (Table II): rare accessories weigh more.
REPORT_CLASS_WEIGHTS = (0.95, 0.95, 0.95, 1, 1, 1, 1.05, 1.05, 1.05, 1.05, 1, 1, 1, 0.95, 1.05, 1.5, 2, 1, 1.05)


def class_weights(scheme: str, class_pixels: Sequence[int] | None = None, power: float = 0.5) -> torch.Tensor | None:
    """Per-class weights: ``none``, ``report``, or ``inverse_freq`` (freq ** -power, mean 1)."""
    if scheme == "none":
        return None
    if scheme == "report":
        return torch.tensor(REPORT_CLASS_WEIGHTS, dtype=torch.float32)
    if scheme == "inverse_freq":
        if class_pixels is None or sum(class_pixels) == 0:
            raise ValueError("inverse_freq class weights need the training masks' class pixel counts")
        freq = np.asarray(class_pixels, dtype=np.float64) / sum(class_pixels)
        freq = np.maximum(freq, freq[freq > 0].min())  # a class never seen weighs like the rarest one
        w = freq ** -power
        return torch.tensor(w / w.mean(), dtype=torch.float32)
    raise ValueError(f"class weight scheme {scheme!r}: valid schemes are none, report, inverse_freq")


class FocalLoss(nn.Module):
    """Softmax focal loss ``-w_y (1 - p_y)^gamma log p_y``, averaged like weighted cross-entropy."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (w * loss).sum() / w.sum()


class _CrossEntropy(nn.CrossEntropyLoss):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.float(), target)


class _Smp(nn.Module):
    """An smp loss computed in float32 (bf16 softmax sums are too coarse for dice/Lovasz)."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits.float(), target)


# name -> factory(config, class weights); weights apply to the pixel-wise losses only
LOSSES: dict[str, Callable[[LossConfig, torch.Tensor | None], nn.Module]] = {
    "ce": lambda cfg, w: _CrossEntropy(weight=w),
    "focal": lambda cfg, w: FocalLoss(cfg.focal_gamma, w),
    "dice": lambda cfg, w: _Smp(smp.losses.DiceLoss(mode="multiclass", from_logits=True)),
    "lovasz": lambda cfg, w: _Smp(smp.losses.LovaszLoss(mode="multiclass", per_image=False, from_logits=True)),
}


class MixedLoss(nn.Module):
    """``sum_i weight_i * loss_i(logits, target)`` over the losses with non-zero weight."""

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]):
        super().__init__()
        self.weights = {name: w for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: m for name, (_, m) in terms.items()})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())


def build_loss(cfg: LossConfig, class_pixels: Sequence[int] | None = None) -> tuple[MixedLoss, nn.Module]:
    """The main loss mix and the auxiliary head's loss (cross-entropy with the same class weights)."""
    w = class_weights(cfg.class_weights, class_pixels, cfg.class_weight_power)
    if w is not None and len(w) != NUM_CLASSES:
        raise ValueError(f"{len(w)} class weights for {NUM_CLASSES} classes")
    weights = {name: getattr(cfg, name) for name in LOSSES}
    if cfg.total > 0:  # a mix searched as shares: only the ratios matter, the scale is fixed
        norm = cfg.total / sum(weights.values())
        weights = {name: v * norm for name, v in weights.items()}
    terms = {name: (weights[name], make(cfg, w)) for name, make in LOSSES.items() if weights[name] > 0}
    return MixedLoss(terms), _CrossEntropy(weight=w)
