"""Everything a training run needs, built from one config: data, model, losses, optimiser.

``build_run`` resolves the data (the built-in synthetic set when ``data.root`` is empty),
validates it, builds the model within its parameter budget, and returns a ``Run``. ``run_epoch``
trains and evaluates one epoch and returns the metrics a trial reports; ``save_checkpoint`` and
``load_checkpoint`` let a run stop and continue at the next epoch with the same data order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from trainable.array_cache import build_array_cache
from trainable.audit import mirrored_flags
from trainable.augment import eval_transform, train_transform
from trainable.classes import CLASSES
from trainable.config import AugConfig, Config
from trainable.data import FaceParsingDataset, SplitInfo, cache_root, train_and_val
from trainable.errors import UserError
from trainable.layout import CHECKPOINT_FILE, replacing
from trainable.loop import evaluate, make_optimizer, make_scheduler, resolve_device, seed_everything, train_one_epoch
from trainable.losses import build_loss
from trainable.metrics import scores
from trainable.models import SegmentationNet, build_model, count_parameters
from trainable.sources import data_root

__all__ = [
    "EpochBatchSampler",
    "Run",
    "build_run",
    "load_checkpoint",
    "load_trained_model",
    "read_checkpoint",
    "run_epoch",
    "save_checkpoint",
    "set_augmentation",
    "val_loader",
]

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


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, seed)``: the order and each batch's augmentation seed follow from the
    epoch's seed alone, so persistent workers, any number of them, and a run resumed at this epoch
    all see exactly the same data as an uninterrupted run."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool):
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed = 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        order = range(self.n)
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        for b in range(len(self)):
            batch_seed = (self.seed * 1_000_003 + b) % 2**32
            yield [(i, batch_seed) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


def _loader(dataset: FaceParsingDataset, batch_size: int, shuffle: bool, workers: int,
            device: torch.device) -> DataLoader:
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle, drop_last=shuffle and len(dataset) > batch_size)
    # persistent workers: no process start-up per epoch, for training and for evaluation alike
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=workers > 0, prefetch_factor=4 if workers else None)


def set_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Make data order, augmentation and dropout of ``epoch`` a function of (seed, epoch) alone,
    so a run resumed at this epoch continues exactly as an uninterrupted one."""
    epoch_seed = (seed * 1_000_003 + epoch) % 2**63
    seed_everything(epoch_seed)
    loader.batch_sampler.seed = epoch_seed


def _dataset(cfg: Config, images: list[str], masks: list[str] | None, transform, native_masks: bool = False,
             flip_double: bool = False, swap_labels: frozenset[int] = frozenset()) -> FaceParsingDataset:
    """Pairs decoded at the training size, read from the decoded-array cache when it is on."""
    size = cfg.data.image_size
    arrays = None
    if cfg.data.array_cache:
        arrays = build_array_cache(images, masks, size, native_masks, Path(cfg.data.cache_dir or cache_root()),
                                   workers=os.cpu_count() or 1)
    return FaceParsingDataset(images, masks, transform, size=size, native_masks=native_masks,
                              flip_double=flip_double, arrays=arrays, swap_labels=swap_labels)


def val_loader(cfg: Config, val_info: SplitInfo, mean: list[float], std: list[float], workers: int,
               device: torch.device) -> DataLoader:
    """The first ``data.max_val`` validation pairs, images at the model's size, masks at their own."""
    n = cfg.data.max_val or len(val_info)
    dataset = _dataset(cfg, val_info.images[:n], val_info.masks[:n], eval_transform(cfg.data.image_size, mean, std),
                       native_masks=True)
    # masks of different sizes cannot share a batch: score them one by one
    batch = cfg.train.batch_size if len(val_info.mask_sizes) <= 1 else 1
    return _loader(dataset, batch, False, workers, device)


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
    train_loader = _train_loader(cfg, train_info, val_info, workers, device)
    optimizer = make_optimizer(cfg.optim, model)
    scheduler = make_scheduler(cfg.optim, optimizer, len(train_loader), cfg.train.epochs)
    return Run(cfg=cfg, device=device, model=model, criterion=criterion.to(device),
               aux_criterion=aux_criterion.to(device), optimizer=optimizer, scheduler=scheduler,
               train_loader=train_loader,
               val_loader=val_loader(cfg, val_info, train_info.mean, train_info.std, workers, device),
               train_info=train_info, val_info=val_info, params=count_parameters(model))


