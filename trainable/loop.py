"""The training loop in plain PyTorch: optimiser, schedule, one epoch of training, evaluation.

No Ray here: the Ray trainable, benchmarks and retraining all call these same functions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from trainable.config import OptimConfig, TrainConfig
from trainable.metrics import (
    SegMetrics,
    class_argmax,
    compute_metrics,
    image_confusion,
    image_fscores,
    prob_nll,
)
from trainable.scoring import score_logits
from trainable.solution import model_logits
from trainable.tta import tta_probs

__all__ = [
    "NonFiniteLossError",
    "evaluate",
    "make_optimizer",
    "make_scheduler",
    "predict_batches",
    "resolve_device",
    "seed_everything",
    "train_one_epoch",
]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: the trial cannot continue with these settings (and a retry
    with the same config and seed would diverge again)."""

    def __init__(self, loss: float):
        super().__init__(f"training loss became {loss}; lower optim.lr or set train.grad_clip")
        self.loss = loss

    def __reduce__(self):  # pickles (e.g. across processes) with its value, not its message
        return type(self), (self.loss,)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but no CUDA device is visible; use train.device=cpu or auto")
    return torch.device(name)


def make_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    # no weight decay on norms and biases: decaying them only hurts small from-scratch models
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    raise ValueError(f"optim.name={cfg.name!r}: valid optimisers are adamw, sgd")


def make_scheduler(cfg: OptimConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                   epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step linear warmup, then poly, cosine or constant decay over ``epochs``."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        if cfg.schedule == "poly":
            return (1 - t) ** cfg.poly_power
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_one_epoch(model: nn.Module, loader, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, device: torch.device, train: TrainConfig,
                    aux_criterion: nn.Module | None = None, aux_weight: float = 0.0) -> dict[str, float]:
    """One pass over ``loader``; returns the mean training loss and the last learning rate."""
    model.train()
    memory_format = torch.channels_last if train.channels_last and device.type == "cuda" else torch.contiguous_format
    total, count = torch.zeros((), device=device), 0
    for images, masks in loader:
        images = images.to(device, non_blocking=True).to(memory_format=memory_format)
        masks = masks.to(device, non_blocking=True).long()  # uint8 from the loader: 8x fewer bytes to move
        with _autocast(device, train.amp):
            out = model(images)
        if isinstance(out, tuple):  # (main, auxiliary) logits in training
            out, aux = out
            loss = criterion(out, masks) + aux_weight * aux_criterion(aux, masks)
        else:
            loss = criterion(out, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        scheduler.step()
        total += loss.detach() * len(images)  # summed on the device: no sync per step
        count += len(images)
    mean_loss = (total / max(1, count)).item()  # one sync per epoch, not one per step
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(mean_loss)
    return {"train_loss": mean_loss, "lr": optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def predict_batches(model: nn.Module, loader, device: torch.device, scales: Sequence[float] = (1.0,),
                    flip: bool = False, amp: bool = True, channels_last: bool = True
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """For each ``(images, masks)`` batch of ``loader``: the predicted class map at the masks' size,
    the masks and the batch's summed NLL, all on ``device``.

    The loss is the negative log-likelihood of the (TTA-averaged) prediction, unweighted, so it
    compares across trials whose training losses differ.
    """
    model.eval()
    memory_format = torch.channels_last if channels_last and device.type == "cuda" else torch.contiguous_format
    plain = tuple(scales) == (1.0,) and not flip  # nothing to average: logits suffice, no probabilities
    for images, masks in loader:
        images = images.to(device, non_blocking=True).to(memory_format=memory_format)
        masks = masks.to(device, non_blocking=True)
        with _autocast(device, amp):
            scores = model_logits(model, images) if plain else tta_probs(model, images, scales, flip,
                                                                         out_size=masks.shape[-2:])
        if plain:  # upsampled band by band inside, never whole
            pred, batch_nll = score_logits(scores, masks)
        else:
            pred, batch_nll = class_argmax(scores)[1], prob_nll(scores, masks)
        yield pred, masks, batch_nll


def evaluate(model: nn.Module, loader, device: torch.device, scales: Sequence[float] = (1.0,),
             flip: bool = False, amp: bool = True, channels_last: bool = True) -> tuple[SegMetrics, float]:
    """Metrics over the whole loader (the set's confusion matrix, and each image's for the 2025
    F-score), scored at each mask's own resolution, and the mean NLL (``predict_batches``)."""
    conf, per_image = None, []
    nll, pixels = torch.zeros((), device=device, dtype=torch.float64), 0
    for pred, masks, batch_nll in predict_batches(model, loader, device, scales, flip, amp, channels_last):
        nll += batch_nll
        pixels += masks.numel()
        images_conf = image_confusion(pred, masks)  # kept on the device: no sync per batch
        per_image.append(images_conf)
        conf = images_conf.sum(0) if conf is None else conf + images_conf.sum(0)
    metrics = replace(compute_metrics(conf), fscore=float(image_fscores(torch.cat(per_image)).mean()))
    return metrics, (nll / max(1, pixels)).item()
