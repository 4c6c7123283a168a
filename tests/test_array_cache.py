"""The decoded-array cache: same samples as decoding, built once, rebuilt when files change."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from collections import namedtuple

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from trainable.array_cache import build_array_cache
from trainable.augment import eval_transform, train_transform
from trainable.config import AugConfig, Config
from trainable.dataset import FaceParsingDataset
from trainable.loaders import set_epoch
from trainable.run import build_run
from trainable.scan import scan_split

MEAN, STD = [0.5] * 3, [0.25] * 3


def _pairs(root, split="train"):
    info = scan_split(root, split)
    return info.images, info.masks


@pytest.mark.parametrize("native_masks", [False, True])
def test_cached_samples_equal_decoded_ones(tiny_data, tmp_path, native_masks):
    images, masks = _pairs(tiny_data)
    big = images[0]  # an image twice its mask's size goes through the same area downscale
    cv2.imwrite(big, cv2.resize(cv2.imread(big), (128, 128)))
    size = 48  # not the files' size: the cached arrays are resized like the pipeline resizes
    transform = (eval_transform(size, MEAN, STD) if native_masks
                 else train_transform(AugConfig(cutout_p=0.5), size, MEAN, STD))
    arrays = build_array_cache(images, masks, size, native_masks, tmp_path)
    cached = FaceParsingDataset(images, masks, transform, size=size, native_masks=native_masks, arrays=arrays)
    decoded = FaceParsingDataset(images, masks, transform, size=size, native_masks=native_masks)
    for i in range(len(images)):
        (a_img, a_mask), (b_img, b_mask) = cached[(i, 100 + i)], decoded[(i, 100 + i)]
        assert torch.equal(a_img, b_img) and torch.equal(a_mask, b_mask)
    assert tuple(cached[(0, 1)][1].shape) == ((64, 64) if native_masks else (size, size))


def test_built_once_and_reused(tiny_data, tmp_path):
    images, masks = _pairs(tiny_data)
    first = build_array_cache(images, masks, 32, False, tmp_path)
    stamp = (first.folder / "images.npy").stat().st_mtime_ns
    again = build_array_cache(images, masks, 32, False, tmp_path)
    assert again.folder == first.folder and (again.folder / "images.npy").stat().st_mtime_ns == stamp
    other_size = build_array_cache(images, masks, 48, False, tmp_path)
    assert other_size.folder != first.folder and first.folder.exists()  # both sizes coexist


def _build(args) -> str:
    images, masks, root = args
    return str(build_array_cache(images, masks, 32, False, root).folder)


def test_trials_starting_together_build_one_cache(tiny_data, tmp_path):
    images, masks = _pairs(tiny_data)
    with mp.get_context("spawn").Pool(3) as pool:
        folders = pool.map(_build, [(images, masks, tmp_path)] * 3)
    assert len(set(folders)) == 1
    group = tmp_path / "arrays"
    assert [p.name for p in next(group.iterdir()).iterdir() if p.is_dir()] == [folders[0].rsplit("/", 1)[1]]
    arrays = np.load(f"{folders[0]}/images.npy")
    assert arrays.shape == (len(images), 32, 32, 3) and arrays.reshape(len(images), -1).any(axis=1).all()


def test_changed_files_replace_the_stale_cache(tiny_data, tmp_path):
    images, masks = _pairs(tiny_data)
    old = build_array_cache(images, masks, 32, False, tmp_path)
    before = np.array(old[0][0])
    shutil.copy(images[1], images[0])  # the first image changes on disk
    new = build_array_cache(images, masks, 32, False, tmp_path)
    assert new.folder != old.folder and not old.folder.exists()
    assert not np.array_equal(new[0][0], before) and np.array_equal(new[0][0], new[1][0])


def test_too_little_disk_falls_back_to_decoding(tiny_data, tmp_path, monkeypatch, capsys):
    images, masks = _pairs(tiny_data)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    assert build_array_cache(images, masks, 32, False, tmp_path) is None
    assert "decoded-array cache skipped" in capsys.readouterr().err


def _first_batches(cfg: Config, epochs: int = 2) -> list[torch.Tensor]:
    run = build_run(cfg)
    out = []
    for epoch in range(epochs):
        set_epoch(run.train_loader, cfg.train.seed, epoch)
        out += [images for images, _ in run.train_loader]
    return out


def test_batches_do_not_depend_on_workers_or_cache(tiny_master):
    """Persistent workers, any number of them, with or without the cache: the same epochs."""
    reference = _first_batches(Config.from_dict(tiny_config(tiny_master, data={"array_cache": False})))
    for data in ({"num_workers": 2}, {"num_workers": 1, "array_cache": False}, {"num_workers": 0}):
        batches = _first_batches(Config.from_dict(tiny_config(tiny_master, data=data)))
        assert len(batches) == len(reference)
        assert all(torch.equal(a, b) for a, b in zip(reference, batches, strict=True)), data
    assert not torch.equal(reference[0], reference[len(reference) // 2])  # epochs differ from each other
