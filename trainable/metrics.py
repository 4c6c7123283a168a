"""Data-set-level segmentation metrics with the course evaluator's semantics.

The course evaluator sums, over the whole set, ``I_c = #(pred == gt == c)`` and
``U_c = #(pred == c) + #(gt == c) - I_c`` for every class c in 0..18, then takes
``IoU_c = 100 * I_c / U_c`` and mIoU as the plain mean over all 19 classes, background included,
with no ignore index. A class with zero union over the whole set makes that mean NaN; we keep the
per-class NaN, name the class in ``absent`` and give ``miou`` over the defined classes, so a tiny
validation set does not silently turn into NaN. Whenever every class occurs, ``miou`` equals the
course figure exactly (``course_miou``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainable.classes import CLASSES, NUM_CLASSES

__all__ = ["SegMetrics", "compute_metrics", "confusion_matrix"]


def confusion_matrix(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
                     num_classes: int = NUM_CLASSES) -> torch.Tensor | np.ndarray:
    """``[truth, prediction]`` pixel counts (int64) for class-index arrays of the same shape.

    Torch tensors are counted on their device; numpy arrays give a numpy matrix.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from truth {tuple(target.shape)}")
    n2 = num_classes * num_classes
    if isinstance(pred, np.ndarray):
        idx = target.reshape(-1).astype(np.int64) * num_classes + pred.reshape(-1)
        return np.bincount(idx, minlength=n2).reshape(num_classes, num_classes)
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=n2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegMetrics:
    """Metrics from one confusion matrix; IoU, accuracy and F1 are in percent."""

    iou: np.ndarray  # per class; NaN where the class has zero union over the whole set
    f1: np.ndarray  # per class Dice/F1; NaN where undefined
    acc: float  # pixel accuracy
    miou: float  # mean IoU over the classes with non-zero union
    mean_f1: float
    absent: tuple[str, ...]  # classes with zero union (neither predicted nor present)

    @property
    def course_miou(self) -> float:
        """What the course evaluator prints: NaN if any class is absent from the whole set."""
        return float(np.mean(self.iou))

    def per_class(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(CLASSES, self.iou, strict=False)}


def compute_metrics(conf: torch.Tensor | np.ndarray) -> SegMetrics:
    """IoU, mIoU, pixel accuracy and F1 from a ``[truth, prediction]`` confusion matrix."""
    conf = np.asarray(torch.as_tensor(conf).cpu(), dtype=np.float64)
    inter = np.diag(conf)
    pred_count, gt_count = conf.sum(axis=0), conf.sum(axis=1)
    union = pred_count + gt_count - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = 100.0 * inter / union
        f1 = 100.0 * 2 * inter / (pred_count + gt_count)
    defined = union > 0
    total = conf.sum()
    return SegMetrics(
        iou=iou,
        f1=f1,
        acc=float(100.0 * inter.sum() / total) if total else float("nan"),
        miou=float(iou[defined].mean()) if defined.any() else float("nan"),
        mean_f1=float(f1[defined].mean()) if defined.any() else float("nan"),
        absent=tuple(CLASSES[c] for c in np.flatnonzero(~defined)) if len(conf) == NUM_CLASSES
        else tuple(str(c) for c in np.flatnonzero(~defined)),
    )
