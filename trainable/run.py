"""A training run built from one config, and its epoch.

``build_run`` resolves the data (the built-in synthetic set when ``data.root`` is empty),
validates it, builds the model within its parameter budget, the losses, the optimiser and the
loaders, and returns a ``Run``. ``run_epoch`` trains and evaluates one epoch and returns the
metrics a trial reports; ``trainable.checkpoints`` lets a run stop and continue at the next epoch
with the same data order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader

from trainable.classes import CLASSES
from trainable.config import AugConfig, Config
from trainable.loaders import set_epoch, train_loader, val_loader
from trainable.loop import evaluate, make_optimizer, make_scheduler, resolve_device, seed_everything, train_one_epoch
from trainable.losses import build_loss
from trainable.metrics import scores
from trainable.models import SegmentationNet, build_model, count_parameters
from trainable.scan import SplitInfo
from trainable.sources import data_root
from trainable.splits import train_and_val

__all__ = ["Run", "build_run", "run_epoch", "set_augmentation"]


@dataclass
class Run:
    cfg: Config
    device: torch.device
    model: SegmentationNet
    criterion: torch.nn.Module
    aux_criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    val_loader: DataLoader
    train_info: SplitInfo
    val_info: SplitInfo
    params: int


def build_run(cfg: Config) -> Run:
    """Seed, validate the data, and build model, losses, optimiser and loaders from ``cfg``."""
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    root = data_root(cfg.data)
    workers = min(cfg.data.num_workers, os.cpu_count() or 1)
    train_info, val_info = train_and_val(root, cfg.data)
    model = build_model(cfg.model, aux_head=cfg.loss.aux_weight > 0).to(device)
    if device.type == "cuda" and cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion, aux_criterion = build_loss(cfg.loss, train_info.class_pixels)
    train = train_loader(cfg, train_info, val_info, workers, device)
    optimizer = make_optimizer(cfg.optim, model)
    scheduler = make_scheduler(cfg.optim, optimizer, len(train), cfg.train.epochs)
    return Run(cfg=cfg, device=device, model=model, criterion=criterion.to(device),
               aux_criterion=aux_criterion.to(device), optimizer=optimizer, scheduler=scheduler,
               train_loader=train,
               val_loader=val_loader(cfg, val_info, train_info.mean, train_info.std, workers, device),
               train_info=train_info, val_info=val_info, params=count_parameters(model))


def set_augmentation(run: Run, aug: AugConfig) -> None:
    """Train the next epochs of ``run`` with the settings ``aug`` (a replayed schedule): the training
    pipeline is rebuilt, the data order and seeds stay those of (train.seed, epoch)."""
    run.cfg = replace(run.cfg, aug=aug)
    # the old loader's persistent workers end when it is collected
    run.train_loader = train_loader(run.cfg, run.train_info, run.val_info,
                                     min(run.cfg.data.num_workers, os.cpu_count() or 1), run.device)


def run_epoch(run: Run, epoch: int) -> dict:
    """Train epoch ``epoch`` (0-based) and evaluate; returns the metrics a trial reports."""
    cfg = run.cfg
    set_epoch(run.train_loader, cfg.train.seed, epoch)
    stats = train_one_epoch(run.model, run.train_loader, run.criterion, run.optimizer, run.scheduler,
                            run.device, cfg.train, run.aux_criterion, cfg.loss.aux_weight)
    metrics, val_loss = evaluate(run.model, run.val_loader, run.device, cfg.train.tta_scales,
                                 cfg.train.tta_flip, cfg.train.amp, cfg.train.channels_last)
    return {
        "epoch": epoch + 1,
        **scores(metrics),
        "val_loss": val_loss,
        "train_loss": stats["train_loss"],
        "lr": stats["lr"],
        "params": run.params,
        "val_absent_classes": ",".join(metrics.absent),
        "iou": dict(zip(CLASSES, map(float, metrics.iou), strict=False)),
    }
