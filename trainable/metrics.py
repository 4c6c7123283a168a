"""Data-set-level segmentation metrics with the course evaluator's semantics.

The course evaluator sums, over the whole set, ``I_c = #(pred == gt == c)`` and
``U_c = #(pred == c) + #(gt == c) - I_c`` for every class c in 0..18, then takes
``IoU_c = 100 * I_c / U_c`` and mIoU as the plain mean over all 19 classes, background included,
with no ignore index. A class with zero union over the whole set makes that mean NaN; we keep the
per-class NaN, name the class in ``absent`` and give ``miou`` over the defined classes, so a tiny
validation set does not silently turn into NaN. Whenever every class occurs, ``miou`` equals the
course figure exactly (``course_miou``).

The 2025 edition scores a per-image F-score instead (``image_fscores``): in each image, for every
class present in its ground truth, F1 from that image's pixel counts with 1e-7 in each denominator,
averaged over those classes; the set's score is the mean over images, in 0..1 as the grader gives
it. A class predicted where the truth lacks it is not scored itself: its pixels count only as
misses (false negatives) of the true classes there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trainable.classes import CLASSES, NUM_CLASSES
from trainable.errors import UserError

if TYPE_CHECKING:
    import torch

# torch is imported by the functions that count: the registry below is read by the command line's
# help and checks, which answer before torch loads

__all__ = ["DEFAULT_METRIC", "METRICS", "NLL_FLOOR", "SEARCH_METRICS", "Metric", "SegMetrics", "axis_label",
           "class_argmax", "compute_metrics", "confusion_matrix", "image_confusion", "image_fscores", "image_mious",
           "prob_nll", "scores", "search_metric"]

EPS = 1e-7  # in each denominator of the 2025 grader's precision, recall and F1
NLL_FLOOR = 1e-8  # a probability below it counts as it in the NLL: one confident miss is not an infinite loss


def confusion_matrix(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
                     num_classes: int = NUM_CLASSES) -> torch.Tensor | np.ndarray:
    """``[truth, prediction]`` pixel counts (int64) for class-index arrays of the same shape.

    Torch tensors are counted on their device; numpy arrays give a numpy matrix.
    """
    import torch

    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from truth {tuple(target.shape)}")
    n2 = num_classes * num_classes
    if isinstance(pred, np.ndarray):
        idx = target.reshape(-1).astype(np.int64) * num_classes + pred.reshape(-1)
        return np.bincount(idx, minlength=n2).reshape(num_classes, num_classes)
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=n2).reshape(num_classes, num_classes)


def image_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """One ``[truth, prediction]`` confusion matrix per image of a ``(B, H, W)`` batch: ``(B, C, C)``."""
    import torch

    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from truth {tuple(target.shape)}")
    b, n2 = pred.shape[0], num_classes * num_classes
    # int32, not int64: at 512 px the index arithmetic otherwise costs more than the counting
    offset = torch.arange(b, device=pred.device, dtype=torch.int32).view(b, *[1] * (pred.dim() - 1)) * n2
    idx = target.to(torch.int32, copy=True).mul_(num_classes).add_(pred).add_(offset).reshape(-1)
    return torch.bincount(idx, minlength=b * n2).reshape(b, num_classes, num_classes)


def class_argmax(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores.max(dim=1)`` of ``(B, C, H, W)`` scores: each pixel's highest score and the first class
    that has it (as ``argmax``), by one pass over each class's plane. (``argmax`` over the class
    dimension reads each pixel's C scores a plane apart, several times slower at 512 px.)"""
    import torch

    best = scores[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8, device=scores.device)
    for k in range(1, scores.shape[1]):
        plane = scores[:, k]
        index.masked_fill_(plane > best, k)  # strictly higher: a tie keeps the first class
        torch.maximum(best, plane, out=best)
    return best, index


