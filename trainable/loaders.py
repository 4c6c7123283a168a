"""The data loaders of a run: each epoch's order and augmentation a function of (seed, epoch) alone.

``EpochBatchSampler`` hands out ``(index, seed)`` batches, ``set_epoch`` seeds an epoch, and the
training and validation loaders are built from a config and the validated splits, through the
decoded-array cache when it is on.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from trainable.array_cache import build_array_cache
from trainable.audit import mirrored_flags
from trainable.augment import eval_transform, train_transform
from trainable.config import Config
from trainable.dataset import FaceParsingDataset
from trainable.loop import seed_everything
from trainable.scan import SplitInfo, cache_root

__all__ = ["EpochBatchSampler", "set_epoch", "train_loader", "val_loader"]


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


def train_loader(cfg: Config, train_info: SplitInfo, val_info: SplitInfo, workers: int,
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
