"""A trained model's predictions on its validation set, image by image.

``score_images`` makes one pass over the set, as a trial's validation does (the same loader, the
checkpoint's own test-time augmentation), and keeps per image only its score on the experiment's
metric, and the set's confusion matrix; ``show_images`` then predicts the few images a picture
shows again and keeps their pixels. A large validation set is never held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainable.checkpoints import load_trained_model
from trainable.classes import NUM_CLASSES
from trainable.config import Config, flatten
from trainable.decode import decode_pair
from trainable.loaders import val_loader
from trainable.loop import predict_batches, resolve_device
from trainable.metrics import SEARCH_METRICS, image_confusion
from trainable.sources import data_root
from trainable.splits import train_and_val

__all__ = ["Predictor", "Scored", "Shown", "spread_indices"]


@dataclass(frozen=True)
class Scored:
    """Every validation image's score on ``metric``, in the loader's order, and the set's confusion."""

    names: tuple[str, ...]  # the images' file names
    scores: np.ndarray  # per image (per-image mIoU in %, or the 2025 F-score in 0..1)
    confusion: np.ndarray  # [truth, prediction] pixel counts over the set, NUM_CLASSES x NUM_CLASSES
    metric: str

    def worst(self, k: int) -> list[int]:
        """The indices of the ``k`` lowest-scoring images, worst first (ties: the earlier image)."""
        return [int(i) for i in np.argsort(self.scores, kind="stable")[:k]]


@dataclass(frozen=True)
class Shown:
    """One validation image as a picture shows it, at its mask's size."""

    name: str
    image: np.ndarray  # RGB uint8
    truth: np.ndarray  # class indices
    pred: np.ndarray  # class indices
    score: float  # the image's score on the metric


def spread_indices(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``0..n-1``, first and last included: the same images for every
    model of a set, whatever its order of scores."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, k)).round()}) if n else []


class Predictor:
    """The model of a checkpoint (a trial's ``checkpoint_*`` folder or a retrain's ``model.pt``) on the
    validation set of its own config (``overrides``: dotted keys set on it first, e.g. another
    ``data.root``), on a GPU if this machine has one (whatever the trial ran on) unless the overrides
    name ``train.device``."""

    def __init__(self, checkpoint: str | Path, overrides: dict | None = None):
        self.model, cfg, self.state = load_trained_model(checkpoint)
        self.cfg = Config.from_dict({**flatten(cfg.to_dict()), **(overrides or {})}) if overrides else cfg
        self.device = resolve_device(self.cfg.train.device if "train.device" in (overrides or {}) else "auto")
        self.model.to(self.device)
        train_info, self.val_info = train_and_val(data_root(self.cfg.data), self.cfg.data)
        # the checkpoint's own statistics; one without them: those of the training images
        norm = self.state.get("normalization") or {"mean": train_info.mean, "std": train_info.std}
        self.loader = val_loader(self.cfg, self.val_info, norm["mean"], norm["std"], 0, self.device)

    def _predict(self, batches):
        train = self.cfg.train
        return predict_batches(self.model, batches, self.device, train.tta_scales, train.tta_flip, train.amp,
                               train.channels_last)

    def score_images(self, metric: str) -> Scored:
        """One pass over the validation set: each image's score on ``metric``, and the confusion matrix."""
        per_image = SEARCH_METRICS[metric].per_image
        scores, confusion = [], torch.zeros((NUM_CLASSES, NUM_CLASSES), dtype=torch.int64)
        for pred, masks, _ in self._predict(self.loader):
            confs = image_confusion(pred, masks).cpu()
            scores.append(per_image(confs))
            confusion += confs.sum(0)
        names = tuple(Path(p).name for p in self.loader.dataset.images)
        return Scored(names, np.concatenate(scores) if scores else np.zeros(0), confusion.numpy(), metric)

    def show_images(self, indices: list[int], metric: str) -> list[Shown]:
        """Images ``indices`` of the validation set with their truth, this model's prediction and score."""
        dataset, shown = self.loader.dataset, []
        for i in indices:
            image, mask = dataset[i]
            pred, truth, _ = next(self._predict([(image[None], mask[None])]))
            score = SEARCH_METRICS[metric].per_image(image_confusion(pred, truth).cpu())[0]
            picture, _ = decode_pair(dataset.images[i], dataset.masks[i], 0, True)  # the image at its mask's size
            shown.append(Shown(Path(dataset.images[i]).name, picture, truth[0].cpu().numpy(), pred[0].cpu().numpy(),
                               float(score)))
        return shown