def _train_loader(cfg: Config, train_info: SplitInfo, val_info: SplitInfo, workers: int,
                  device: torch.device) -> DataLoader:
    """The training pairs (``data.train_on``, ``data.mirrored``) through ``cfg.aug``'s pipeline."""

    def subset(info: SplitInfo, n: int) -> tuple[list[str], list[str], list[bool]]:
        n = n or len(info)
        return info.images[:n], info.masks[:n], mirrored_flags(info.orientations)[:n]  # majority of the whole split

    images, masks, flags = subset(train_info, cfg.data.max_train)
    if cfg.data.train_on == "train+val":
        val_images, val_masks, val_flags = subset(val_info, cfg.data.max_val)
        images, masks, flags = images + val_images, masks + val_masks, flags + val_flags
    if cfg.data.mirrored == "drop":
        images, masks = [p for p, f in zip(images, flags) if not f], [m for m, f in zip(masks, flags) if not f]
    swap = frozenset(i for i, f in enumerate(flags) if f) if cfg.data.mirrored == "fix" else frozenset()
    size = cfg.data.image_size
    train_set = _dataset(cfg, images, masks, train_transform(cfg.aug, size, train_info.mean, train_info.std),
                         flip_double=cfg.data.flip_double, swap_labels=swap)
    return _loader(train_set, cfg.train.batch_size, True, workers, device)


def set_augmentation(run: Run, aug: AugConfig) -> None:
    """Train the next epochs of ``run`` with the settings ``aug`` (a replayed schedule): the training
    pipeline is rebuilt, the data order and seeds stay those of (train.seed, epoch)."""
    run.cfg = replace(run.cfg, aug=aug)
    # the old loader's persistent workers end when it is collected
    run.train_loader = _train_loader(run.cfg, run.train_info, run.val_info,
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


def save_checkpoint(run: Run, epoch: int, directory: str | Path, metrics: dict | None = None) -> Path:
    """Write weights, optimiser, schedule, the next epoch and the epoch's scalar metrics to
    ``directory/checkpoint.pt``."""
    path = Path(directory) / CHECKPOINT_FILE
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "epoch": epoch,
        "config": run.cfg.to_dict(),
        "normalization": {"mean": run.train_info.mean, "std": run.train_info.std},  # to predict without the data
        "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float, str))},
    }
    with replacing(path) as tmp:  # a reader never sees a half-written checkpoint, a full disk leaves none
        torch.save(state, tmp)
    return path


def load_checkpoint(run: Run, directory: str | Path) -> int:
    """Restore ``run`` from ``directory``; returns the epoch to continue with."""
    state = torch.load(Path(directory) / CHECKPOINT_FILE, map_location=run.device, weights_only=True)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])


def read_checkpoint(path: str | Path) -> dict:
    """The state saved by ``save_checkpoint`` (a checkpoint folder or its file); clear errors otherwise."""
    path = Path(path).expanduser()
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{path}: no checkpoint found (expected a trial checkpoint folder or {CHECKPOINT_FILE})")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    except Exception as e:
        raise UserError(f"{file}: not a readable checkpoint ({type(e).__name__}); it may be corrupt or "
                        f"from another tool") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{file}: not a checkpoint written by this tool (no model weights and config)")
    return state


def load_trained_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[SegmentationNet, Config, dict]:
    """The model of a checkpoint, in eval mode, with its config and the saved state."""
    state = read_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    # the saved weights replace any the model starts from (none fetched), and the rules are checked by
    # whoever asks (predict --submission): loading only rebuilds the network
    model = build_model(replace(cfg.model, pretrained="none", max_params=0), aux_head=cfg.loss.aux_weight > 0)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UserError(f"{path}: the weights do not fit model {cfg.model.arch} on {cfg.model.encoder} "
                        f"({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, state
