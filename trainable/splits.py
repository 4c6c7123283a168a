"""A data set's training and validation splits: its own validation split, or pairs held out of the
training split (by a hash of each name, or as an experiment's list) when it has none."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from trainable.config import DataConfig
from trainable.folders import DataError, has_split
from trainable.scan import SplitInfo, scan_split

__all__ = ["holdout_names", "train_and_val"]


def holdout_names(images: list[str], fraction: float) -> list[str]:
    """The file names of the training images held out for validation: a ``fraction`` of them (at
    least one), chosen by a hash of each name, so the same files always give the same split whatever
    their order, and adding files moves few of the others."""
    names = sorted(Path(p).name for p in images)
    n = max(1, round(len(names) * fraction))
    if n >= len(names):
        raise DataError([f"data.val_fraction={fraction:g} holds out {n} of {len(names)} training pairs and leaves "
                         f"none to train on; lower it"])
    return sorted(sorted(names, key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:n])


def train_and_val(root: str | Path, data: DataConfig, notes: list[str] | None = None) -> tuple[SplitInfo, SplitInfo]:
    """The training and validation splits of ``data``: the data's own validation
    split, or, when it has none, the training pairs listed in ``data.holdout`` (or drawn by
    ``data.val_fraction``) held out of the training split. The statistics of a held-out split are
    those of the whole training folder."""
    train = scan_split(root, "train", cache_dir=data.cache_dir)
    if has_split(root, "val") and not data.holdout:
        return train, scan_split(root, "val", cache_dir=data.cache_dir)
    if data.holdout:
        try:
            held = set(Path(data.holdout).read_text().split())
        except OSError as e:
            raise DataError([f"{data.holdout}: the list of held-out training images is unreadable ({e.strerror})"]) \
                from None
    else:
        held = set(holdout_names(train.images, data.val_fraction))
    if notes is not None:
        notes.append(f"{Path(root) / 'train'}: no validation split; {len(held)} of {len(train)} training pairs "
                     f"are held out for validation (data.val_fraction={data.val_fraction:g})")
    pick = [Path(p).name in held for p in train.images]

    def part(keep: bool) -> SplitInfo:
        return replace(train, split="val" if keep else "train",
                       images=[p for p, k in zip(train.images, pick) if k == keep],
                       masks=[m for m, k in zip(train.masks, pick) if k == keep],
                       orientations=[o for o, k in zip(train.orientations, pick) if k == keep], notes=[])

    return part(False), part(True)