def prob_nll(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed ``-log(max(probs[target], NLL_FLOOR))`` over a ``(B, C, H, W)`` batch (float64)."""
    import torch

    picked = probs.gather(1, target.long().unsqueeze(1)).squeeze(1)
    return -picked.clamp_min_(NLL_FLOOR).log_().sum(dtype=torch.float64)


def image_fscores(confs: torch.Tensor | np.ndarray) -> np.ndarray:
    """The 2025 grader's F-score of each image from its confusion matrix (``(B, C, C)`` or ``(C, C)``)."""
    import torch

    conf = np.asarray(torch.as_tensor(confs).cpu(), dtype=np.float64).reshape(-1, *np.shape(confs)[-2:])
    tp = np.diagonal(conf, axis1=1, axis2=2)
    gt, pred = conf.sum(axis=2), conf.sum(axis=1)
    precision = tp / (pred + EPS)  # TP / (TP + FP + 1e-7)
    recall = tp / (gt + EPS)  # TP / (TP + FN + 1e-7)
    f1 = 2 * precision * recall / (precision + recall + EPS)
    present = gt > 0
    return np.where(present, f1, 0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def image_mious(confs: torch.Tensor | np.ndarray) -> np.ndarray:
    """Each image's own mIoU (%) from its confusion matrix (``(B, C, C)`` or ``(C, C)``): the course's
    formula on that image alone, over the classes in its truth or its prediction."""
    import torch

    conf = np.asarray(torch.as_tensor(confs).cpu(), dtype=np.float64).reshape(-1, *np.shape(confs)[-2:])
    inter = np.diagonal(conf, axis1=1, axis2=2)
    union = conf.sum(axis=1) + conf.sum(axis=2) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, 100.0 * inter / union, 0.0)
    return iou.sum(axis=1) / np.maximum((union > 0).sum(axis=1), 1)


@dataclass(frozen=True)
class SegMetrics:
    """Metrics from one confusion matrix; IoU, accuracy and F1 are in percent."""

    iou: np.ndarray  # per class; NaN where the class has zero union over the whole set
    f1: np.ndarray  # per class Dice/F1; NaN where undefined
    acc: float  # pixel accuracy
    miou: float  # mean IoU over the classes with non-zero union
    mean_f1: float
    absent: tuple[str, ...]  # classes with zero union (neither predicted nor present)
    fscore: float = float("nan")  # the 2025 per-image F-score (0..1), from per-image counts

    @property
    def course_miou(self) -> float:
        """What the course evaluator prints: NaN if any class is absent from the whole set."""
        return float(np.mean(self.iou))

    def per_class(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(CLASSES, self.iou, strict=False)}


def compute_metrics(conf: torch.Tensor | np.ndarray) -> SegMetrics:
    """IoU, mIoU, pixel accuracy and F1 from a ``[truth, prediction]`` confusion matrix."""
    import torch

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


@dataclass(frozen=True)
class Metric:
    """A number every epoch of a trial reports, under its key in ``METRICS``."""

    name: str  # as the summary, the tables and the plots show it
    meaning: str  # for a report's readers
    of: Callable[[SegMetrics], float] | None = None  # from the validation's metrics; None: the loop's own figure
    searchable: bool = False  # a search may rank trials by it (--metric)
    fmt: str = ".2f"  # how the summary, retrain and tta print it
    unit: str = ""  # for an axis label: "%", or none for a score in 0..1 or a loss
    # a searchable metric's score of one image, from per-image confusion matrices (the worst images)
    per_image: Callable[[torch.Tensor | np.ndarray], np.ndarray] | None = None


# every per-epoch figure, by the key trials report it under; the searchable ones are what --metric takes
METRICS = {
    "val_miou": Metric("val mIoU", "the course's mIoU (19 classes, background included)", lambda m: m.miou,
                       searchable=True, unit="%", per_image=image_mious),
    "val_fscore": Metric("val F-score", "the 2025 grader's per-image F-score (0..1: per image, the mean F1 of the "
                                        "classes in its ground truth; then the mean over images)",
                         lambda m: m.fscore, searchable=True, fmt=".4f", per_image=image_fscores),
    "val_acc": Metric("pixel acc", "pixel accuracy", lambda m: m.acc, unit="%"),
    "val_mean_f1": Metric("val mean F1", "the mean over classes of the set's F1", lambda m: m.mean_f1, unit="%"),
    "val_loss": Metric("val loss", "the loss on the validation set", fmt=".4f"),
    "train_loss": Metric("train loss", "the mean training loss of the epoch", fmt=".4f"),
    "lr": Metric("lr", "the learning rate at the end of the epoch", fmt=".3g"),
}
SEARCH_METRICS = {key: m for key, m in METRICS.items() if m.searchable}
DEFAULT_METRIC = "val_miou"  # without an edition to follow: the course's


def axis_label(key: str) -> str:
    """How a plot's axis names metric ``key``: its name, and its unit when it has one."""
    metric = METRICS[key]
    return f"{metric.name} ({metric.unit})" if metric.unit else metric.name


def search_metric(key: str, where: str = "--metric") -> Metric:
    """The searchable metric ``key``; an unknown one is refused with the valid names."""
    if key not in SEARCH_METRICS:
        raise UserError(f"{where} {key}: valid metrics are {', '.join(SEARCH_METRICS)}")
    return SEARCH_METRICS[key]


def scores(m: SegMetrics) -> dict[str, float]:
    """Every metric that follows from the validation's ``m``, by key."""
    return {key: float(metric.of(m)) for key, metric in METRICS.items() if metric.of}
